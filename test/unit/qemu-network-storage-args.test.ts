/** QEMU's command line for nat networking, disk serials and virtio-fs shares, and the virtiofsd command per share. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, it } from 'node:test';
import { buildQemuArgs, kernelCommandLine, runtimePaths } from '../../src/backends/qemu/args.js';
import { virtiofsdCommand } from '../../src/backends/qemu/virtiofs.js';
import { type Accelerator, type VmConfigInput, parseVmConfig } from '../../src/core/config.js';
import { JitvmError } from '../../src/core/errors.js';
import { tempDir } from '../helpers/temp.js';

const paths = runtimePaths('/r', { platform: 'linux' });

function config(overrides: Partial<VmConfigInput> = {}) {
  return parseVmConfig({ kernel: '/k/vmlinuz', initrd: '/k/initrd', arch: 'x86_64', ...overrides });
}

function args(overrides: Partial<VmConfigInput> = {}, accelerator: Accelerator = 'tcg', runtime = paths): string[] {
  return buildQemuArgs({ config: config(overrides), accelerator, paths: runtime, seccomp: false, name: 'x' });
}

function valueOf(argv: string[], flag: string): string[] {
  return argv.flatMap((arg, i) => (arg === flag ? [argv[i + 1] as string] : []));
}

/** The `-device` values after the agent's virtio-serial pair, which every VM has. */
const extraDevices = (argv: string[]) => valueOf(argv, '-device').slice(2);

describe('QEMU nat networking', () => {
  it("puts a virtio-net NIC on user-mode NAT with QEMU's layout spelled out, IPv4 only", () => {
    const argv = args({ network: { mode: 'nat' } });
    assert.deepEqual(valueOf(argv, '-netdev'), ['user,id=net0,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,ipv6=off']);
    assert.deepEqual(extraDevices(argv), ['virtio-net-device,netdev=net0']);
  });

  it('gives the NIC its MAC, and uses virtio-net-pci on a PCI machine', () => {
    const argv = args({ network: { mode: 'nat', mac: '06:00:ac:10:00:09' } }, 'whpx');
    assert.deepEqual(extraDevices(argv), ['virtio-net-pci,netdev=net0,mac=06:00:ac:10:00:09']);
  });

  it('tells the agent the static address, gateway and DNS, before the caller kernel arguments', () => {
    const line = kernelCommandLine(config({ network: { mode: 'nat' }, kernelArgs: ['jitvm.x=1'] }), 'tcg');
    assert.match(line, / jitvm\.net=10\.0\.2\.15\/24,10\.0\.2\.2,10\.0\.2\.3 jitvm\.x=1$/);
  });

  it('has no NIC and no jitvm.net in none and allowlist modes', () => {
    for (const network of [{ mode: 'none' as const }, { mode: 'allowlist' as const, allow: ['allowed.test'] }]) {
      const argv = args({ network });
      assert.deepEqual(valueOf(argv, '-netdev'), [], network.mode);
      assert.deepEqual(extraDevices(argv), [], network.mode);
      assert.doesNotMatch(kernelCommandLine(config({ network }), 'tcg'), /jitvm\.net/, network.mode);
    }
  });
});

describe('QEMU drives', () => {
  it('gives each disk its id as serial when the id fits the 20 bytes virtio-blk holds', () => {
    const fits = 'a'.repeat(20);
    const long = 'b'.repeat(21);
    const argv = args({
      drives: [
        { id: fits, path: '/d/1.img' },
        { id: long, path: '/d/2.img' },
      ],
    });
    assert.deepEqual(extraDevices(argv), [
      `virtio-blk-device,drive=drive-${fits},serial=${fits}`,
      `virtio-blk-device,drive=drive-${long}`,
    ]);
  });

  it('refuses, as an internal error, a scratch drive whose disk was never made', () => {
    assert.throws(
      () => args({ drives: [{ id: 'scratch', sizeMiB: 16, readOnly: false }] }),
      (error: unknown) =>
        error instanceof JitvmError && error.code === 'internal' && /drive scratch has no file/.test(error.message),
    );
  });
});

