/**
 * The warm pool for real under QEMU TCG: clones of a stored snapshot kept ready, each handed out once (also through
 * `Sandbox.create({ pool })`), refilled; a small cold-boot pool as the fallback; nothing left behind after `close()`.
 * Prints what it measured (acquire on a hit, acquire to first exec, refill time per sandbox) as test diagnostics.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { existsSync, readdirSync } from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { QemuHypervisor } from '../../src/backends/qemu/index.js';
import { processMatches } from '../../src/core/process.js';
import { runtimeRoot } from '../../src/core/paths.js';
import { listVmIds } from '../../src/core/vm-record.js';
import { Pool } from '../../src/sandbox/pool.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { BOOT_TIMEOUT_MS } from '../helpers/sandbox.js';
import { tempDir, withEnv } from '../helpers/temp.js';

const skip = new QemuHypervisor().capabilities.snapshot
  ? false
  : `QEMU snapshots need Linux (this is ${process.platform})`;

const WAIT = { timeoutMs: BOOT_TIMEOUT_MS };

async function output(sandbox: Sandbox, script: string): Promise<string> {
  const result = await sandbox.exec(['sh', '-c', script]);
  assert.equal(result.exitCode, 0, result.stderr);
  return result.stdout.trim();
}

/** VMM processes of this test's runtime root: their command lines name sockets inside it. */
function vmmProcesses(): number[] {
  const pids = readdirSync('/proc').filter((entry) => /^\d+$/.test(entry));
  return pids.map(Number).filter((pid) => processMatches(pid, runtimeRoot()));
}

/**
 * Nothing is left of the VMs `ids` (every VM the test saw, pooled or handed out) nor of the handed-out `sandboxes`
 * (with the pids they had): no QEMU process, no runtime dir, no RAM file in /dev/shm.
 */
function assertGone(ids: readonly string[], sandboxes: readonly Traces[]): void {
  assert.ok(ids.length > 0 && sandboxes.length > 0, 'the test saw its VMs');
  const alive = sandboxes.filter(({ pid }) => pid !== undefined && processMatches(pid, 'qemu-system'));
  assert.deepEqual(alive, [], 'no handed-out QEMU is left');
  assert.deepEqual(vmmProcesses(), [], 'no QEMU process of the pool is left');
  assert.deepEqual(listVmIds(), [], 'no VM runtime dir is left');
  assert.deepEqual(
    sandboxes.filter(({ dir }) => existsSync(dir)),
    [],
  );
  const shm = readdirSync('/dev/shm').filter((name) => ids.some((id) => name === `jitvm-${id}`));
  assert.deepEqual(shm, [], 'no guest RAM file is left in /dev/shm');
}

interface Traces {
  readonly dir: string;
  readonly pid: number | undefined;
}

/** Where a sandbox lives on the host (read before it is destroyed: its pid is forgotten once reaped). */
function traces(sandbox: Sandbox): Traces {
  return { dir: sandbox.instance.runtimeDir, pid: sandbox.instance.pid };
}

/** Times `acquire` on a hit and up to the first exec answered in the sandbox it returned. */
async function timedAcquire(
  take: () => Promise<Sandbox>,
): Promise<{ sandbox: Sandbox; acquireMs: number; execMs: number }> {
  const began = performance.now();
  const sandbox = await take();
  const acquireMs = performance.now() - began;
  const result = await sandbox.exec(['true']);
  assert.equal(result.exitCode, 0);
  return { sandbox, acquireMs, execMs: performance.now() - began };
}

function report(t: TestContext, what: string, ms: number | undefined): void {
  t.diagnostic(`${what}: ${ms?.toFixed(3)} ms`);
}

/** `jitvm pool --json`, run as the CLI (it reads the pools' status files in the runtime dir). */
async function jitvmPoolJson(): Promise<Array<{ pid: number; source: string; stats: Record<string, number> }>> {
  const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [cli, 'pool', '--json']);
  return JSON.parse(stdout) as Array<{ pid: number; source: string; stats: Record<string, number> }>;
}

