import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rm, stat, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { it } from 'node:test';
import { parseVmConfig } from '../../src/core/config.js';
import { InvalidArgumentError, JitvmError } from '../../src/core/errors.js';
import type { VmSnapshot } from '../../src/core/hypervisor.js';
import { SnapshotRejectedError } from '../../src/snapshot/errors.js';
import { MANIFEST_FILE } from '../../src/snapshot/manifest.js';
import { SnapshotStore } from '../../src/snapshot/store.js';
import { tempDir } from '../helpers/temp.js';

const config = parseVmConfig({ kernel: '/boot/vmlinuz', initrd: '/boot/initrd', arch: 'x86_64', memoryMiB: 128 });
const QEMU = { backend: 'qemu', vmmVersion: '7.2.0' } as const;

/** Stands in for a backend's VmInstance.snapshot(dir): creates `dir` with a state and a memory file, plus `extra`. */
async function backendWrites(dir: string, extra: Record<string, Buffer> = {}): Promise<VmSnapshot> {
  await mkdir(dir, { mode: 0o700 });
  await writeFile(join(dir, 'vmstate'), randomBytes(4096));
  await writeFile(join(dir, 'memory'), randomBytes(1 << 20));
  for (const [name, bytes] of Object.entries(extra)) await writeFile(join(dir, name), bytes);
  return { dir, ...QEMU, config, files: { state: 'vmstate', memory: 'memory' } };
}

/** A store in a fresh temp dir; `clock.now` is its time. */
function newStore(t: Parameters<typeof tempDir>[0]) {
  const clock = { now: Date.now() };
  const store = new SnapshotStore(join(tempDir(t), 'snapshots'), () => clock.now);
  return { store, clock, entries: () => readdirSync(store.root).sort() };
}

const sha256 = async (path: string): Promise<string> =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

/** Makes a sealed (read-only) file writable again, as someone tampering would. */
async function writable(path: string): Promise<string> {
  await chmod(path, 0o600);
  return path;
}

function assertRejected(problem: 'corrupt' | 'incompatible', message: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof SnapshotRejectedError, String(error));
    assert.equal(error.problem, problem);
    assert.match(error.message, message);
    return true;
  };
}

it('create seals a snapshot that open verifies and hands to restore', async (t) => {
  const { store, entries } = newStore(t);
  const disk = randomBytes(3000);
  const created = await store.create('base', (dir) => backendWrites(dir, { 'disk0.qcow2': disk }));
  const dir = join(store.root, 'base');
  assert.deepEqual(entries(), ['base'], 'nothing but the snapshot is left in the store');
  assert.deepEqual(
    created.manifest.files.map(({ name, role, size }) => [name, role, size]),
    [
      ['vmstate', 'state', 4096],
      ['memory', 'memory', 1 << 20],
      ['disk0.qcow2', 'other', 3000],
    ],
  );
  for (const file of created.manifest.files) {
    assert.equal(file.sha256, await sha256(join(dir, file.name)));
    if (process.platform !== 'win32') assert.equal(statSync(join(dir, file.name)).mode & 0o777, 0o400);
  }
  assert.equal(statSync(store.root).mode & 0o777, 0o700, 'the store is private: snapshots hold guest memory');
  const opened = await store.open('base', QEMU);
  assert.deepEqual(
    { dir: opened.dir, backend: opened.backend, vmmVersion: opened.vmmVersion, files: opened.files },
    { dir, backend: 'qemu', vmmVersion: '7.2.0', files: { state: 'vmstate', memory: 'memory' } },
  );
  assert.deepEqual(opened.config, config);
  assert.deepEqual(opened, created);
  assert.equal(opened.manifest.arch, 'x86_64');
  assert.match(opened.manifest.jitvmVersion, /^\d+\.\d+\.\d+/);
  assert.deepEqual(await store.inspect('base'), created);
  assert.deepEqual(
    (await store.list()).map((entry) => [entry.name, entry.problem]),
    [['base', undefined]],
  );
});

