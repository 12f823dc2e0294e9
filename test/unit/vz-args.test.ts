/**
 * The vfkit command line jitvm builds, against vfkit's own documentation (test/fixtures/vfkit-usage.md, vendored from
 * crc-org/vfkit) and against vfkit's parser (test/helpers/vfkit/cmdline.ts, modelled on its source). Plus the pure
 * helpers: version parsing, the state mapping, the arm64 kernel check.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  VFKIT_STATES,
  buildVfkitArgs,
  isUncompressedArm64Image,
  kernelCommandLine,
  parseVfkitVersion,
  vfkitRuntimePaths,
  vmStateKind,
} from '../../src/backends/vz/args.js';
import { parseVmConfig, type VmConfig } from '../../src/core/config.js';
import { InvalidArgumentError, JitvmError } from '../../src/core/errors.js';
import {
  type BlockDevice,
  type NetDevice,
  type VsockDevice,
  NotEmulatedError,
  parseCommandLine,
  parseDevice,
} from '../helpers/vfkit/cmdline.js';

const USAGE_PATH = fileURLToPath(new URL('../../../test/fixtures/vfkit-usage.md', import.meta.url));
const USAGE = readFileSync(USAGE_PATH, 'utf8');

/**
 * Options vfkit's code accepts for a device whose section of usage.md does not list them, each with its source.
 * `readonly` on virtio-blk: crc-org/vfkit commit 6c92cb58 ("Add readonly option for storage devices", in 0.6.0) makes
 * virtio-blk, nvme and usb-mass-storage take it, and documents it for usb-mass-storage only ("mostly useful to cdrom
 * images"); pkg/config/virtio.go DiskStorageConfig.FromOptions parses it for all three.
 */
const UNDOCUMENTED_BUT_IN_SOURCE: Readonly<Record<string, readonly string[]>> = { 'virtio-blk': ['readonly'] };

