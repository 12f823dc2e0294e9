/** How big a rootfs image is and how many inodes it gets, from what its tree needs. */

import { InvalidArgumentError } from '../../core/errors.js';
import { BLOCK_SIZE, type TreeUsage } from './tree-usage.js';

/** Bytes per inode (mkfs.ext4 `-I`): room for nanosecond and post-2038 timestamps. */
export const INODE_SIZE = 256;

/** The smallest image made when the caller gives no size; the file is sparse, so unused room costs no disk. */
export const FLOOR_MIB = 64;

/** Room added on top of what the tree needs when the caller gives no size. */
const HEADROOM = 1.25;

const MIB = 1024 * 1024;
const BLOCKS_PER_GROUP = BLOCK_SIZE * 8;
const DESCRIPTOR_BYTES = 64;

/** What mkfs.ext4 is asked for. */
export interface Ext4Plan {
  /** Size of the image file and its file system. */
  readonly sizeMiB: number;
  /** Inodes to create (`-N`): the tree's own, a fifth more and 1024 spare, whatever the size. */
  readonly inodes: number;
  /** The least size that holds the tree (what a too-small `sizeMiB` is told). */
  readonly requiredMiB: number;
}

/** Block groups 0 and 1 and the powers of 3, 5 and 7 keep a superblock backup (sparse_super). */
function backupGroups(groups: number): number {
  let count = Math.min(groups, 2);
  for (const base of [3, 5, 7]) for (let g = base; g < groups; g *= base) count += 1;
  return count;
}

/** Blocks mkfs needs besides data: inode tables, bitmaps, superblocks and descriptors, lost+found. */
function metadataBlocks(dataBlocks: number, inodes: number): number {
  const inodeTable = Math.ceil((inodes * INODE_SIZE) / BLOCK_SIZE);
  const groups = Math.max(1, Math.ceil((dataBlocks + inodeTable) / BLOCKS_PER_GROUP));
  const descriptorBlocks = Math.ceil((groups * DESCRIPTOR_BYTES) / BLOCK_SIZE);
  // Per group: the block and inode bitmaps, and a partly filled last inode-table block.
  const perGroup = 3;
  const lostAndFound = 4;
  return inodeTable + groups * perGroup + backupGroups(groups) * (1 + descriptorBlocks) + lostAndFound;
}

/**
 * The image size and inode count for a tree of `usage`. Without `sizeMiB`: what the tree needs plus a quarter,
 * at least FLOOR_MIB. A `sizeMiB` below what the tree needs is refused with InvalidArgumentError saying how much it
 * needs; `what` names the tree in that message.
 */
export function planExt4(usage: TreeUsage, what: string, sizeMiB?: number): Ext4Plan {
  const inodes = Math.ceil(usage.inodes * 1.2) + 1024;
  const blocks = usage.blocks + metadataBlocks(usage.blocks, inodes);
  // 3% for what the model leaves out (extent tree blocks of fragmented files, directory slack), plus 1 MiB.
  const requiredMiB = Math.ceil((blocks * BLOCK_SIZE * 1.03) / MIB) + 1;
  const roomyMiB = Math.max(FLOOR_MIB, Math.ceil(requiredMiB * HEADROOM));
  if (sizeMiB === undefined) return { sizeMiB: roomyMiB, inodes, requiredMiB };
  if (!Number.isInteger(sizeMiB) || sizeMiB <= 0) {
    throw new InvalidArgumentError(`the image size must be a whole number of MiB above 0, got ${sizeMiB}`);
  }
  if (sizeMiB < requiredMiB) {
    throw new InvalidArgumentError(
      `a ${sizeMiB} MiB image is too small for ${what}: it needs at least ${requiredMiB} MiB ` +
        `(${usage.inodes} files and directories, ${Math.ceil((usage.blocks * BLOCK_SIZE) / MIB)} MiB of data); ` +
        `give ${requiredMiB} MiB or more, or leave the size out to get ${roomyMiB} MiB`,
    );
  }
  return { sizeMiB, inodes, requiredMiB };
}
