/**
 * The uncompressed ELF kernel (`vmlinux`) inside an x86 bzImage, for VMMs that boot only ELF (Firecracker). The
 * boot setup header locates the compressed payload; its magic picks the decompressor (gzip and LZ4 in-process,
 * the rest through host tools); the result must be an x86-64 ELF executable. Extracted kernels are cached by the
 * bzImage's content hash.
 */

import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';

import { CancelledError, InvalidArgumentError, JitvmError } from '../core/errors.js';
import { cacheRoot } from './cache.js';
import { ElfFormatError, PT_LOAD, parseElf64, type ElfFile } from './elf.js';
import { ImageBuildError } from './errors.js';
import { pipeThroughHostTool } from './host-command.js';
import { decodeLz4Legacy } from './lz4.js';

/** Bumped when extraction changes what it writes, so old cache entries stop matching. */
const EXTRACTOR_VERSION = 1;

const EM_X86_64 = 62;
const ET_EXEC = 2;
/** Boot protocol 2.08 added payload_offset and payload_length. */
const MIN_BOOT_PROTOCOL = 0x0208;
const HDRS_MAGIC = 0x53726448; // "HdrS", little-endian
const SETUP_HEADER_END = 0x250;
/** No x86 vmlinux comes near this (Debian's is ~50 MiB); a payload inflating past it is refused. */
const MAX_VMLINUX = 1024 * 1024 * 1024;

const gunzipAsync = promisify(gunzip);

const REEXTRACT = 'The kernel file is damaged: download or copy it again, or pass an uncompressed vmlinux.';

/** One compression the kernel build can use (CONFIG_KERNEL_*), recognised by its magic. */
interface PayloadFormat {
  name: string;
  magic: readonly number[];
  decode(payload: Buffer, signal: AbortSignal | undefined): Promise<Buffer>;
}

/** Pipes the payload, minus the 4-byte uncompressed size the x86 build appends, through a host tool. */
function hostTool(program: string, args: string[], debianPackage: string): PayloadFormat['decode'] {
  return (payload, signal) =>
    pipeThroughHostTool(program, args, payload.subarray(0, payload.length - 4), {
      signal,
      install: `apt-get install ${debianPackage}`,
      remedy: REEXTRACT,
      maxOutput: MAX_VMLINUX,
    });
}

const FORMATS: readonly PayloadFormat[] = [
  // The gzip trailer's ISIZE is the appended size itself.
  { name: 'gzip', magic: [0x1f, 0x8b], decode: (payload) => gunzipAsync(payload, { maxOutputLength: MAX_VMLINUX }) },
  // The LZ4 decoder reads the appended size itself and sizes its output with it.
  { name: 'LZ4', magic: [0x02, 0x21, 0x4c, 0x18], decode: async (payload) => decodeLz4Legacy(payload) },
  { name: 'xz', magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], decode: hostTool('xz', ['-dc'], 'xz-utils') },
  { name: 'zstd', magic: [0x28, 0xb5, 0x2f, 0xfd], decode: hostTool('zstd', ['-dcq', '--memory=1024MB'], 'zstd') },
  { name: 'lzma', magic: [0x5d, 0x00, 0x00], decode: hostTool('xz', ['--format=lzma', '-dc'], 'xz-utils') },
  { name: 'bzip2', magic: [0x42, 0x5a, 0x68], decode: hostTool('bzip2', ['-dc'], 'bzip2') },
  { name: 'lzo', magic: [0x89, 0x4c, 0x5a, 0x4f], decode: hostTool('lzop', ['-dc'], 'lzop') },
];

