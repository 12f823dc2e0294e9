/**
 * Where Firecracker's files live and what Firecracker calls them. Unjailed, that is the VM's runtime dir under the
 * same names. Jailed, Firecracker sees only its chroot: inputs are hard-linked in, and every path it is given is
 * chroot-relative (docs/jailer.md, "Observations").
 */
import { copyFileSync, linkSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError } from '../../core/errors.js';

export interface FileSpace {
  /** The directory Firecracker's own files go in (the runtime dir, or the jail root). */
  readonly root: string;
  /** Whether this is a jail (paths are translated). */
  readonly jailed: boolean;
  /** Firecracker's name for `name` inside `root`. */
  vmmPath(name: string): string;
  /** Host path of `name` inside `root`. */
  hostPath(name: string): string;
  /**
   * Makes the host file `source` readable by Firecracker as `name` and returns Firecracker's path for it. Jailed,
   * it is hard-linked (a writable file must be, so writes reach the original); a read-only one may be copied.
   */
  expose(source: string, name: string, writable: boolean): string;
}

export function plainFileSpace(runtimeDir: string): FileSpace {
  return {
    root: runtimeDir,
    jailed: false,
    vmmPath: (name) => join(runtimeDir, name),
    hostPath: (name) => join(runtimeDir, name),
    expose: (source) => source,
  };
}

export function jailFileSpace(jailRoot: string): FileSpace {
  return {
    root: jailRoot,
    jailed: true,
    vmmPath: (name) => `/${name}`,
    hostPath: (name) => join(jailRoot, name),
    expose(source, name, writable) {
      const target = join(jailRoot, name);
      try {
        linkSync(source, target);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EXDEV' && !writable) copyFileSync(source, target);
        else
          throw new InvalidArgumentError(`cannot put ${source} into the jail ${jailRoot}: ${linkProblem(code, error)}`);
      }
      return `/${name}`;
    },
  };
}

function linkProblem(code: string | undefined, error: unknown): string {
  switch (code) {
    case 'ENOENT':
      return 'it does not exist';
    case 'EXDEV':
      return 'a writable drive must be hard-linked, so it must be on the same filesystem as the chroot base dir';
    case 'EPERM':
    case 'EACCES':
      return 'permission denied (the kernel may refuse hard links to files you do not own: fs.protected_hardlinks)';
    default:
      return (error as Error).message;
  }
}
