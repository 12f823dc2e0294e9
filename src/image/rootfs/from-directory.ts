/** `jitvm image build --from-dir`: a directory tree as an ext4 rootfs image. */

import { realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import { InvalidArgumentError } from '../../core/errors.js';
import { type RootfsBuildOptions, type RootfsImage, buildExt4Image } from './ext4-image.js';
import { asCancelled } from './cancel.js';
import { isWithin } from './entry-path.js';
import { defaultRootfsPath } from './rootfs-path.js';

/** Options of fromDirectory. */
export interface FromDirectoryOptions extends RootfsBuildOptions {
  /** Where to write the image (default: `<cache>/rootfs/<dir name>.ext4`). Must not be inside the directory. */
  output?: string;
}

/** `path` with its symlinks resolved as far as it exists. */
async function realpathSoFar(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(path) === path) throw error;
    return join(await realpathSoFar(dirname(path)), basename(path));
  }
}

/**
 * Builds an ext4 image holding a copy of `dir` (modes, owners, timestamps, symlinks, hard links, device nodes and
 * extended attributes as `mkfs.ext4 -d` copies them; the root directory is owned by root). Costs one lstat per entry
 * to size the image, then one copy of the tree's data. Refuses a missing directory, an output inside it, and a
 * `sizeMiB` too small for it (InvalidArgumentError); a missing mkfs.ext4 is a HostToolMissingError.
 */
export async function fromDirectory(dir: string, options: FromDirectoryOptions = {}): Promise<RootfsImage> {
  const source = resolve(dir);
  const stats = await stat(source).catch(() => undefined);
  if (!stats?.isDirectory()) {
    throw new InvalidArgumentError(`${source} is not a directory: give the directory to turn into a root filesystem`);
  }
  const output = resolve(options.output ?? defaultRootfsPath(source));
  if (isWithin(await realpath(source), await realpathSoFar(output))) {
    throw new InvalidArgumentError(
      `the image ${output} would be written inside ${source}, the tree it copies; write it elsewhere`,
    );
  }
  return buildExt4Image({ dir: source, what: source }, output, options).catch(asCancelled(options.signal));
}
