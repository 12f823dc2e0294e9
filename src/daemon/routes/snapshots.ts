import { JitvmError } from '../../core/errors.js';
import type { Sandbox } from '../../sandbox/sandbox.js';
import type { OpenedSnapshot } from '../../snapshot/compat.js';
import type { SnapshotManifest } from '../../snapshot/manifest.js';
import { SnapshotStore } from '../../snapshot/store.js';
import type { SandboxRegistry } from '../registry.js';
import { type Route, defineRoute } from '../route.js';
import { SandboxIdParams } from '../schemas.js';
import {
  CreateSnapshotBody,
  InspectSnapshotQuery,
  SnapshotDetail,
  SnapshotInfo,
  SnapshotList,
  SnapshotNameParams,
} from '../schemas-snapshots.js';

function summary(manifest: SnapshotManifest): SnapshotInfo {
  const { name, createdAt, backend, vmmVersion, arch, config, files } = manifest;
  const bytes = files.reduce((sum, file) => sum + file.size, 0);
  return { name, bytes, createdAt, backend, vmmVersion, arch, cpus: config.cpus, memoryMiB: config.memoryMiB };
}

/**
 * `sandbox.snapshot(options)`, with a name already taken in `store` (the default store, which the SDK writes to)
 * reported as a conflict (`invalid_state`, 409): the store calls it `invalid_argument`, which the daemon keeps for
 * malformed requests.
 */
async function snapshotSandbox(
  sandbox: Sandbox,
  options: { name: string; then?: 'resume' | 'destroy' },
  store: SnapshotStore,
): Promise<OpenedSnapshot> {
  try {
    return await sandbox.snapshot(options);
  } catch (error) {
    const taken = async () => (await store.list()).some((entry) => entry.name === options.name);
    if (error instanceof JitvmError && error.code === 'invalid_argument' && (await taken())) {
      throw new JitvmError('invalid_state', error.message, { cause: error });
    }
    throw error;
  }
}

/**
 * Take, list, inspect and remove snapshots of the store `sandbox.snapshot` and `fromSnapshot` use
 * ($JITVM_SNAPSHOT_DIR, else `<cache dir>/snapshots`). Restoring is `POST /v1/sandboxes` with `fromSnapshot`.
 */
export function snapshotRoutes(registry: SandboxRegistry): Route[] {
  const store = new SnapshotStore();
  return [
    defineRoute(
      {
        method: 'POST',
        url: '/v1/sandboxes/:id/snapshots',
        operationId: 'createSnapshot',
        summary: "Store a snapshot of a sandbox's memory and device state under a name (the VM is paused meanwhile)",
        params: SandboxIdParams,
        body: CreateSnapshotBody,
        responses: { 201: { description: 'the snapshot is stored', json: SnapshotInfo } },
      },
      async ({ params, body, request, reply }) => {
        const taken = await snapshotSandbox(registry.get(params.id), body, store);
        request.log.info({ sandboxId: params.id, snapshot: taken.name }, 'snapshot taken');
        if (body.then === 'destroy') {
          await registry.destroy(params.id);
          request.log.info({ sandboxId: params.id }, 'sandbox destroyed');
        }
        reply.code(201);
        return summary(taken.manifest);
      },
    ),
    defineRoute(
      {
        method: 'GET',
        url: '/v1/snapshots',
        operationId: 'listSnapshots',
        summary: 'Every stored snapshot, oldest first; unreadable ones carry the reason (nothing is hashed)',
        responses: { 200: { description: 'the snapshots', json: SnapshotList } },
      },
      async () => ({
        snapshots: (await store.list()).map(({ name, bytes, createdAt, manifest, problem }) =>
          manifest ? summary(manifest) : { name, bytes, createdAt, problem: problem ?? 'unreadable' },
        ),
      }),
    ),
    defineRoute(
      {
        method: 'GET',
        url: '/v1/snapshots/:name',
        operationId: 'getSnapshot',
        summary: "One snapshot's manifest, after checking its files' sizes (`verify=full`: their sha256s too)",
        params: SnapshotNameParams,
        query: InspectSnapshotQuery,
        responses: { 200: { description: 'the snapshot', json: SnapshotDetail } },
      },
      async ({ params, query }) => {
        const verified = query.verify ?? 'size';
        const { manifest } = await store.inspect(params.name, { verify: verified });
        return { ...summary(manifest), jitvmVersion: manifest.jitvmVersion, files: manifest.files, verified };
      },
    ),
    defineRoute(
      {
        method: 'DELETE',
        url: '/v1/snapshots/:name',
        operationId: 'deleteSnapshot',
        summary: 'Remove a snapshot (on Linux and macOS, sandboxes restored from it keep running)',
        params: SnapshotNameParams,
        responses: { 204: { description: 'removed' } },
      },
      async ({ params, reply }) => {
        await store.remove(params.name);
        return reply.code(204).send();
      },
    ),
  ];
}
