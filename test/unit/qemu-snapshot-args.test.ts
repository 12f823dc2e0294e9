import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildQemuArgs, runtimePaths } from '../../src/backends/qemu/args.js';
import { ramDirFor, ramFileIn } from '../../src/backends/qemu/guest-ram.js';
import { checkRestorable } from '../../src/backends/qemu/snapshot.js';
import { parseVmConfig } from '../../src/core/config.js';
import { JitvmError } from '../../src/core/errors.js';
import type { VmSnapshot } from '../../src/core/hypervisor.js';

const config = parseVmConfig({ kernel: '/k', initrd: '/i', memoryMiB: 256, arch: 'x86_64' });
const base = { config, accelerator: 'tcg', paths: runtimePaths('/r'), seccomp: true, name: 'jitvm-x' } as const;
const valuesOf = (args: string[], flag: string): string[] =>
  args.flatMap((arg, i) => (arg === flag ? [args[i + 1] ?? ''] : []));

describe('QEMU argv for snapshots', () => {
  it('keeps a VM of its own in a shared RAM file the machine takes as its memory backend', () => {
    const args = buildQemuArgs({ ...base, ram: { path: '/dev/shm/jitvm-x/ram', shared: true } });
    assert.deepEqual(valuesOf(args, '-M'), ['microvm,memory-backend=guest-ram']);
    assert.deepEqual(valuesOf(args, '-object'), [
      'memory-backend-file,id=guest-ram,size=256M,mem-path=/dev/shm/jitvm-x/ram,share=on',
    ]);
    assert.ok(!args.includes('-incoming'), 'a fresh VM boots its kernel');
  });

  it("maps a snapshot's RAM privately for a clone, starts paused and waits for its device state", () => {
    const args = buildQemuArgs({ ...base, ram: { path: '/s/my,snap/memory', shared: false }, incoming: true });
    assert.deepEqual(valuesOf(args, '-object'), [
      'memory-backend-file,id=guest-ram,size=256M,mem-path=/s/my,,snap/memory,share=off',
    ]);
    assert.deepEqual(valuesOf(args, '-incoming'), ['defer']);
    assert.ok(args.includes('-S'));
  });

  it("gives a clone a qcow2 overlay in place of each writable drive's raw image", () => {
    const withDrives = parseVmConfig({
      ...config,
      drives: [
        { id: 'data', path: '/d/data.img', readOnly: false },
        { id: 'base', path: '/d/base.img' },
      ],
    });
    const overlays = new Map([['data', '/r/drive-data.qcow2']]);
    const args = buildQemuArgs({ ...base, config: withDrives, overlays });
    assert.deepEqual(valuesOf(args, '-drive'), [
      'id=drive-data,file=/r/drive-data.qcow2,format=qcow2,if=none,readonly=off',
      'id=drive-base,file=/d/base.img,format=raw,if=none,readonly=on',
    ]);
  });

  it('keeps RAM files in /dev/shm on Linux only, and only when /dev/shm can hold the guest', () => {
    const gib = (): number => 1 << 30;
    assert.equal(ramDirFor('jv-1', 256, 'linux', gib), '/dev/shm/jitvm-jv-1');
    assert.equal(ramFileIn('/dev/shm/jitvm-jv-1'), '/dev/shm/jitvm-jv-1/ram');
    assert.equal(ramDirFor('jv-1', 2048, 'linux', gib), undefined, "a container's small /dev/shm");
    assert.equal(ramDirFor('jv-1', 256, 'darwin', gib), undefined);
    assert.equal(ramDirFor('jv-1', 256, 'win32', gib), undefined);
  });
});

describe('which QEMU snapshots can be restored', () => {
  const snapshot = (overrides: Partial<VmSnapshot> = {}): VmSnapshot => ({
    dir: '/s',
    backend: 'qemu',
    vmmVersion: 'QEMU 7.2',
    config,
    files: { state: 'state', memory: 'memory' },
    ...overrides,
  });
  const unsupported = (error: unknown) => error instanceof JitvmError && error.code === 'unsupported';

  it('takes one written by the same QEMU', () => {
    assert.doesNotThrow(() => checkRestorable(snapshot(), 'QEMU 7.2'));
  });

  it('refuses another backend, another QEMU version, a writable drive the snapshot holds no copy of, and a TAP NIC', () => {
    assert.throws(() => checkRestorable(snapshot({ backend: 'firecracker' }), 'QEMU 7.2'), /not qemu/);
    assert.throws(() => checkRestorable(snapshot(), 'QEMU 8.2'), unsupported);
    const drives = parseVmConfig({ ...config, drives: [{ id: 'data', path: '/d', readOnly: false }] });
    assert.throws(
      () => checkRestorable(snapshot({ config: drives }), 'QEMU 7.2'),
      /lacks its copy of writable drive data/,
    );
    const tap = parseVmConfig({ ...config, network: { mode: 'tap', tap: 'jv0' } });
    assert.throws(() => checkRestorable(snapshot({ config: tap }), 'QEMU 7.2'), /TAP NIC/);
  });
});
