/**
 * What Firecracker cannot do for networking and storage is refused before anything starts, and what it can do reaches
 * its boot requests: a NIC for TAP and NAT modes only, drives in attach order.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { bootRequests } from '../../src/backends/firecracker/boot-config.js';
import type { NatHost } from '../../src/backends/firecracker/host-nat.js';
import { FirecrackerHypervisor, type FirecrackerOptions } from '../../src/backends/firecracker/index.js';
import { planHostNat } from '../../src/backends/firecracker/nat-plan.js';
import { type VmConfigInput, parseVmConfig } from '../../src/core/config.js';
import { JitvmError } from '../../src/core/errors.js';
import { tempDir, withEnv } from '../helpers/temp.js';

/** A `firecracker` that answers --version like v1.12.0 and logs every invocation's arguments to `calls`. */
function recordingFirecracker(t: TestContext): { binary: string; calls: () => string[] } {
  const dir = tempDir(t);
  const [binary, log] = [join(dir, 'firecracker'), join(dir, 'calls.log')];
  writeFileSync(
    binary,
    `#!/bin/sh\necho "$*" >> '${log}'\n[ "$1" = --version ] && printf 'Firecracker v1.12.0\\n\\n'\nexit 0\n`,
  );
  chmodSync(binary, 0o755);
  return { binary, calls: () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []) };
}

const usableKvm = () => ({ usable: true, reason: '/dev/kvm is usable (kvm_intel)' });

/** A host that may run nat, less what `lacking` takes away. */
function natHost(lacking: { netAdmin?: boolean; tools?: string[]; platform?: NodeJS.Platform } = {}): NatHost {
  return {
    platform: lacking.platform ?? 'linux',
    netAdmin: lacking.netAdmin ?? true,
    findTool: (name) => (lacking.tools?.includes(name) ? undefined : `/usr/sbin/${name}`),
  };
}

describe('Firecracker refusals', () => {
  const refusedBeforeStart = async (
    t: TestContext,
    input: Partial<VmConfigInput>,
    reason: RegExp,
    options: Partial<FirecrackerOptions> = {},
  ) => {
    const runtimeRoot = withEnv(t, 'JITVM_RUNTIME_DIR', join(tempDir(t), 'runtime'));
    const { binary, calls } = recordingFirecracker(t);
    const hypervisor = new FirecrackerHypervisor({ binary, kvmCheck: usableKvm, ...options });
    assert.equal((await hypervisor.probe()).available, true, 'the refusal is about the config, not the host');
    const config = parseVmConfig({ kernel: '/k/vmlinux', initrd: '/k/initrd', arch: 'x86_64', ...input });
    const error = await hypervisor.spawn(config).then(
      () => assert.fail('spawn succeeded'),
      (error: unknown) => error,
    );
    assert.ok(error instanceof JitvmError && error.code === 'unsupported', String(error));
    assert.match(error.message, reason);
    assert.deepEqual(calls(), ['--version'], 'Firecracker itself was never started');
    assert.equal(existsSync(runtimeRoot), false, 'no runtime dir was made');
    return error;
  };

  const alternatives = /use network mode 'tap' with a TAP you set up, mode 'allowlist' .*, or the qemu backend/;

  it('refuses nat without CAP_NET_ADMIN, saying that and what to use instead', async (t) => {
    const error = await refusedBeforeStart(
      t,
      { network: { mode: 'nat' } },
      /needs CAP_NET_ADMIN \(run jitvm as root\)\. Run jitvm as root/,
      { natHost: natHost({ netAdmin: false }) },
    );
    assert.match(error.message, alternatives);
    assert.doesNotMatch(error.message, /Debian package/, 'the tools are there: only privileges are missing');
  });

  it('refuses nat without ip or nft, naming each missing tool and its Debian package', async (t) => {
    const error = await refusedBeforeStart(
      t,
      { network: { mode: 'nat' } },
      /needs `ip` \(Debian package iproute2\), `nft` \(Debian package nftables\)\./,
      { natHost: natHost({ tools: ['ip', 'nft'] }) },
    );
    assert.match(error.message, alternatives);
    assert.doesNotMatch(error.message, /CAP_NET_ADMIN/);
    await refusedBeforeStart(t, { network: { mode: 'nat' } }, /which needs `nft` \(Debian package nftables\)\./, {
      natHost: natHost({ tools: ['nft'] }),
    });
  });

  it('refuses nat off Linux', async (t) => {
    await refusedBeforeStart(t, { network: { mode: 'nat' } }, /needs a Linux host, not darwin/, {
      natHost: natHost({ platform: 'darwin' }),
    });
  });

  it(
    'refuses nat under a jailer that joins a network namespace (the TAP would be out of its sight)',
    { skip: process.getuid?.() === 0 ? false : 'the jailer needs root' },
    async (t) => {
      await refusedBeforeStart(t, { network: { mode: 'nat' } }, /a jailer joining \/run\/netns\/jv0 cannot see/, {
        natHost: natHost(),
        jailer: { binary: process.execPath, uid: 123, gid: 100, netns: '/run/netns/jv0' },
      });
    },
  );

  it('refuses to restore a snapshot of a nat VM (clones would share its subnet)', async (t) => {
    withEnv(t, 'JITVM_RUNTIME_DIR', join(tempDir(t), 'runtime'));
    const { binary, calls } = recordingFirecracker(t);
    const hypervisor = new FirecrackerHypervisor({ binary, kvmCheck: usableKvm, natHost: natHost() });
    const config = parseVmConfig({
      kernel: '/k/vmlinux',
      initrd: '/k/initrd',
      arch: 'x86_64',
      network: { mode: 'nat' },
    });
    await assert.rejects(
      hypervisor.restore({
        dir: tempDir(t),
        backend: 'firecracker',
        vmmVersion: '1.12.0',
        config,
        files: { state: 'vmstate', memory: 'memory' },
      }),
      (error: unknown) =>
        error instanceof JitvmError &&
        error.code === 'unsupported' &&
        /nat networking: .*clones would collide/.test(error.message),
    );
    assert.deepEqual(calls(), ['--version'], 'Firecracker itself was never started');
  });

  it('refuses host directory shares, pointing to volume images', async (t) => {
    await refusedBeforeStart(
      t,
      { shares: [{ tag: 'src', path: '/host/src', readOnly: false }] },
      /Firecracker has no virtio-fs.*attach an ext4 volume image instead/,
    );
  });
});

