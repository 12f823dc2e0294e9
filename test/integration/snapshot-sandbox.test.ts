/**
 * Snapshots through the SDK, for real under QEMU TCG: `sandbox.snapshot()` into the store, `Sandbox.create({
 * fromSnapshot })` and `Sandbox.fork()` — state survives, clones diverge and draw different random bytes, a tampered
 * snapshot is refused, and nothing is left behind.
 */
import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { QemuHypervisor } from '../../src/backends/qemu/index.js';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { SnapshotRejectedError } from '../../src/snapshot/errors.js';
import { SnapshotStore } from '../../src/snapshot/store.js';
import { BOOT_TIMEOUT_MS } from '../helpers/sandbox.js';
import { tempDir, withEnv } from '../helpers/temp.js';

const skip = new QemuHypervisor().capabilities.snapshot
  ? false
  : `QEMU snapshots need Linux (this is ${process.platform})`;

async function output(sandbox: Sandbox, script: string): Promise<string> {
  const result = await sandbox.exec(['sh', '-c', script]);
  assert.equal(result.exitCode, 0, result.stderr);
  return result.stdout.trim();
}

describe('sandbox snapshots, restore and fork', { skip, timeout: 300_000 }, () => {
  it('keeps a file and a running counter; forks clones that diverge with their own identity', async (t) => {
    withEnv(t, 'JITVM_SNAPSHOT_DIR', tempDir(t));
    const source = await Sandbox.create({ backend: 'qemu', bootTimeoutMs: BOOT_TIMEOUT_MS });
    const clones: Sandbox[] = [];
    try {
      await output(source, 'echo before > /root/state');
      await output(source, '(i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done) >/dev/null 2>&1 &');
      const taken = await source.snapshot({ name: 'counter' });
      assert.equal(taken.manifest.backend, 'qemu');
      assert.equal(source.instance.state.kind, 'running', 'the source resumes after the snapshot');

      const restored = await Sandbox.create({ fromSnapshot: 'counter', bootTimeoutMs: BOOT_TIMEOUT_MS });
      clones.push(restored);
      assert.equal(await output(restored, 'cat /root/state'), 'before');
      const first = Number(await output(restored, 'cat /tmp/count'));
      await output(restored, 'sleep 0.5');
      assert.ok(Number(await output(restored, 'cat /tmp/count')) > first, 'the counter continues in the clone');

      clones.push(...(await Sandbox.fork('counter', { count: 3 })));
      const forks = clones.slice(1);
      for (const [i, fork] of forks.entries()) {
        assert.equal(await output(fork, 'cat /root/state'), 'before');
        await output(fork, `echo fork-${i} > /root/state`);
      }
      for (const [i, fork] of forks.entries()) assert.equal(await output(fork, 'cat /root/state'), `fork-${i}`);
      const random = await Promise.all(forks.map((fork) => output(fork, 'head -c 32 /dev/urandom | od -An -tx1')));
      assert.equal(new Set(random).size, forks.length, 'every clone draws its own random bytes');
      const hostnames = await Promise.all(forks.map((fork) => output(fork, 'hostname')));
      assert.deepEqual(
        hostnames,
        forks.map((fork) => fork.id),
      );
      assert.equal(await output(source, 'cat /root/state'), 'before', "clones never touch the source's state");
    } finally {
      await Promise.all([...clones, source].map((sandbox) => sandbox.destroy()));
    }
    for (const sandbox of [...clones, source]) {
      assert.ok(!existsSync(sandbox.instance.runtimeDir), `${sandbox.id} left its runtime dir`);
      assert.ok(!existsSync(`/dev/shm/jitvm-${sandbox.id}`), `${sandbox.id} left its RAM file`);
    }
  });

  it("gives each clone its own copy-on-write view of a writable drive; the snapshot's copy never changes", async (t) => {
    withEnv(t, 'JITVM_SNAPSHOT_DIR', tempDir(t));
    const disk = join(tempDir(t), 'data.img');
    writeFileSync(disk, Buffer.alloc(4 << 20));
    const readHead = (sandbox: Sandbox): Promise<string> => output(sandbox, "head -c 7 /dev/vda | tr -d '\\000'");
    const source = await Sandbox.create({
      backend: 'qemu',
      bootTimeoutMs: BOOT_TIMEOUT_MS,
      drives: [{ id: 'data', path: disk, readOnly: false }],
    });
    const clones: Sandbox[] = [];
    try {
      await output(source, 'printf source | dd of=/dev/vda conv=notrunc,fsync 2>/dev/null');
      const taken = await source.snapshot({ name: 'with-disk' });
      const copy = join(taken.dir, 'drive-data');
      const copied = readFileSync(copy);
      await output(source, 'printf after! | dd of=/dev/vda conv=notrunc,fsync 2>/dev/null');
      clones.push(...(await Sandbox.fork('with-disk', { count: 2 })));
      for (const [i, clone] of clones.entries()) {
        assert.equal(await readHead(clone), 'source');
        await output(clone, `printf clone-${i} | dd of=/dev/vda conv=notrunc,fsync 2>/dev/null`);
      }
      for (const [i, clone] of clones.entries()) assert.equal(await readHead(clone), `clone-${i}`);
      assert.equal(await readHead(source), 'after!');
      assert.ok(readFileSync(copy).equals(copied), "the snapshot's copy of the drive was written");
    } finally {
      await Promise.all([...clones, source].map((sandbox) => sandbox.destroy()));
    }
    assert.equal(readFileSync(disk).subarray(0, 6).toString(), 'after!', "clones never write the source's disk");
  });

  it('refuses a tampered snapshot, and boot options that a snapshot fixes', async (t) => {
    withEnv(t, 'JITVM_SNAPSHOT_DIR', tempDir(t));
    const source = await Sandbox.create({ backend: 'qemu', bootTimeoutMs: BOOT_TIMEOUT_MS });
    try {
      await source.snapshot({ name: 'tampered', then: 'destroy' });
    } finally {
      await source.destroy();
    }
    const memory = join((await new SnapshotStore().inspect('tampered')).dir, 'memory');
    const fd = openSync(memory, 'r+');
    writeSync(fd, Buffer.from([0xff]), 0, 1, 4096);
    closeSync(fd);
    await assert.rejects(Sandbox.create({ fromSnapshot: 'tampered' }), SnapshotRejectedError);
    await assert.rejects(Sandbox.create({ fromSnapshot: 'tampered', memoryMiB: 512 }), InvalidArgumentError);
    await assert.rejects(Sandbox.fork('tampered', { count: 0 }), InvalidArgumentError);
  });
});
