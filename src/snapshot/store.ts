/**
 * The snapshot store: one directory per snapshot holding a backend's files and `manifest.json`. A snapshot is written
 * in a private staging directory next to its final place, sealed (files hashed and made read-only, manifest last)
 * and renamed into place; removal renames it aside before deleting. So a name is a whole snapshot or absent.
 */

import { randomBytes } from 'node:crypto';
import { lstat, mkdtemp, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import { packageVersion } from '../core/version.js';
import { InvalidArgumentError, JitvmError } from '../core/errors.js';
import type { VmSnapshot } from '../core/hypervisor.js';
import { ensurePrivateDir } from '../core/paths.js';
import { pathExists } from '../image/fs-util.js';
import { type OpenedSnapshot, type SnapshotExpectation, checkCompatible, opened } from './compat.js';
import { corruptSnapshot, snapshotNameTaken, snapshotNotFound } from './errors.js';
import { type SealOptions, type VerifyOptions, recordFiles, verifyFiles } from './files.js';
import { type GcOptions, removeLeftovers, selectForGc } from './gc.js';
import {
  STAGING_PREFIX,
  type SnapshotEntry,
  TRASH_PREFIX,
  checkSnapshotName,
  listSnapshots,
  snapshotRoot,
} from './layout.js';
import { type SnapshotManifest, readManifest, writeManifest } from './manifest.js';

/**
 * Where a backend writes a snapshot: `dir` does not exist yet (VmInstance.snapshot creates it);
 * its parent is private.
 */
export interface SnapshotStaging {
  readonly name: string;
  readonly dir: string;
}

const STAGED_DIR = 'snapshot';

/** Snapshots in one directory: `new SnapshotStore()` uses snapshotRoot(). `now` is the clock (tests move it). */
export class SnapshotStore {
  readonly root: string;

  constructor(
    root: string = snapshotRoot(),
    private readonly now: () => number = Date.now,
  ) {
    this.root = resolve(root);
  }

  /** A fresh private staging directory for snapshot `name`. Refuses an invalid or taken name. Seal or discard it. */
  async prepare(name: string): Promise<SnapshotStaging> {
    const target = this.pathOf(name);
    if (await pathExists(target)) throw snapshotNameTaken(name, this.root);
    const parent = await mkdtemp(join(this.ensureRoot(), STAGING_PREFIX));
    return { name, dir: join(parent, STAGED_DIR) };
  }

  /**
   * Seals what a backend wrote into `staging` (described by `snapshot`): makes every file read-only (see
   * SealOptions), hashes it (streaming), writes the manifest last and renames the directory to the snapshot's name.
   * When another process published the name first, throws `invalid_argument`. The staging directory is gone
   * afterwards, whatever happens.
   */
  async seal(staging: SnapshotStaging, snapshot: VmSnapshot, options: SealOptions = {}): Promise<OpenedSnapshot> {
    const parent = this.stagingParent(staging);
    try {
      if (resolve(snapshot.dir) !== staging.dir) {
        throw new InvalidArgumentError(
          `the snapshot was written to ${snapshot.dir}, not its staging dir ${staging.dir}`,
        );
      }
      const files = await recordFiles(staging.dir, snapshot.files, options);
      const manifest = await writeManifest(staging.dir, {
        name: staging.name,
        jitvmVersion: packageVersion(),
        createdAt: new Date(this.now()).toISOString(),
        backend: snapshot.backend,
        vmmVersion: snapshot.vmmVersion || null,
        arch: snapshot.config.arch,
        config: snapshot.config,
        files,
      });
      const target = this.pathOf(staging.name);
      await rename(staging.dir, target).catch(async (error: unknown) => {
        throw (await pathExists(target)) ? snapshotNameTaken(staging.name, this.root, error) : error;
      });
      return opened(target, manifest);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  }

  /** Removes a staging directory that will not be sealed (the backend failed). */
  async discard(staging: SnapshotStaging): Promise<void> {
    await rm(this.stagingParent(staging), { recursive: true, force: true });
  }

  /** Stages, lets `write` (e.g. `(dir) => vm.snapshot(dir)`) write the snapshot, and seals it; cleans up on failure. */
  async create(
    name: string,
    write: (dir: string) => Promise<VmSnapshot>,
    options: SealOptions = {},
  ): Promise<OpenedSnapshot> {
    const staging = await this.prepare(name);
    let snapshot: VmSnapshot;
    try {
      snapshot = await write(staging.dir);
    } catch (error) {
      await this.discard(staging);
      throw error;
    }
    return this.seal(staging, snapshot, options);
  }

  /**
   * The snapshot `name` for `Hypervisor.restore`, once its manifest is valid, it was written by `expect`'s backend
   * and VMM version, and its directory holds exactly the listed files with the recorded sizes and (with
   * `verify: 'full'`, the default) sha256s. `verify: 'size'` skips hashing: see docs/snapshots.md for the cost.
   * Refuses with `not_found` or SnapshotRejectedError.
   */
  async open(name: string, expect: SnapshotExpectation, options: VerifyOptions = {}): Promise<OpenedSnapshot> {
    const { dir, manifest } = await this.load(name);
    checkCompatible(manifest, expect);
    await verifyFiles(name, dir, manifest, options.verify ?? 'full');
    return opened(dir, manifest);
  }

  /** The manifest of snapshot `name`, after checking its files' sizes (default) or sha256s (`verify: 'full'`). */
  async inspect(name: string, options: VerifyOptions = {}): Promise<OpenedSnapshot> {
    const { dir, manifest } = await this.load(name);
    await verifyFiles(name, dir, manifest, options.verify ?? 'size');
    return opened(dir, manifest);
  }

  /** Every snapshot, oldest first, with its manifest or why it cannot be read. Hashes nothing. */
  async list(): Promise<SnapshotEntry[]> {
    return listSnapshots(this.ensureRoot());
  }

  /** Removes snapshot `name`: renamed aside first, so it is never seen half-deleted. `not_found` when absent. */
  async remove(name: string): Promise<void> {
    const trash = join(this.ensureRoot(), `${TRASH_PREFIX}${randomBytes(8).toString('hex')}`);
    await rename(this.pathOf(name), trash).catch((error: unknown) => {
      throw (error as NodeJS.ErrnoException).code === 'ENOENT' ? snapshotNotFound(name, this.root) : error;
    });
    await rm(trash, { recursive: true, force: true });
  }

  /**
   * Removes snapshots older than `maxAgeMs`, then the oldest until the rest total at most `maxTotalBytes`, and what
   * crashed processes left behind. Returns the snapshots removed, oldest first.
   */
  async gc(options: GcOptions): Promise<SnapshotEntry[]> {
    const doomed = selectForGc(await this.list(), options, this.now());
    await removeLeftovers(this.root, this.now());
    for (const entry of doomed) {
      await this.remove(entry.name).catch((error: unknown) => {
        if (!(error instanceof JitvmError && error.code === 'not_found')) throw error;
      });
    }
    return doomed;
  }

  private async load(name: string): Promise<{ dir: string; manifest: SnapshotManifest }> {
    const dir = this.pathOf(name);
    this.ensureRoot();
    const info = await lstat(dir).catch((error: unknown) => {
      throw (error as NodeJS.ErrnoException).code === 'ENOENT' ? snapshotNotFound(name, this.root) : error;
    });
    if (!info.isDirectory()) throw corruptSnapshot(name, 'is not a directory');
    return { dir, manifest: await readManifest(name, dir) };
  }

  private pathOf(name: string): string {
    return join(this.root, checkSnapshotName(name));
  }

  /** The root, created private (0700) if missing: snapshots hold guest memory and are trusted input to the VMM. */
  private ensureRoot(): string {
    try {
      return ensurePrivateDir(this.root);
    } catch (error) {
      if (!(error instanceof JitvmError)) throw error;
      throw new JitvmError(
        'invalid_state',
        `the snapshot store ${this.root} must be a directory owned by you with mode 0700 (snapshots hold guest ` +
          'memory): fix it, or set JITVM_SNAPSHOT_DIR elsewhere',
        { cause: error },
      );
    }
  }

  private stagingParent(staging: SnapshotStaging): string {
    const parent = dirname(staging.dir);
    const ours =
      dirname(parent) === this.root &&
      basename(parent).startsWith(STAGING_PREFIX) &&
      basename(staging.dir) === STAGED_DIR;
    if (!ours) throw new InvalidArgumentError(`${staging.dir} is not a staging dir of ${this.root}: use prepare()`);
    checkSnapshotName(staging.name);
    return parent;
  }
}