it('prepare gives a private staging dir for the backend to fill; seal publishes it and removes the rest', async (t) => {
  const { store, entries } = newStore(t);
  const staging = await store.prepare('s1');
  if (process.platform !== 'win32') assert.equal(statSync(dirname(staging.dir)).mode & 0o777, 0o700);
  assert.throws(() => statSync(staging.dir), /ENOENT/, 'VmInstance.snapshot(dir) wants a dir that does not exist');
  assert.deepEqual(await store.list(), [], 'a staged snapshot is not listed');
  const sealed = await store.seal(staging, await backendWrites(staging.dir));
  assert.equal(sealed.dir, join(store.root, 's1'));
  assert.deepEqual(entries(), ['s1']);
  await assert.rejects(store.prepare('s1'), /a snapshot named "s1" already exists .*jitvm snapshot rm s1/);
});

it(
  'seal keeps the roles asked for owner-writable, and refuses a store others can read',
  { skip: process.platform === 'win32' && 'no POSIX modes on Windows' },
  async (t) => {
    const { store } = newStore(t);
    const sealed = await store.create('qemu', backendWrites, { ownerWritable: ['memory'] });
    const mode = (name: string): number => statSync(join(sealed.dir, name)).mode & 0o777;
    assert.deepEqual([mode('memory'), mode('vmstate'), mode(MANIFEST_FILE)], [0o600, 0o400, 0o400]);
    await store.open('qemu', QEMU);
    await chmod(store.root, 0o755);
    const shared = /store .* must be a directory owned by you with mode 0700 .*set JITVM_SNAPSHOT_DIR elsewhere/;
    await assert.rejects(store.prepare('other'), shared);
    await assert.rejects(store.open('qemu', QEMU), shared);
  },
);

/** What each kind of tampering does to a sealed snapshot dir, and the refusal it must get. */
const tampering: Record<string, { tamper: (dir: string) => Promise<void>; refusal: RegExp }> = {
  'one flipped byte': {
    tamper: async (dir) => {
      const path = await writable(join(dir, 'memory'));
      const bytes = await readFile(path);
      bytes[12345] = bytes[12345]! ^ 1;
      await writeFile(path, bytes);
    },
    refusal: /memory whose sha256 differs from its manifest's \(it was modified\)/,
  },
  'a truncated file': {
    tamper: async (dir) => truncate(await writable(join(dir, 'memory')), 1000),
    refusal: /memory of 1000 bytes where its manifest records 1048576 \(truncated or replaced\)/,
  },
  'an extra file': {
    tamper: (dir) => writeFile(join(dir, 'stray'), 'x'),
    refusal: /holds files its manifest does not list \(stray\)/,
  },
  'a missing file': {
    tamper: (dir) => rm(join(dir, 'vmstate')),
    refusal: /is missing files its manifest lists \(vmstate\)/,
  },
  'a file replaced by a link': {
    tamper: async (dir) => {
      await writeFile(join(dir, '..', 'elsewhere'), await readFile(join(dir, 'vmstate')));
      await rm(join(dir, 'vmstate'));
      await symlink(join(dir, '..', 'elsewhere'), join(dir, 'vmstate'));
    },
    refusal: /has a vmstate that is not a regular file/,
  },
  'a changed manifest field': {
    tamper: async (dir) => {
      const path = await writable(join(dir, MANIFEST_FILE));
      await writeFile(path, (await readFile(path, 'utf8')).replace('"memoryMiB": 128', '"memoryMiB": 4096'));
    },
    refusal: /manifestSha256 does not match its fields \(it was edited\).*remove it \(`jitvm snapshot rm base`\)/,
  },
  'a missing manifest': {
    tamper: (dir) => rm(join(dir, MANIFEST_FILE)),
    refusal: /has no readable manifest\.json/,
  },
};
for (const [what, { tamper, refusal }] of Object.entries(tampering)) {
  it(`open refuses a snapshot with ${what}`, async (t) => {
    const { store } = newStore(t);
    await store.create('base', backendWrites);
    await tamper(join(store.root, 'base'));
    await assert.rejects(store.open('base', QEMU), assertRejected('corrupt', refusal));
    assert.equal((await store.list()).length, 1, 'a refused snapshot is still listed, so it can be removed');
  });
}

