/** `rootfs` and `volumes` turned into drives, shares and the boot arguments the agent reads, against real files. */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { parseWith } from '../../src/core/config.js';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { RootfsSchema, VolumeSchema, storagePlan } from '../../src/sandbox/storage.js';
import { tempDir } from '../helpers/temp.js';

/** A temp dir holding an empty `root.ext4`, `data.ext4` and a directory `shared/`. */
function files(t: TestContext): { root: string; data: string; shared: string; dir: string } {
  const dir = tempDir(t);
  const [root, data, shared] = [join(dir, 'root.ext4'), join(dir, 'data.ext4'), join(dir, 'shared')];
  writeFileSync(root, '');
  writeFileSync(data, '');
  mkdirSync(shared);
  return { root, data, shared, dir };
}

const rootfs = (input: unknown) => parseWith(RootfsSchema, input, 'rootfs');
const volume = (input: unknown) => parseWith(VolumeSchema, input, 'volume');

const invalid = (pattern: RegExp) => (error: unknown) =>
  error instanceof InvalidArgumentError && pattern.test(error.message);

describe('storage plan: root filesystem', () => {
  it('attaches the image read-only with a RAM overlay by default', (t) => {
    const { root } = files(t);
    assert.deepEqual(storagePlan({ rootfs: rootfs({ image: root }) }), {
      drives: [{ id: 'jitvm_root', path: root, readOnly: true }],
      shares: [],
      kernelArgs: ['jitvm.root=jitvm_root', 'jitvm.overlay=tmpfs:0', 'jitvm.drives=jitvm_root'],
    });
  });

  it('passes a tmpfs size limit', (t) => {
    const { root } = files(t);
    const plan = storagePlan({ rootfs: rootfs({ image: root, overlay: { type: 'tmpfs', sizeMiB: 32 } }) });
    assert.deepEqual(plan.kernelArgs, ['jitvm.root=jitvm_root', 'jitvm.overlay=tmpfs:32', 'jitvm.drives=jitvm_root']);
  });

  it('adds a writable scratch disk of the asked size for a disk overlay', (t) => {
    const { root } = files(t);
    const plan = storagePlan({ rootfs: rootfs({ image: root, overlay: { type: 'disk', sizeMiB: 64 } }) });
    assert.deepEqual(plan.drives, [
      { id: 'jitvm_root', path: root, readOnly: true },
      { id: 'jitvm_overlay', sizeMiB: 64, readOnly: false },
    ]);
    assert.deepEqual(plan.kernelArgs, [
      'jitvm.root=jitvm_root',
      'jitvm.overlay=disk:jitvm_overlay',
      'jitvm.drives=jitvm_root,jitvm_overlay',
    ]);
  });

  it('resolves a relative image path', (t) => {
    const { root, dir } = files(t);
    const cwd = process.cwd();
    process.chdir(dir);
    t.after(() => process.chdir(cwd));
    assert.equal(storagePlan({ rootfs: rootfs({ image: 'root.ext4' }) }).drives[0]?.path, root);
  });

  it('refuses a missing image, naming the path and how to build one', (t) => {
    const missing = join(tempDir(t), 'nope.ext4');
    assert.throws(
      () => storagePlan({ rootfs: rootfs({ image: missing }) }),
      invalid(/^rootfs image \S+nope\.ext4 does not exist; build one with `jitvm image build --from-dir DIR`/),
    );
  });

  it('bounds the overlay sizes', () => {
    assert.throws(() => rootfs({ image: '/r', overlay: { type: 'disk', sizeMiB: 4 } }), /overlay\.sizeMiB/);
    assert.throws(() => rootfs({ image: '/r', overlay: { type: 'disk' } }), /overlay\.sizeMiB/);
    assert.throws(() => rootfs({ image: '/r', overlay: { type: 'tmpfs', sizeMiB: 0 } }), /overlay\.sizeMiB/);
    assert.throws(() => rootfs({ image: '/r', overlay: { type: 'zram' } }), /overlay/);
  });
});

