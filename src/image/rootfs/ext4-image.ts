/**
 * Turns a directory tree into an ext4 image file with `mkfs.ext4 -d` (no mounts, no root needed for the tree's own
 * files), written next to its destination and renamed into place, with the image's sidecar config when it has one.
 */

import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { InvalidArgumentError } from '../../core/errors.js';
import { ImageBuildError } from '../errors.js';
import { createSparseFile, withTempDir } from '../fs-util.js';
import { runHostCommand } from '../host-command.js';
import { E2FSPROGS_INSTALL, e2fsTool } from './e2fsprogs.js';
import { type Ext4Plan, INODE_SIZE, planExt4 } from './ext4-plan.js';
import { type RootfsConfig, rootfsConfigPath } from './image-config.js';
import { BLOCK_SIZE, measureTree } from './tree-usage.js';

/** The file system label rootfs images get unless the caller names one. */
export const DEFAULT_LABEL = 'jitvm-rootfs';

/** ext4 keeps at most 16 bytes of label. */
const MAX_LABEL_BYTES = 16;

/** Options shared by every way of building a rootfs image. */
export interface RootfsBuildOptions {
  /** The image size; by default what the tree needs plus a quarter, at least 64 MiB. Too small is refused. */
  sizeMiB?: number;
  /** The ext4 label (at most 16 bytes; default `jitvm-rootfs`). */
  label?: string;
  /** Cancels the build; mkfs.ext4 is killed and nothing is left behind. */
  signal?: AbortSignal;
  /** Told what the build is doing, a line per step. */
  onProgress?: (message: string) => void;
}

/** The tree an image is made of, and how messages name it (a staged tree's own path means nothing to the user). */
export interface TreeSource {
  readonly dir: string;
  readonly what: string;
}

/** A built rootfs image. */
export interface RootfsImage {
  /** The image file: an ext4 file system, sparse on disk. */
  path: string;
  /** The file system's size. */
  sizeMiB: number;
  /** What the sparse file takes on the host's disk. */
  diskBytes: number;
  /** Inodes the file system has. */
  inodes: number;
  /** The sidecar config (`<path>.json`), for images built from a container image. */
  config?: RootfsConfig;
}

function checkedLabel(label: string): string {
  if (label === '' || Buffer.byteLength(label) > MAX_LABEL_BYTES) {
    throw new InvalidArgumentError(`the ext4 label "${label}" must be 1 to ${MAX_LABEL_BYTES} bytes long`);
  }
  return label;
}

/**
 * mkfs.ext4 arguments. No journal: the guest mounts the image read-only as the lower layer of an overlay, so a
 * journal would never be written or replayed, only cost space and mkfs time. No resize inode: nobody grows the file
 * system online, and its reserved descriptor blocks would only take room. `-m 0`: no blocks kept back for root.
 */
function mkfsArgs(sourceDir: string, image: string, plan: Ext4Plan, label: string): string[] {
  return [
    ['-q', '-F', '-b', String(BLOCK_SIZE), '-I', String(INODE_SIZE), '-N', String(plan.inodes), '-m', '0'],
    ['-O', '^has_journal,^resize_inode', '-E', 'root_owner=0:0', '-L', label, '-d', sourceDir, image],
  ].flat();
}

async function runMkfs(source: TreeSource, image: string, plan: Ext4Plan, label: string, signal?: AbortSignal) {
  try {
    await runHostCommand(e2fsTool('mkfs.ext4'), mkfsArgs(source.dir, image, plan, label), {
      signal,
      install: E2FSPROGS_INSTALL,
      remedy:
        `Check that ${dirname(image)} has ${plan.sizeMiB} MiB free ` +
        `and that every file in ${source.what} is readable.`,
    });
  } catch (error) {
    if (error instanceof ImageBuildError && /Could not allocate (block|inode)/.test(error.message)) {
      throw new InvalidArgumentError(
        `${source.what} does not fit in ${plan.sizeMiB} MiB (mkfs.ext4 ran out of room); give a larger size`,
        { cause: error },
      );
    }
    throw error;
  }
}

/**
 * Builds the ext4 image of `source` at `output` by `plan`, in a temporary directory next to `output`, then moves
 * it into place: an old image there is replaced atomically (a VM using it keeps the old file). `config` becomes the
 * sidecar `<output>.json`; without one, a stale sidecar of an earlier image at `output` is removed first.
 * The temporary directory is removed whether the build succeeds or fails.
 */
export async function writeExt4Image(
  source: TreeSource,
  output: string,
  plan: Ext4Plan,
  options: RootfsBuildOptions,
  config?: RootfsConfig,
): Promise<RootfsImage> {
  const label = checkedLabel(options.label ?? DEFAULT_LABEL);
  await mkdir(dirname(output), { recursive: true });
  return withTempDir(dirname(output), async (tmp) => {
    const image = join(tmp, 'image.ext4');
    await createSparseFile(image, plan.sizeMiB, 0o644);
    await runMkfs(source, image, plan, label, options.signal);
    const sidecar = join(tmp, 'image.json');
    if (config) await writeFile(sidecar, JSON.stringify(config, null, 2) + '\n');
    await rm(rootfsConfigPath(output), { force: true });
    await rename(image, output);
    if (config) await rename(sidecar, rootfsConfigPath(output));
    const { blocks } = await stat(output);
    return { path: output, sizeMiB: plan.sizeMiB, diskBytes: blocks * 512, inodes: plan.inodes, config };
  });
}

/** Measures `source`, plans its image (refusing a `sizeMiB` too small for it) and builds it at `output`. */
export async function buildExt4Image(
  source: TreeSource,
  output: string,
  options: RootfsBuildOptions,
  config?: RootfsConfig,
): Promise<RootfsImage> {
  const plan = planExt4(await measureTree(source.dir), source.what, options.sizeMiB);
  options.onProgress?.(`writing a ${plan.sizeMiB} MiB ext4 image with ${plan.inodes} inodes to ${output}`);
  return writeExt4Image(source, output, plan, options, config);
}
