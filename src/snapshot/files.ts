/**
 * The files of a snapshot: recorded (role, size, streaming sha256) when it is sealed, and checked against its
 * manifest when it is opened.
 */

import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { chmod, lstat, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';

import { parseWith } from '../core/config.js';
import { InvalidArgumentError } from '../core/errors.js';
import { corruptSnapshot } from './errors.js';
import {
  FILE_ROLES,
  type FileRole,
  MANIFEST_FILE,
  READ_NO_FOLLOW,
  SnapshotFileNameSchema,
  type SnapshotFile,
  type SnapshotManifest,
} from './manifest.js';

/** How much is checked of a snapshot's files: `full` re-hashes every byte, `size` only compares sizes. */
export type VerifyMode = 'full' | 'size';

/** How a snapshot is checked when it is opened or inspected. */
export interface VerifyOptions {
  readonly verify?: VerifyMode;
}

const HASH_CHUNK_BYTES = 4 << 20;

/** The sha256 (hex) and length of a file, read in 4 MiB chunks: never whole into memory. Refuses a link. */
export async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
  const handle = await open(path, READ_NO_FOLLOW);
  try {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(HASH_CHUNK_BYTES);
    let size = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, size);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
    return { sha256: hash.digest('hex'), size };
  } finally {
    await handle.close();
  }
}

/** How `seal` leaves the files it records. */
export interface SealOptions {
  /**
   * Roles whose files stay writable by their owner (0600) instead of read-only (0400). QEMU 7.2 opens a
   * memory-backend-file read-write even with `share=off` (a 0400 RAM file fails with EACCES unless run as root), so
   * its RAM file needs `['memory']`; the sha256 checked at open still guards its content.
   */
  readonly ownerWritable?: readonly FileRole[];
}

/** The names of a backend's state and memory files (VmSnapshot.files). */
export interface RoleNames {
  readonly state: string;
  readonly memory: string;
}

/**
 * Makes every file a backend wrote into `dir` read-only (but see SealOptions) and records it for the manifest: its
 * state and memory files by role, any other file as `other`; state first, then memory, then the rest by name.
 * Refuses a link, a directory, a name the manifest cannot hold, and a missing state or memory file.
 */
export async function recordFiles(dir: string, roles: RoleNames, options: SealOptions = {}): Promise<SnapshotFile[]> {
  if (roles.state === roles.memory) {
    throw new InvalidArgumentError(`a snapshot's state and memory must be two files, both are ${roles.state}`);
  }
  const entries = await readdir(dir, { withFileTypes: true }).catch((error: unknown) => {
    throw new InvalidArgumentError(`no snapshot was written to ${dir}`, { cause: error });
  });
  for (const role of ['state', 'memory'] as const) {
    if (!entries.some((entry) => entry.name === roles[role])) {
      throw new InvalidArgumentError(`the snapshot's ${role} file ${roles[role]} is not in ${dir}`);
    }
  }
  const files = await Promise.all(
    entries.map(async (entry): Promise<SnapshotFile> => {
      const path = join(dir, entry.name);
      if (!entry.isFile()) throw new InvalidArgumentError(`${path} is not a regular file: a snapshot holds only files`);
      const name = parseWith(SnapshotFileNameSchema, entry.name, `snapshot file ${path}`);
      const role = name === roles.state ? 'state' : name === roles.memory ? 'memory' : 'other';
      await chmod(path, options.ownerWritable?.includes(role) ? 0o600 : 0o400);
      const { size, sha256 } = await hashFile(path);
      return { name, role, size, sha256 };
    }),
  );
  const rank = (file: SnapshotFile): number => FILE_ROLES.indexOf(file.role);
  return files.sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
}

/**
 * Checks that the directory of snapshot `name` holds exactly its manifest's files (and the manifest), each a
 * regular file of the recorded size and, with `full`, of the recorded sha256. Every size is checked before any byte
 * is hashed. Refuses with SnapshotRejectedError (corrupt).
 */
export async function verifyFiles(
  name: string,
  dir: string,
  manifest: SnapshotManifest,
  mode: VerifyMode,
): Promise<void> {
  const present = new Set(await readdir(dir));
  const listed = new Set([MANIFEST_FILE, ...manifest.files.map((file) => file.name)]);
  const extra = [...present].filter((entry) => !listed.has(entry));
  if (extra.length > 0) throw corruptSnapshot(name, `holds files its manifest does not list (${extra.join(', ')})`);
  const missing = manifest.files.filter((file) => !present.has(file.name)).map((file) => file.name);
  if (missing.length > 0) throw corruptSnapshot(name, `is missing files its manifest lists (${missing.join(', ')})`);
  const fingerprints = new Map<string, string>();
  for (const file of manifest.files) {
    const info = await lstat(join(dir, file.name), { bigint: true });
    if (!info.isFile()) throw corruptSnapshot(name, `has a ${file.name} that is not a regular file`);
    fingerprints.set(file.name, fingerprint(info, file.sha256));
    if (info.size !== BigInt(file.size)) {
      throw corruptSnapshot(
        name,
        `has a ${file.name} of ${info.size} bytes where its manifest records ${file.size} (truncated or replaced)`,
      );
    }
  }
  if (mode === 'size') return;
  await Promise.all(
    manifest.files.map(async (file) => {
      const path = join(dir, file.name);
      const seen = fingerprints.get(file.name)!;
      if (verifiedInodes.get(path) === seen) return;
      const actual = await hashFile(path);
      if (actual.sha256 !== file.sha256 || actual.size !== file.size) {
        throw corruptSnapshot(name, `has a ${file.name} whose sha256 differs from its manifest's (it was modified)`);
      }
      verifiedInodes.set(path, seen);
    }),
  );
}

/**
 * Files this process has hashed and found as their manifest says, with the inode state they had then. A file whose
 * inode is unchanged is not hashed again: any write, truncation, replacement or `utimes` changes its ctime, which
 * the kernel sets and user space cannot. So a fork or pool refill verifies a 256 MiB memory file once (~230 ms)
 * rather than per clone.
 */
const verifiedInodes = new Map<string, string>();

function fingerprint(info: BigIntStats, sha256: string): string {
  return [info.dev, info.ino, info.size, info.mtimeNs, info.ctimeNs, sha256].join(':');
}