describe('Firecracker boot requests for network and storage', () => {
  const files = {
    kernel: '/k/vmlinux',
    initrd: '/k/initrd',
    drivePath: (drive: { id: string }) => `/jail/drive-${drive.id}`,
    vsockSocket: '/r/vsock.sock',
  };
  const config = (input: Partial<VmConfigInput>) => parseVmConfig({ kernel: '/k', initrd: '/i', ...input });

  it('puts no NIC for none and allowlist modes (allowlist rides the agent channel)', () => {
    for (const network of [{ mode: 'none' as const }, { mode: 'allowlist' as const, allow: ['allowed.test'] }]) {
      assert.deepEqual(bootRequests(config({ network }), files).networkInterfaces, [], network.mode);
    }
  });

  it('puts a NIC on the planned TAP for nat mode and tells the agent its address', () => {
    const nat = planHostNat({ id: 'jv-0123456789', owner: 0, interfaces: [], resolvConf: 'nameserver 192.0.2.53\n' });
    const requests = bootRequests(config({ network: { mode: 'nat' }, kernelArgs: ['jitvm.test=1'] }), files, nat);
    assert.deepEqual(requests.networkInterfaces, [{ iface_id: 'eth0', host_dev_name: nat.tap, guest_mac: nat.mac }]);
    assert.ok(
      requests.bootSource.boot_args?.endsWith(` jitvm.net=${nat.guest}/30,${nat.host},192.0.2.53 jitvm.test=1`),
      requests.bootSource.boot_args ?? '',
    );
    assert.throws(() => bootRequests(config({ network: { mode: 'nat' } }), files), /without a host NAT/);
  });

  it('attaches the root drive first whatever its place in the config', () => {
    const requests = bootRequests(
      config({
        drives: [
          { id: 'jitvm_overlay', path: '/r/scratch-jitvm_overlay.ext4', readOnly: false },
          { id: 'data', path: '/d/data.img' },
          { id: 'rootfs', path: '/d/root.ext4', root: true },
        ],
      }),
      files,
    );
    assert.deepEqual(
      requests.drives.map((drive) => [drive.drive_id, drive.is_root_device, drive.is_read_only, drive.path_on_host]),
      [
        ['rootfs', true, true, '/jail/drive-rootfs'],
        ['jitvm_overlay', false, false, '/jail/drive-jitvm_overlay'],
        ['data', false, true, '/jail/drive-data'],
      ],
    );
  });
});
