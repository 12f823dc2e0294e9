/**
 * What Firecracker cannot do for networking and storage is refused before anything starts, and what it can do reaches
 * its boot requests: a NIC for TAP mode only, drives in attach order.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { bootRequests } from '../../src/backends/firecracker/boot-config.js';
import { FirecrackerHypervisor } from '../../src/backends/firecracker/index.js';
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

describe('Firecracker refusals', () => {
  const refusedBeforeStart = async (t: TestContext, input: Partial<VmConfigInput>, reason: RegExp) => {
    const runtimeRoot = withEnv(t, 'JITVM_RUNTIME_DIR', join(tempDir(t), 'runtime'));
    const { binary, calls } = recordingFirecracker(t);
    const hypervisor = new FirecrackerHypervisor({ binary, kvmCheck: usableKvm });
    assert.equal((await hypervisor.probe()).available, true, 'the refusal is about the config, not the host');
    const config = parseVmConfig({ kernel: '/k/vmlinux', initrd: '/k/initrd', arch: 'x86_64', ...input });
    await assert.rejects(
      hypervisor.spawn(config),
      (error: unknown) => error instanceof JitvmError && error.code === 'unsupported' && reason.test(error.message),
    );
    assert.deepEqual(calls(), ['--version'], 'Firecracker itself was never started');
    assert.equal(existsSync(runtimeRoot), false, 'no runtime dir was made');
  };

  it('refuses nat mode, saying what to use instead', async (t) => {
    await refusedBeforeStart(
      t,
      { network: { mode: 'nat' } },
      /no built-in NAT: .*use network mode 'tap', use mode 'allowlist' \(no NIC needed\), or the qemu backend/,
    );
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
