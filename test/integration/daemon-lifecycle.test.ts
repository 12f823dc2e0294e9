import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { writeVmRecord } from '../../src/core/vm-record.js';
import { adoptSandboxes } from '../../src/daemon/lifecycle-adopt.js';
import { alive } from '../helpers/process.js';
import { savedSandbox } from '../helpers/daemon.js';
import { tempDir, withEnv } from '../helpers/temp.js';

const saved = savedSandbox;

describe('re-adopting the sandboxes of a daemon that died', { timeout: 60_000 }, () => {
  it('skips a VM that is gone and kills one whose agent cannot be reached: nothing is left untracked', async (t) => {
    const root = withEnv(t, 'JITVM_RUNTIME_DIR', tempDir(t, 'jitvm-adopt-'));
    const runtimeDir = join(root, 'vms', 'jv-deadbeef01');
    mkdirSync(runtimeDir, { recursive: true });
    // A stand-in VMM: a process whose command line names the runtime dir, with no agent socket behind it.
    const vmm = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', runtimeDir], { stdio: 'ignore' });
    t.after(() => void (vmm.exitCode === null && vmm.kill('SIGKILL')));
    const exited = new Promise((resolve) => vmm.once('exit', resolve));
    writeVmRecord(runtimeDir, {
      id: 'jv-deadbeef01',
      backend: 'qemu',
      pid: vmm.pid!,
      createdAt: new Date().toISOString(),
      detached: true,
      controlSocket: join(runtimeDir, 'qmp.sock'),
      agentSocket: join(runtimeDir, 'agent.sock'),
      consoleLog: join(runtimeDir, 'console.log'),
      cpus: 1,
      memoryMiB: 256,
      arch: 'x86_64',
      accelerator: 'tcg',
    });
    const lines: string[] = [];
    const record = (_: object, message: string) => void lines.push(message);
    const adopted = await adoptSandboxes([saved('jv-deadbeef01'), saved('jv-gone000000')], {
      info: record,
      warn: record,
    });
    assert.deepEqual(adopted, []);
    await exited;
    assert.equal(alive(vmm.pid!), false, 'the unreachable VM was killed');
    assert.equal(existsSync(runtimeDir), false, 'and its runtime dir removed');
    assert.deepEqual(lines.sort(), [
      'sandbox of a previous daemon could not be re-adopted: killing it',
      'sandbox of a previous daemon is gone',
    ]);
  });
});
