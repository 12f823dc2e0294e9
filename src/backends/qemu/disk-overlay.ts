/**
 * Writable drives across snapshots: the snapshot keeps a copy of each writable drive as it was at that instant, and
 * every clone writes to its own qcow2 overlay on top of that copy, so clones never share a writable disk and the
 * snapshot's copy is never written (QEMU opens backing files read-only).
 */
import { driveFile } from '../scratch-disk.js';
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { VmConfig } from '../../core/config.js';
import { HostToolMissingError, JitvmError } from '../../core/errors.js';
import { findOnPath } from '../../core/host-tools.js';

const execFileAsync = promisify(execFile);

/** The name of a writable drive's copy inside a snapshot directory. */
export function driveCopyName(driveId: string): string {
  return `drive-${driveId}`;
}

/** The writable drives of a config: what a snapshot must copy and a clone must overlay. */
function writableDrives(config: VmConfig) {
  return config.drives.filter((drive) => !drive.readOnly);
}

/**
 * Copies each writable drive of a stopped VM into the snapshot directory (a reflink where the filesystem can, else
 * a full copy), owner-read-only like the rest of a snapshot.
 */
export async function copyWritableDrives(config: VmConfig, dir: string): Promise<void> {
  for (const drive of writableDrives(config)) {
    await copyFile(driveFile(drive), join(dir, driveCopyName(drive.id)), constants.COPYFILE_FICLONE);
  }
}

/**
 * Creates, in `runtimeDir`, one qcow2 overlay per writable drive of the snapshot's VM, backed by the snapshot's copy
 * of that drive; returns them by drive id for the clone's command line.
 */
export async function createOverlays(
  config: VmConfig,
  snapshotDir: string,
  runtimeDir: string,
): Promise<Map<string, string>> {
  const drives = writableDrives(config);
  const overlays = new Map<string, string>();
  if (drives.length === 0) return overlays;
  const qemuImg = findOnPath('qemu-img');
  if (!qemuImg) throw new HostToolMissingError('qemu-img', 'apt-get install qemu-utils');
  for (const drive of drives) {
    const overlay = join(runtimeDir, `${driveCopyName(drive.id)}.qcow2`);
    const backing = join(snapshotDir, driveCopyName(drive.id));
    try {
      await execFileAsync(qemuImg, ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', backing, overlay], {
        timeout: 30_000,
      });
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr?.trim();
      throw new JitvmError('vmm_failed', `qemu-img could not create an overlay on ${backing}: ${stderr ?? error}`, {
        cause: error,
      });
    }
    overlays.set(drive.id, overlay);
  }
  return overlays;
}
