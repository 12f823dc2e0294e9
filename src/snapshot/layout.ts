/**
 * Where snapshots live and how the store's directory is read: one directory per snapshot, named after it, beside
 * `.staging-*` (being written) and `.trash-*` (being removed) directories that never count as snapshots.
 */

import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

import { InvalidArgumentError } from '../core/errors.js';
import { type RuntimeHost, platformPath } from '../core/paths.js';
import { cacheRoot } from '../image/cache.js';
import { SnapshotRejectedError } from './errors.js';
import { SNAPSHOT_NAME, type SnapshotManifest, readManifest } from './manifest.js';

/** Prefix of the private directory a snapshot is written in before it is published. */
export const STAGING_PREFIX = '.staging-';
/** Prefix a snapshot's directory is renamed to before it is deleted. */
export const TRASH_PREFIX = '.trash-';

/** `$JITVM_SNAPSHOT_DIR`, else `<cacheRoot()>/snapshots`. */
export function snapshotRoot(host: RuntimeHost = { env: process.env, platform: process.platform }): string {
  if (host.env.JITVM_SNAPSHOT_DIR) return host.env.JITVM_SNAPSHOT_DIR;
  return platformPath(host.platform).join(cacheRoot(host), 'snapshots');
}

/** Returns `name` if it is a valid snapshot name, else throws InvalidArgumentError saying what is allowed. */
export function checkSnapshotName(name: string): string {
  if (!SNAPSHOT_NAME.test(name)) {
    throw new InvalidArgumentError(
      `invalid snapshot name ${JSON.stringify(name)}: use 1-64 letters, digits, \`_\`, \`.\` or \`-\`, ` +
        'starting with a letter or digit',
    );
  }
  return name;
}

/** One snapshot directory as `list()` sees it, without checking its files' contents. */
export interface SnapshotEntry {
  readonly name: string;
  readonly dir: string;
  /** Total size of the files in the directory, as found on disk. */
  readonly bytes: number;
  /** ISO time it was taken (from the manifest), or its directory's mtime when the manifest cannot be read. */
  readonly createdAt: string;
  /** The manifest; undefined when it cannot be read, and `problem` says why. */
  readonly manifest: SnapshotManifest | undefined;
  readonly problem: string | undefined;
}

/** Age order: oldest first, then by name. */
export function oldestFirst(a: SnapshotEntry, b: SnapshotEntry): number {
  return Date.parse(a.createdAt) - Date.parse(b.createdAt) || a.name.localeCompare(b.name);
}

/**
 * Every snapshot directory in `root`, oldest first, each with its manifest or the reason it cannot be read (so
 * broken ones can be seen and removed). Reads one small manifest per snapshot; hashes nothing.
 */
export async function listSnapshots(root: string): Promise<SnapshotEntry[]> {
  const entries = await readdir(root, { withFileTypes: true });
  const names = entries.filter((entry) => entry.isDirectory() && SNAPSHOT_NAME.test(entry.name));
  const listed = await Promise.all(names.map((entry) => describe(root, entry.name)));
  return listed.filter((entry): entry is SnapshotEntry => entry !== undefined).sort(oldestFirst);
}

/** Undefined when the directory went away meanwhile (removed by another process). */
async function describe(root: string, name: string): Promise<SnapshotEntry | undefined> {
  const dir = join(root, name);
  try {
    const [info, bytes] = await Promise.all([lstat(dir), filesBytes(dir)]);
    const read = await readManifest(name, dir).then(
      (manifest) => ({ manifest, problem: undefined }),
      (error: unknown) => {
        if (error instanceof SnapshotRejectedError) return { manifest: undefined, problem: error.message };
        throw error;
      },
    );
    const createdAt = read.manifest?.createdAt ?? info.mtime.toISOString();
    return { name, dir, bytes, createdAt, ...read };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Total size of the regular files directly in `dir`. */
async function filesBytes(dir: string): Promise<number> {
  const entries = await readdir(dir, { withFileTypes: true });
  const sizes = await Promise.all(
    entries.filter((entry) => entry.isFile()).map(async (entry) => (await lstat(join(dir, entry.name))).size),
  );
  return sizes.reduce((sum, size) => sum + size, 0);
}
