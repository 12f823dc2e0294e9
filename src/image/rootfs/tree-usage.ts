/** What a directory tree needs on an ext4 file system: blocks and inodes, counted from its apparent sizes. */

import { lstat, opendir } from 'node:fs/promises';
import { join } from 'node:path';

/** The ext4 block size jitvm's rootfs images use. */
export const BLOCK_SIZE = 4096;

/** Symlink targets shorter than this live in the inode itself (a "fast" symlink) and take no block. */
const FAST_SYMLINK_MAX = 59;

/** The space a tree takes on ext4 with 4 KiB blocks. */
export interface TreeUsage {
  /** Data blocks: file contents, directory entries, long symlink targets. */
  readonly blocks: number;
  /** Inodes: one per file, directory, symlink or special file (hard links share one). */
  readonly inodes: number;
}

/** Bytes a directory entry takes: 8 bytes of header plus the name, padded to 4. */
function direntBytes(name: string): number {
  return 8 + Math.ceil(Buffer.byteLength(name) / 4) * 4;
}

/** Blocks of a directory holding entries of `bytes`, plus its `.`/`..` and, past one block, an htree index block. */
function directoryBlocks(bytes: number): number {
  const blocks = Math.max(1, Math.ceil((bytes + 24) / BLOCK_SIZE));
  return blocks === 1 ? 1 : blocks + 1;
}

/**
 * Walks `dir` (without following symlinks) and counts the blocks and inodes ext4 needs to hold it: regular files'
 * apparent sizes rounded up to blocks (holes counted as data), each hard-linked file once. Costs one lstat per entry.
 */
export async function measureTree(dir: string): Promise<TreeUsage> {
  const seen = new Set<string>();
  let blocks = 0;
  let inodes = 1;
  const walk = async (path: string): Promise<void> => {
    let entryBytes = 0;
    for await (const entry of await opendir(path)) {
      entryBytes += direntBytes(entry.name);
      const child = join(path, entry.name);
      const stats = await lstat(child);
      if (stats.nlink > 1 && !stats.isDirectory()) {
        const id = `${stats.dev}:${stats.ino}`;
        if (seen.has(id)) continue;
        seen.add(id);
      }
      inodes += 1;
      if (stats.isDirectory()) await walk(child);
      else if (stats.isFile()) blocks += Math.ceil(stats.size / BLOCK_SIZE);
      else if (stats.isSymbolicLink() && stats.size > FAST_SYMLINK_MAX) blocks += 1;
    }
    blocks += directoryBlocks(entryBytes);
  };
  await walk(dir);
  return { blocks, inodes };
}
