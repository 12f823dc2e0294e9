import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, it } from 'node:test';

import { InvalidArgumentError, JitvmError } from '../../src/core/errors.js';
import { fromOci, readRootfsConfig } from '../../src/image/rootfs/index.js';
import { tempDir } from '../helpers/temp.js';
import {
  MTIME,
  type TarEntry,
  type TestImage,
  digestOf,
  dockerArchive,
  ext4List,
  ext4Read,
  ext4Stat,
  leftovers,
  ociArchive,
  tarBytes,
} from '../helpers/rootfs-helpers.js';

const skip = process.getuid?.() === 0 ? false : 'building from a container image needs root';

/** A base layer: a usrmerge-style /lib symlink, an executable with a hard link, a user's home, a setuid binary. */
const BASE: TarEntry[] = [
  { path: 'etc/' },
  { path: 'etc/hostname', data: 'base\n' },
  { path: 'usr/' },
  { path: 'usr/lib/' },
  { path: 'lib', type: 'SymbolicLink', linkpath: 'usr/lib' },
  { path: 'usr/bin/' },
  { path: 'usr/bin/tool', data: '#!/bin/sh\necho tool\n', mode: 0o755 },
  { path: 'usr/bin/tool-again', type: 'Link', linkpath: 'usr/bin/tool' },
  { path: 'usr/bin/alias', type: 'SymbolicLink', linkpath: 'tool' },
  { path: 'usr/bin/su', data: 'su', mode: 0o4755 },
  { path: 'home/user/', uid: 1000, gid: 1000, mode: 0o750 },
  { path: 'home/user/notes.txt', data: 'mine\n', uid: 1000, gid: 1001, mode: 0o600 },
  { path: 'opt/gone.txt', data: 'deleted by layer 2' },
  { path: 'var/cache/a', data: 'a' },
  { path: 'var/cache/sub/b', data: 'b' },
];

/** Whiteouts and an opaque directory whose markers come first, as the OCI spec recommends; a device node. */
const MIDDLE: TarEntry[] = [
  { path: 'opt/.wh.gone.txt' },
  { path: 'var/cache/' },
  { path: 'var/cache/.wh..wh..opq' },
  { path: 'var/cache/new', data: 'new' },
  { path: 'var/cache/keep/old', data: 'old' },
  { path: 'etc/hostname', data: 'layer2\n' },
  { path: 'lib/libx.so', data: 'through the /lib symlink' },
  { path: 'dev/' },
  { path: 'dev/null', type: 'CharacterDevice', devmaj: 1, devmin: 3, mode: 0o666 },
  { path: 'etc-link', type: 'SymbolicLink', linkpath: '/etc' },
];

/**
 * An opaque marker after the layer's own entries (which it keeps, in subdirectories too); a whiteout of a file
 * of the same layer (which it must not touch); a file through an absolute symlink; a whiteout of a hard link.
 */
const TOP: TarEntry[] = [
  { path: 'var/cache/late', data: 'late' },
  { path: 'var/cache/keep/fresh', data: 'fresh' },
  { path: 'var/cache/.wh..wh..opq' },
  { path: 'srv/kept', data: 'kept' },
  { path: 'srv/.wh.kept' },
  { path: 'etc-link/from-link', data: 'inside the image' },
  { path: 'usr/bin/.wh.tool' },
];

const RUNTIME = { Env: ['PATH=/usr/bin', 'LANG=C.UTF-8'], WorkingDir: '/srv', Cmd: ['python3'], User: '1000:1000' };

function image(overrides: Partial<TestImage> = {}): TestImage {
  return {
    architecture: 'amd64',
    layers: [tarBytes(BASE), tarBytes(MIDDLE), tarBytes(TOP)],
    runtime: RUNTIME,
    name: 'test/app:1',
    ...overrides,
  };
}

