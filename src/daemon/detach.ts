import { backendByName, selectBackend } from '../backends/index.js';
import type { Arch } from '../core/config.js';
import { SnapshotStore } from '../snapshot/store.js';

/**
 * Whether the backend that will run a sandbox can leave it detached, so that a daemon restarted after a crash can
 * re-adopt it. Where it cannot (QEMU on Windows: its pipes serve only the process that started it), the daemon's VMs
 * live and die with the daemon instead; either way none is left running untracked.
 */
export async function runsDetached(options: {
  readonly backend?: string;
  readonly arch?: Arch;
  readonly fromSnapshot?: string;
}): Promise<boolean> {
  const { backend, arch, fromSnapshot } = options;
  const chosen =
    fromSnapshot === undefined
      ? await selectBackend(backend, arch)
      : backendByName(backend ?? (await new SnapshotStore().inspect(fromSnapshot)).backend);
  return chosen.capabilities.detach;
}
