import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildQemuArgs, runtimePaths } from '../../src/backends/qemu/args.js';
import { machineProfile } from '../../src/backends/qemu/machine.js';
import { type Accelerator, type Arch, type VmConfig, parseVmConfig } from '../../src/core/config.js';

const SANDBOX = ['-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny'];
const COMMON = ['-smp', '2', '-m', '512M', '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot'];

/** A config with one root drive, its host paths in the syntax of the host under test. */
function configFor(arch: Arch, files: { kernel: string; initrd: string; drive: string }): VmConfig {
  const parsed = parseVmConfig({ kernel: '/k', initrd: '/i', cpus: 2, memoryMiB: 512, arch });
  return { ...parsed, kernel: files.kernel, initrd: files.initrd, drives: [rootDrive(files.drive)] };
}

function rootDrive(path: string): VmConfig['drives'][number] {
  return { id: 'rootfs', path, readOnly: true, root: true, rateLimiter: undefined };
}

const posixFiles = { kernel: '/k/vmlinuz', initrd: '/k/initrd', drive: '/d/root.ext4' };

/** The argv for a VM `jv-1` whose runtime dir is `dir` on `platform`. */
function argvFor(
  arch: Arch,
  accelerator: Accelerator,
  platform: NodeJS.Platform,
  dir: string,
  options: { seccomp: boolean; files?: typeof posixFiles },
): string[] {
  return buildQemuArgs({
    config: configFor(arch, options.files ?? posixFiles),
    accelerator,
    paths: runtimePaths(dir, { vmId: 'jv-1', platform }),
    seccomp: options.seccomp,
    name: 'jitvm-jv-1',
  });
}

/** The console, Unix-socket QMP and agent port of a POSIX runtime dir, with `serialDevice` for the port. */
function unixChannels(dir: string, serialDevice: string): string[] {
  // prettier-ignore
  return [
    '-chardev', `file,id=console,path=${dir}/console.log`, '-serial', 'chardev:console',
    '-qmp', `unix:${dir}/qmp.sock,server=on,wait=off`,
    '-device', serialDevice,
    '-chardev', `socket,id=agent,path=${dir}/agent.sock,server=on,wait=off`,
    '-device', 'virtserialport,chardev=agent,name=jitvm.agent',
  ];
}

function rootDriveArgs(path: string, blkDevice: string): string[] {
  return [
    '-drive',
    `id=drive-rootfs,file=${path},format=raw,if=none,readonly=on`,
    '-device',
    `${blkDevice},drive=drive-rootfs,serial=rootfs`,
  ];
}

interface PosixCase {
  readonly name: string;
  readonly arch: Arch;
  readonly accelerator: Accelerator;
  readonly platform: NodeJS.Platform;
  readonly dir: string;
  /** `-M`, `-accel` and `-cpu` as expected. */
  readonly machine: string[];
  readonly append: string;
  /** The suffix of the virtio device types: `device` (virtio-mmio) or `pci`. */
  readonly bus: 'device' | 'pci';
  readonly seccomp: boolean;
}

const linuxDir = '/run/user/1000/jitvm/vms/jv-1';
const macDir = '/var/folders/xy/abc/T/jitvm-501/vms/jv-1';

const POSIX_CASES: PosixCase[] = [
  {
    name: 'Linux x86_64 + KVM: microvm, host CPU, virtio-mmio, Unix sockets',
    arch: 'x86_64',
    accelerator: 'kvm',
    platform: 'linux',
    dir: linuxDir,
    bus: 'device',
    seccomp: true,
    machine: ['-M', 'microvm', '-accel', 'kvm', '-cpu', 'host'],
    append: 'console=ttyS0 reboot=t panic=-1 quiet jitvm.channel=serial pci=off',
  },
  {
    name: 'Linux x86_64 + TCG: microvm, default CPU, fixed TSC rate',
    arch: 'x86_64',
    accelerator: 'tcg',
    platform: 'linux',
    dir: linuxDir,
    bus: 'device',
    seccomp: true,
    machine: ['-M', 'microvm', '-accel', 'tcg'],
    append: 'console=ttyS0 reboot=t panic=-1 quiet jitvm.channel=serial pci=off tsc_early_khz=2000000',
  },
  {
    name: 'aarch64 + TCG: virt with cortex-a57 and the PL011 console',
    arch: 'aarch64',
    accelerator: 'tcg',
    platform: 'linux',
    dir: linuxDir,
    bus: 'device',
    seccomp: true,
    machine: ['-M', 'virt', '-accel', 'tcg', '-cpu', 'cortex-a57'],
    append: 'console=ttyAMA0 reboot=t panic=-1 quiet jitvm.channel=serial',
  },
  {
    name: 'macOS arm64 + HVF: virt with the host CPU and no highmem=off',
    arch: 'aarch64',
    accelerator: 'hvf',
    platform: 'darwin',
    dir: macDir,
    bus: 'device',
    seccomp: false,
    machine: ['-M', 'virt', '-accel', 'hvf', '-cpu', 'host'],
    append: 'console=ttyAMA0 reboot=t panic=-1 quiet jitvm.channel=serial',
  },
  {
    name: 'macOS x86_64 + HVF: q35 with the host CPU and virtio over PCI',
    arch: 'x86_64',
    accelerator: 'hvf',
    platform: 'darwin',
    dir: macDir,
    bus: 'pci',
    seccomp: false,
    machine: ['-M', 'q35', '-accel', 'hvf', '-cpu', 'host'],
    append: 'console=ttyS0 reboot=t panic=-1 quiet jitvm.channel=serial',
  },
];

