import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { acceleratorFailureHint, qemuFound, qemuMissing } from '../../src/backends/qemu/probe-report.js';

describe('QEMU probe report', () => {
  it('names the install command of each platform when QEMU is missing', () => {
    assert.match(qemuMissing('x86_64', 'linux').reason, /apt-get install qemu-system-x86/);
    assert.match(qemuMissing('aarch64', 'linux').reason, /apt-get install qemu-system-arm/);
    assert.match(qemuMissing('aarch64', 'darwin').reason, /qemu-system-aarch64 not found.*brew install qemu/);
    assert.match(qemuMissing('x86_64', 'win32').reason, /winget install --id SoftwareFreedomConservancy\.QEMU/);
    assert.equal(qemuMissing('x86_64', 'win32').available, false);
  });

  it('on Windows without WHPX: available under TCG, warning with the advice to enable it', () => {
    const reason =
      'Windows Hypervisor Platform is not enabled (…): enable Windows Hypervisor Platform (…), then reboot';
    const probe = qemuFound({
      binary: 'C:\\Program Files\\qemu\\qemu-system-x86_64.exe',
      version: 'QEMU emulator version 10.1.0',
      choice: { accelerator: 'tcg', reason },
      seccomp: false,
      platform: 'win32',
    });
    assert.equal(probe.available, true);
    assert.equal(probe.accelerator, 'tcg');
    assert.deepEqual(probe.warnings, [
      `no hardware acceleration, guests run under TCG, which is slow and not isolated per QEMU's security policy: ${reason}`,
      'QEMU has no syscall filter on win32 (-sandbox is Linux-only): the VMM runs unconfined',
    ]);
  });

  it('on macOS with HVF: no TCG warning, and the reason says why hvf', () => {
    const probe = qemuFound({
      binary: '/opt/homebrew/bin/qemu-system-aarch64',
      version: undefined,
      choice: { accelerator: 'hvf', reason: 'Hypervisor.framework is available (kern.hv_support=1)' },
      seccomp: false,
      platform: 'darwin',
    });
    assert.match(probe.reason, /accelerator hvf \(Hypervisor\.framework is available/);
    assert.equal(probe.warnings.length, 1);
  });

  it('on Linux with KVM and seccomp: no warnings', () => {
    const choice = { accelerator: 'kvm', reason: '/dev/kvm is usable (kvm_intel)' } as const;
    const probe = qemuFound({
      binary: '/usr/bin/qemu-system-x86_64',
      version: 'x',
      choice,
      seccomp: true,
      platform: 'linux',
    });
    assert.deepEqual(probe.warnings, []);
  });

  it('adds the remedy to a start-up failure that QEMU blames on the accelerator, and nothing otherwise', () => {
    const whpxFailed =
      'qemu-system-x86_64.exe: -accel whpx: WHPX: No accelerator found, hr=00000000\r\n' +
      'qemu-system-x86_64.exe: failed to initialize whpx: Function not implemented';
    assert.match(
      acceleratorFailureHint('whpx', whpxFailed) ?? '',
      /enable Windows Hypervisor Platform.*then reboot; or set JITVM_ACCEL=tcg/,
    );
    const hvfMissing = 'qemu-system-aarch64: -accel hvf: invalid accelerator hvf';
    assert.match(acceleratorFailureHint('hvf', hvfMissing) ?? '', /build has no hvf accelerator.*JITVM_ACCEL=tcg/);
    const startedThenFailed = 'WHPX: setting APIC emulation mode in the hypervisor\nqemu: could not load kernel';
    assert.equal(acceleratorFailureHint('whpx', startedThenFailed), undefined);
    assert.equal(acceleratorFailureHint('tcg', 'failed to initialize tcg'), undefined);
  });
});