describe('warm pool', { skip, timeout: 600_000 }, () => {
  it('keeps snapshot clones ready, hands each out once, refills, and leaves nothing behind', async (t) => {
    withEnv(t, 'JITVM_SNAPSHOT_DIR', tempDir(t));
    const source = await Sandbox.create({ backend: 'qemu', bootTimeoutMs: BOOT_TIMEOUT_MS });
    try {
      await output(source, 'echo pooled > /root/state');
      await source.snapshot({ name: 'pool-base', then: 'destroy' });
    } finally {
      await source.destroy();
    }
    const errors: Error[] = [];
    const pool = await Pool.start({
      size: 2,
      fromSnapshot: 'pool-base',
      sandbox: { bootTimeoutMs: BOOT_TIMEOUT_MS },
      onError: (error) => errors.push(error),
    });
    const handedOut: Sandbox[] = [];
    let seen: string[] = [];
    let left: Traces[] = [];
    try {
      await pool.warm(WAIT);
      const first = await timedAcquire(() => pool.acquire());
      handedOut.push(first.sandbox);
      assert.equal(first.sandbox.instance.state.kind, 'running');
      assert.equal(await output(first.sandbox, 'cat /root/state'), 'pooled', "the clone has the snapshot's state");
      await pool.warm(WAIT);
      const viaCreate = await timedAcquire(() => Sandbox.create({ pool }));
      handedOut.push(viaCreate.sandbox);
      await pool.warm(WAIT);

      const three = await Promise.all([1, 2, 3].map(() => pool.acquire(WAIT)));
      handedOut.push(...three);
      assert.equal(new Set(handedOut.map((sandbox) => sandbox.id)).size, 5, 'distinct VMs');
      assert.equal(new Set(handedOut.map((sandbox) => sandbox.instance.pid)).size, 5, 'distinct QEMU processes');
      for (const sandbox of three) {
        assert.equal(await output(sandbox, 'cat /root/state; hostname'), `pooled\n${sandbox.id}`);
      }
      await pool.warm(WAIT);
      seen = listVmIds();
      assert.equal(seen.length, 7, 'five handed out, two ready');

      const stats = pool.stats();
      assert.deepEqual(errors, []);
      assert.deepEqual(
        { ...stats, meanStartMs: undefined },
        {
          size: 2,
          ready: 2,
          starting: 0,
          waiting: 0,
          handedOut: 5,
          hits: 4,
          misses: 1,
          hitRatio: 0.8,
          started: 7,
          refillErrors: 0,
          retired: 0,
          discarded: 0,
          meanStartMs: undefined,
        },
      );
      report(t, 'snapshot pool: acquire on a hit', first.acquireMs);
      report(t, 'snapshot pool: acquire on a hit through Sandbox.create({ pool })', viaCreate.acquireMs);
      report(t, 'snapshot pool: acquire to first exec answered', first.execMs);
      report(t, 'snapshot pool: refill time per sandbox (mean start)', stats.meanStartMs);

      // `jitvm pool` shows it, from its status file (rewritten every 500 ms; this one is the same moment's).
      const shown = await jitvmPoolJson();
      const mine = shown.find((entry) => entry.pid === process.pid);
      assert.equal(mine?.source, 'snapshot pool-base');
      assert.equal(mine?.stats.size, 2);
    } finally {
      left = handedOut.map(traces);
      await Promise.all(handedOut.map((sandbox) => sandbox.destroy()));
      await pool.close();
    }
    assert.deepEqual(pool.stats().ready, 0);
    assertGone(seen, left);
    assert.equal(
      (await jitvmPoolJson()).some((entry) => entry.pid === process.pid),
      false,
      'a closed pool is no longer listed',
    );
  });

  it('falls back to cold boots (here without the warm-up exec), and close stops a boot in flight', async (t) => {
    const pool = await Pool.start({
      size: 1,
      sandbox: { backend: 'qemu', bootTimeoutMs: BOOT_TIMEOUT_MS },
      warmUp: false,
    });
    let taken: Sandbox | undefined;
    let seen: string[] = [];
    let left: Traces[] = [];
    try {
      await pool.warm(WAIT);
      const hit = await timedAcquire(() => pool.acquire());
      taken = hit.sandbox;
      assert.equal(await output(taken, 'echo cold'), 'cold');
      assert.deepEqual([pool.stats().hits, pool.stats().starting], [1, 1], 'the refill boot is under way');
      seen = listVmIds();
      report(t, 'cold pool: acquire on a hit', hit.acquireMs);
      report(t, 'cold pool: acquire to first exec answered', hit.execMs);
      report(t, 'cold pool: refill time per sandbox (mean start)', pool.stats().meanStartMs);
    } finally {
      left = taken ? [traces(taken)] : [];
      await taken?.destroy();
      const closing = performance.now();
      await pool.close();
      report(t, 'cold pool: close with a boot in flight', performance.now() - closing);
    }
    assert.deepEqual([pool.stats().starting, pool.stats().refillErrors], [0, 0]);
    assertGone(seen, left);
  });
});
