/**
 * Snapshots and pools through `jitvm serve`, for real under QEMU TCG: a sandbox's snapshot is stored, listed,
 * inspected, restored with `POST /v1/sandboxes {fromSnapshot}` (its file is still there) and removed; a broken
 * snapshot and a name clash are refused as problems; `GET /v1/pools` shows a pool's status file. Every response is
 * checked against the served OpenAPI document.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { QemuHypervisor } from '../../src/backends/qemu/index.js';
import { PoolStatusFile } from '../../src/sandbox/pool-status.js';
import type { PoolStats } from '../../src/sandbox/pool-types.js';
import { type Served, serveDaemon } from '../helpers/daemon.js';
import { OpenApiValidator } from '../helpers/openapi-validator.js';
import { BOOT_TIMEOUT_MS } from '../helpers/sandbox.js';
import { withEnv } from '../helpers/temp.js';

const skip = new QemuHypervisor().capabilities.snapshot
  ? false
  : `QEMU snapshots need Linux (this is ${process.platform})`;

/** Starts `jitvm serve --listen 127.0.0.1:0` with `env`; resolves with the address it prints. */
const serve = (env: NodeJS.ProcessEnv): Promise<Served> =>
  serveDaemon(['--listen', '127.0.0.1:0', '--log-level', 'warn'], env, () => undefined);

