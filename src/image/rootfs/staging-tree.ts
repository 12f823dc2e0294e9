/**
 * The directory an image's layers are unpacked into, seen the way the guest will see it: symlinks in a path are
 * followed inside the tree (an absolute target starts from the tree's root, as after a chroot), never out of it.
 */

import { chmod, lutimes, mkdir, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { InvalidArgumentError } from '../../core/errors.js';
import { lstatIfExists } from './lstat-if-exists.js';

/** As Linux's MAXSYMLINKS: more hops than this is a loop. */
const MAX_SYMLINK_HOPS = 40;

/** A staging tree rooted at `root`; `where` names the archive in error messages. */
export class StagingTree {
  /** Directories already resolved, by their path in the image; cleared whenever anything is removed. */
  private readonly resolved = new Map<string, string>();
  /** The mtime each directory entry asked for, by host path: set last, as writing below a directory changes it. */
  private readonly directoryTimes = new Map<string, Date>();

  constructor(
    readonly root: string,
    private readonly where: string,
  ) {}

  /**
   * The host path of the directory `parts` names in the image, following symlinks inside the tree. With `create`,
   * missing directories are made (mode 0755, owned by this process); without, undefined when one is missing.
   * Refuses (InvalidArgumentError) a path whose symlinks lead out of the tree, loop, or pass through a file.
   */
  async directory(parts: readonly string[], create: boolean): Promise<string | undefined> {
    const key = parts.join('/');
    const cached = this.resolved.get(key);
    if (cached !== undefined) return cached;
    const found = await this.walk(parts, create);
    if (found !== undefined) this.resolved.set(key, found);
    return found;
  }

  /** The host path of the entry `parts` names: its parent resolved as by `directory`, its own name not followed. */
  async entry(parts: readonly string[], createParents: boolean): Promise<string | undefined> {
    const parent = await this.directory(parts.slice(0, -1), createParents);
    return parent === undefined ? undefined : join(parent, parts.at(-1)!);
  }

  /** Removes `path` and everything below it, if it exists. */
  async remove(path: string): Promise<void> {
    this.resolved.clear();
    await rm(path, { recursive: true, force: true });
  }

  /** Remembers `mtime` for the directory at `path`, to be set by `settleDirectoryTimes`. */
  noteDirectoryTime(path: string, mtime: Date): void {
    this.directoryTimes.set(path, mtime);
  }

  /** Gives each directory the mtime its last entry asked for, once the layers are all applied. */
  async settleDirectoryTimes(): Promise<void> {
    for (const [path, mtime] of this.directoryTimes) {
      const stats = await lstatIfExists(path);
      if (stats?.isDirectory()) await lutimes(path, mtime, mtime);
    }
  }

  private async walk(parts: readonly string[], create: boolean): Promise<string | undefined> {
    const done: string[] = [];
    const todo = [...parts];
    let hops = 0;
    for (let part = todo.shift(); part !== undefined; part = todo.shift()) {
      if (part === '' || part === '.') continue;
      if (part === '..') {
        if (done.length === 0) throw this.refuse(parts, 'its symlinks lead out of the image');
        done.pop();
        continue;
      }
      const path = join(this.root, ...done, part);
      const stats = await lstatIfExists(path);
      if (stats?.isSymbolicLink()) {
        if (++hops > MAX_SYMLINK_HOPS) throw this.refuse(parts, 'its symlinks loop');
        const target = await readlink(path);
        if (target.startsWith('/')) done.length = 0;
        todo.unshift(...target.split('/'));
        continue;
      }
      if (stats === undefined) {
        if (!create) return undefined;
        await mkdir(path);
        await chmod(path, 0o755);
      } else if (!stats.isDirectory()) {
        throw this.refuse(parts, `${[...done, part].join('/')} is not a directory`);
      }
      done.push(part);
    }
    return join(this.root, ...done);
  }

  private refuse(parts: readonly string[], why: string): InvalidArgumentError {
    return new InvalidArgumentError(
      `${this.where}: the directory /${parts.join('/')} cannot be used because ${why}; ` +
        'the archive is malformed or hostile',
    );
  }
}
