/** Where e2fsprogs' programs (mkfs.ext4, debugfs) are on this host. */

import { join } from 'node:path';

import { type PathLookupHost, findOnPath, thisPathLookupHost } from '../../core/host-tools.js';
import { HostToolMissingError } from '../../core/errors.js';

/** How to get e2fsprogs (Debian's package; Homebrew keeps it keg-only, outside PATH). */
export const E2FSPROGS_INSTALL =
  'apt-get install e2fsprogs (on macOS: brew install e2fsprogs, then add $(brew --prefix e2fsprogs)/sbin to PATH)';

/** Debian installs e2fsprogs in sbin, which an ordinary user's PATH leaves out. */
const SBIN_DIRS = ['/usr/sbin', '/sbin'];

/**
 * The path of the e2fsprogs program `name` (`mkfs.ext4`, `debugfs`): on PATH, else in /usr/sbin or /sbin.
 * Throws HostToolMissingError, with the install hint, when it is nowhere.
 */
export function e2fsTool(name: string, host: PathLookupHost = thisPathLookupHost): string {
  const found = findOnPath(name, host) ?? SBIN_DIRS.map((dir) => join(dir, name)).find(host.isExecutable);
  if (found === undefined) throw new HostToolMissingError(name, E2FSPROGS_INSTALL);
  return found;
}