describe('QEMU virtio-fs shares', () => {
  const shares = [
    { tag: 'src', path: '/host/src' },
    { tag: 'out', path: '/host/out', readOnly: false },
  ];

  it('on microvm: modern virtio-mmio, then a vhost-user socket chardev and device per share', () => {
    const argv = args({ shares });
    assert.deepEqual(valueOf(argv, '-global'), ['virtio-mmio.force-legacy=false']);
    assert.deepEqual(valueOf(argv, '-chardev').slice(2), [
      'socket,id=fs-src,path=/r/fs-src.sock',
      'socket,id=fs-out,path=/r/fs-out.sock',
    ]);
    assert.deepEqual(extraDevices(argv), [
      'vhost-user-fs-device,chardev=fs-src,tag=src',
      'vhost-user-fs-device,chardev=fs-out,tag=out',
    ]);
  });

  it('on a PCI machine: vhost-user-fs-pci and no virtio-mmio switch', () => {
    const argv = args({ shares }, 'whpx');
    assert.deepEqual(valueOf(argv, '-global'), []);
    assert.deepEqual(extraDevices(argv), [
      'vhost-user-fs-pci,chardev=fs-src,tag=src',
      'vhost-user-fs-pci,chardev=fs-out,tag=out',
    ]);
  });

  it('on aarch64 virt, whose virtio-mmio is legacy too: the switch and vhost-user-fs-device', () => {
    const argv = args({ arch: 'aarch64', shares: shares.slice(0, 1) });
    assert.deepEqual(valueOf(argv, '-global'), ['virtio-mmio.force-legacy=false']);
    assert.deepEqual(extraDevices(argv), ['vhost-user-fs-device,chardev=fs-src,tag=src']);
  });

  it('escapes commas in the socket path, and adds nothing without shares', () => {
    const argv = args({ shares: shares.slice(0, 1) }, 'tcg', runtimePaths('/r,1', { platform: 'linux', vmId: 'r1' }));
    assert.ok(valueOf(argv, '-chardev').includes('socket,id=fs-src,path=/r,,1/fs-src.sock'));
    assert.deepEqual(valueOf(args(), '-global'), []);
  });
});

describe('virtiofsd command', () => {
  const daemonArgs = ['--socket-path=/r/fs-t.sock', '-o', 'source=/host/dir', '-o', 'cache=auto'];
  const bindReadOnly = 'mount --bind -o ro "$0" "$0" && exec "$@"';

  it('runs virtiofsd directly for a writable share', () => {
    const share = { tag: 't', path: '/host/dir', readOnly: false };
    assert.deepEqual(virtiofsdCommand(share, '/r/fs-t.sock', '/usr/bin/virtiofsd'), ['/usr/bin/virtiofsd', daemonArgs]);
  });

  it('wraps a read-only share in a private mount namespace with the directory bound read-only over itself', (t) => {
    const share = { tag: 't', path: '/host/dir', readOnly: true };
    const unshareArgs = ['--mount', '--propagation', 'private', '--', 'sh', '-c', bindReadOnly, '/host/dir'];
    const asUid = (uid: number) => {
      const getuid = t.mock.method(process as { getuid(): number }, 'getuid', () => uid);
      const command = virtiofsdCommand(share, '/r/fs-t.sock', '/usr/bin/virtiofsd');
      getuid.mock.restore();
      return command;
    };
    const [asRoot, asRootArgs] = asUid(0);
    assert.equal(basename(asRoot), 'unshare');
    assert.deepEqual(asRootArgs, [...unshareArgs, '/usr/bin/virtiofsd', ...daemonArgs]);
    // Without root, the mount namespace needs a user namespace of its own.
    assert.deepEqual(asUid(1000)[1], ['--map-root-user', ...unshareArgs, '/usr/bin/virtiofsd', ...daemonArgs]);
  });

  it('really makes the share read-only for the daemon it starts, and passes its arguments through', (t) => {
    if (process.platform !== 'linux' || process.getuid?.() !== 0) {
      t.skip('needs root on Linux for a mount namespace');
      return;
    }
    const dir = tempDir(t);
    const [share, out] = [join(dir, 'share'), join(dir, 'out')];
    mkdirSync(share);
    mkdirSync(out);
    // Stands in for virtiofsd: records its argv and whether it can write into the shared directory.
    const daemon = join(dir, 'daemon.sh');
    writeFileSync(
      daemon,
      `#!/bin/sh\nprintf '%s\\n' "$@" > ${out}/argv\n` +
        `if touch ${share}/probe 2>/dev/null; then echo writable; else echo read-only; fi > ${out}/result\n`,
    );
    chmodSync(daemon, 0o755);
    const [command, commandArgs] = virtiofsdCommand({ tag: 't', path: share, readOnly: true }, '/r/s.sock', daemon);
    const run = spawnSync(command, commandArgs, { encoding: 'utf8', timeout: 10_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(readFileSync(join(out, 'result'), 'utf8'), 'read-only\n');
    assert.equal(
      readFileSync(join(out, 'argv'), 'utf8'),
      ['--socket-path=/r/s.sock', '-o', `source=${share}`, '-o', 'cache=auto', ''].join('\n'),
    );
    // Only the daemon's mount namespace sees it read-only.
    writeFileSync(join(share, 'host-can-write'), 'yes');
  });
});
