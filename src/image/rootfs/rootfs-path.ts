/** Where rootfs images go when the caller names no output. */

import { basename, join, resolve } from 'node:path';

import { cacheRoot } from '../cache.js';

/** Archive extensions dropped from a tarball's name. */
const ARCHIVE_SUFFIX = /\.(tar|tar\.gz|tgz|oci)$/i;

/**
 * `<cacheRoot()>/rootfs/<name>.ext4`, `name` being the basename of `source` (a directory or an image tarball) less
 * any archive extension, with characters other than letters, digits, `.`, `_` and `-` replaced by `-`.
 */
export function defaultRootfsPath(source: string, root: string = cacheRoot()): string {
  const name = basename(resolve(source))
    .replace(ARCHIVE_SUFFIX, '')
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[.-]+/, '');
  return join(root, 'rootfs', `${name || 'rootfs'}.ext4`);
}
