/** How the fake Firecracker touches the host: paths seen through the (emulated) jail, and Rust's io error texts. */
import { constants, openSync } from 'node:fs';
import { constants as os } from 'node:os';
import { join, posix } from 'node:path';

/** Set by the fake jailer: the jail's root, which Firecracker would have pivot_root'ed into. */
const CHROOT = process.env.FAKE_FIRECRACKER_CHROOT;

/** A path as Firecracker opens it: inside the jail when there is one (its cwd is the jail's /). */
export function hostPath(path: string): string {
  return CHROOT ? join(CHROOT, posix.resolve('/', path)) : path;
}

/** open_file_nonblock (src/vmm/src/utils/mod.rs): read + write + create, no truncation, O_NONBLOCK (for FIFOs). */
export function openLogFile(path: string): number {
  return openSync(hostPath(path), constants.O_RDWR | constants.O_CREAT | constants.O_NONBLOCK, 0o644);
}

const STRERROR: Readonly<Record<string, string>> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EEXIST: 'File exists',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  ETXTBSY: 'Text file busy',
  EROFS: 'Read-only file system',
  ENAMETOOLONG: 'File name too long',
  ELOOP: 'Too many levels of symbolic links',
  EADDRINUSE: 'Address already in use',
  ECONNREFUSED: 'Connection refused',
};

/** Rust's Display of an OS `io::Error`: glibc's strerror and " (os error N)"; other errors by their message. */
export function rustIoError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const errno = code ? (os.errno as Record<string, number | undefined>)[code] : undefined;
  if (!code || errno === undefined) return error instanceof Error ? error.message : String(error);
  return `${STRERROR[code] ?? code} (os error ${errno})`;
}
