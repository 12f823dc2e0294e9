/**
 * QEMU snapshots on disk: `state` (device state from the migration stream, guest RAM excluded), `memory` (a copy
 * of the guest's RAM file) and `drive-<id>` (a copy of each writable drive; clones get qcow2 overlays on it). Taken from a paused VM; restored by a new QEMU with the same device layout that maps
 * `memory` copy-on-write and loads `state` (index.ts restore).
 */
import { constants, existsSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { VmConfig } from '../../core/config.js';
import { InvalidArgumentError, JitvmError } from '../../core/errors.js';
import type { VmSnapshot } from '../../core/hypervisor.js';
import { copyWritableDrives, driveCopyName } from './disk-overlay.js';
import { saveDeviceState } from './migration.js';
import type { QmpClient } from './qmp.js';

/** File names inside a QEMU snapshot directory. */
export const QEMU_SNAPSHOT_FILES = { state: 'state', memory: 'memory' } as const;

const SAVE_TIMEOUT_MS = 60_000;

/** What a running QEMU VM needs to be snapshotted: its RAM file and what it was started with. */
export interface SnapshotSource {
  readonly ramFile: string;
  readonly config: VmConfig;
  readonly vmmVersion: string | undefined;
}

/**
 * Writes a snapshot of the stopped VM behind `qmp` into `dir` (created; it must not exist): device state through
 * the migration stream on a socket in `runtimeDir`, then a copy of its RAM file. The copy is taken while the vCPUs
 * are stopped, so RAM and device state belong to the same instant. Both files are 0600: QEMU 7.2 opens a RAM file
 * read-write even when it maps it privately, so a clone could not use a read-only one.
 */
export async function writeQemuSnapshot(
  qmp: QmpClient,
  source: SnapshotSource,
  runtimeDir: string,
  dir: string,
): Promise<VmSnapshot> {
  if (source.config.shares.length > 0) {
    throw new JitvmError(
      'unsupported',
      'a VM with virtio-fs shares cannot be snapshotted: QEMU cannot migrate vhost-user-fs devices (the share lives ' +
        'in virtiofsd, outside the VM); use a volume image instead of a host directory',
    );
  }
  await mkdir(dir, { mode: 0o700 });
  await saveDeviceState(qmp, join(runtimeDir, 'migrate.sock'), join(dir, QEMU_SNAPSHOT_FILES.state), SAVE_TIMEOUT_MS);
  // A reflink where the filesystem can (instant, shared blocks), else a plain copy.
  await copyFile(source.ramFile, join(dir, QEMU_SNAPSHOT_FILES.memory), constants.COPYFILE_FICLONE);
  await copyWritableDrives(source.config, dir);
  return {
    dir,
    backend: 'qemu',
    vmmVersion: source.vmmVersion,
    config: source.config,
    files: { ...QEMU_SNAPSHOT_FILES },
  };
}

/** Refuses a snapshot this QEMU cannot restore safely, saying why. */
export function checkRestorable(snapshot: VmSnapshot, qemuVersion: string | undefined): void {
  if (snapshot.backend !== 'qemu') {
    throw new InvalidArgumentError(`snapshot ${snapshot.dir} was written by ${snapshot.backend}, not qemu`);
  }
  if (snapshot.vmmVersion !== qemuVersion) {
    throw new JitvmError(
      'unsupported',
      `snapshot ${snapshot.dir} was written by ${snapshot.vmmVersion ?? 'an unknown QEMU'}, this is ` +
        `${qemuVersion ?? 'an unknown QEMU'}: QEMU migrates microvm state only between identical versions`,
    );
  }
  const uncopied = snapshot.config.drives.filter(
    (drive) => !drive.readOnly && !existsSync(join(snapshot.dir, driveCopyName(drive.id))),
  );
  if (uncopied.length > 0) {
    throw new InvalidArgumentError(
      `snapshot ${snapshot.dir} lacks its copy of writable drive ${uncopied.map((drive) => drive.id).join(', ')}`,
    );
  }
  // A user-mode NAT is private to each QEMU process: clones with the same address and MAC never meet.
  if (snapshot.config.network.mode === 'tap') {
    throw new JitvmError('unsupported', 'a snapshot of a VM with a TAP NIC cannot be restored: clones would share it');
  }
}
