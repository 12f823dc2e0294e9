import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type AcceleratorHost,
  type Availability,
  type HostFiles,
  chooseAccelerator,
  hvfUsable,
  kvmUsable,
  whpxUsable,
} from '../../src/core/accelerator.js';
import { InvalidArgumentError } from '../../src/core/errors.js';

/** A filesystem holding exactly `paths`; /dev/kvm read-writable only when listed in `writable`. */
function files(paths: string[], writable: string[] = []): HostFiles {
  return { exists: (path) => paths.includes(path), readWritable: (path) => writable.includes(path) };
}

const usable: Availability = { usable: true, reason: 'usable here' };
const missing: Availability = { usable: false, reason: 'missing here' };
const notAsked = (): Availability => assert.fail('this check belongs to another platform');

function host(overrides: Partial<AcceleratorHost>): AcceleratorHost {
  return { platform: 'linux', cpu: 'x86_64', env: {}, kvm: notAsked, hvf: notAsked, whpx: notAsked, ...overrides };
}

describe('KVM check', () => {
  it('accepts /dev/kvm from kvm_intel or kvm_amd, and arm64 KVM without a vendor module', () => {
    const kvm = ['/dev/kvm'];
    assert.deepEqual(kvmUsable(files([...kvm, '/sys/module/kvm_amd'], kvm), 'x64'), {
      usable: true,
      reason: '/dev/kvm is usable (kvm_amd)',
    });
    assert.equal(kvmUsable(files(kvm, kvm), 'arm64').usable, true);
  });

  it('refuses a PVM host, a missing vendor module, an unwritable or absent /dev/kvm', () => {
    const kvm = ['/dev/kvm'];
    assert.match(kvmUsable(files([...kvm, '/sys/module/kvm_pvm'], kvm), 'x64').reason, /kvm_pvm/);
    assert.match(kvmUsable(files(kvm, kvm), 'x64').reason, /neither kvm_intel nor kvm_amd/);
    assert.deepEqual(kvmUsable(files(kvm), 'x64'), { usable: false, reason: '/dev/kvm is not read-writable by you' });
    assert.deepEqual(kvmUsable(files([]), 'x64'), { usable: false, reason: 'no /dev/kvm' });
  });
});

describe('WHPX check', () => {
  const dll = 'C:\\Windows\\System32\\WinHvPlatform.dll';

  it('accepts a host whose SystemRoot holds WinHvPlatform.dll (what QEMU loads first)', () => {
    assert.equal(whpxUsable({ SystemRoot: 'C:\\Windows' }, files([dll])).usable, true);
  });

  it('explains how to enable Windows Hypervisor Platform when the DLL is missing', () => {
    const answer = whpxUsable({ SystemRoot: 'C:\\Windows' }, files([]));
    assert.equal(answer.usable, false);
    assert.match(answer.reason, /WinHvPlatform\.dll is missing/);
    assert.match(answer.reason, /Optional features/);
    assert.match(answer.reason, /DISM \/Online \/Enable-Feature \/FeatureName:HypervisorPlatform \/All/);
    assert.match(answer.reason, /then reboot/);
    assert.match(whpxUsable({}, files([dll])).reason, /SystemRoot is not set/);
  });
});

describe('HVF check', () => {
  it('reads kern.hv_support: 1 is usable, 0 is not, unreadable is not (with the override named)', () => {
    assert.equal(hvfUsable(() => '1').usable, true);
    assert.deepEqual(hvfUsable((name) => (name === 'kern.hv_support' ? '0' : undefined)).usable, false);
    const unknown = hvfUsable(() => undefined);
    assert.equal(unknown.usable, false);
    assert.match(unknown.reason, /JITVM_ACCEL=hvf/);
  });
});

describe('accelerator choice', () => {
  it('Linux: kvm when usable, else tcg with the reason (PVM, no KVM)', () => {
    assert.deepEqual(chooseAccelerator('x86_64', host({ kvm: () => usable })), {
      accelerator: 'kvm',
      reason: 'usable here',
    });
    const fallback = chooseAccelerator('x86_64', host({ kvm: () => missing }));
    assert.deepEqual(fallback, {
      accelerator: 'tcg',
      reason: 'missing here; software emulation (TCG) is much slower',
    });
  });

  it('macOS: hvf when Hypervisor.framework is there, else tcg with the reason', () => {
    const mac = { platform: 'darwin', cpu: 'aarch64' } as const;
    assert.equal(chooseAccelerator('aarch64', host({ ...mac, hvf: () => usable })).accelerator, 'hvf');
    const fallback = chooseAccelerator('aarch64', host({ ...mac, hvf: () => hvfUsable(() => '0') }));
    assert.equal(fallback.accelerator, 'tcg');
    assert.match(fallback.reason, /kern\.hv_support=0/);
  });

  it('Windows: whpx when installed, else tcg with the "enable Windows Hypervisor Platform" advice', () => {
    const windows = { platform: 'win32', env: { SystemRoot: 'C:\\Windows' } } as const;
    assert.equal(chooseAccelerator('x86_64', host({ ...windows, whpx: () => usable })).accelerator, 'whpx');
    const noDll = (): Availability => whpxUsable(windows.env, files([]));
    const fallback = chooseAccelerator('x86_64', host({ ...windows, whpx: noDll }));
    assert.equal(fallback.accelerator, 'tcg');
    assert.match(fallback.reason, /enable Windows Hypervisor Platform.*then reboot; software emulation/);
  });

  it('emulates a guest of another architecture without asking any check', () => {
    const choice = chooseAccelerator('aarch64', host({ platform: 'linux', cpu: 'x86_64' }));
    assert.deepEqual(choice, { accelerator: 'tcg', reason: 'aarch64 guests on x86_64 hosts need emulation' });
    assert.equal(chooseAccelerator('x86_64', host({ platform: 'freebsd' })).accelerator, 'tcg');
  });

  it('takes JITVM_ACCEL over everything and refuses a value that names no accelerator', () => {
    const forced = chooseAccelerator('aarch64', host({ env: { JITVM_ACCEL: 'hvf' } }));
    assert.deepEqual(forced, { accelerator: 'hvf', reason: 'JITVM_ACCEL=hvf' });
    assert.throws(
      () => chooseAccelerator('x86_64', host({ env: { JITVM_ACCEL: 'hax' } })),
      (error: unknown) => error instanceof InvalidArgumentError && /kvm, hvf, whpx, tcg/.test(error.message),
    );
  });
});
