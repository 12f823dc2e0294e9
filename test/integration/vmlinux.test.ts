import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { PT_LOAD, parseElf64, type ElfFile } from '../../src/image/elf.js';
import { resolveImage, type GuestImage } from '../../src/image/index.js';
import { vmlinuxCacheDir, vmlinuxFor } from '../../src/image/vmlinux.js';
import { BOOT_TIMEOUT_MS, withSandbox } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/temp.js';

const PT_NOTE = 4;
/** XEN_ELFNOTE_PHYS32_ENTRY: the PVH entry point QEMU (and Firecracker) use to boot an ELF kernel directly. */
const XEN_ELFNOTE_PHYS32_ENTRY = 18;

/** The PVH entry from the kernel's Xen notes, or undefined when there is none (CONFIG_PVH=n). */
function pvhEntry(vmlinux: Buffer, elf: ElfFile): number | undefined {
  for (const segment of elf.programHeaders.filter((p) => p.type === PT_NOTE)) {
    const notes = vmlinux.subarray(segment.offset, segment.offset + segment.fileSize);
    for (let at = 0; at + 12 <= notes.length;) {
      const [nameSize, descSize, type] = [0, 4, 8].map((i) => notes.readUInt32LE(at + i)) as [number, number, number];
      const name = notes.toString('latin1', at + 12, at + 12 + nameSize - 1);
      const desc = at + 12 + align4(nameSize);
      if (name === 'Xen' && type === XEN_ELFNOTE_PHYS32_ENTRY) return notes.readUInt32LE(desc);
      at = desc + align4(descSize);
    }
  }
  return undefined;
}

const align4 = (n: number): number => (n + 3) & ~3;

/** The PT_LOAD whose physical range holds `address`. */
function loadSegmentAt(elf: ElfFile, address: bigint): ElfFile['programHeaders'][number] | undefined {
  return elf.programHeaders.find((p) => p.type === PT_LOAD && p.paddr <= address && address < p.paddr + p.memSize);
}

describe("the uncompressed kernel of Debian's cloud image", { timeout: 600_000 }, () => {
  let image: GuestImage;
  let cacheRoot: string;
  let vmlinuxPath: string;

  before(async () => {
    image = await resolveImage(); // from the real cache; the extracted kernel goes to a fresh cache, to time it cold
    cacheRoot = await mkdtemp(join(tmpdir(), 'jitvm-vmlinux-'));
    process.env.JITVM_CACHE_DIR = cacheRoot;
  });
  after(async () => {
    await rm(cacheRoot, { recursive: true, force: true });
  });

  it('extracts a valid x86-64 ELF whose entry is the bzImage load address', async (t) => {
    const started = performance.now();
    vmlinuxPath = await vmlinuxFor(image.kernel);
    const coldMs = performance.now() - started;
    assert.equal(join(vmlinuxPath, '..'), vmlinuxCacheDir(cacheRoot));

    const [bzImage, vmlinux] = await Promise.all([readFile(image.kernel), readFile(vmlinuxPath)]);
    const elf = parseElf64(vmlinux);
    assert.equal(elf.machine, 62, 'EM_X86_64');
    assert.equal(elf.type, 2, 'ET_EXEC');
    assert.equal(elf.extent, vmlinux.length, 'trimmed to the ELF (the relocations after it dropped)');
    // A relocatable x86-64 bzImage prefers to load at LOAD_PHYSICAL_ADDR, where vmlinux's entry (startup_64) is.
    const preferred = bzImage.readBigUInt64LE(0x258);
    assert.equal(elf.entry, preferred, `entry ${elf.entry.toString(16)} vs pref_address ${preferred.toString(16)}`);
    const text = loadSegmentAt(elf, elf.entry);
    assert.ok(text, 'a PT_LOAD holds the entry point');
    assert.equal(text.paddr, elf.entry, 'the entry is the start of the first loaded segment');
    assert.ok(elf.programHeaders.filter((p) => p.type === PT_LOAD).every((p) => p.paddr >= preferred));

    const pvh = pvhEntry(vmlinux, elf);
    assert.ok(pvh !== undefined, 'the PVH entry note (CONFIG_PVH) is present');
    assert.ok(loadSegmentAt(elf, BigInt(pvh)), 'the PVH entry lies in a loaded segment');
    assert.ok(vmlinux.includes(`Linux version ${image.kernelVersion} `), 'the version banner names the release');
    assert.match(image.kernelVersion, /^6\.1\.0-\d+-cloud-amd64$/);

    t.diagnostic(
      `bzImage ${bzImage.length} bytes → vmlinux ${vmlinux.length} bytes (${(vmlinux.length / 2 ** 20).toFixed(1)} ` +
        `MiB) in ${coldMs.toFixed(0)} ms cold; entry 0x${elf.entry.toString(16)}, PVH entry 0x${pvh.toString(16)}`,
    );
  });

  it('returns the cached file the second time without extracting again', async (t) => {
    const before = await stat(vmlinuxPath);
    const started = performance.now();
    assert.equal(await vmlinuxFor(image.kernel), vmlinuxPath);
    const cachedMs = performance.now() - started;
    const after = await stat(vmlinuxPath);
    assert.equal(after.ino, before.ino, 'the same file, not a replacement');
    t.diagnostic(`cached lookup (read + sha256 of the bzImage) in ${cachedMs.toFixed(0)} ms`);
  });

  it('returns a vmlinux passed in as it is', async (t) => {
    assert.equal(await vmlinuxFor(vmlinuxPath), vmlinuxPath);
    const copy = join(tempDir(t), 'vmlinux');
    await copyFile(vmlinuxPath, copy);
    assert.equal(await vmlinuxFor(copy), copy);
  });

  it('boots: QEMU microvm loads the ELF through its PVH entry and the agent answers', async (t) => {
    const started = performance.now();
    const release = await withSandbox(async (sandbox) => (await sandbox.exec(['uname', '-r'])).stdout.trim(), {
      backend: 'qemu',
      kernel: vmlinuxPath,
      initrd: image.initrd,
      bootTimeoutMs: BOOT_TIMEOUT_MS,
    });
    assert.equal(release, image.kernelVersion);
    t.diagnostic(
      `booted the vmlinux, ran uname -r and destroyed the VM in ${(performance.now() - started).toFixed(0)} ms`,
    );
  });
});
