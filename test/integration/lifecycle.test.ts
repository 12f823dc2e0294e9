import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { QemuHypervisor } from '../../src/backends/qemu/index.js';
import { parseVmConfig } from '../../src/core/config.js';
import { vmsRoot } from '../../src/core/paths.js';
import { type VmRecord, liveVmRecord, readVmRecord } from '../../src/core/vm-record.js';
import {
  ChannelClosedError,
  HostToolMissingError,
  InvalidArgumentError,
  SandboxBootError,
} from '../../src/core/errors.js';
import { resolveImage } from '../../src/image/index.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { BOOT_TIMEOUT_MS, withSandbox } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/temp.js';
import { alive } from '../helpers/process.js';

describe('VM lifecycle', { timeout: 600_000 }, () => {
  it('runs several VMs at once, each its own machine', async () => {
    const ids = await Promise.all(
      [0, 1, 2].map((n) =>
        withSandbox(async (sb) => {
          await sb.files.write('/tmp/who', `vm${n}`);
          const result = await sb.exec('echo $(cat /tmp/who); cat /proc/sys/kernel/random/boot_id');
          assert.equal(result.stdout.split('\n')[0], `vm${n}`);
          return result.stdout.split('\n')[1];
        }),
      ),
    );
    assert.equal(new Set(ids).size, 3, 'each VM has its own boot id');
  });

  it('leaves nothing behind after destroy: no process, no runtime dir', async () => {
    const sandbox = await Sandbox.create({ bootTimeoutMs: BOOT_TIMEOUT_MS });
    const { runtimeDir } = sandbox.instance;
    const pid = sandbox.instance.pid;
    assert.ok(pid !== undefined && existsSync(runtimeDir));
    await sandbox.destroy();
    assert.equal(sandbox.instance.pid, undefined);
    assert.equal(sandbox.instance.controlSocket, undefined);
    assert.ok(!existsSync(runtimeDir));
    assert.throws(() => process.kill(pid, 0), /ESRCH/);
    await assert.rejects(sandbox.exec(['true']), /was destroyed/);
  });

  it('fails an exec in flight with ChannelClosedError when the VMM is killed', async () => {
    const sandbox = await Sandbox.create({ bootTimeoutMs: BOOT_TIMEOUT_MS });
    try {
      const running = sandbox.exec(['sleep', '1000']);
      await new Promise((resolve) => setTimeout(resolve, 300));
      process.kill(sandbox.instance.pid as number, 'SIGKILL');
      await assert.rejects(running, ChannelClosedError);
      await sandbox.instance.wait();
      assert.ok(!existsSync(sandbox.instance.runtimeDir));
    } finally {
      await sandbox.destroy();
    }
  });

  it('powers the guest off gracefully (agent SHUTDOWN), and stop() uses the ACPI power button', async () => {
    const graceful = await Sandbox.create({ bootTimeoutMs: BOOT_TIMEOUT_MS });
    await graceful.destroy({ graceful: true });
    assert.equal(graceful.instance.state.kind, 'exited');
    const stopped = await Sandbox.create({ bootTimeoutMs: BOOT_TIMEOUT_MS });
    try {
      const exit = await stopped.instance.stop({ timeoutMs: 20_000 });
      assert.equal(exit.signal, undefined, 'QEMU exited on its own after the guest powered off, not by a signal');
    } finally {
      await stopped.destroy();
    }
  });

  it('reports a guest that never answers as SandboxBootError with the console tail', async () => {
    await assert.rejects(
      Sandbox.create({ kernelArgs: ['rdinit=/bin/sh'], bootTimeoutMs: 15_000 }),
      (error: unknown) =>
        error instanceof SandboxBootError &&
        /did not answer within 15000 ms/.test(error.message) &&
        error.consoleTail.length > 0,
    );
  });

  it('reports a kernel that cannot boot as SandboxBootError', async (t) => {
    const image = await resolveImage();
    const bogus = join(tempDir(t), 'not-a-kernel');
    writeFileSync(bogus, 'this is not a kernel');
    await assert.rejects(
      Sandbox.create({ kernel: bogus, initrd: image.initrd, bootTimeoutMs: 15_000 }),
      (error: unknown) => {
        return (
          (error instanceof SandboxBootError || (error as { code?: string }).code === 'vmm_failed') &&
          /kernel|exited|QEMU/i.test((error as Error).message)
        );
      },
    );
  });

  it('refuses bad config and missing files with clear typed errors', async () => {
    await assert.rejects(
      Sandbox.create({ cpus: 0 }),
      (error: unknown) => error instanceof InvalidArgumentError && /cpus/.test(error.message),
    );
    await assert.rejects(
      Sandbox.create({ kernel: '/no/kernel', initrd: '/no/initrd' }),
      (error: unknown) => error instanceof InvalidArgumentError && /\/no\/kernel does not exist/.test(error.message),
    );
  });

  it('names the package to install when qemu is missing', async () => {
    const image = await resolveImage();
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      await assert.rejects(
        new QemuHypervisor().spawn(parseVmConfig({ kernel: image.kernel, initrd: image.initrd, arch: 'x86_64' })),
        (error: unknown) =>
          error instanceof HostToolMissingError && /apt-get install qemu-system-x86/.test(error.message),
      );
    } finally {
      process.env.PATH = path;
    }
  });

  it('survives a host disconnect: the detached VM serves the next connection and the old command is gone', async () => {
    const created = await Sandbox.create({ detached: true, bootTimeoutMs: BOOT_TIMEOUT_MS });
    const id = created.id;
    try {
      const running = created.exec('echo $$ > /tmp/sleeper.pid; exec sleep 1000');
      await new Promise((resolve) => setTimeout(resolve, 500));
      created.detach();
      await assert.rejects(running, ChannelClosedError);
      const again = await Sandbox.connect(id);
      try {
        const check = await again.exec('kill -0 "$(cat /tmp/sleeper.pid)" 2>/dev/null && echo alive || echo dead');
        assert.equal(check.stdout, 'dead\n');
      } finally {
        await again.destroy();
      }
    } finally {
      await (await new QemuHypervisor().attach(id).catch(() => undefined))?.kill();
    }
  });
});

