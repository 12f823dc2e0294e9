/** Path checks for untrusted archive contents: a tar entry or a manifest reference must stay inside its tree. */

import { relative, sep } from 'node:path';

import { InvalidArgumentError } from '../../core/errors.js';

/**
 * The components of the relative path `path` (`./a//b/` → `a`, `b`; the root → none). Refuses an absolute path
 * and any `..` component with InvalidArgumentError naming `where` (the archive or layer it came from).
 */
export function pathComponents(path: string, where: string): string[] {
  const parts = path.split('/').filter((part) => part !== '' && part !== '.');
  if (path.startsWith('/') || parts.includes('..')) {
    throw new InvalidArgumentError(
      `${where} holds the path "${path}", which climbs out of the image (absolute or with ".."): ` +
        'the archive is malformed or hostile; it was not used',
    );
  }
  return parts;
}

/** Whether the absolute `path` is `dir` or below it (lexically: resolve symlinks first where they matter). */
export function isWithin(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !rel.startsWith(sep));
}