/**
 * The uncompressed ELF kernel of `kernel`: a bzImage's payload decompressed and trimmed to the ELF's extent (the
 * x86 build appends `vmlinux.relocs`, which an ELF loader never reads), or `kernel` itself when it already is an
 * x86-64 ELF executable. Costs about 0.15 s and 50 MiB for Debian's LZ4 cloud kernel; the xz, zstd, lzma, bzip2
 * and lzo formats need the host tool (else HostToolMissingError). Anything neither bzImage nor ELF is an
 * InvalidArgumentError; a bzImage that cannot be extracted is an ImageBuildError; an abort of `signal` kills a
 * running host tool and rejects with the signal's reason.
 */
export async function extractVmlinux(kernel: Buffer, signal?: AbortSignal): Promise<Buffer> {
  if (isElf(kernel)) {
    const problem = kernelElfProblem(kernel);
    if (typeof problem === 'string') throw new InvalidArgumentError(`the kernel is an ELF file but ${problem}`);
    return kernel;
  }
  const payload = bzImagePayload(kernel);
  const format = FORMATS.find((f) => f.magic.every((byte, i) => payload[i] === byte));
  if (!format) {
    const magic = payload.subarray(0, 6).toString('hex');
    throw new ImageBuildError(`the bzImage's payload has an unknown compression (magic ${magic})`, REEXTRACT);
  }
  signal?.throwIfAborted();
  const elf = await format.decode(payload, signal).catch((cause: unknown) => {
    if (cause instanceof JitvmError || signal?.aborted) throw cause;
    throw new ImageBuildError(`cannot decompress the bzImage's ${format.name} payload`, REEXTRACT, { cause });
  });
  const declared = payload.readUInt32LE(payload.length - 4);
  if (elf.length % 2 ** 32 !== declared) {
    throw new ImageBuildError(
      `the ${format.name} payload decompressed to ${elf.length} bytes, but the bzImage declares ${declared}`,
      REEXTRACT,
    );
  }
  const parsed = kernelElfProblem(elf);
  if (typeof parsed === 'string') {
    throw new ImageBuildError(
      `the bzImage's decompressed ${format.name} payload is not a usable vmlinux: ${parsed}`,
      REEXTRACT,
    );
  }
  return elf.subarray(0, parsed.extent);
}

/**
 * The path of an uncompressed ELF kernel for `kernelPath`: the file itself when it is an x86-64 ELF executable,
 * else the vmlinux extracted from it, cached as `<cacheRoot>/vmlinux/<sha256 of the file>` (reading and hashing
 * the bzImage each call; extracting only the first time). The cache file appears whole or not at all. Failures
 * are ImageBuildError (the cause attached), InvalidArgumentError for a file that is no kernel,
 * HostToolMissingError, or CancelledError when `signal` aborts.
 */
export async function vmlinuxFor(kernelPath: string, options: { signal?: AbortSignal } = {}): Promise<string> {
  const { signal } = options;
  try {
    const kernel = await readFile(kernelPath, { signal });
    if (isElf(kernel)) {
      await extractVmlinux(kernel, signal); // validates
      return kernelPath;
    }
    const target = join(vmlinuxCacheDir(), contentKey(kernel));
    if (await isFile(target)) {
      // Marks it used, so pruning keeps the kernels in use rather than the ones extracted last.
      const now = new Date();
      await utimes(target, now, now).catch(() => undefined);
      return target;
    }
    const vmlinux = await extractVmlinux(kernel, signal);
    await writeAtomically(target, vmlinux);
    await pruneVmlinuxCache(target);
    return target;
  } catch (cause) {
    if (signal?.aborted) throw new CancelledError(`extracting the kernel from ${kernelPath} was cancelled`);
    if (cause instanceof JitvmError) throw cause;
    throw new ImageBuildError(
      `cannot produce an uncompressed kernel from ${kernelPath}: ${(cause as Error).message}`,
      'Check that the kernel path is readable and the cache directory writable.',
      { cause },
    );
  }
}

/** Extracted kernels kept (about 50 MiB each), like the three newest images. */
const KEPT_VMLINUX = 3;

