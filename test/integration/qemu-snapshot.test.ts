/**
 * QEMU snapshots for real under TCG: a running guest's state (a file, a background counter) survives snapshot and
 * restore, clones of one snapshot diverge independently, and the source runs on after it was snapshotted.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { QemuHypervisor } from '../../src/backends/qemu/index.js';
import type { AgentConnection } from '../../src/channel/client.js';
import type { VmInstance } from '../../src/core/hypervisor.js';
import { reconnectAgent } from '../../src/sandbox/boot.js';
import { runCommand } from '../../src/sandbox/command.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { BOOT_TIMEOUT_MS } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/temp.js';

const hypervisor = new QemuHypervisor();
const skip = hypervisor.capabilities.snapshot
  ? false
  : `QEMU snapshots need a Linux host (this is ${process.platform})`;

async function run(connection: AgentConnection, script: string): Promise<string> {
  const result = await runCommand(connection, ['sh', '-c', script]);
  assert.equal(result.exitCode, 0, result.stderr);
  return result.stdout;
}

async function withClone<T>(clone: VmInstance, body: (connection: AgentConnection) => Promise<T>): Promise<T> {
  const connection = await reconnectAgent(clone, BOOT_TIMEOUT_MS);
  try {
    return await body(connection);
  } finally {
    connection.close();
  }
}

describe('QEMU snapshot and restore', { skip, timeout: 300_000 }, () => {
  it('keeps a file and a running counter across restore; clones diverge; the source runs on', async (t) => {
    const dir = tempDir(t);
    const source = await Sandbox.create({ hypervisor, bootTimeoutMs: BOOT_TIMEOUT_MS });
    const clones: VmInstance[] = [];
    try {
      await source.exec(['sh', '-c', 'echo before > /tmp/state']);
      // A background counter: it must keep counting in each clone, from where it was.
      await source.exec([
        'sh',
        '-c',
        '(i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done) >/dev/null 2>&1 &',
      ]);
      const snapshot = await source.instance.snapshot(join(dir, 'snap'));
      assert.equal(source.instance.state.kind, 'paused');
      clones.push(await hypervisor.restore(snapshot), await hypervisor.restore(snapshot));
      for (const [index, clone] of clones.entries()) {
        assert.equal(clone.state.kind, 'running');
        await withClone(clone, async (connection) => {
          assert.equal(await run(connection, 'cat /tmp/state'), 'before\n');
          const first = Number(await run(connection, 'cat /tmp/count'));
          await run(connection, 'sleep 0.5');
          assert.ok(Number(await run(connection, 'cat /tmp/count')) > first, 'the counter stopped in the clone');
          await run(connection, `echo clone-${index} > /tmp/state`);
        });
      }
      for (const [index, clone] of clones.entries()) {
        await withClone(clone, async (connection) =>
          assert.equal(await run(connection, 'cat /tmp/state'), `clone-${index}\n`),
        );
      }
      await source.instance.resume();
      assert.equal((await source.exec(['cat', '/tmp/state'])).stdout, 'before\n');
    } finally {
      await Promise.all(clones.map((clone) => clone.kill()));
      await source.destroy();
    }
  });
});
