import { join } from 'node:path';

import type { AttachedDrive, Drive, VmConfig } from '../core/config.js';
import { JitvmError } from '../core/errors.js';
import { createSparseFile } from '../image/fs-util.js';
import { runHostCommand } from '../image/host-command.js';

/** A config whose every drive has a host file: what a backend attaches. */
export type AttachedVmConfig = VmConfig & { readonly drives: readonly AttachedDrive[] };

/** Where scratch drive `id` of the VM whose runtime dir is `runtimeDir` lives (removed with the runtime dir). */
export function scratchDiskPath(runtimeDir: string, id: string): string {
  return join(runtimeDir, `scratch-${id}.ext4`);
}

/**
 * Makes a sparse file of `sizeMiB` and an empty ext4 filesystem on it (no journal replay or inode tables written
 * up front: lazy init, ~50 ms for any size). The guest cannot grow it: its size is the limit.
 */
async function makeScratchDisk(path: string, sizeMiB: number): Promise<void> {
  await createSparseFile(path, sizeMiB, 0o600);
  await runHostCommand(
    'mkfs.ext4',
    ['-q', '-F', '-m', '0', '-E', 'lazy_itable_init=1,lazy_journal_init=1', '-L', 'jitvm-scratch', path],
    { install: 'apt-get install e2fsprogs', remedy: `check that ${path}'s filesystem has ${sizeMiB} MiB free` },
  );
}

/** `config` with each scratch drive's path set to where its disk lives in `runtimeDir` (pure: nothing is made). */
export function withScratchPaths(config: VmConfig, runtimeDir: string): AttachedVmConfig {
  const drives = config.drives.map((drive): AttachedDrive => {
    if (drive.path !== undefined) return { ...drive, path: drive.path };
    return { ...drive, sizeMiB: undefined, path: scratchDiskPath(runtimeDir, drive.id) };
  });
  return { ...config, drives };
}

/**
 * Creates the scratch disks (`sizeMiB` drives) of `config` in `runtimeDir` and returns the config with every
 * drive's path set. Drives that already have a path are attached as they are.
 */
export async function attachScratchDisks(config: VmConfig, runtimeDir: string): Promise<AttachedVmConfig> {
  for (const drive of config.drives) {
    if (drive.sizeMiB !== undefined) await makeScratchDisk(scratchDiskPath(runtimeDir, drive.id), drive.sizeMiB);
  }
  return withScratchPaths(config, runtimeDir);
}

/** The host file of a drive a backend attaches; a scratch drive nobody made is a bug, not a user error. */
export function driveFile(drive: Drive): string {
  if (drive.path === undefined)
    throw new JitvmError('internal', `drive ${drive.id} has no file: its scratch disk was not made`);
  return drive.path;
}
