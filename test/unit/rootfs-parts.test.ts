import assert from 'node:assert/strict';
import { linkSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { HostToolMissingError, InvalidArgumentError } from '../../src/core/errors.js';
import { e2fsTool } from '../../src/image/rootfs/e2fsprogs.js';
import { FLOOR_MIB, planExt4 } from '../../src/image/rootfs/ext4-plan.js';
import { envRecord, readRootfsConfig } from '../../src/image/rootfs/image-config.js';
import { pathComponents } from '../../src/image/rootfs/entry-path.js';
import { layerCompression, sniffCompression } from '../../src/image/rootfs/oci-schema.js';
import { defaultRootfsPath } from '../../src/image/rootfs/rootfs-path.js';
import { StagingTree } from '../../src/image/rootfs/staging-tree.js';
import { measureTree } from '../../src/image/rootfs/tree-usage.js';
import { tempDir } from '../helpers/temp.js';

describe('planExt4', () => {
  it('gives a small tree the floor and a large one a quarter more than it needs', () => {
    const small = planExt4({ blocks: 100, inodes: 10 }, 'small');
    assert.equal(small.sizeMiB, FLOOR_MIB);
    assert.equal(small.inodes, Math.ceil(10 * 1.2) + 1024);
    const large = planExt4({ blocks: 256 * 1024, inodes: 50_000 }, 'large');
    assert.ok(large.requiredMiB > 1024, `1 GiB of data needs more than 1 GiB (${large.requiredMiB})`);
    assert.ok(large.requiredMiB < 1024 * 1.1, `but not a tenth more (${large.requiredMiB})`);
    assert.equal(large.sizeMiB, Math.ceil(large.requiredMiB * 1.25));
  });

  it('takes a size the tree fits in and refuses one it does not, saying what it needs', () => {
    const usage = { blocks: 25_600, inodes: 5_000 };
    const { requiredMiB } = planExt4(usage, 'the tree');
    assert.equal(planExt4(usage, 'the tree', requiredMiB).sizeMiB, requiredMiB);
    assert.throws(
      () => planExt4(usage, 'the tree', requiredMiB - 1),
      (error: Error) =>
        error instanceof InvalidArgumentError &&
        error.message.includes(`too small for the tree: it needs at least ${requiredMiB} MiB (5000 files`),
    );
    assert.throws(() => planExt4(usage, 'the tree', 0), /whole number of MiB above 0/);
  });
});

describe('measureTree', () => {
  it('counts blocks per file, directory and long symlink, and hard-linked files once', async (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'one-block'), 'x');
    writeFileSync(join(dir, 'two-blocks'), Buffer.alloc(4097));
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'empty'), '');
    symlinkSync('short', join(dir, 'fast'));
    symlinkSync('x'.repeat(100), join(dir, 'slow'));
    linkSync(join(dir, 'two-blocks'), join(dir, 'again'));
    // root + sub: one block each; files 1 + 2 + 0; the slow symlink 1.
    assert.deepEqual(await measureTree(dir), { blocks: 2 + 3 + 1, inodes: 1 + 6 });
  });
});