/** What usage.md documents: the `--flags`, and per `--device` / `--bootloader` type its argument names. */
function documented(): { flags: Set<string>; options: Map<string, Set<string>> } {
  const flags = new Set([...USAGE.matchAll(/^- `(--[a-z-]+)`/gm)].map((m) => m[1]!));
  const options = new Map<string, Set<string>>();
  // Each `### Section` that introduces `--device <type>` or `--bootloader <type>` lists its arguments under
  // `#### Arguments` as "- `name`: …".
  for (const section of USAGE.split(/^### /m).slice(1)) {
    const intro = /`-{1,2}(device|bootloader) ([a-z-]+)`/.exec(section);
    if (!intro) continue;
    const args = /#### Arguments\n([\s\S]*?)(\n#|$)/.exec(section)?.[1] ?? '';
    const names = [...args.matchAll(/^- `([A-Za-z-]+)`/gm)].map((m) => m[1]!);
    options.set(`${intro[1]} ${intro[2]}`, new Set(names));
    if (intro[1] === 'device') flags.add('--device');
    if (intro[1] === 'bootloader') flags.add('--bootloader');
  }
  return { flags, options };
}

function config(overrides: Partial<Parameters<typeof parseVmConfig>[0]> = {}): VmConfig {
  return parseVmConfig({ kernel: '/images/Image', initrd: '/images/initrd.img', arch: 'aarch64', ...overrides });
}

const paths = vfkitRuntimePaths('/tmp/jitvm-501/vms/jv-0123456789');

describe('vfkit argv contract', () => {
  it('the vendored usage.md names its source commit', () => {
    assert.match(USAGE.split('\n')[0]!, /crc-org\/vfkit@b2bc27e50b6103a8f6664ad599fbd3fc0970797f:doc\/usage\.md/);
  });

  it('uses only documented flags, device types and options (and says why for the one exception)', () => {
    const docs = documented();
    const args = buildVfkitArgs(
      config({
        cpus: 2,
        memoryMiB: 512,
        kernelArgs: ['jitvm.test=1'],
        drives: [
          { id: 'data', path: '/images/data.img', readOnly: false },
          { id: 'root', path: '/images/root.img', root: true },
        ],
        shares: [{ tag: 'work', path: '/Users/me/work', readOnly: false }],
      }),
      paths,
    );
    assert.ok(args.includes('virtio-fs,sharedDir=/Users/me/work,mountTag=work'), 'the share is among the checked');
    for (let i = 0; i < args.length; i += 2) {
      const [flag, value] = [args[i]!, args[i + 1]!];
      assert.ok(docs.flags.has(flag), `${flag} is documented in usage.md`);
      if (flag !== '--device' && flag !== '--bootloader') continue;
      // --bootloader is split on commas outside quotes; --device on every comma.
      const [type, ...rest] = flag === '--bootloader' ? value.split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/) : value.split(',');
      const known = docs.options.get(`${flag.slice(2)} ${type}`);
      assert.ok(known, `${flag} ${type} is documented`);
      for (const option of rest.map((o) => o.split('=')[0]!)) {
        const inSource = UNDOCUMENTED_BUT_IN_SOURCE[type!]?.includes(option) ?? false;
        assert.ok(known.has(option) || inSource, `${flag} ${type} option "${option}" is documented`);
      }
    }
    // The exception is still needed, and readonly is documented (for usb-mass-storage) with the same meaning.
    assert.equal(docs.options.get('device virtio-blk')?.has('readonly'), false);
    assert.equal(docs.options.get('device usb-mass-storage')?.has('readonly'), true);
  });

  it('the vsock flag is the documented host-connects direction, and the cmdline is quoted as documented', () => {
    assert.match(USAGE, /- `connect`: indicates that the host will connect to the guest over vsock\./);
    assert.match(USAGE, /The kernel command line must be enclosed in `"`/);
    const args = buildVfkitArgs(config(), paths);
    assert.ok(args.includes(`virtio-vsock,port=1024,socketURL=${paths.vsockSocket},connect`));
    assert.match(args[args.indexOf('--bootloader') + 1]!, /,cmdline="console=hvc0 [^"]*"$/);
  });

  it('builds exactly this command line, root drive first, read-only drives marked', () => {
    const args = buildVfkitArgs(
      config({
        cpus: 4,
        memoryMiB: 1024,
        kernelArgs: ['loglevel=7'],
        drives: [
          { id: 'scratch', path: '/disks/scratch.img', readOnly: false },
          { id: 'rootfs', path: '/disks/root.img', root: true },
        ],
      }),
      paths,
    );
    assert.deepEqual(args, [
      '--cpus',
      '4',
      '--memory',
      '1024',
      '--bootloader',
      'linux,kernel=/images/Image,initrd=/images/initrd.img,cmdline="console=hvc0 panic=1 quiet jitvm.channel=vsock loglevel=7"',
      '--device',
      'virtio-blk,path=/disks/root.img,readonly',
      '--device',
      'virtio-blk,path=/disks/scratch.img',
      '--device',
      `virtio-vsock,port=1024,socketURL=${paths.vsockSocket},connect`,
      '--device',
      `virtio-serial,logFilePath=${paths.consoleLog}`,
      '--restful-uri',
      `unix://${paths.restSocket}`,
    ]);
  });

  it("vfkit's own parser reads it back as meant: cmdline unquoted, readonly, vsock in connect mode, REST socket", () => {
    const vm = config({
      cpus: 3,
      memoryMiB: 384,
      kernelArgs: ['a=b,c', 'jitvm.x=1'],
      drives: [{ id: 'ro', path: '/disks/ro.img' }],
    });
    const parsed = parseCommandLine(buildVfkitArgs(vm, paths));
    assert.equal(parsed.kind, 'run');
    if (parsed.kind !== 'run') return;
    assert.equal(parsed.config.cpus, 3);
    assert.equal(parsed.config.memoryMiB, 384);
    assert.deepEqual(parsed.config.bootloader, {
      kernel: '/images/Image',
      initrd: '/images/initrd.img',
      cmdline: kernelCommandLine(vm),
    });
    assert.match(parsed.config.bootloader.cmdline, /^console=hvc0 .*a=b,c jitvm\.x=1$/);
    const [disk, vsock, serial] = parsed.config.devices as [BlockDevice, VsockDevice, { logFile: string }];
    assert.deepEqual(disk, { kind: 'virtio-blk', path: '/disks/ro.img', readOnly: true, deviceId: undefined });
    assert.deepEqual(vsock, { kind: 'virtio-vsock', port: 1024, socketURL: paths.vsockSocket, listen: false });
    assert.equal(serial.logFile, paths.consoleLog);
    assert.equal(parsed.config.restfulUri, `unix://${paths.restSocket}`);
  });

  it('the parser model rejects what vfkit rejects, with its texts', () => {
    assert.throws(() => parseCommandLine(['--bogus']), /^Error: unknown flag: --bogus$/);
    assert.throws(() => parseCommandLine(['--cpus', 'two']), /invalid argument "two" for "-c, --cpus" flag/);
    assert.throws(
      () => parseDevice('virtio-vsock,port=1,sideways'),
      /unknown option for virtio-vsock devices: sideways/,
    );
    assert.throws(() => parseDevice('virtio-blk,path=/x,readonly=yes'), /unexpected value for virtio-blk 'readonly'/);
    assert.throws(() => parseDevice('virtio-net,mac=zz'), /address zz: invalid MAC address/);
    assert.throws(() => parseDevice('virtio-net'), /one of 'nat' or 'fd' or 'unixSocketPath' must be set/);
    assert.throws(() => parseDevice('virtio-serial'), /one of 'logFilePath', 'stdio' or 'pty' must be set/);
    assert.throws(() => parseDevice('virtio-floppy'), /unknown device type: virtio-floppy/);
    assert.throws(() => parseCommandLine(['--bootloader', 'linux,cmdline="open']), /mismatched "/);
    assert.throws(() => parseCommandLine(['--bootloader', 'linux,kernal=/k']), /unknown option for Linux bootloaders/);
    assert.throws(
      () => parseCommandLine(['--kernel', '/k', '--bootloader', 'linux']),
      /if any flags in the group \[kernel bootloader\] are set none of the others can be/,
    );
    assert.deepEqual(parseDevice('virtio-vsock,port=5,socketURL=/s'), {
      kind: 'virtio-vsock',
      port: 5,
      socketURL: '/s',
      listen: true,
    });
  });

  it('refuses what vfkit cannot carry: commas or quotes in paths, long or odd socket paths, throttling, a TAP NIC', () => {
    assert.throws(
      () => buildVfkitArgs(config({ drives: [{ id: 'd', path: '/a,b/disk.img' }] }), paths),
      (error: unknown) => error instanceof InvalidArgumentError && /comma or a double quote/.test(error.message),
    );
    assert.throws(() => buildVfkitArgs(config({ kernel: '/k"ernel' }), paths), InvalidArgumentError);
    const long = vfkitRuntimePaths(`/tmp/${'x'.repeat(100)}`);
    assert.throws(() => buildVfkitArgs(config(), long), /longer than macOS allows \(103 bytes\)/);
    assert.throws(() => buildVfkitArgs(config(), vfkitRuntimePaths('/tmp/with space')), /would URL-escape/);
    assert.throws(
      () =>
        buildVfkitArgs(
          config({ drives: [{ id: 'slow', path: '/d.img', rateLimiter: { ops: { size: 10, refillTimeMs: 1000 } } }] }),
          paths,
        ),
      (error: unknown) =>
        error instanceof JitvmError && error.code === 'unsupported' && /rate-limit/.test(error.message),
    );
    assert.throws(
      () => buildVfkitArgs(config({ network: { mode: 'tap', tap: 'jv0' } }), paths),
      (error: unknown) =>
        error instanceof JitvmError && error.code === 'unsupported' && /macOS has no TAP/.test(error.message),
    );
  });
});

describe('vfkit network and shares', () => {
  const deviceValues = (args: string[]) => args.flatMap((arg, i) => (arg === '--device' ? [args[i + 1]!] : []));

  it('nat mode: exactly one virtio-net device on NAT, with its MAC when given, and DHCP in the guest', () => {
    const nat = config({ network: { mode: 'nat' } });
    assert.match(kernelCommandLine(nat), / jitvm\.net=dhcp$/);
    assert.deepEqual(buildVfkitArgs(nat, paths).slice(4), [
      '--bootloader',
      `linux,kernel=/images/Image,initrd=/images/initrd.img,cmdline="${kernelCommandLine(nat)}"`,
      '--device',
      'virtio-net,nat',
      '--device',
      `virtio-vsock,port=1024,socketURL=${paths.vsockSocket},connect`,
      '--device',
      `virtio-serial,logFilePath=${paths.consoleLog}`,
      '--restful-uri',
      `unix://${paths.restSocket}`,
    ]);
    const withMac = buildVfkitArgs(config({ network: { mode: 'nat', mac: '06:00:AC:10:00:02' } }), paths);
    assert.deepEqual(withMac.slice(6, 8), ['--device', 'virtio-net,nat,mac=06:00:AC:10:00:02']);
  });

  it("nat mode: vfkit's parser reads back a NAT NIC with its MAC", () => {
    const parsed = parseCommandLine(
      buildVfkitArgs(config({ network: { mode: 'nat', mac: '06:00:AC:10:00:02' } }), paths),
    );
    assert.equal(parsed.kind, 'run');
    if (parsed.kind !== 'run') return;
    const nics = parsed.config.devices.filter((device): device is NetDevice => device.kind === 'virtio-net');
    assert.deepEqual(nics, [{ kind: 'virtio-net', nat: true, mac: '06:00:ac:10:00:02' }]);
  });

  it('none and allowlist modes: no NIC and no jitvm.net', () => {
    for (const network of [{ mode: 'none' as const }, { mode: 'allowlist' as const, allow: ['allowed.test'] }]) {
      const vm = config({ network });
      assert.ok(!deviceValues(buildVfkitArgs(vm, paths)).some((value) => value.startsWith('virtio-net')));
      assert.doesNotMatch(kernelCommandLine(vm), /jitvm\.net/);
    }
  });

  it('shares a writable directory as virtio-fs with its tag, which vfkit parses back', () => {
    const vm = config({
      shares: [
        { tag: 'jitvm_share0', path: '/Users/me/src', readOnly: false },
        { tag: 'out', path: '/Users/me/out', readOnly: false },
      ],
    });
    const shares = deviceValues(buildVfkitArgs(vm, paths)).filter((value) => value.startsWith('virtio-fs'));
    assert.deepEqual(shares, [
      'virtio-fs,sharedDir=/Users/me/src,mountTag=jitvm_share0',
      'virtio-fs,sharedDir=/Users/me/out,mountTag=out',
    ]);
    assert.deepEqual(parseDevice(shares[0]!), {
      kind: 'virtio-fs',
      sharedDir: '/Users/me/src',
      mountTag: 'jitvm_share0',
    });
  });

  it('refuses a read-only share, which vfkit cannot make, and a share path vfkit cannot carry', () => {
    assert.throws(
      () => buildVfkitArgs(config({ shares: [{ tag: 'src', path: '/Users/me/src' }] }), paths),
      (error: unknown) =>
        error instanceof JitvmError &&
        error.code === 'unsupported' &&
        /cannot share \/Users\/me\/src read-only: .*readOnly: false/.test(error.message),
    );
    assert.throws(
      () => buildVfkitArgs(config({ shares: [{ tag: 'src', path: '/a,b', readOnly: false }] }), paths),
      (error: unknown) =>
        error instanceof InvalidArgumentError && /share src's path \/a,b contains a comma/.test(error.message),
    );
  });

  it('the parser model checks virtio-fs options as vfkit does, and the fake refuses to run a share', () => {
    assert.throws(
      () => parseDevice('virtio-fs,sharedDir=/d,readonly'),
      /unknown option for virtio-fs devices: readonly/,
    );
    assert.deepEqual(parseDevice('virtio-fs,sharedDir=/d'), {
      kind: 'virtio-fs',
      sharedDir: '/d',
      mountTag: undefined,
    });
    const args = buildVfkitArgs(config({ shares: [{ tag: 't', path: '/d', readOnly: false }] }), paths);
    assert.throws(() => parseCommandLine(args), NotEmulatedError);
  });
});

describe('vfkit helpers', () => {
  it('parses vfkit --version output', () => {
    assert.deepEqual(parseVfkitVersion('vfkit version: v0.6.1\n'), { text: 'v0.6.1', semver: [0, 6, 1] });
    assert.deepEqual(parseVfkitVersion('vfkit version: 0.6.0'), { text: '0.6.0', semver: [0, 6, 0] });
    assert.deepEqual(parseVfkitVersion('vfkit version: v0.6.1-12-gabcdef0'), {
      text: 'v0.6.1-12-gabcdef0',
      semver: [0, 6, 1],
    });
    assert.deepEqual(parseVfkitVersion('vfkit version: unknown'), { text: 'unknown', semver: undefined });
    assert.deepEqual(parseVfkitVersion('vfkit version: '), { text: '', semver: undefined });
    assert.equal(parseVfkitVersion('Firecracker v1.12.0'), undefined);
    assert.equal(parseVfkitVersion(undefined), undefined);
  });

  it("maps every vfkit state to jitvm's", () => {
    const mapped = Object.fromEntries(VFKIT_STATES.map((state) => [state, vmStateKind(state, true)]));
    assert.deepEqual(mapped, {
      VirtualMachineStateStopped: 'exited',
      VirtualMachineStateRunning: 'running',
      VirtualMachineStatePaused: 'paused',
      VirtualMachineStateError: 'exited',
      VirtualMachineStateStarting: 'starting',
      VirtualMachineStatePausing: 'running',
      VirtualMachineStateResuming: 'paused',
      VirtualMachineStateStopping: 'stopping',
      VirtualMachineStateSaving: 'paused',
      VirtualMachineStateRestoring: 'starting',
    });
    assert.equal(vmStateKind('VirtualMachineStateStopped', false), 'starting', 'Stopped before start() is a start');
  });

  it('tells an uncompressed arm64 Image from a compressed kernel as vfkit does (ARMd at 0x38)', () => {
    const image = Buffer.alloc(2048);
    image.write('ARMd', 0x38, 'latin1');
    assert.equal(isUncompressedArm64Image(image), true);
    assert.equal(isUncompressedArm64Image(Buffer.from([0x1f, 0x8b, 0x08, 0x00])), false);
    assert.equal(isUncompressedArm64Image(Buffer.alloc(2048)), false);
  });
});
