/** What `jitvm doctor` says about Firecracker: each missing piece is named, and a usable setup is reported as such. */
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { FirecrackerHypervisor } from '../../src/backends/firecracker/index.js';
import { tempDir } from '../helpers/temp.js';

const usableKvm = () => ({ usable: true, reason: '/dev/kvm is usable (kvm_intel)' });

function fakeBinary(dir: string, versionLine: string): string {
  const path = join(dir, 'firecracker');
  writeFileSync(path, `#!/bin/sh\n[ "$1" = --version ] && printf '${versionLine}\\n\\n'\n`);
  chmodSync(path, 0o755);
  return path;
}

it('reports a usable Firecracker with its version and KVM', async (t) => {
  const binary = fakeBinary(tempDir(t), 'Firecracker v1.12.0');
  const probe = await new FirecrackerHypervisor({ binary, kvmCheck: usableKvm }).probe();
  assert.equal(probe.available, true, probe.reason);
  assert.equal(probe.version, '1.12.0');
  assert.equal(probe.accelerator, 'kvm');
  assert.match(probe.reason, /Firecracker 1\.12\.0.*kvm_intel/);
});

it('names what is missing: the binary, a usable version, KVM', async (t) => {
  const dir = tempDir(t);
  const missing = await new FirecrackerHypervisor({ binary: join(dir, 'nope'), kvmCheck: usableKvm }).probe();
  assert.equal(missing.available, false);
  assert.match(missing.reason, /does not exist; see docs\/backends\/firecracker\.md/);

  const old = await new FirecrackerHypervisor({
    binary: fakeBinary(dir, 'Firecracker v1.7.0'),
    kvmCheck: usableKvm,
  }).probe();
  assert.equal(old.available, false);
  assert.match(old.reason, /1\.7\.0 is too old; jitvm needs 1\.8 or newer/);

  const pvm = await new FirecrackerHypervisor({
    binary: fakeBinary(dir, 'Firecracker v1.12.0'),
    kvmCheck: () => ({ usable: false, reason: '/dev/kvm is provided by kvm_pvm, which runs only PVM guest kernels' }),
  }).probe();
  assert.equal(pvm.available, false);
  assert.match(pvm.reason, /Firecracker needs KVM: \/dev\/kvm is provided by kvm_pvm/);
});

it('on this host, without a firecracker binary, reports the backend unavailable and spawn refuses with the reason', async () => {
  const hypervisor = new FirecrackerHypervisor({ binary: '/nonexistent/firecracker' });
  assert.equal((await hypervisor.probe()).available, false);
  await assert.rejects(
    hypervisor.spawn({
      cpus: 1,
      memoryMiB: 128,
      kernel: '/k',
      initrd: '/i',
      kernelArgs: [],
      arch: 'x86_64',
      bootTimeoutMs: 1000,
      drives: [],
      network: { mode: 'none' },
      shares: [],
    }),
    /the firecracker backend cannot run here: firecracker \(\/nonexistent\/firecracker\) does not exist/,
  );
});
