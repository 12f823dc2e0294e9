import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';

import { CancelledError, HostToolMissingError, InvalidArgumentError } from '../../src/core/errors.js';
import { findOnPath } from '../../src/core/host-tools.js';
import { PT_LOAD, parseElf64 } from '../../src/image/elf.js';
import { ImageBuildError } from '../../src/image/errors.js';
import { extractVmlinux, vmlinuxCacheDir, vmlinuxFor } from '../../src/image/vmlinux.js';
import { tempDir, withEnv } from '../helpers/temp.js';

const ENTRY = 0x1000000n;

/** A minimal x86-64 ET_EXEC: header, one PT_LOAD at ENTRY holding `body`. Override fields to break it. */
function synthesizeKernelElf(body: Buffer, fields: { machine?: number; type?: number; entry?: bigint } = {}): Buffer {
  const ehdr = Buffer.alloc(64);
  ehdr.write('\x7fELF', 0, 'latin1');
  ehdr[4] = 2; // ELFCLASS64
  ehdr[5] = 1; // little-endian
  ehdr[6] = 1;
  ehdr.writeUInt16LE(fields.type ?? 2, 0x10); // ET_EXEC
  ehdr.writeUInt16LE(fields.machine ?? 62, 0x12); // x86-64
  ehdr.writeUInt32LE(1, 0x14);
  ehdr.writeBigUInt64LE(fields.entry ?? ENTRY, 0x18);
  ehdr.writeBigUInt64LE(64n, 0x20); // e_phoff
  ehdr.writeUInt16LE(64, 0x34);
  ehdr.writeUInt16LE(56, 0x36);
  ehdr.writeUInt16LE(1, 0x38); // one program header, no sections
  const phdr = Buffer.alloc(56);
  phdr.writeUInt32LE(PT_LOAD, 0);
  phdr.writeUInt32LE(5, 4); // R+X
  phdr.writeBigUInt64LE(128n, 0x08);
  phdr.writeBigUInt64LE(0xffffffff81000000n, 0x10);
  phdr.writeBigUInt64LE(ENTRY, 0x18);
  phdr.writeBigUInt64LE(BigInt(body.length), 0x20);
  phdr.writeBigUInt64LE(BigInt(body.length), 0x28);
  return Buffer.concat([ehdr, phdr, Buffer.alloc(8), body]);
}

/** The uncompressed size as 4 LE bytes: what the kernel build's `size_append` adds after the stream. */
function sizeOf(data: Buffer): Buffer {
  const size = Buffer.alloc(4);
  size.writeUInt32LE(data.length);
  return size;
}

/** A bzImage shell: setup sectors with the boot header (protocol `version`), then `payload` at payload_offset. */
function synthesizeBzImage(payload: Buffer, options: { setupSects?: number; version?: number } = {}): Buffer {
  const setupSects = options.setupSects ?? 3;
  const setupBytes = ((setupSects || 4) + 1) * 512;
  const payloadOffset = 0x40; // compressed-kernel code would precede the payload
  const image = Buffer.alloc(setupBytes + payloadOffset + payload.length + 100);
  image[0x1f1] = setupSects;
  image.write('HdrS', 0x202, 'latin1');
  image.writeUInt16LE(options.version ?? 0x020f, 0x206);
  image.writeUInt32LE(payloadOffset, 0x248);
  image.writeUInt32LE(payload.length, 0x24c);
  payload.copy(image, setupBytes + payloadOffset);
  image.fill(0xcc, setupBytes + payloadOffset + payload.length); // trailing code that is not payload
  return image;
}

/** Compresses with a host tool the way the kernel build does (stream, then size_append); undefined without it. */
function hostCompress(program: string, args: string[], data: Buffer): Buffer | undefined {
  const path = findOnPath(program);
  if (!path) return undefined;
  const result = spawnSync(path, args, { input: data, maxBuffer: 64 * 1024 * 1024 });
  assert.equal(result.status, 0, `${program} failed: ${result.stderr?.toString()}`);
  return Buffer.concat([result.stdout, sizeOf(data)]);
}

const elf = synthesizeKernelElf(Buffer.concat([randomBytes(5000), Buffer.alloc(20000, 0x90)]));
/** What the x86 build compresses: the ELF followed by vmlinux.relocs, which extraction trims off. */
const elfWithRelocs = Buffer.concat([elf, randomBytes(300), Buffer.alloc(4)]);

