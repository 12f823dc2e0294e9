/**
 * Root filesystem images (from a directory and from an OCI tarball), overlays and volumes on real QEMU guests: the
 * agent switches root into a read-only ext4
 * image under an overlay, the base never changes, sandboxes on one base never see each other's writes, and a
 * per-sandbox overlay disk is a limit the guest cannot pass.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, it } from 'node:test';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { create } from 'tar';
import { fromDirectory, fromOci } from '../../src/image/rootfs/index.js';
import { busyboxTree } from '../helpers/busybox-tree.js';
import { ociArchive, tarBytes } from '../helpers/rootfs-helpers.js';
import { BOOT_TIMEOUT_MS, withSandbox } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/temp.js';

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

let base = '';
before(async (t) => {
  const dir = tempDir(t as never);
  const image = await fromDirectory(busyboxTree(join(dir, 'tree'), 'dir-image'), { output: join(dir, 'base.ext4') });
  base = image.path;
});

it('boots into a rootfs built from a directory and runs a program only the image has', async () => {
  await withSandbox(
    async (sandbox) => {
      const says = await sandbox.exec(['image-says']);
      assert.equal(says.stdout, 'this is dir-image\n', says.stderr);
      const root = await sandbox.exec(['sh', '-c', 'mount | grep " on / "']);
      assert.match(root.stdout, /^overlay on \/ type overlay/);
    },
    { rootfs: { image: base } },
  );
});

it('keeps the base image unchanged and two sandboxes on one base apart', async () => {
  const before = sha256(base);
  const options = { rootfs: { image: base }, bootTimeoutMs: BOOT_TIMEOUT_MS };
  const [a, b] = await Promise.all([Sandbox.create(options), Sandbox.create(options)]);
  try {
    assert.equal((await a.exec(['sh', '-c', 'echo from-a > /etc/mine && rm /etc/os-release'])).exitCode, 0);
    assert.equal((await b.exec(['sh', '-c', 'echo from-b > /etc/mine'])).exitCode, 0);
    assert.equal((await a.files.read('/etc/mine')).toString(), 'from-a\n');
    assert.equal((await b.files.read('/etc/mine')).toString(), 'from-b\n');
    assert.equal((await b.files.read('/etc/os-release')).toString(), 'NAME=dir-image\n', 'a deletion in a stays in a');
    assert.notEqual((await a.exec(['cat', '/etc/os-release'])).exitCode, 0);
  } finally {
    await Promise.all([a.destroy(), b.destroy()]);
  }
  assert.equal(sha256(base), before);
});

it('a disk overlay is a size limit: filling it fails with ENOSPC in the guest, the host file stays its size', async () => {
  await withSandbox(
    async (sandbox) => {
      const fill = await sandbox.exec(['sh', '-c', 'dd if=/dev/zero of=/fill bs=1M count=64; echo "rc=$?"']);
      assert.match(fill.stderr, /No space left on device/);
      assert.match(fill.stdout, /rc=1/);
      const small = await sandbox.exec(['sh', '-c', 'rm /fill && echo still-writable > /after && cat /after']);
      assert.equal(small.stdout, 'still-writable\n', 'the sandbox recovers once space is freed');
      const scratch = join(sandbox.instance.runtimeDir, 'scratch-jitvm_overlay.ext4');
      assert.equal(readFileSync(scratch).length, 24 * 1024 * 1024);
    },
    { rootfs: { image: base, overlay: { type: 'disk', sizeMiB: 24 } } },
  );
});

it('a tmpfs overlay with a size is a limit too', async () => {
  await withSandbox(
    async (sandbox) => {
      const fill = await sandbox.exec(['sh', '-c', 'dd if=/dev/zero of=/fill bs=1M count=64']);
      assert.match(fill.stderr, /No space left on device/);
    },
    { rootfs: { image: base, overlay: { type: 'tmpfs', sizeMiB: 16 } } },
  );
});

it('mounts volumes: disk images read-only and writable, host directories over virtio-fs', async (t) => {
  const dir = tempDir(t);
  const data = busyboxTree(join(dir, 'data-tree'), 'data');
  const ro = await fromDirectory(data, { output: join(dir, 'ro.ext4') });
  const rw = await fromDirectory(data, { output: join(dir, 'rw.ext4') });
  const roSum = sha256(ro.path);
  const shared = join(dir, 'shared');
  mkdirSync(shared);
  writeFileSync(join(shared, 'from-host.txt'), 'hello guest\n');
  const outbox = join(dir, 'outbox');
  mkdirSync(outbox);
  await withSandbox(
    async (sandbox) => {
      assert.equal((await sandbox.files.read('/data/ro/etc/os-release')).toString(), 'NAME=data\n');
      assert.notEqual((await sandbox.exec(['touch', '/data/ro/x'])).exitCode, 0, 'read-only volume');
      assert.equal((await sandbox.exec(['sh', '-c', 'echo kept > /data/rw/kept && sync'])).exitCode, 0);
      assert.equal((await sandbox.files.read('/mnt/in/from-host.txt')).toString(), 'hello guest\n');
      const refused = await sandbox.exec(['sh', '-c', 'mount -o remount,rw /mnt/in; echo x > /mnt/in/y']);
      assert.match(refused.stderr, /Read-only file system/, 'read-only is enforced on the host, not by the guest');
      assert.equal((await sandbox.exec(['sh', '-c', 'echo out > /mnt/out/result'])).exitCode, 0);
    },
    {
      volumes: [
        { image: ro.path, path: '/data/ro' },
        { image: rw.path, path: '/data/rw', readOnly: false },
        { hostDir: shared, path: '/mnt/in' },
        { hostDir: outbox, path: '/mnt/out', readOnly: false },
      ],
    },
  );
  assert.equal(sha256(ro.path), roSum);
  assert.notEqual(sha256(rw.path), roSum, 'the writable volume kept the write');
  assert.equal(readFileSync(join(outbox, 'result')).toString(), 'out\n');
  assert.deepEqual(readFileSync(join(shared, 'from-host.txt')).toString(), 'hello guest\n');
});

it('boots into a rootfs built from an OCI image tarball: layers and whiteouts applied, the image env and cwd used', async (t) => {
  const dir = tempDir(t);
  const tree = busyboxTree(join(dir, 'tree'), 'oci-image');
  const lower = join(dir, 'layer1.tar');
  create({ sync: true, cwd: tree, file: lower, portable: true }, readdirSync(tree));
  const upper = tarBytes([
    { path: 'etc/layer2', data: 'from the second layer\n' },
    { path: 'etc/.wh.os-release', data: '' },
    { path: 'srv/app/', mode: 0o755 },
  ]);
  const archive = join(dir, 'image.tar');
  writeFileSync(
    archive,
    ociArchive([
      {
        architecture: 'amd64',
        layers: [readFileSync(lower), upper],
        runtime: { Env: ['FROM_IMAGE=yes', 'PATH=/usr/local/bin:/bin'], WorkingDir: '/srv/app' },
      },
    ]),
  );
  const image = await fromOci(archive, { output: join(dir, 'oci.ext4'), arch: 'x86_64' });
  const before = sha256(image.path);
  await withSandbox(
    async (sandbox) => {
      assert.equal((await sandbox.exec(['image-says'])).stdout, 'this is oci-image\n');
      assert.equal((await sandbox.files.read('/etc/layer2')).toString(), 'from the second layer\n');
      assert.notEqual((await sandbox.exec(['cat', '/etc/os-release'])).exitCode, 0, 'the whiteout removed it');
      const env = await sandbox.exec(['sh', '-c', 'echo "$FROM_IMAGE $(pwd)"; echo written > /srv/app/out']);
      assert.equal(env.stdout, 'yes /srv/app\n');
      const own = await sandbox.exec(['sh', '-c', 'echo "$FROM_IMAGE"'], { env: { FROM_IMAGE: 'call' }, cwd: '/' });
      assert.equal(own.stdout, 'call\n', "the call's env wins over the image's");
    },
    { rootfs: { image: image.path } },
  );
  assert.equal(sha256(image.path), before);
});
