/** What a restoring host may load from the store, and the verified snapshot it gets. */

import type { VmSnapshot } from '../core/hypervisor.js';
import { SnapshotRejectedError } from './errors.js';
import type { FileRole, SnapshotManifest } from './manifest.js';

/** What the restoring host runs: a snapshot of another backend or VMM version is refused. */
export interface SnapshotExpectation {
  readonly backend: string;
  readonly vmmVersion: string | undefined;
}

/** A verified snapshot of the store, ready for `Hypervisor.restore`, with its manifest. */
export interface OpenedSnapshot extends VmSnapshot {
  readonly name: string;
  readonly manifest: SnapshotManifest;
}

/** Refuses a snapshot another backend or VMM version wrote: VMMs load only snapshots of their own format. */
export function checkCompatible(manifest: SnapshotManifest, expect: SnapshotExpectation): void {
  const { name, backend } = manifest;
  if (backend !== expect.backend) {
    const message =
      `snapshot "${name}" was taken with the ${backend} backend, not ${expect.backend}: ` +
      `restore it with ${backend}`;
    throw new SnapshotRejectedError(name, 'incompatible', message);
  }
  const taken = manifest.vmmVersion ?? undefined;
  if (taken !== expect.vmmVersion) {
    const version = (v: string | undefined): string => v ?? 'an unknown version';
    throw new SnapshotRejectedError(
      name,
      'incompatible',
      `snapshot "${name}" was taken by ${backend} ${version(taken)} ` +
        `and this host runs ${version(expect.vmmVersion)}: ` +
        'a VMM restores only snapshots of its own version, so take the snapshot again on this host',
    );
  }
}

/** The VmSnapshot (plus name and manifest) that `dir`, holding a snapshot with this manifest, gives to restore. */
export function opened(dir: string, manifest: SnapshotManifest): OpenedSnapshot {
  const named = (role: FileRole): string => manifest.files.find((file) => file.role === role)!.name;
  return {
    name: manifest.name,
    dir,
    backend: manifest.backend,
    vmmVersion: manifest.vmmVersion ?? undefined,
    config: manifest.config,
    files: { state: named('state'), memory: named('memory') },
    manifest,
  };
}