describe('entry paths and archive names', () => {
  it('splits relative paths and refuses absolute ones and any ..', () => {
    assert.deepEqual(pathComponents('./usr//bin/', 'x'), ['usr', 'bin']);
    assert.deepEqual(pathComponents('.', 'x'), []);
    assert.deepEqual(pathComponents('a/..b/c..', 'x'), ['a', '..b', 'c..']);
    for (const bad of ['/etc/passwd', '../x', 'a/../../b', 'a/..']) {
      assert.throws(() => pathComponents(bad, 'layer 1'), /layer 1 holds the path .* climbs out of the image/);
    }
  });

  it('names the default output after the source, under the cache', () => {
    assert.equal(defaultRootfsPath('/srv/images/python 3.12.tar', '/c'), '/c/rootfs/python-3.12.ext4');
    assert.equal(defaultRootfsPath('/srv/debian-rootfs/', '/c'), '/c/rootfs/debian-rootfs.ext4');
    assert.equal(defaultRootfsPath('/x/app.tar.gz', '/c'), '/c/rootfs/app.ext4');
    assert.equal(defaultRootfsPath('/x/..hidden', '/c'), '/c/rootfs/hidden.ext4');
    assert.equal(defaultRootfsPath('/', '/c'), '/c/rootfs/rootfs.ext4');
  });

  it('knows layer compression by media type and by magic bytes', () => {
    assert.equal(layerCompression('application/vnd.oci.image.layer.v1.tar'), 'none');
    assert.equal(layerCompression('application/vnd.oci.image.layer.v1.tar+gzip'), 'gzip');
    assert.equal(layerCompression('application/vnd.oci.image.layer.nondistributable.v1.tar+zstd'), 'zstd');
    assert.equal(layerCompression('application/vnd.docker.image.rootfs.diff.tar.gzip'), 'gzip');
    assert.equal(layerCompression('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip'), 'gzip');
    assert.equal(layerCompression('application/vnd.oci.image.config.v1+json'), undefined);
    assert.equal(sniffCompression(Buffer.from([0x1f, 0x8b, 8, 0])), 'gzip');
    assert.equal(sniffCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), 'zstd');
    assert.equal(sniffCompression(Buffer.from('etc/')), 'none');
    assert.equal(sniffCompression(Buffer.alloc(0)), 'none');
  });
});

describe('StagingTree', () => {
  it('follows symlinks inside the tree, absolute ones from its root, and refuses loops and escapes', async (t) => {
    const root = join(tempDir(t), 'root');
    mkdirSync(join(root, 'usr', 'lib'), { recursive: true });
    symlinkSync('usr/lib', join(root, 'lib'));
    symlinkSync('/usr', join(root, 'abs'));
    symlinkSync('loop2', join(root, 'loop1'));
    symlinkSync('loop1', join(root, 'loop2'));
    symlinkSync('../..', join(root, 'up'));
    writeFileSync(join(root, 'file'), '');
    const tree = new StagingTree(root, 'test.tar');

    assert.equal(await tree.directory(['lib', 'x86_64'], true), join(root, 'usr', 'lib', 'x86_64'));
    assert.equal(await tree.entry(['abs', 'lib', 'libc.so'], false), join(root, 'usr', 'lib', 'libc.so'));
    assert.equal(await tree.directory(['missing', 'dir'], false), undefined);
    assert.equal(await tree.entry(['lib'], false), join(root, 'lib'), 'the last component is not followed');
    await assert.rejects(tree.directory(['loop1'], true), /test\.tar: .* its symlinks loop/);
    await assert.rejects(tree.directory(['up', 'etc'], true), /its symlinks lead out of the image/);
    await assert.rejects(tree.directory(['file', 'x'], true), /file is not a directory/);
  });
});

describe('e2fsprogs and the sidecar', () => {
  it('finds mkfs.ext4 on PATH or in sbin, and says how to install it when it is nowhere', () => {
    const host = (executables: string[]) => ({
      platform: 'linux' as const,
      env: { PATH: '/usr/bin:/bin' },
      isExecutable: (path: string) => executables.includes(path),
    });
    assert.equal(e2fsTool('mkfs.ext4', host(['/bin/mkfs.ext4', '/sbin/mkfs.ext4'])), '/bin/mkfs.ext4');
    assert.equal(e2fsTool('mkfs.ext4', host(['/sbin/mkfs.ext4'])), '/sbin/mkfs.ext4');
    assert.throws(
      () => e2fsTool('mkfs.ext4', host([])),
      (error: Error) => error instanceof HostToolMissingError && /apt-get install e2fsprogs/.test(error.message),
    );
  });

  it('reads KEY=VALUE environments and refuses a sidecar it does not understand', async (t) => {
    assert.deepEqual(envRecord(['A=1', 'B=x=y', 'NOVALUE', '=bad', 'A=2']), { A: '2', B: 'x=y' });
    const image = join(tempDir(t), 'image.ext4');
    assert.equal(await readRootfsConfig(image), undefined);
    writeFileSync(`${image}.json`, JSON.stringify({ version: 99 }));
    await assert.rejects(readRootfsConfig(image), /is not a jitvm rootfs config of version 1 .*rebuild the image/);
  });
});
