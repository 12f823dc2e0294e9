/**
 * Applies one image layer's tar entries to a staging tree, as OCI defines layers: entries replace what lower layers
 * left at their path, `.wh.<name>` deletes `<name>` from lower layers, `.wh..wh..opq` empties its directory of
 * everything lower layers put there. Entries keep their mode (setuid included), owner and mtime (a directory's is
 * set by StagingTree.settleDirectoryTimes once all layers are in); this needs root.
 */

import { chmod, chown, lchown, link, lstat, lutimes, mkdir, open, readdir, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import type { ReadEntry } from 'tar';

import { InvalidArgumentError, JitvmError } from '../../core/errors.js';
import { runHostCommand } from '../host-command.js';
import { pathComponents } from './entry-path.js';
import { lstatIfExists } from './lstat-if-exists.js';
import type { StagingTree } from './staging-tree.js';

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
/** AUFS bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`): not part of the image, skipped as Docker does. */
const AUFS_META_PREFIX = '.wh..wh.';

/** Applies the entries of one layer, in archive order; a fresh applier per layer. */
export class LayerApplier {
  /** Host paths this layer created, with their ancestors: its own whiteouts and opaque markers leave them alone. */
  private readonly added = new Set<string>();

  /** `where` names the layer and its archive in error messages. */
  constructor(
    private readonly tree: StagingTree,
    private readonly where: string,
  ) {}

  /**
   * Applies `entry`, reading its data. Refuses (InvalidArgumentError) paths and link targets that climb out of
   * the image, a hard link to nothing or to a directory, and (JitvmError `unsupported`) entry types a root
   * filesystem cannot hold, such as sparse files.
   */
  async apply(entry: ReadEntry): Promise<void> {
    const parts = pathComponents(entry.path, this.where);
    const name = parts.at(-1);
    if (name === undefined) return;
    const parent = parts.slice(0, -1);
    if (name === OPAQUE_MARKER) return this.makeOpaque(parent);
    if (parts.some((part) => part.startsWith(AUFS_META_PREFIX))) return;
    if (name.startsWith(WHITEOUT_PREFIX)) return this.whiteOut(parent, name.slice(WHITEOUT_PREFIX.length), entry);
    const path = (await this.tree.entry(parts, true))!;
    await this.create(entry, path);
    this.markAdded(path);
  }

  private async create(entry: ReadEntry, path: string): Promise<void> {
    switch (entry.type) {
      case 'Directory':
        return this.directory(entry, path);
      case 'File':
      case 'OldFile':
      case 'ContiguousFile':
        return this.file(entry, path);
      case 'SymbolicLink':
        return this.symlink(entry, path);
      case 'Link':
        return this.hardLink(entry, path);
      case 'CharacterDevice':
      case 'BlockDevice':
      case 'FIFO':
        return this.special(entry, path);
      default:
        throw new JitvmError(
          'unsupported',
          `${this.where}: ${entry.path} is a tar entry of type ${entry.type}, which jitvm cannot put in an image; ` +
            'rebuild the image without it',
        );
    }
  }

  private async directory(entry: ReadEntry, path: string): Promise<void> {
    if (!(await this.clear(path, true))) await mkdir(path);
    await chown(path, entry.uid ?? 0, entry.gid ?? 0);
    await chmod(path, (entry.mode ?? 0o755) & 0o7777);
    if (entry.mtime) this.tree.noteDirectoryTime(path, entry.mtime);
  }

  private async file(entry: ReadEntry, path: string): Promise<void> {
    await this.clear(path, false);
    const file = await open(path, 'wx', 0o600);
    try {
      for await (const chunk of entry) {
        for (let done = 0; done < chunk.length;) done += (await file.write(chunk, done)).bytesWritten;
      }
      // chown clears the setuid and setgid bits, so the mode comes after it.
      await file.chown(entry.uid ?? 0, entry.gid ?? 0);
      await file.chmod((entry.mode ?? 0o644) & 0o7777);
      if (entry.mtime) await file.utimes(entry.atime ?? entry.mtime, entry.mtime);
    } finally {
      await file.close();
    }
  }

  private async symlink(entry: ReadEntry, path: string): Promise<void> {
    await this.clear(path, false);
    await symlink(entry.linkpath ?? '', path);
    await lchown(path, entry.uid ?? 0, entry.gid ?? 0);
    if (entry.mtime) await lutimes(path, entry.atime ?? entry.mtime, entry.mtime);
  }

  private async hardLink(entry: ReadEntry, path: string): Promise<void> {
    const linkpath = entry.linkpath ?? '';
    const target = await this.tree.entry(pathComponents(linkpath, this.where), false);
    const stats = target === undefined ? undefined : await lstatIfExists(target);
    if (stats === undefined || stats.isDirectory()) {
      throw new InvalidArgumentError(
        `${this.where}: the hard link ${entry.path} points at ${linkpath}, which is ` +
          `${stats ? 'a directory' : 'not in the image'}; the archive is malformed`,
      );
    }
    if (target === path) return;
    await this.clear(path, false);
    await link(target!, path);
  }

  /** Device nodes and FIFOs, made with mknod(1): Node has no mknod. */
  private async special(entry: ReadEntry, path: string): Promise<void> {
    await this.clear(path, false);
    const kind =
      entry.type === 'FIFO'
        ? ['p']
        : [entry.type === 'CharacterDevice' ? 'c' : 'b', String(entry.header.devmaj), String(entry.header.devmin)];
    await runHostCommand('mknod', [path, ...kind], { install: 'apt-get install coreutils' });
    await chown(path, entry.uid ?? 0, entry.gid ?? 0);
    await chmod(path, (entry.mode ?? 0o644) & 0o7777);
  }

  /**
   * Makes room for a new entry at `path`: whatever is there goes, except a directory when `keepDirectory` (a
   * directory entry over a directory keeps its contents). Resolves whether a directory was kept.
   */
  private async clear(path: string, keepDirectory: boolean): Promise<boolean> {
    const stats = await lstatIfExists(path);
    if (stats === undefined) return false;
    if (keepDirectory && stats.isDirectory()) return true;
    await this.tree.remove(path);
    return false;
  }

  private async whiteOut(parent: readonly string[], name: string, entry: ReadEntry): Promise<void> {
    if (name === '' || name === '.' || name === '..') {
      throw new InvalidArgumentError(`${this.where}: ${entry.path} is not a valid whiteout; the archive is malformed`);
    }
    const path = await this.tree.entry([...parent, name], false);
    if (path !== undefined && !this.added.has(path)) await this.tree.remove(path);
  }

  private async makeOpaque(parent: readonly string[]): Promise<void> {
    const dir = (await this.tree.directory(parent, true))!;
    this.markAdded(dir);
    await this.removeLower(dir);
  }

  /** Removes what lower layers put in `dir`, keeping what this layer added (and descending into its directories). */
  private async removeLower(dir: string): Promise<void> {
    for (const name of await readdir(dir)) {
      const path = join(dir, name);
      if (!this.added.has(path)) await this.tree.remove(path);
      else if ((await lstat(path)).isDirectory()) await this.removeLower(path);
    }
  }

  private markAdded(path: string): void {
    for (let p = path; p !== this.tree.root && !this.added.has(p); p = dirname(p)) this.added.add(p);
  }
}