it('a program whose last act is destroying a detached sandbox waits for the VM to go, and exits 0', async (t) => {
  const script = join(tempDir(t), 'destroy-last.mjs');
  const sdk = new URL('../../src/index.js', import.meta.url).href;
  writeFileSync(
    script,
    `import { Sandbox } from '${sdk}';\n` +
      `const sandbox = await Sandbox.create({ detached: true, bootTimeoutMs: ${BOOT_TIMEOUT_MS} });\n` +
      `console.log(sandbox.id);\nawait sandbox.destroy();\n`,
  );
  const run = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: BOOT_TIMEOUT_MS });
  assert.equal(run.status, 0, `exit ${run.status} (13: Node ended before the VMM did)\n${run.stderr}`);
  const id = run.stdout.trim();
  assert.ok(!existsSync(join(vmsRoot(), id)), 'the runtime dir is gone');
});

/** A VM's record, or undefined while its creator has not written it yet. */
function recordOrUndefined(id: string): VmRecord | undefined {
  try {
    return readVmRecord(id);
  } catch {
    return undefined;
  }
}

it('a detached sandbox whose creator dies mid-boot is not left running; a finished one outlives its creator', async () => {
  const cli = new URL('../../src/cli/main.js', import.meta.url).pathname;
  const before = new Set(readdirSync(vmsRoot()));
  const creator = spawn(process.execPath, [cli, 'create', '--boot-timeout', String(BOOT_TIMEOUT_MS)], {
    stdio: 'ignore',
  });
  const deadline = Date.now() + 30_000;
  let record: VmRecord | undefined;
  while (!record) {
    assert.ok(Date.now() < deadline, 'the creator wrote no VM record');
    const id = readdirSync(vmsRoot()).find((entry) => !before.has(entry));
    record = id === undefined ? undefined : recordOrUndefined(id);
    if (!record) await delay(20);
  }
  assert.equal(record.ownerPid, creator.pid, 'while it boots, the VM belongs to its creator');
  creator.kill('SIGKILL');
  await once(creator, 'exit');
  assert.equal(liveVmRecord(record.id), undefined, 'the next look at it ends it');
  assert.ok(!existsSync(join(vmsRoot(), record.id)), 'its runtime dir is removed');
  const vmmPid = record.pid;
  while (alive(vmmPid)) {
    assert.ok(Date.now() < deadline + 10_000, 'the VMM is gone');
    await delay(20);
  }

  const finished = spawnSync(process.execPath, [cli, 'create', '--boot-timeout', String(BOOT_TIMEOUT_MS)], {
    encoding: 'utf8',
  });
  const id = finished.stdout.trim();
  try {
    assert.equal(finished.status, 0, finished.stderr);
    assert.equal(readVmRecord(id).ownerPid, undefined, 'a ready detached VM belongs to no process');
    assert.ok(liveVmRecord(id), 'it outlives the CLI that created it');
  } finally {
    await (await new QemuHypervisor().attach(id).catch(() => undefined))?.kill();
  }
});