describe('storage plan: volumes and drives', () => {
  it('mounts an image volume by drive id and a host directory by virtio-fs tag', (t) => {
    const { data, shared } = files(t);
    const plan = storagePlan({
      volumes: [volume({ image: data, path: '/data' }), volume({ hostDir: shared, path: '/mnt', readOnly: false })],
    });
    assert.deepEqual(plan.drives, [{ id: 'jitvm_vol0', path: data, readOnly: true }]);
    assert.deepEqual(plan.shares, [{ tag: 'jitvm_share1', path: shared, readOnly: false }]);
    assert.deepEqual(plan.kernelArgs, [
      'jitvm.mount=blk:jitvm_vol0:ro:/data',
      'jitvm.mount=virtiofs:jitvm_share1:rw:/mnt',
      'jitvm.drives=jitvm_vol0',
    ]);
  });

  it('lists no drive order when only directories are shared', (t) => {
    const { shared } = files(t);
    assert.deepEqual(storagePlan({ volumes: [volume({ hostDir: shared, path: '/src' })] }).kernelArgs, [
      'jitvm.mount=virtiofs:jitvm_share0:ro:/src',
    ]);
  });

  it("lists the caller's drives in attach order too, a root drive first", (t) => {
    const { root, data, dir } = files(t);
    const own = [
      { id: 'scratch', sizeMiB: 16, readOnly: false },
      { id: 'boot', path: join(dir, 'boot.img'), root: true },
    ];
    const plan = storagePlan({
      rootfs: rootfs({ image: root }),
      volumes: [volume({ image: data, path: '/d' })],
      drives: own,
    });
    assert.deepEqual(
      plan.drives.map((drive) => drive.id),
      ['jitvm_root', 'jitvm_vol0', 'scratch', 'boot'],
    );
    assert.equal(plan.kernelArgs.at(-1), 'jitvm.drives=boot,jitvm_root,jitvm_vol0,scratch');
  });

  it("adds nothing to the caller's own drives without rootfs or volumes", () => {
    const own = [{ id: 'data', path: '/d.img' }];
    assert.deepEqual(storagePlan({ drives: own }), { drives: own, shares: [], kernelArgs: [] });
    assert.deepEqual(storagePlan({}), { drives: [], shares: [], kernelArgs: [] });
  });

  it("refuses caller drive ids that start with jitvm_, which are jitvm's own", () => {
    assert.throws(
      () => storagePlan({ drives: [{ id: 'jitvm_root', path: '/x.img' }] }),
      invalid(/drive id jitvm_root: ids starting with jitvm_ are jitvm's own/),
    );
  });

  it('refuses a missing volume image and a host directory that is not one', (t) => {
    const { data, dir } = files(t);
    const missing = join(dir, 'gone.ext4');
    assert.throws(
      () => storagePlan({ volumes: [volume({ image: missing, path: '/d' })] }),
      invalid(new RegExp(`^volume image ${missing} does not exist; build one with \`jitvm image build`)),
    );
    assert.throws(
      () => storagePlan({ volumes: [volume({ hostDir: data, path: '/d' })] }),
      invalid(new RegExp(`^volume hostDir ${data} is not a directory on this host`)),
    );
    assert.throws(
      () => storagePlan({ volumes: [volume({ hostDir: join(dir, 'nodir'), path: '/d' })] }),
      invalid(/nodir is not a directory/),
    );
  });
});

describe('volume mount paths', () => {
  it('accepts absolute paths a kernel argument can carry', () => {
    for (const path of ['/data', '/mnt/a-b_c.d', '/x/..y']) {
      assert.equal(volume({ image: '/v.img', path }).path, path);
    }
  });

  it('refuses relative paths, `/`, whitespace, quotes and backslashes, saying what a mount path is', () => {
    for (const path of ['data', './data', '/', '/a b', '/a\tb', '/a"b', "/a'b", '/a\\b', '']) {
      for (const source of [{ image: '/v.img' }, { hostDir: '/d' }]) {
        assert.throws(
          () => volume({ ...source, path }),
          invalid(/^volume: path: a mount path is absolute, without spaces, quotes or backslashes$/),
          JSON.stringify(path),
        );
      }
    }
  });

  it('refuses `..` components', () => {
    for (const path of ['/a/../etc', '/..', '/data/..']) {
      assert.throws(
        () => volume({ image: '/v.img', path }),
        invalid(/path: a mount path may not contain `\.\.`/),
        path,
      );
    }
  });

  it('refuses a volume with both an image and a host directory, or neither', () => {
    assert.throws(() => volume({ image: '/v.img', hostDir: '/d', path: '/m' }), InvalidArgumentError);
    assert.throws(() => volume({ path: '/m' }), InvalidArgumentError);
  });
});