/** Removes all but the newest cached kernels (not files still being written); `keep` (just written) always stays. */
async function pruneVmlinuxCache(keep: string): Promise<void> {
  const dir = vmlinuxCacheDir();
  const entries = await Promise.all(
    (await readdir(dir))
      .filter((name) => !name.startsWith('.'))
      .map(async (name) => {
        const path = join(dir, name);
        return { path, mtimeMs: (await stat(path).catch(() => undefined))?.mtimeMs ?? 0 };
      }),
  );
  const stale = entries
    .filter((entry) => entry.path !== keep)
    .sort((a, b) => b.mtimeMs - a.mtimeMs)
    .slice(KEPT_VMLINUX - 1);
  await Promise.all(stale.map((entry) => rm(entry.path, { force: true })));
}

/** Where extracted kernels are cached. */
export function vmlinuxCacheDir(root: string = cacheRoot()): string {
  return join(root, 'vmlinux');
}

/** Slices the compressed payload out of a bzImage, after checking its boot setup header. */
function bzImagePayload(image: Buffer): Buffer {
  if (image.length < SETUP_HEADER_END || image.readUInt32LE(0x202) !== HDRS_MAGIC) {
    const found = image.subarray(0, 8).toString('hex') || 'an empty file';
    throw new InvalidArgumentError(
      `the kernel is neither an x86 bzImage (boot header "HdrS" at offset 0x202) nor an uncompressed x86-64 ELF ` +
        `vmlinux (it starts with ${found}); pass a Linux kernel image such as /boot/vmlinuz-*`,
    );
  }
  const version = image.readUInt16LE(0x206);
  if (version < MIN_BOOT_PROTOCOL) {
    throw new ImageBuildError(
      `the bzImage uses boot protocol ${version >> 8}.${String(version & 0xff).padStart(2, '0')}, which does not ` +
        'locate its payload (2.08 or later does)',
      'Use a kernel from Linux 2.6.26 or later, or pass an uncompressed vmlinux.',
    );
  }
  const setupSectors = image[0x1f1] || 4;
  const start = (setupSectors + 1) * 512 + image.readUInt32LE(0x248);
  const length = image.readUInt32LE(0x24c);
  if (length < 8 || start + length > image.length) {
    throw new ImageBuildError(
      `the bzImage's payload (${length} bytes at ${start}) does not fit in its ${image.length} bytes`,
      REEXTRACT,
    );
  }
  return image.subarray(start, start + length);
}

function isElf(data: Buffer): boolean {
  return data.length >= 4 && data.readUInt32BE(0) === 0x7f454c46;
}

/** The parsed ELF when `data` is a bootable x86-64 kernel image, else what is wrong with it. */
function kernelElfProblem(data: Buffer): ElfFile | string {
  let elf: ElfFile;
  try {
    elf = parseElf64(data);
  } catch (error) {
    if (error instanceof ElfFormatError) return error.message;
    throw error;
  }
  if (elf.machine !== EM_X86_64) return `its machine is ${elf.machine}, not x86-64 (${EM_X86_64})`;
  if (elf.type !== ET_EXEC) return `its type is ${elf.type}, not an executable (ET_EXEC)`;
  if (elf.entry === 0n) return 'it has no entry point';
  if (!elf.programHeaders.some((p) => p.type === PT_LOAD)) return 'it has no loadable segment (PT_LOAD)';
  return elf;
}

function contentKey(kernel: Buffer): string {
  return createHash('sha256').update(`jitvm-vmlinux/${EXTRACTOR_VERSION}\0`).update(kernel).digest('hex');
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

/** Writes a temp file next to `target` and renames it into place, so readers see all of it or nothing. */
async function writeAtomically(target: string, data: Buffer): Promise<void> {
  const dir = join(target, '..');
  await mkdir(dir, { recursive: true });
  const temp = join(dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    await writeFile(temp, data, { flag: 'wx', mode: 0o644 });
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}