describe('jitvm serve: snapshots and pools', { skip, timeout: 180_000 }, () => {
  const dirs: string[] = [];
  const temp = (what: string): string => {
    dirs.push(mkdtempSync(join(tmpdir(), `jitvm-dsnap-${what}-`)));
    return dirs.at(-1)!;
  };
  let configDir: string;
  let snapshotDir: string;
  let runtimeDir: string;
  let daemon: Served | undefined;
  let token: string;
  let validator: OpenApiValidator;
  let restoredId: string;

  before(async () => {
    [configDir, snapshotDir, runtimeDir] = [temp('config'), temp('snapshots'), temp('runtime')];
    const env = {
      ...process.env,
      XDG_CONFIG_HOME: configDir,
      JITVM_SNAPSHOT_DIR: snapshotDir,
      JITVM_RUNTIME_DIR: runtimeDir,
    };
    daemon = await serve(env);
    token = readFileSync(join(configDir, 'jitvm', 'token'), 'utf8').trim();
    const document = (await (await fetch(`${daemon.address}/v1/openapi.json`)).json()) as Record<string, unknown>;
    validator = new OpenApiValidator(document);
  });

  after(async () => {
    // SIGTERM: the daemon destroys its sandboxes before it exits.
    if (daemon && daemon.child.exitCode === null) {
      daemon.child.kill('SIGTERM');
      await daemon.stopped;
    }
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  /** A request with the token; the response is checked against the served OpenAPI document. */
  async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const json = body !== undefined && !Buffer.isBuffer(body);
    const response = await fetch(`${daemon!.address}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(json ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      body: json ? JSON.stringify(body) : (body as Buffer | undefined),
    });
    const text = Buffer.from(await response.arrayBuffer()).toString();
    const type = response.headers.get('content-type') ?? undefined;
    validator.check(method, path, response.status, type, type?.includes('octet-stream') ? '' : text);
    return { status: response.status, text, json: () => JSON.parse(text) };
  }

  async function expectProblem(method: string, path: string, status: number, code: string, body?: unknown) {
    const response = await call(method, path, body);
    assert.deepEqual([response.status, response.json().code], [status, code], response.text);
  }

  it('snapshots a sandbox with a file in it (then destroying it), and refuses a bad name', async () => {
    const created = await call('POST', '/v1/sandboxes', { memoryMiB: 256, bootTimeoutMs: BOOT_TIMEOUT_MS });
    assert.equal(created.status, 201, created.text);
    const id = created.json().id as string;
    const put = await call('PUT', `/v1/sandboxes/${id}/files?path=/root/kept.txt`, Buffer.from('kept\n'), {
      'content-type': 'application/octet-stream',
    });
    assert.equal(put.status, 200, put.text);
    await expectProblem('POST', `/v1/sandboxes/${id}/snapshots`, 400, 'invalid_argument', { name: '../escape' });

    const taken = await call('POST', `/v1/sandboxes/${id}/snapshots`, { name: 'api-snap', then: 'destroy' });
    assert.equal(taken.status, 201, taken.text);
    const summary = taken.json();
    assert.deepEqual([summary.name, summary.backend, summary.memoryMiB], ['api-snap', 'qemu', 256]);
    assert.ok(summary.bytes > 0);
    await expectProblem('GET', `/v1/sandboxes/${id}`, 404, 'not_found');
  });

  it('lists and inspects it; a broken snapshot is listed with its problem and refused', async () => {
    mkdirSync(join(snapshotDir, 'broken'));
    writeFileSync(join(snapshotDir, 'broken', 'manifest.json'), '{');
    const listed = (await call('GET', '/v1/snapshots')).json().snapshots as Record<string, unknown>[];
    assert.deepEqual(listed.map((entry) => [entry.name, entry.backend ?? typeof entry.problem]).sort(), [
      ['api-snap', 'qemu'],
      ['broken', 'string'],
    ]);
    const inspected = await call('GET', '/v1/snapshots/api-snap?verify=full');
    assert.equal(inspected.status, 200, inspected.text);
    assert.equal(inspected.json().verified, 'full');
    assert.deepEqual(
      inspected
        .json()
        .files.map((file: { role: string }) => file.role)
        .sort(),
      ['memory', 'state'],
    );
    await expectProblem('GET', '/v1/snapshots/broken', 409, 'invalid_state');
    await expectProblem('POST', '/v1/sandboxes', 409, 'invalid_state', { fromSnapshot: 'broken' });
    await expectProblem('GET', '/v1/snapshots/no-such-snapshot', 404, 'not_found');
    assert.equal((await call('DELETE', '/v1/snapshots/broken')).status, 204);
  });

  it('restores it through POST /v1/sandboxes {fromSnapshot}: the file is there; a name clash is a conflict', async () => {
    const restored = await call('POST', '/v1/sandboxes', { fromSnapshot: 'api-snap' });
    assert.equal(restored.status, 201, restored.text);
    restoredId = restored.json().id;
    assert.equal(restored.json().config.fromSnapshot, 'api-snap');
    const file = await call('GET', `/v1/sandboxes/${restoredId}/files?path=/root/kept.txt`);
    assert.deepEqual([file.status, file.text], [200, 'kept\n']);
    await expectProblem('POST', `/v1/sandboxes/${restoredId}/snapshots`, 409, 'invalid_state', { name: 'api-snap' });
  });

  it('deletes the snapshot: 404 afterwards, and the restored sandbox runs on', async () => {
    assert.equal((await call('DELETE', '/v1/snapshots/api-snap')).status, 204);
    await expectProblem('GET', '/v1/snapshots/api-snap', 404, 'not_found');
    await expectProblem('DELETE', '/v1/snapshots/api-snap', 404, 'not_found');
    assert.deepEqual((await call('GET', '/v1/snapshots')).json(), { snapshots: [] });
    const file = await call('GET', `/v1/sandboxes/${restoredId}/files?path=/root/kept.txt`);
    assert.equal(file.text, 'kept\n');
    assert.equal((await call('DELETE', `/v1/sandboxes/${restoredId}`)).status, 204);
  });

  it("lists this host's warm pools from their status files", async (t) => {
    withEnv(t, 'JITVM_RUNTIME_DIR', runtimeDir);
    assert.deepEqual((await call('GET', '/v1/pools')).json(), { pools: [] });
    const stats = { size: 2, ready: 1, starting: 1, handedOut: 0, hits: 3, misses: 1, hitRatio: 0.75 } as PoolStats;
    const status = new PoolStatusFile('snapshot api-snap', () => stats);
    t.after(() => status.close());
    const [pool, ...others] = (await call('GET', '/v1/pools')).json().pools;
    assert.deepEqual(others, []);
    assert.deepEqual([pool.pid, pool.source, pool.stats.hitRatio], [process.pid, 'snapshot api-snap', 0.75]);
    status.close();
    assert.deepEqual((await call('GET', '/v1/pools')).json(), { pools: [] });
    assert.ok(validator.checked > 20);
  });
});
