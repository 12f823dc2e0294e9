import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildQemuArgs, kernelCommandLine, runtimePaths } from '../../src/backends/qemu/args.js';
import { parseVmConfig } from '../../src/core/config.js';

const paths = runtimePaths('/r', { platform: 'linux' });
const config = parseVmConfig({ kernel: '/k/vmlinuz', initrd: '/k/initrd', cpus: 2, memoryMiB: 512, arch: 'x86_64' });

function valueOf(args: string[], flag: string): string[] {
  return args.flatMap((arg, i) => (arg === flag ? [args[i + 1] as string] : []));
}

describe('QEMU command line', () => {
  it('boots x86_64 microvm under TCG with the agent port, console file, QMP and seccomp', () => {
    const args = buildQemuArgs({ config, accelerator: 'tcg', paths, seccomp: true, name: 'jitvm-x' });
    assert.deepEqual(valueOf(args, '-M'), ['microvm']);
    assert.deepEqual(valueOf(args, '-accel'), ['tcg']);
    assert.ok(!args.includes('-cpu'), 'TCG keeps the default CPU model');
    assert.deepEqual(valueOf(args, '-smp'), ['2']);
    assert.deepEqual(valueOf(args, '-m'), ['512M']);
    assert.ok(args.includes('-no-reboot') && args.includes('-nodefaults'));
    assert.deepEqual(valueOf(args, '-chardev'), [
      'file,id=console,path=/r/console.log',
      'socket,id=agent,path=/r/agent.sock,server=on,wait=off',
    ]);
    assert.deepEqual(valueOf(args, '-device'), [
      'virtio-serial-device',
      'virtserialport,chardev=agent,name=jitvm.agent',
    ]);
    assert.deepEqual(valueOf(args, '-qmp'), ['unix:/r/qmp.sock,server=on,wait=off']);
    assert.deepEqual(valueOf(args, '-sandbox'), [
      'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
    ]);
    assert.match(
      valueOf(args, '-append')[0]!,
      /^console=ttyS0 reboot=t panic=-1 quiet jitvm.channel=serial pci=off tsc_early_khz=\d+$/,
    );
  });

  it('uses the host CPU and no TSC workaround under KVM, and omits -sandbox without seccomp', () => {
    const args = buildQemuArgs({ config, accelerator: 'kvm', paths, seccomp: false, name: 'jitvm-x' });
    assert.deepEqual(valueOf(args, '-cpu'), ['host']);
    assert.ok(!args.includes('-sandbox'));
    assert.doesNotMatch(kernelCommandLine(config, 'kvm'), /tsc_early_khz/);
  });

  it('boots aarch64 on virt with cortex-a57 under TCG and the PL011 console', () => {
    const arm = parseVmConfig({ kernel: '/k', initrd: '/i', arch: 'aarch64', kernelArgs: ['debug'] });
    const args = buildQemuArgs({ config: arm, accelerator: 'tcg', paths, seccomp: true, name: 'jitvm-x' });
    assert.deepEqual(valueOf(args, '-M'), ['virt']);
    assert.deepEqual(valueOf(args, '-cpu'), ['cortex-a57']);
    assert.equal(kernelCommandLine(arm, 'tcg'), 'console=ttyAMA0 reboot=t panic=-1 quiet jitvm.channel=serial debug');
  });

  it('attaches drives (root first, read-only by default, commas escaped, rate limits as throttling) and a TAP NIC', () => {
    const withDevices = parseVmConfig({
      kernel: '/k/vmlinuz',
      initrd: '/k/initrd',
      arch: 'x86_64',
      drives: [
        {
          id: 'data',
          path: '/d/a,b.img',
          readOnly: false,
          rateLimiter: { bandwidth: { size: 1000, refillTimeMs: 500 } },
        },
        { id: 'rootfs', path: '/d/root.ext4', root: true, rateLimiter: { ops: { size: 100, refillTimeMs: 1000 } } },
      ],
      network: { mode: 'tap', tap: 'jv0', mac: '06:00:ac:10:00:02' },
    });
    const args = buildQemuArgs({ config: withDevices, accelerator: 'tcg', paths, seccomp: false, name: 'x' });
    assert.deepEqual(valueOf(args, '-drive'), [
      'id=drive-rootfs,file=/d/root.ext4,format=raw,if=none,readonly=on,throttling.iops-total=100',
      'id=drive-data,file=/d/a,,b.img,format=raw,if=none,readonly=off,throttling.bps-total=2000',
    ]);
    assert.deepEqual(valueOf(args, '-device').slice(2), [
      'virtio-blk-device,drive=drive-rootfs,serial=rootfs',
      'virtio-blk-device,drive=drive-data,serial=data',
      'virtio-net-device,netdev=net0,mac=06:00:ac:10:00:02',
    ]);
    assert.deepEqual(valueOf(args, '-netdev'), ['tap,id=net0,ifname=jv0,script=no,downscript=no']);
  });
});
