/**
 * Sandboxes and the snapshot store: taking a named snapshot of a running VM, and starting VMs from one — each with
 * its own channel and a fresh identity (entropy, clock, hostname), so no two clones share random bytes.
 */
import type { AgentConnection } from '../channel/client.js';
import { setIdentity } from '../channel/identity.js';
import type { VmConfig } from '../core/config.js';
import type { Hypervisor, VmInstance } from '../core/hypervisor.js';
import { backendByName } from '../backends/index.js';
import type { OpenedSnapshot } from '../snapshot/compat.js';
import { SnapshotStore } from '../snapshot/store.js';
import { reconnectAgent } from './boot.js';

/** A VM started from a snapshot, with its agent reached and its identity renewed. */
export interface RestoredVm {
  readonly instance: VmInstance;
  readonly connection: AgentConnection;
  /** The snapshot's VM config, which the restored VM has. */
  readonly config: VmConfig;
}

/** Where and how to start VMs from a stored snapshot. */
export interface RestoreFromStoreOptions {
  /** Default: a store at $JITVM_SNAPSHOT_DIR or `<cache>/snapshots`. */
  readonly store?: SnapshotStore;
  /** Default: the backend named in the snapshot's manifest. */
  readonly hypervisor?: Hypervisor;
  readonly detached?: boolean;
  readonly timeoutMs: number;
}

/**
 * Writes a snapshot of `instance` (paused first if it runs; left paused) into the store under `name`. The memory
 * file stays owner-writable: QEMU 7.2 opens a RAM file read-write even to map it privately, and the manifest's hash,
 * checked at every open, guards its content.
 */
export function takeSnapshot(instance: VmInstance, name: string, store = new SnapshotStore()): Promise<OpenedSnapshot> {
  return store.create(name, (dir) => instance.snapshot(dir), { ownerWritable: ['memory'] });
}

/**
 * Opens (and fully verifies) the snapshot `name` once, then starts `count` VMs from it in parallel. If any fails,
 * the others are killed and the first error is thrown.
 */
export async function restoreFromStore(
  name: string,
  count: number,
  options: RestoreFromStoreOptions,
): Promise<RestoredVm[]> {
  const store = options.store ?? new SnapshotStore();
  const backend = options.hypervisor ?? backendByName((await store.inspect(name)).backend);
  const snapshot = await store.open(name, { backend: backend.name, vmmVersion: (await backend.probe()).version });
  const attempts = await Promise.allSettled(
    Array.from({ length: count }, () => restoreOne(backend, snapshot, options)),
  );
  const failure = attempts.find((attempt) => attempt.status === 'rejected');
  if (!failure) return attempts.map((attempt) => (attempt as PromiseFulfilledResult<RestoredVm>).value);
  await Promise.all(
    attempts.map(async (attempt) => {
      if (attempt.status !== 'fulfilled') return;
      attempt.value.connection.close();
      await attempt.value.instance.kill();
    }),
  );
  throw failure.reason;
}

async function restoreOne(
  backend: Hypervisor,
  snapshot: OpenedSnapshot,
  options: RestoreFromStoreOptions,
): Promise<RestoredVm> {
  const instance = await backend.restore(snapshot, { detached: options.detached });
  let connection: AgentConnection | undefined;
  try {
    connection = await reconnectAgent(instance, options.timeoutMs);
    // Before anything else runs in the clone: its own random bytes, the right time, its own name.
    await setIdentity(connection, { hostname: instance.id });
    return { instance, connection, config: snapshot.config };
  } catch (error) {
    connection?.close();
    await instance.kill();
    throw error;
  }
}