it('a second full open skips re-hashing unchanged files, yet still catches a byte changed since', async (t) => {
  const { store } = newStore(t);
  await store.create('base', backendWrites);
  await store.open('base', QEMU);
  await store.open('base', QEMU);
  const memory = join(store.root, 'base', 'memory');
  const { mtime } = await stat(memory);
  await tampering['one flipped byte']!.tamper(join(store.root, 'base'));
  await utimes(memory, mtime, mtime); // an mtime put back does not hide the change: ctime moved on
  await assert.rejects(store.open('base', QEMU), assertRejected('corrupt', /sha256 differs/));
});

it("verify: 'size' checks names and sizes but not content (the documented trade-off)", async (t) => {
  const { store } = newStore(t);
  await store.create('base', backendWrites);
  await tampering['one flipped byte']!.tamper(join(store.root, 'base'));
  assert.equal((await store.open('base', QEMU, { verify: 'size' })).name, 'base');
  await assert.rejects(store.inspect('base', { verify: 'full' }), assertRejected('corrupt', /sha256 differs/));
  await tampering['a truncated file']!.tamper(join(store.root, 'base'));
  await assert.rejects(store.open('base', QEMU, { verify: 'size' }), assertRejected('corrupt', /1000 bytes/));
});

it('open refuses a snapshot of another format version, backend or VMM version', async (t) => {
  const { store } = newStore(t);
  await store.create('base', backendWrites);
  const incompatible = (message: RegExp) => assertRejected('incompatible', message);
  await assert.rejects(
    store.open('base', { backend: 'firecracker', vmmVersion: '7.2.0' }),
    incompatible(/taken with the qemu backend, not firecracker/),
  );
  await assert.rejects(
    store.open('base', { backend: 'qemu', vmmVersion: '8.0.0' }),
    incompatible(/taken by qemu 7\.2\.0 and this host runs 8\.0\.0: .*take the snapshot again/),
  );
  await assert.rejects(store.open('base', { backend: 'qemu', vmmVersion: undefined }), incompatible(/unknown version/));
  const manifest = await writable(join(store.root, 'base', MANIFEST_FILE));
  await writeFile(manifest, (await readFile(manifest, 'utf8')).replace('"formatVersion": 1', '"formatVersion": 7'));
  await assert.rejects(store.open('base', QEMU), incompatible(/format version 7; this jitvm reads version 1/));
});

it('refuses invalid names before touching the disk, and reports unknown ones as not_found', async (t) => {
  const { store } = newStore(t);
  for (const name of ['', '.hidden', '-x', 'a/b', '../up', 'a b', 'é', 'x'.repeat(65)]) {
    await assert.rejects(store.prepare(name), InvalidArgumentError, name);
    await assert.rejects(store.open(name, QEMU), /invalid snapshot name/);
    await assert.rejects(store.remove(name), InvalidArgumentError);
  }
  for (const name of ['a', 'A.b-c_1', '9'.repeat(64)]) await store.discard(await store.prepare(name));
  await assert.rejects(store.open('nope', QEMU), (error: unknown) => {
    assert.ok(error instanceof JitvmError && error.code === 'not_found');
    return /no snapshot named "nope" .*jitvm snapshot ls/.test(error.message);
  });
  await assert.rejects(store.remove('nope'), /no snapshot named "nope"/);
  assert.deepEqual(readdirSync(store.root), [], 'discarded staging dirs are gone');
});

