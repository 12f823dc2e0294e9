import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { liveVmRecord } from '../../src/core/vm-record.js';
import { tempDir, withEnv } from '../helpers/temp.js';

/** A state.json record with placeholder values, and `fields` on top. */
function recordOf(fields: Record<string, unknown>): Record<string, unknown> {
  return {
    backend: 'qemu',
    createdAt: '2026-01-01T00:00:00Z',
    detached: true,
    controlSocket: 'q',
    agentSocket: 'a',
    consoleLog: 'c',
    cpus: 1,
    memoryMiB: 256,
    arch: 'x86_64',
    accelerator: 'tcg',
    ...fields,
  };
}

it('liveVmRecord keeps an entry still being started, and removes dead or damaged ones', (t) => {
  const root = withEnv(t, 'JITVM_RUNTIME_DIR', tempDir(t));
  const vms = join(root, 'vms');
  mkdirSync(join(vms, 'jv-starting'), { recursive: true });
  mkdirSync(join(vms, 'jv-damaged'));
  writeFileSync(join(vms, 'jv-damaged', 'state.json'), '{not json');
  mkdirSync(join(vms, 'jv-dead'));
  const dead = recordOf({ id: 'jv-dead', pid: 2 ** 22 + 1 }); // above the default pid_max: no such process
  writeFileSync(join(vms, 'jv-dead', 'state.json'), JSON.stringify(dead));

  assert.equal(liveVmRecord('jv-starting'), undefined);
  assert.ok(existsSync(join(vms, 'jv-starting')), 'a VM still starting keeps its runtime dir');
  assert.equal(liveVmRecord('jv-damaged'), undefined);
  assert.ok(!existsSync(join(vms, 'jv-damaged')));
  assert.equal(liveVmRecord('jv-dead'), undefined);
  assert.ok(!existsSync(join(vms, 'jv-dead')));
});

it('liveVmRecord ends a non-detached VM whose owner died, and removes what it left outside its runtime dir', async (t) => {
  const root = withEnv(t, 'JITVM_RUNTIME_DIR', tempDir(t));
  const runtimeDir = join(root, 'vms', 'jv-orphan');
  const jail = join(root, 'jail');
  mkdirSync(runtimeDir, { recursive: true });
  mkdirSync(jail);
  // A stand-in VMM whose command line names its runtime dir, as a real one does.
  const vmm = spawn('sh', ['-c', 'sleep 60', runtimeDir], { stdio: 'ignore' });
  t.after(() => vmm.kill('SIGKILL'));
  const owner = spawn('true');
  await once(owner, 'exit');
  const record = recordOf({
    id: 'jv-orphan',
    pid: vmm.pid,
    ownerPid: owner.pid,
    detached: false,
    cleanup: { dirs: [jail] },
  });
  writeFileSync(join(runtimeDir, 'state.json'), JSON.stringify(record));
  assert.equal(liveVmRecord('jv-orphan'), undefined);
  const [, signal] = (await once(vmm, 'exit')) as [number | null, string | null];
  assert.equal(signal, 'SIGKILL');
  assert.ok(!existsSync(runtimeDir) && !existsSync(jail));
});
