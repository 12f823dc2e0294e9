import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type BackendReport, chooseBackend, explainBackendChoice } from '../../src/backends/index.js';
import type { Arch } from '../../src/core/config.js';

function report(name: string, reason: string | undefined, arches: readonly Arch[]): BackendReport {
  const probe = {
    available: reason === undefined,
    reason: reason ?? `${name} is usable`,
    accelerator: undefined,
    binary: undefined,
    version: undefined,
    warnings: [],
  };
  return { name, probe, arches };
}

/** What each platform's probes say, in jitvm's order of preference. */
const hosts = {
  linuxKvm: [
    report('firecracker', undefined, ['x86_64']),
    report('vz', 'the vz backend needs macOS', []),
    report('qemu', undefined, ['x86_64', 'aarch64']),
  ],
  macWithVfkit: [
    report('firecracker', 'Firecracker needs Linux with KVM', []),
    report('vz', undefined, ['aarch64']),
    report('qemu', undefined, ['x86_64', 'aarch64']),
  ],
  macWithoutVfkit: [
    report('firecracker', 'Firecracker needs Linux with KVM', []),
    report('vz', 'vfkit is not on PATH; install it with: brew install vfkit', ['aarch64']),
    report('qemu', undefined, ['x86_64', 'aarch64']),
  ],
  windowsWithoutQemu: [
    report('firecracker', 'Firecracker needs Linux with KVM', []),
    report('vz', 'the vz backend needs macOS', []),
    report('qemu', 'qemu-system-x86_64.exe not found (install: winget install SoftwareFreedomConservancy.QEMU)', []),
  ],
};

describe('the automatic backend choice, as doctor explains it on each platform', () => {
  it('takes Firecracker on Linux with KVM, and QEMU for guests of the other architecture', () => {
    assert.equal(chooseBackend(hosts.linuxKvm, 'x86_64')?.name, 'firecracker');
    assert.equal(
      explainBackendChoice(hosts.linuxKvm, 'x86_64'),
      'firecracker — first available in the order firecracker > vz > qemu',
    );
    assert.equal(
      explainBackendChoice(hosts.linuxKvm, 'aarch64'),
      'qemu — first available in the order firecracker > vz > qemu; preferred ones are unavailable ' +
        '(firecracker: runs no aarch64 guests here; vz: the vz backend needs macOS)',
    );
  });

  it('takes vz on a Mac with vfkit, and QEMU (HVF) without it, saying how to get vfkit', () => {
    assert.equal(chooseBackend(hosts.macWithVfkit, 'aarch64')?.name, 'vz');
    assert.match(explainBackendChoice(hosts.macWithVfkit, 'aarch64'), /^vz — .*\(firecracker: Firecracker needs Linux/);
    assert.equal(chooseBackend(hosts.macWithoutVfkit, 'aarch64')?.name, 'qemu');
    assert.match(
      explainBackendChoice(hosts.macWithoutVfkit, 'aarch64'),
      /vz: vfkit is not on PATH; .*brew install vfkit/,
    );
  });

  it('says why nothing can run when no backend is available', () => {
    assert.equal(chooseBackend(hosts.windowsWithoutQemu, 'x86_64'), undefined);
    assert.match(
      explainBackendChoice(hosts.windowsWithoutQemu, 'x86_64'),
      /^none for x86_64 guests \(.*winget install/,
    );
  });
});