describe('QEMU machine profiles (golden command lines)', () => {
  for (const c of POSIX_CASES) {
    it(c.name, () => {
      assert.deepEqual(argvFor(c.arch, c.accelerator, c.platform, c.dir, { seccomp: c.seccomp }), [
        ...['-name', 'jitvm-jv-1', ...c.machine, ...COMMON],
        ...['-kernel', '/k/vmlinuz', '-initrd', '/k/initrd', '-append', c.append],
        ...unixChannels(c.dir, `virtio-serial-${c.bus}`),
        ...rootDriveArgs('/d/root.ext4', `virtio-blk-${c.bus}`),
        ...(c.seccomp ? SANDBOX : []),
      ]);
    });
  }

  it('Windows x86_64 + WHPX: pc, default CPU, virtio over PCI, QMP and the agent on named pipes', () => {
    const dir = 'C:\\Users\\me\\AppData\\Local\\jitvm\\vms\\jv-1';
    const files = { kernel: 'C:\\jitvm\\vmlinuz', initrd: 'C:\\jitvm\\initrd', drive: 'D:\\images\\root.ext4' };
    assert.deepEqual(argvFor('x86_64', 'whpx', 'win32', dir, { seccomp: false, files }), [
      ...['-name', 'jitvm-jv-1', '-M', 'pc', '-accel', 'whpx', ...COMMON],
      ...['-kernel', 'C:\\jitvm\\vmlinuz', '-initrd', 'C:\\jitvm\\initrd'],
      ...['-append', 'console=ttyS0 reboot=t panic=-1 quiet jitvm.channel=serial'],
      ...['-chardev', `file,id=console,path=${dir}\\console.log`, '-serial', 'chardev:console'],
      ...['-chardev', 'pipe,id=qmp,path=jitvm-jv-1-qmp', '-mon', 'chardev=qmp,mode=control'],
      ...['-device', 'virtio-serial-pci'],
      ...['-chardev', 'pipe,id=agent,path=jitvm-jv-1-agent'],
      ...['-device', 'virtserialport,chardev=agent,name=jitvm.agent'],
      ...rootDriveArgs('D:\\images\\root.ext4', 'virtio-blk-pci'),
    ]);
  });

  it('puts the NIC on the machine bus: virtio-net-pci on pc/q35, virtio-net-device on microvm', () => {
    const network = { mode: 'tap', tap: 'jv0', mac: '06:00:ac:10:00:02' } as const;
    const nic = (accelerator: Accelerator): string[] => {
      const config = { ...parseVmConfig({ kernel: '/k', initrd: '/i', arch: 'x86_64' }), network };
      const paths = runtimePaths('/r/jv-1', { platform: 'linux' });
      const args = buildQemuArgs({ config, accelerator, paths, seccomp: false, name: 'x' });
      return args.slice(args.indexOf('-netdev'));
    };
    const tap = ['-netdev', 'tap,id=net0,ifname=jv0,script=no,downscript=no'];
    assert.deepEqual(nic('whpx'), [...tap, '-device', 'virtio-net-pci,netdev=net0,mac=06:00:ac:10:00:02']);
    assert.deepEqual(nic('kvm'), [...tap, '-device', 'virtio-net-device,netdev=net0,mac=06:00:ac:10:00:02']);
  });
});

describe('power button rule', () => {
  it('is true where ACPI delivers system_powerdown (microvm, pc, q35) and false on virt', () => {
    const cases: [Arch, Accelerator, boolean][] = [
      ['x86_64', 'kvm', true],
      ['x86_64', 'tcg', true],
      ['x86_64', 'whpx', true],
      ['x86_64', 'hvf', true],
      ['aarch64', 'kvm', false],
      ['aarch64', 'hvf', false],
      ['aarch64', 'whpx', false],
      ['aarch64', 'tcg', false],
    ];
    for (const [arch, accelerator, powerButton] of cases) {
      assert.equal(machineProfile(arch, accelerator).powerButton, powerButton, `${arch} on ${accelerator}`);
    }
  });
});
