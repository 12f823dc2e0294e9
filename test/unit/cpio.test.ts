import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstat, mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { CpioWriter } from '../../src/image/cpio.js';

interface ParsedEntry {
  name: string;
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  data: Buffer;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/** A strict newc reader: checks magic, hex fields, zeroed 4-byte padding, the trailer and the end of the archive. */
function parseNewc(archive: Buffer): ParsedEntry[] {
  const entries: ParsedEntry[] = [];
  let at = 0;
  for (;;) {
    assert.equal(at % 4, 0, 'header is 4-byte aligned');
    const header = archive.toString('ascii', at, at + 110);
    assert.match(header, /^070701[0-9a-f]{104}$/, `header at ${at}`);
    const field = (i: number): number => parseInt(header.slice(6 + i * 8, 14 + i * 8), 16);
    const [ino, mode, uid, gid, nlink, mtime, filesize] = [0, 1, 2, 3, 4, 5, 6].map(field) as number[];
    assert.equal(field(7) + field(8) + field(9) + field(10), 0, 'device numbers are 0');
    assert.equal(field(12), 0, 'check is 0');
    const namesize = field(11);
    const nameEnd = at + 110 + namesize;
    assert.equal(archive[nameEnd - 1], 0, 'name is NUL-terminated');
    const name = archive.toString('utf8', at + 110, nameEnd - 1);
    const dataStart = align(nameEnd);
    assertZeros(archive, nameEnd, dataStart);
    assert.equal(dataStart % 4, 0);
    const data = archive.subarray(dataStart, dataStart + filesize!);
    assert.equal(data.length, filesize, 'data is complete');
    const next = align(dataStart + filesize!);
    assertZeros(archive, dataStart + filesize!, next);
    at = next;
    if (name === 'TRAILER!!!') {
      assert.equal(at, archive.length, 'nothing follows the trailer');
      return entries;
    }
    entries.push({ name, ino: ino!, mode: mode!, uid: uid!, gid: gid!, nlink: nlink!, mtime: mtime!, data });
  }
}

function align(n: number): number {
  return (n + 3) & ~3;
}

function assertZeros(buf: Buffer, from: number, to: number): void {
  assert.ok(to <= buf.length, 'padding inside the archive');
  for (let i = from; i < to; i++) assert.equal(buf[i], 0, `padding byte ${i} is 0`);
}

async function withTemp<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'jitvm-cpio-test-'));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('CpioWriter', () => {
  it('lays out headers, names and data with newc padding and a trailer', () => {
    const w = new CpioWriter();
    w.addFile('/etc/hostname', Buffer.from('jitvm\n'));
    w.addFile('init', Buffer.from([1, 2, 3]), 0o755);
    w.addSymlink('bin/sh', 'busybox');
    w.addDirectory('tmp', 0o1777);
    const entries = parseNewc(w.finish());
    assert.deepEqual(
      entries.map((e) => [e.name, e.mode.toString(8), e.nlink]),
      [
        ['etc', '40755', 2],
        ['etc/hostname', '100644', 1],
        ['init', '100755', 1],
        ['bin', '40755', 2],
        ['bin/sh', '120777', 1],
        ['tmp', '41777', 2],
      ],
    );
    assert.deepEqual(
      entries.map((e) => e.ino),
      [1, 2, 3, 4, 5, 6],
    );
    assert.ok(entries.every((e) => e.uid === 0 && e.gid === 0 && e.mtime === 0));
    assert.equal(entries[1]!.data.toString(), 'jitvm\n');
    assert.equal(entries[4]!.data.toString(), 'busybox');
  });

  it('is reproducible', () => {
    const build = (): Buffer => {
      const w = new CpioWriter();
      w.addFile('a/b/c', Buffer.from('x'));
      return w.finish();
    };
    assert.deepEqual(build(), build());
  });

  it('normalizes paths and rejects bad ones', () => {
    const w = new CpioWriter();
    w.addFile('//usr/./lib//x', Buffer.alloc(0));
    assert.deepEqual(
      parseNewc(w.finish()).map((e) => e.name),
      ['usr', 'usr/lib', 'usr/lib/x'],
    );
    for (const bad of ['', '/', '.', 'a/../b', '..', 'a\0b', 'TRAILER!!!', 'x'.repeat(4096)]) {
      assert.throws(() => w.addFile(bad, Buffer.alloc(0)), { code: 'invalid_argument' }, JSON.stringify(bad));
    }
  });

  it('rejects duplicates, files used as parents and bad modes', () => {
    const w = new CpioWriter();
    w.addFile('f', Buffer.alloc(0));
    assert.throws(() => w.addFile('f', Buffer.alloc(0)), /already/);
    assert.throws(() => w.addDirectory('f'), /not a directory/);
    assert.throws(() => w.addFile('f/g', Buffer.alloc(0)), /not a directory/);
    assert.throws(() => w.addFile('m', Buffer.alloc(0), 0o10000), /permission/);
    assert.throws(() => w.addSymlink('l', ''), /symlink/);
    w.addDirectory('d');
    w.addDirectory('d', 0o700);
    assert.equal(parseNewc(w.finish()).find((e) => e.name === 'd')!.mode, S_IFDIR | 0o700);
  });

  it('round-trips through the host cpio tool', async () => {
    const w = new CpioWriter();
    const big = Buffer.alloc(70_001, 7);
    w.addFile('bin/tool', big, 0o755);
    w.addFile('etc/odd', Buffer.from('abc'), 0o600);
    w.addFile('etc/empty', Buffer.alloc(0));
    w.addFile('tmp/päth with space', Buffer.from('ü'));
    w.addSymlink('bin/sh', 'tool');
    w.addSymlink('lib64', '/usr/lib');
    w.addDirectory('tmp', 0o1777);
    w.addDirectory('var/empty', 0o700);
    await withTemp(async (dir) => {
      const result = spawnSync('cpio', ['-i', '-d', '-m', '--quiet', '--no-absolute-filenames'], {
        cwd: dir,
        input: w.finish(),
      });
      assert.equal(result.status, 0, result.stderr.toString());
      assert.deepEqual(await readFile(join(dir, 'bin/tool')), big);
      assert.equal(await readFile(join(dir, 'etc/odd'), 'utf8'), 'abc');
      assert.equal((await readFile(join(dir, 'etc/empty'))).length, 0);
      assert.equal(await readFile(join(dir, 'tmp/päth with space'), 'utf8'), 'ü');
      assert.equal(await readlink(join(dir, 'bin/sh')), 'tool');
      assert.equal(await readlink(join(dir, 'lib64')), '/usr/lib');
      const mode = async (p: string): Promise<number> => (await lstat(join(dir, p))).mode;
      assert.equal(await mode('bin/tool'), S_IFREG | 0o755);
      assert.equal(await mode('etc/odd'), S_IFREG | 0o600);
      assert.equal(await mode('tmp'), S_IFDIR | 0o1777);
      assert.equal(await mode('var/empty'), S_IFDIR | 0o700);
      assert.equal((await mode('bin/sh')) & S_IFMT, S_IFLNK);
      assert.equal((await lstat(join(dir, 'etc/odd'))).mtimeMs, 0);
    });
  });

  it('round-trips random trees (property)', () => {
    const segment = fc.stringMatching(/^[a-z0-9_-]{1,4}$/);
    const op = fc.record({
      path: fc.array(segment, { minLength: 1, maxLength: 4 }),
      kind: fc.constantFrom('file', 'dir', 'symlink'),
      data: fc.uint8Array({ maxLength: 9 }),
      mode: fc.integer({ min: 0, max: 0o7777 }),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const w = new CpioWriter();
        const model = new Map<string, { mode: number; data: Buffer }>();
        for (const { path, kind, data, mode } of ops) {
          const name = path.join('/');
          const parents = path.slice(0, -1).map((_, i) => path.slice(0, i + 1).join('/'));
          const parentsOk = parents.every((p) => !model.has(p) || (model.get(p)!.mode & S_IFMT) === S_IFDIR);
          const existing = model.get(name);
          const isDir = existing !== undefined && (existing.mode & S_IFMT) === S_IFDIR;
          const valid = parentsOk && (existing === undefined || (kind === 'dir' && isDir));
          const add = (): void => {
            if (kind === 'file') w.addFile(name, Buffer.from(data), mode);
            else if (kind === 'dir') w.addDirectory(name, mode);
            else w.addSymlink(name, `t${data.length}`);
          };
          if (!valid) {
            assert.throws(add);
            continue;
          }
          add();
          for (const p of parents) if (!model.has(p)) model.set(p, { mode: S_IFDIR | 0o755, data: Buffer.alloc(0) });
          if (kind === 'file') model.set(name, { mode: S_IFREG | mode, data: Buffer.from(data) });
          else if (kind === 'dir') model.set(name, { mode: S_IFDIR | mode, data: Buffer.alloc(0) });
          else model.set(name, { mode: S_IFLNK | 0o777, data: Buffer.from(`t${data.length}`) });
        }
        const entries = parseNewc(w.finish());
        assert.deepEqual(new Map(entries.map((e) => [e.name, { mode: e.mode, data: Buffer.from(e.data) }])), model);
        const seen = new Set<string>();
        for (const e of entries) {
          const parent = e.name.slice(0, Math.max(0, e.name.lastIndexOf('/')));
          assert.ok(parent === '' || seen.has(parent), `${parent} precedes ${e.name}`);
          seen.add(e.name);
        }
        assert.equal(new Set(entries.map((e) => e.ino)).size, entries.length, 'inodes are unique');
      }),
      { numRuns: 300 },
    );
  });
});