function writeArchive(dir: string, name: string, bytes: Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

/** The checks every full build must pass: the layers' union with whiteouts, opaque dirs and metadata applied. */
async function assertLayersApplied(output: string): Promise<void> {
  assert.equal(await ext4Read(output, '/etc/hostname'), 'layer2\n');
  assert.equal(await ext4Stat(output, '/opt/gone.txt'), undefined, 'whited out');
  assert.deepEqual(await ext4List(output, '/opt'), []);
  assert.deepEqual(await ext4List(output, '/var/cache'), ['keep', 'late'], 'the last opaque marker hides layers 1, 2');
  assert.deepEqual(await ext4List(output, '/var/cache/keep'), ['fresh']);
  assert.equal(await ext4Read(output, '/srv/kept'), 'kept', 'a whiteout hides lower layers only');

  assert.equal(await ext4Stat(output, '/usr/bin/tool'), undefined);
  const again = await ext4Stat(output, '/usr/bin/tool-again');
  assert.deepEqual([again?.mode, again?.links], [0o755, 1], 'the hard link outlives the whited-out name');
  assert.equal(await ext4Read(output, '/usr/bin/tool-again'), '#!/bin/sh\necho tool\n');
  assert.equal((await ext4Stat(output, '/usr/bin/alias'))?.target, 'tool');
  assert.equal((await ext4Stat(output, '/usr/bin/su'))?.mode, 0o4755);

  const home = await ext4Stat(output, '/home/user');
  assert.deepEqual([home?.uid, home?.gid, home?.mode], [1000, 1000, 0o750]);
  const mtime = MTIME.getTime() / 1000;
  assert.equal(home?.mtime, mtime, "a directory keeps its entry's mtime, though files were written in it after");
  assert.equal((await ext4Stat(output, '/usr/bin/su'))?.mtime, mtime);
  const notes = await ext4Stat(output, '/home/user/notes.txt');
  assert.deepEqual([notes?.uid, notes?.gid, notes?.mode], [1000, 1001, 0o600]);

  assert.equal((await ext4Stat(output, '/lib'))?.target, 'usr/lib');
  assert.equal(await ext4Read(output, '/usr/lib/libx.so'), 'through the /lib symlink');
  assert.equal(await ext4Read(output, '/etc/from-link'), 'inside the image');
  assert.ok(!existsSync('/etc/from-link'), 'an absolute symlink in the image never reaches the host');
  const devNull = await ext4Stat(output, '/dev/null');
  assert.deepEqual([devNull?.type, devNull?.device, devNull?.mode], ['character special', '1:3', 0o666]);
}

describe('fromOci', { skip }, () => {
  it('builds an OCI layout with gzip layers, whiteouts and opaque dirs, and records the config', async (t) => {
    const dir = tempDir(t);
    const tar = writeArchive(dir, 'app.tar', ociArchive([image()]));
    const output = join(dir, 'out', 'app.ext4');
    const built = await fromOci(tar, { output, arch: 'x86_64' });

    assert.equal(built.path, output);
    await assertLayersApplied(output);
    assert.deepEqual(leftovers(join(dir, 'out')), ['app.ext4', 'app.ext4.json'], 'staging is removed');
    const config = await readRootfsConfig(output);
    assert.deepEqual(config, built.config);
    assert.deepEqual(config?.env, { PATH: '/usr/bin', LANG: 'C.UTF-8' });
    assert.equal(config?.workingDir, '/srv');
    assert.deepEqual(config?.cmd, ['python3']);
    assert.equal(config?.user, '1000:1000');
    assert.equal(config?.entrypoint, undefined);
    assert.deepEqual(config?.source.tags, ['test/app:1']);
    assert.equal(config?.source.format, 'oci-layout');
    assert.match(config?.source.manifestDigest ?? '', /^sha256:[0-9a-f]{64}$/);
  });

  it('builds a docker save archive of uncompressed layers the same way', async (t) => {
    const dir = tempDir(t);
    const tar = writeArchive(dir, 'app.tar', dockerArchive(image({ compression: 'none' })));
    const output = join(dir, 'app.ext4');
    const built = await fromOci(tar, { output, arch: 'x86_64' });
    await assertLayersApplied(output);
    assert.equal(built.config?.source.format, 'docker-archive');
    assert.deepEqual(built.config?.source.tags, ['test/app:1']);
  });

  it('takes the image for the requested architecture from a multi-platform index', async (t) => {
    const dir = tempDir(t);
    const flavour = (architecture: string): TestImage => ({
      architecture,
      layers: [tarBytes([{ path: 'etc/arch', data: architecture }])],
    });
    const tar = writeArchive(dir, 'multi.tar', ociArchive([flavour('amd64'), flavour('arm64')], { nested: true }));
    for (const [arch, expected] of [
      ['aarch64', 'arm64'],
      ['x86_64', 'amd64'],
    ] as const) {
      const output = join(dir, `${arch}.ext4`);
      await fromOci(tar, { output, arch });
      assert.equal(await ext4Read(output, '/etc/arch'), expected);
    }
    const undeclared = writeArchive(dir, 'plain.tar', ociArchive([flavour('arm64')], { declarePlatform: false }));
    await fromOci(undeclared, { output: join(dir, 'plain.ext4'), arch: 'aarch64' });
    assert.equal(await ext4Read(join(dir, 'plain.ext4'), '/etc/arch'), 'arm64', 'the config names the platform');
  });

  it('refuses an archive without an image for the architecture, naming the platforms it has', async (t) => {
    const dir = tempDir(t);
    const out = join(dir, 'out');
    mkdirSync(out);
    const arm = writeArchive(dir, 'arm.tar', ociArchive([image({ architecture: 'arm64' })], { nested: true }));
    await assert.rejects(fromOci(arm, { output: join(out, 'x.ext4'), arch: 'x86_64' }), (error: Error) => {
      assert.ok(error instanceof JitvmError && error.code === 'not_found');
      assert.match(error.message, /has no linux\/amd64 image \(it has linux\/arm64\)/);
      return true;
    });
    const docker = writeArchive(dir, 'd.tar', dockerArchive(image({ architecture: 'arm64' })));
    await assert.rejects(fromOci(docker, { output: join(out, 'x.ext4'), arch: 'x86_64' }), /no linux\/amd64 image/);
    assert.deepEqual(leftovers(out), []);
  });

  it('refuses a layer that does not match its digest, or a docker layer its diff id', async (t) => {
    const dir = tempDir(t);
    const out = join(dir, 'out');
    mkdirSync(out);
    const layer = tarBytes([{ path: 'etc/motd', data: 'original' }]);
    const flipped = Buffer.from(layer);
    flipped[512] = 'O'.charCodeAt(0);
    const oci = ociArchive([{ architecture: 'amd64', layers: [layer], compression: 'none' }], {
      tamper: (files) => files.set(`blobs/sha256/${digestOf(layer).slice(7)}`, flipped),
    });
    await assert.rejects(
      fromOci(writeArchive(dir, 'oci.tar', oci), { output: join(out, 'x.ext4'), arch: 'x86_64' }),
      (error: Error) => {
        assert.ok(error instanceof InvalidArgumentError);
        assert.match(error.message, /layer 1\/1 \(sha256:[0-9a-f]+\) of .*: its digest is sha256:[0-9a-f]+, not the/);
        return true;
      },
    );

    const longer = ociArchive([{ architecture: 'amd64', layers: [layer], compression: 'none' }], {
      tamper: (files) => files.set(`blobs/sha256/${digestOf(layer).slice(7)}`, Buffer.concat([layer, layer])),
    });
    await assert.rejects(
      fromOci(writeArchive(dir, 'longer.tar', longer), { output: join(out, 'x.ext4'), arch: 'x86_64' }),
      /the blob sha256:[0-9a-f]+ is 4096 bytes, not the 2048 its manifest says/,
    );

    const docker = dockerArchive({ architecture: 'amd64', layers: [layer], diffIds: [digestOf(flipped)] });
    await assert.rejects(
      fromOci(writeArchive(dir, 'docker.tar', docker), { output: join(out, 'x.ext4'), arch: 'x86_64' }),
      /uncompressed digest \(diff id\) is sha256:[0-9a-f]+, not the/,
    );
    assert.deepEqual(leftovers(out), [], 'a refused build leaves no staging or image behind');
  });

  for (const [what, layers] of [
    ['a path with ..', [[{ path: 'etc/../../escaped', data: 'x' }]]],
    ['an absolute path', [[{ path: '/escaped', data: 'x' }]]],
    ['a hard link out of the image', [[{ path: 'pw', type: 'Link', linkpath: '../../../etc/passwd' }]]],
    [
      'a symlinked parent that leads out',
      [[{ path: 'up', type: 'SymbolicLink', linkpath: '../../..' }], [{ path: 'up/escaped', data: 'x' }]],
    ],
    ['a whiteout of ..', [[{ path: 'etc/.wh...' }]]],
  ] as [string, TarEntry[][]][]) {
    it(`refuses ${what} and writes nothing outside the image`, async (t) => {
      const dir = tempDir(t);
      const out = join(dir, 'a', 'b', 'out');
      const tar = writeArchive(dir, 'evil.tar', ociArchive([{ architecture: 'amd64', layers: layers.map(tarBytes) }]));
      await assert.rejects(fromOci(tar, { output: join(out, 'x.ext4'), arch: 'x86_64' }), (error: Error) => {
        assert.ok(error instanceof InvalidArgumentError, String(error));
        assert.match(error.message, /climbs out of the image|lead out of the image|malformed/);
        return true;
      });
      assert.deepEqual(leftovers(out), []);
      assert.deepEqual(leftovers(dir).sort(), ['a', 'evil.tar']);
      assert.ok(!existsSync('/escaped'));
    });
  }

  it('refuses zstd layers, naming the media type, and a size too small for the image', async (t) => {
    const dir = tempDir(t);
    const zstd = image({ compression: 'none', mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' });
    const tar = writeArchive(dir, 'zstd.tar', ociArchive([zstd]));
    await assert.rejects(fromOci(tar, { output: join(dir, 'z.ext4'), arch: 'x86_64' }), (error: Error) => {
      assert.ok(error instanceof JitvmError && error.code === 'unsupported');
      assert.match(error.message, /application\/vnd\.oci\.image\.layer\.v1\.tar\+zstd/);
      return true;
    });
    const plain = writeArchive(dir, 'plain.tar', ociArchive([image()]));
    await assert.rejects(
      fromOci(plain, { output: join(dir, 'small.ext4'), arch: 'x86_64', sizeMiB: 1 }),
      /a 1 MiB image is too small for the x86_64 image in .*plain\.tar: it needs at least \d+ MiB/,
    );
    assert.deepEqual(leftovers(dir).sort(), ['plain.tar', 'zstd.tar']);
  });

  it('takes empty layers, and refuses a corrupt or truncated one', async (t) => {
    const dir = tempDir(t);
    const empty = Buffer.alloc(1024);
    const content = tarBytes([{ path: 'etc/motd', data: 'x'.repeat(2000) }]);
    const ok = dockerArchive({ architecture: 'amd64', layers: [empty, content, Buffer.alloc(0)], compression: 'gzip' });
    await fromOci(writeArchive(dir, 'ok.tar', ok), { output: join(dir, 'ok.ext4'), arch: 'x86_64' });
    assert.equal(await ext4Read(join(dir, 'ok.ext4'), '/etc/motd'), 'x'.repeat(2000));

    const corrupt = gzipSync(content);
    corrupt.fill(0xaa, 20, 40);
    const cases: [string, TestImage, RegExp][] = [
      [
        'corrupt',
        { architecture: 'amd64', layers: [corrupt], diffIds: [digestOf(content)] },
        /layer 1\/1 \(0\/layer\.tar\) of .* is not a valid gzip tar/,
      ],
      [
        'truncated',
        { architecture: 'amd64', layers: [content.subarray(0, 1536)] },
        /is not a valid tar \(TAR_BAD_ARCHIVE: Truncated input/,
      ],
    ];
    for (const [name, broken, message] of cases) {
      const tar = writeArchive(dir, `${name}.tar`, dockerArchive({ ...broken, compression: 'none' }));
      await assert.rejects(fromOci(tar, { output: join(dir, 'x.ext4'), arch: 'x86_64' }), message);
    }
    assert.deepEqual(leftovers(dir).sort(), ['corrupt.tar', 'ok.ext4', 'ok.ext4.json', 'ok.tar', 'truncated.tar']);
  });

  it('refuses what is not an image tarball', async (t) => {
    const dir = tempDir(t);
    const notTar = writeArchive(dir, 'junk.tar', Buffer.from('not a tar at all'.repeat(64)));
    await assert.rejects(fromOci(notTar, { output: join(dir, 'x.ext4') }), /not a usable image tarball/);
    const empty = writeArchive(dir, 'empty.tar', tarBytes([{ path: 'README', data: 'hi' }]));
    await assert.rejects(fromOci(empty, { output: join(dir, 'x.ext4') }), /neither an OCI image layout/);
    await assert.rejects(fromOci(join(dir, 'missing.tar'), { output: join(dir, 'x.ext4') }), /is not a file/);
  });
});