it('two seals of one name: one wins, the other is refused, nothing half-written is left', async (t) => {
  const { store, entries } = newStore(t);
  const [a, b] = await Promise.all([store.prepare('same'), store.prepare('same')]);
  const written = await Promise.all([backendWrites(a.dir), backendWrites(b.dir)]);
  const memories = await Promise.all(written.map((snapshot) => sha256(join(snapshot.dir, 'memory'))));
  const results = await Promise.allSettled([store.seal(a, written[0]!), store.seal(b, written[1]!)]);
  const won = results.filter((result) => result.status === 'fulfilled');
  const lost = results.filter((result) => result.status === 'rejected');
  assert.equal(won.length, 1);
  assert.equal(lost.length, 1);
  const error = lost[0]!.reason as JitvmError;
  assert.equal(error.code, 'invalid_argument');
  assert.match(error.message, /already exists/);
  assert.deepEqual(entries(), ['same']);
  const opened = await store.open('same', QEMU);
  assert.ok(memories.includes(opened.manifest.files[1]!.sha256));
});

it('create and seal leave nothing behind when the backend or the snapshot fails', async (t) => {
  const { store, entries } = newStore(t);
  await assert.rejects(
    store.create('x', async (dir) => {
      await backendWrites(dir);
      throw new Error('VMM died');
    }),
    /VMM died/,
  );
  await assert.rejects(
    store.create('x', async (dir) => ({ ...(await backendWrites(dir)), files: { state: 'vmstate', memory: 'ram' } })),
    /memory file ram is not in/,
  );
  await assert.rejects(
    store.create('x', async (dir) => {
      const snapshot = await backendWrites(dir);
      await symlink('/etc/passwd', join(dir, 'passwd'));
      return snapshot;
    }),
    /passwd is not a regular file/,
  );
  await assert.rejects(
    store.create('x', (dir) => backendWrites(join(dir, '..', 'y'))),
    /not its staging dir/,
  );
  await assert.rejects(
    store.create('x', async (dir) => ({ ...(await backendWrites(dir)), vmmVersion: 'v'.repeat(200) })),
  );
  await assert.rejects(
    store.seal({ name: 'x', dir: tempDir(t) }, await backendWrites(join(tempDir(t), 'y'))),
    /use prepare/,
  );
  assert.deepEqual(entries(), []);
});

it('remove renames the snapshot aside, then deletes it', async (t) => {
  const { store, entries } = newStore(t);
  await store.create('base', backendWrites);
  await store.remove('base');
  assert.deepEqual(entries(), []);
  await assert.rejects(
    store.remove('base'),
    (error: unknown) => error instanceof JitvmError && error.code === 'not_found',
  );
});

it('gc removes snapshots by age, then the oldest by size, and lists unreadable ones by mtime', async (t) => {
  const { store, clock, entries } = newStore(t);
  const start = clock.now;
  for (const [i, name] of ['a', 'b', 'c', 'd'].entries()) {
    clock.now = start + i * 3_600_000;
    await store.create(name, backendWrites);
  }
  await mkdir(join(store.root, 'broken'));
  const dayBefore = new Date(start - 24 * 3_600_000);
  await utimes(join(store.root, 'broken'), dayBefore, dayBefore);
  const listed = await store.list();
  assert.deepEqual(
    listed.map((entry) => entry.name),
    ['broken', 'a', 'b', 'c', 'd'],
    'oldest first',
  );
  assert.match(listed[0]!.problem ?? '', /no readable manifest\.json/);
  assert.equal(listed[0]!.createdAt, dayBefore.toISOString());
  clock.now = start + 3 * 3_600_000 + 1;
  assert.deepEqual(
    (await store.gc({ maxAgeMs: 2.5 * 3_600_000 })).map((entry) => entry.name),
    ['broken', 'a'],
  );
  assert.deepEqual(entries(), ['b', 'c', 'd']);
  const one = listed[1]!.bytes;
  assert.ok(one > 1 << 20, `a snapshot's bytes count its files, manifest included: ${one}`);
  assert.deepEqual(
    (await store.gc({ maxTotalBytes: one + 1 })).map((entry) => entry.name),
    ['b', 'c'],
  );
  assert.deepEqual(entries(), ['d']);
  await store.open('d', QEMU);
});
