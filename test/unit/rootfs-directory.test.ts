import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, linkSync, mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { CancelledError, InvalidArgumentError } from '../../src/core/errors.js';
import { writeExt4Image } from '../../src/image/rootfs/ext4-image.js';
import { fromDirectory, readRootfsConfig, rootfsConfigPath } from '../../src/image/rootfs/index.js';
import { tempDir } from '../helpers/temp.js';
import { ext4List, ext4Read, ext4Stat, leftovers } from '../helpers/rootfs-helpers.js';

const isRoot = process.getuid?.() === 0;

/** A small tree with what a root filesystem has: modes, owners, links, an empty directory. */
function makeTree(root: string): string {
  const tree = join(root, 'tree');
  mkdirSync(join(tree, 'usr/bin'), { recursive: true });
  mkdirSync(join(tree, 'home/user'), { recursive: true });
  mkdirSync(join(tree, 'tmp'));
  chmodSync(join(tree, 'tmp'), 0o1777);
  writeFileSync(join(tree, 'usr/bin/hello'), '#!/bin/sh\necho hello\n', { mode: 0o755 });
  linkSync(join(tree, 'usr/bin/hello'), join(tree, 'usr/bin/hi'));
  symlinkSync('usr/bin', join(tree, 'bin'));
  writeFileSync(join(tree, 'home/user/notes'), 'mine\n', { mode: 0o600 });
  writeFileSync(join(tree, 'usr/bin/big'), Buffer.alloc(3 * 1024 * 1024, 7));
  if (isRoot) {
    chownSync(join(tree, 'home/user'), 1000, 1000);
    chownSync(join(tree, 'home/user/notes'), 1000, 1001);
    writeFileSync(join(tree, 'usr/bin/su'), 'su', { mode: 0o755 });
    chmodSync(join(tree, 'usr/bin/su'), 0o4755);
    mkdirSync(join(tree, 'dev'));
    execFileSync('mknod', [join(tree, 'dev/null'), 'c', '1', '3']);
  }
  return tree;
}

describe('fromDirectory', () => {
  it('copies a tree into an ext4 image with its contents, modes, owners and links', async (t) => {
    const root = tempDir(t);
    const output = join(root, 'out', 'tree.ext4');
    const image = await fromDirectory(makeTree(root), { output });

    assert.equal(image.path, output);
    assert.equal(image.sizeMiB, 64, 'a small tree gets the 64 MiB floor');
    assert.equal(statSync(output).size, 64 * 1024 * 1024);
    assert.ok(image.diskBytes < 16 * 1024 * 1024, `the image is sparse (${image.diskBytes} bytes on disk)`);
    assert.equal(image.config, undefined);
    assert.deepEqual(leftovers(join(root, 'out')), ['tree.ext4']);

    assert.deepEqual(
      await ext4List(output, '/'),
      ['bin', 'home', 'lost+found', 'tmp', 'usr', ...(isRoot ? ['dev'] : [])].sort(),
    );
    assert.equal(await ext4Read(output, '/usr/bin/hello'), '#!/bin/sh\necho hello\n');
    const hello = await ext4Stat(output, '/usr/bin/hello');
    const hi = await ext4Stat(output, '/usr/bin/hi');
    assert.equal(hello?.mode, 0o755);
    assert.equal(hello?.links, 2);
    assert.equal(hi?.inode, hello?.inode, 'hard links share an inode');
    assert.equal((await ext4Stat(output, '/bin'))?.target, 'usr/bin');
    assert.equal((await ext4Stat(output, '/tmp'))?.mode, 0o1777);
    assert.equal((await ext4Stat(output, '/usr/bin/big'))?.size, 3 * 1024 * 1024);
    const rootDir = await ext4Stat(output, '/');
    assert.deepEqual([rootDir?.uid, rootDir?.gid, rootDir?.mode], [0, 0, 0o755]);
    if (isRoot) {
      const notes = await ext4Stat(output, '/home/user/notes');
      assert.deepEqual([notes?.uid, notes?.gid, notes?.mode], [1000, 1001, 0o600]);
      assert.equal((await ext4Stat(output, '/home/user'))?.uid, 1000);
      assert.equal((await ext4Stat(output, '/usr/bin/su'))?.mode, 0o4755);
      const devNull = await ext4Stat(output, '/dev/null');
      assert.equal(devNull?.type, 'character special');
      assert.equal(devNull?.device, '1:3');
    }
  });

  it('takes a given size, and refuses one too small for the tree, saying how much it needs', async (t) => {
    const root = tempDir(t);
    const tree = makeTree(root);
    const out = join(root, 'out');
    const sized = await fromDirectory(tree, { output: join(out, 'sized.ext4'), sizeMiB: 100 });
    assert.equal(statSync(sized.path).size, 100 * 1024 * 1024);

    await assert.rejects(fromDirectory(tree, { output: join(out, 'small.ext4'), sizeMiB: 2 }), (error: Error) => {
      assert.ok(error instanceof InvalidArgumentError);
      assert.match(error.message, /a 2 MiB image is too small for .*tree: it needs at least \d+ MiB/);
      return true;
    });
    await assert.rejects(fromDirectory(tree, { output: join(out, 'odd.ext4'), sizeMiB: 1.5 }), /whole number of MiB/);
    assert.deepEqual(leftovers(out), ['sized.ext4'], 'refused builds leave nothing');
  });

  it('turns mkfs.ext4 running out of room into a size error and removes its temporary files', async (t) => {
    const root = tempDir(t);
    const tree = makeTree(root);
    const out = join(root, 'out');
    const tooSmall = { sizeMiB: 2, inodes: 64, requiredMiB: 2 };
    await assert.rejects(
      writeExt4Image({ dir: tree, what: 'the test tree' }, join(out, 'x.ext4'), tooSmall, {}),
      (error: Error) =>
        error instanceof InvalidArgumentError && /the test tree does not fit in 2 MiB/.test(error.message),
    );
    assert.deepEqual(leftovers(out), []);
  });

  it('replaces an existing image and drops the sidecar config of the image it replaces', async (t) => {
    const root = tempDir(t);
    const tree = makeTree(root);
    const output = join(root, 'image.ext4');
    writeFileSync(output, 'old image');
    writeFileSync(rootfsConfigPath(output), '{"stale": true}');
    await fromDirectory(tree, { output });
    assert.equal(await ext4Read(output, '/home/user/notes'), 'mine\n');
    assert.equal(await readRootfsConfig(output), undefined);
  });

  it('refuses a missing directory, an output inside the tree and an overlong label', async (t) => {
    const root = tempDir(t);
    const tree = makeTree(root);
    await assert.rejects(fromDirectory(join(root, 'nope')), /is not a directory/);
    await assert.rejects(fromDirectory(tree, { output: join(tree, 'usr', 'self.ext4') }), /inside .*tree/);
    await assert.rejects(
      fromDirectory(tree, { output: join(root, 'l.ext4'), label: 'a-label-of-17-chr' }),
      /1 to 16 bytes/,
    );
    assert.deepEqual(leftovers(root), ['tree']);
  });

  it('stops when cancelled, leaving nothing behind', async (t) => {
    const root = tempDir(t);
    const tree = makeTree(root);
    const out = join(root, 'out');
    await assert.rejects(
      fromDirectory(tree, { output: join(out, 'c.ext4'), signal: AbortSignal.abort() }),
      CancelledError,
    );
    assert.deepEqual(leftovers(out), []);
  });
});
