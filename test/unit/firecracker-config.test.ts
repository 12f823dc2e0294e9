import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bootRequests, kernelBootArgs } from '../../src/backends/firecracker/boot-config.js';
import { parseFirecrackerVersion } from '../../src/backends/firecracker/index.js';
import {
  JailerOptionsSchema,
  jailCgroup,
  jailDir,
  jailRoot,
  jailerArgs,
} from '../../src/backends/firecracker/jailer.js';
import { parseVmConfig } from '../../src/core/config.js';

const files = {
  kernel: '/k/vmlinux',
  initrd: '/k/initrd',
  drivePath: (drive: { id: string }) => `/jail/drive-${drive.id}`,
  vsockSocket: '/r/vsock.sock',
};

describe('Firecracker boot requests', () => {
  it('maps a minimal config: kernel, initrd, boot args from the config, vCPUs and memory with SMT off, vsock', () => {
    const config = parseVmConfig({
      kernel: '/k/vmlinuz',
      initrd: '/k/initrd',
      cpus: 3,
      memoryMiB: 384,
      arch: 'x86_64',
      kernelArgs: ['jitvm.debug=1'],
    });
    const requests = bootRequests(config, files);
    assert.deepEqual(requests.bootSource, {
      kernel_image_path: '/k/vmlinux',
      initrd_path: '/k/initrd',
      boot_args:
        'console=ttyS0 reboot=k panic=1 quiet i8042.noaux i8042.nomux i8042.dumbkbd jitvm.channel=vsock jitvm.debug=1',
    });
    assert.deepEqual(requests.machineConfig, { vcpu_count: 3, mem_size_mib: 384, smt: false });
    assert.deepEqual(requests.drives, []);
    assert.deepEqual(requests.networkInterfaces, []);
    assert.deepEqual(requests.vsock, { guest_cid: 3, uds_path: '/r/vsock.sock' });
  });

  it('maps drives, rate limiters and a TAP NIC', () => {
    const config = parseVmConfig({
      kernel: '/k',
      initrd: '/i',
      drives: [
        { id: 'rootfs', path: '/d/root.ext4', root: true },
        {
          id: 'data',
          path: '/d/data.img',
          readOnly: false,
          rateLimiter: {
            bandwidth: { size: 1048576, refillTimeMs: 1000, oneTimeBurst: 0 },
            ops: { size: 10, refillTimeMs: 100 },
          },
        },
      ],
      network: {
        mode: 'tap',
        tap: 'jv0',
        mac: '06:00:ac:10:00:02',
        txRateLimiter: { bandwidth: { size: 5000, refillTimeMs: 100 } },
      },
    });
    const requests = bootRequests(config, files);
    assert.deepEqual(requests.drives, [
      { drive_id: 'rootfs', is_root_device: true, is_read_only: true, path_on_host: '/jail/drive-rootfs' },
      {
        drive_id: 'data',
        is_root_device: false,
        is_read_only: false,
        path_on_host: '/jail/drive-data',
        rate_limiter: {
          bandwidth: { size: 1048576, refill_time: 1000, one_time_burst: 0 },
          ops: { size: 10, refill_time: 100 },
        },
      },
    ]);
    assert.deepEqual(requests.networkInterfaces, [
      {
        iface_id: 'eth0',
        host_dev_name: 'jv0',
        guest_mac: '06:00:ac:10:00:02',
        tx_rate_limiter: { bandwidth: { size: 5000, refill_time: 100 } },
      },
    ]);
  });

  it('leaves out the x86-only reboot and keyboard arguments on aarch64', () => {
    const config = parseVmConfig({ kernel: '/k', initrd: '/i', arch: 'aarch64' });
    assert.equal(kernelBootArgs(config), 'console=ttyS0 panic=1 quiet jitvm.channel=vsock');
  });
});

describe('Firecracker version', () => {
  it('parses what `firecracker --version` prints and refuses anything else', () => {
    assert.deepEqual(parseFirecrackerVersion('Firecracker v1.12.0\n\n'), [1, 12, 0]);
    assert.deepEqual(parseFirecrackerVersion('Firecracker v1.16.1+fuzzing'), [1, 16, 1]);
    assert.equal(parseFirecrackerVersion('QEMU emulator version 7.2'), undefined);
    assert.equal(parseFirecrackerVersion(undefined), undefined);
  });
});

describe('jailer', () => {
  const options = JailerOptionsSchema.parse({
    uid: 1000,
    gid: 1001,
    chrootBaseDir: '/srv/j',
    netns: '/var/run/netns/jv',
    daemonize: true,
    cgroups: { 'cpu.max': '50000 100000' },
  });

  it('builds the documented argv, with Firecracker arguments after --', () => {
    assert.deepEqual(jailerArgs(options, '/usr/bin/firecracker', 'jv-1'), [
      '--id', 'jv-1',
      '--exec-file', '/usr/bin/firecracker',
      '--uid', '1000',
      '--gid', '1001',
      '--cgroup-version', '2',
      '--chroot-base-dir', '/srv/j',
      '--cgroup', 'cpu.max=50000 100000',
      '--netns', '/var/run/netns/jv',
      '--daemonize',
      '--', '--api-sock', '/api.sock',
    ]); // prettier-ignore
  });

  it('places the jail at <base>/<exec name>/<id>/root and the cgroup under the exec name', () => {
    assert.equal(jailDir(options, '/opt/fc/firecracker-v1.12', 'jv-1'), '/srv/j/firecracker-v1.12/jv-1');
    assert.equal(jailRoot(options, '/opt/fc/firecracker-v1.12', 'jv-1'), '/srv/j/firecracker-v1.12/jv-1/root');
    assert.equal(jailCgroup(options, '/usr/bin/firecracker', 'jv-1'), '/sys/fs/cgroup/firecracker/jv-1');
    const noCgroups = JailerOptionsSchema.parse({ uid: 0, gid: 0 });
    assert.equal(jailCgroup(noCgroups, '/usr/bin/firecracker', 'jv-1'), undefined, 'v2 without --cgroup creates none');
  });

  it('refuses unknown options and malformed cgroup file names', () => {
    assert.throws(() => JailerOptionsSchema.parse({ uid: 0, gid: 0, chroot: '/x' }));
    assert.throws(() => JailerOptionsSchema.parse({ uid: 0, gid: 0, cgroups: { 'rm -rf': '1' } }));
  });
});