const FORMATS: { name: string; compress: () => Buffer | undefined }[] = [
  { name: 'gzip', compress: () => gzipSync(elfWithRelocs) }, // the gzip trailer ends with the size already
  { name: 'LZ4', compress: () => hostCompress('lz4', ['-l', '-9', '-c'], elfWithRelocs) },
  { name: 'xz', compress: () => hostCompress('xz', ['--check=crc32', '-c'], elfWithRelocs) },
  { name: 'zstd', compress: () => hostCompress('zstd', ['-19', '-c'], elfWithRelocs) },
  { name: 'lzma', compress: () => hostCompress('xz', ['--format=lzma', '-c'], elfWithRelocs) },
  { name: 'bzip2', compress: () => hostCompress('bzip2', ['-c'], elfWithRelocs) },
  { name: 'lzo', compress: () => hostCompress('lzop', ['-c'], elfWithRelocs) },
];

async function assertRejectsWith(
  promise: Promise<unknown>,
  type: new (...args: never[]) => Error,
  pattern: RegExp,
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
    assert.match((error as Error).message, pattern);
    return true;
  });
}

describe('extractVmlinux', () => {
  for (const format of FORMATS) {
    it(`extracts and trims the ELF from a ${format.name} bzImage`, async (t: TestContext) => {
      const payload = format.compress();
      if (!payload) return t.skip(`its compressor is not installed on this host`);
      const vmlinux = await extractVmlinux(synthesizeBzImage(payload));
      assert.ok(vmlinux.equals(elf), 'the ELF, without the relocations after it');
      assert.equal(parseElf64(vmlinux).entry, ENTRY);
    });
  }

  it('reads setup_sects = 0 as 4', async () => {
    const payload = gzipSync(elfWithRelocs);
    assert.ok((await extractVmlinux(synthesizeBzImage(payload, { setupSects: 0 }))).equals(elf));
  });

  it('names the Debian package when the decompressor is missing', async (t: TestContext) => {
    const payload = hostCompress('xz', ['-c'], elfWithRelocs);
    if (!payload) return t.skip('xz is not installed, so no xz payload can be made');
    const path = process.env.PATH;
    process.env.PATH = tempDir(t);
    try {
      await assert.rejects(
        extractVmlinux(synthesizeBzImage(payload)),
        (error: unknown) => error instanceof HostToolMissingError && error.install === 'apt-get install xz-utils',
      );
    } finally {
      process.env.PATH = path;
    }
  });

  it('returns an ELF kernel as it is, and refuses ELF files that are not x86-64 kernels', async () => {
    assert.equal(await extractVmlinux(elf), elf);
    const aarch64 = synthesizeKernelElf(Buffer.alloc(16), { machine: 183 });
    await assertRejectsWith(extractVmlinux(aarch64), InvalidArgumentError, /not x86-64/);
    const shared = synthesizeKernelElf(Buffer.alloc(16), { type: 3 });
    await assertRejectsWith(extractVmlinux(shared), InvalidArgumentError, /not an executable/);
    const noEntry = synthesizeKernelElf(Buffer.alloc(16), { entry: 0n });
    await assertRejectsWith(extractVmlinux(noEntry), InvalidArgumentError, /no entry point/);
    await assertRejectsWith(extractVmlinux(elf.subarray(0, 100)), InvalidArgumentError, /beyond end of file/);
  });

  it('refuses what is neither a bzImage nor an ELF, saying what it expected', async () => {
    for (const data of [Buffer.alloc(0), Buffer.from('#!/bin/sh\necho hi\n'), randomBytes(4096)]) {
      await assertRejectsWith(extractVmlinux(data), InvalidArgumentError, /neither an x86 bzImage .* nor an .*ELF/);
    }
  });

  it('refuses broken bzImages with ImageBuildError', async () => {
    const good = gzipSync(elfWithRelocs);
    await assertRejectsWith(
      extractVmlinux(synthesizeBzImage(good, { version: 0x0206 })),
      ImageBuildError,
      /boot protocol 2\.06/,
    );
    const truncated = synthesizeBzImage(good).subarray(0, 3000);
    await assertRejectsWith(extractVmlinux(truncated), ImageBuildError, /does not fit/);
    const unknown = synthesizeBzImage(Buffer.concat([Buffer.from('PK\x03\x04'), randomBytes(64)]));
    await assertRejectsWith(extractVmlinux(unknown), ImageBuildError, /unknown compression \(magic 504b0304/);
    const damaged = Buffer.from(good);
    damaged.fill(0x55, 20, 60);
    await assertRejectsWith(extractVmlinux(synthesizeBzImage(damaged)), ImageBuildError, /cannot decompress.*gzip/);
    const notElf = Buffer.concat([gzipSync(randomBytes(1000))]);
    await assertRejectsWith(extractVmlinux(synthesizeBzImage(notElf)), ImageBuildError, /not a usable vmlinux/);
  });

  it('checks the decompressed size against the size the bzImage declares', async (t: TestContext) => {
    const payload = hostCompress('zstd', ['-c'], elfWithRelocs);
    if (!payload) return t.skip('zstd is not installed');
    payload.writeUInt32LE(elfWithRelocs.length + 1, payload.length - 4);
    await assertRejectsWith(extractVmlinux(synthesizeBzImage(payload)), ImageBuildError, /declares/);
  });
});

describe('vmlinuxFor', () => {
  function withCache(t: TestContext): string {
    return withEnv(t, 'JITVM_CACHE_DIR', tempDir(t));
  }

  it('extracts once into the cache, keyed by content, and returns the cached file afterwards', async (t) => {
    const root = withCache(t);
    const bzImage = join(tempDir(t), 'vmlinuz');
    await writeFile(bzImage, synthesizeBzImage(gzipSync(elfWithRelocs)));
    const first = await vmlinuxFor(bzImage);
    assert.equal(join(first, '..'), vmlinuxCacheDir(root));
    const { ino } = await stat(first);
    assert.equal(await vmlinuxFor(bzImage), first);
    assert.equal((await stat(first)).ino, ino, 'not written again (a rewrite renames a new file into place)');

    const concurrent = await Promise.all(Array.from({ length: 4 }, () => vmlinuxFor(bzImage)));
    assert.deepEqual(new Set(concurrent), new Set([first]));
    assert.deepEqual(await readdir(vmlinuxCacheDir(root)), [first.split('/').pop()], 'no temp files left');
  });

  it('keeps only the three newest extracted kernels', async (t) => {
    const root = withCache(t);
    const dir = tempDir(t);
    const extracted: string[] = [];
    for (let i = 0; i < 5; i++) {
      const bzImage = join(dir, `vmlinuz-${i}`);
      await writeFile(bzImage, synthesizeBzImage(gzipSync(synthesizeKernelElf(randomBytes(64)))));
      extracted.push(await vmlinuxFor(bzImage));
    }
    const kept = (await readdir(vmlinuxCacheDir(root))).map((name) => join(vmlinuxCacheDir(root), name));
    assert.equal(kept.length, 3);
    assert.ok(kept.includes(extracted[4] as string), 'the newest stays');
  });

  it('writes concurrent first extractions whole, leaving no temp files', async (t) => {
    const root = withCache(t);
    const bzImage = join(tempDir(t), 'vmlinuz');
    await writeFile(bzImage, synthesizeBzImage(gzipSync(elfWithRelocs)));
    const paths = await Promise.all(Array.from({ length: 4 }, () => vmlinuxFor(bzImage)));
    assert.equal(new Set(paths).size, 1);
    assert.equal((await readdir(vmlinuxCacheDir(root))).length, 1);
  });

  it('is cancelled by its signal, before reading or while a host decompressor runs', async (t) => {
    withCache(t);
    const dir = tempDir(t);
    await writeFile(join(dir, 'vmlinuz'), synthesizeBzImage(gzipSync(elfWithRelocs)));
    await assert.rejects(vmlinuxFor(join(dir, 'vmlinuz'), { signal: AbortSignal.abort() }), CancelledError);

    const payload = hostCompress('xz', ['-c'], elfWithRelocs);
    if (!payload) return;
    const controller = new AbortController();
    const pending = extractVmlinux(synthesizeBzImage(payload), controller.signal);
    controller.abort(); // xz has been spawned by now: the abort kills it
    await assert.rejects(pending, { name: 'AbortError' });
    assert.deepEqual(await readdir(process.env.JITVM_CACHE_DIR!), [], 'nothing cached');
  });

  it('returns an ELF kernel path itself, and reports bad paths and files', async (t) => {
    const root = withCache(t);
    const dir = tempDir(t);
    await writeFile(join(dir, 'vmlinux'), elf);
    assert.equal(await vmlinuxFor(join(dir, 'vmlinux')), join(dir, 'vmlinux'));
    assert.deepEqual(await readdir(root), [], 'nothing cached for an ELF');

    await assertRejectsWith(vmlinuxFor(join(dir, 'missing')), ImageBuildError, /cannot produce .*ENOENT/);
    await writeFile(join(dir, 'text'), 'hello');
    await assertRejectsWith(vmlinuxFor(join(dir, 'text')), InvalidArgumentError, /neither an x86 bzImage/);
  });
});
