import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';

import { ElfFormatError, PT_INTERP, parseElf64 } from '../../src/image/elf.js';
import { ImageBuildError } from '../../src/image/errors.js';
import { readModInfo } from '../../src/image/modinfo.js';
import { indexModules, resolveModules } from '../../src/image/modules.js';

const SHT_PROGBITS = 1;
const SHT_STRTAB = 3;

/** A minimal ELF64 LE relocatable file with the given sections (after the null section) and program header types. */
function synthesizeElf(sections: { name: string; data: Buffer }[], programTypes: number[] = []): Buffer {
  const names = ['', ...sections.map((s) => s.name), '.shstrtab'];
  const nameOffsets: number[] = [];
  let shstrtab = Buffer.alloc(0);
  for (const name of names) {
    nameOffsets.push(shstrtab.length);
    shstrtab = Buffer.concat([shstrtab, Buffer.from(`${name}\0`)]);
  }
  const all = [
    ...sections.map((s) => ({ ...s, type: SHT_PROGBITS })),
    { name: '.shstrtab', data: shstrtab, type: SHT_STRTAB },
  ];

  const phoff = 64;
  let offset = phoff + programTypes.length * 56;
  const placed = all.map((s) => {
    const at = offset;
    offset += s.data.length;
    return { ...s, at };
  });
  const shoff = (offset + 7) & ~7;
  const out = Buffer.alloc(shoff + (all.length + 1) * 64);

  out.write('\x7fELF', 0, 'latin1');
  out[4] = 2; // ELFCLASS64
  out[5] = 1; // little-endian
  out[6] = 1; // EV_CURRENT
  out.writeUInt16LE(1, 0x10); // ET_REL
  out.writeUInt16LE(62, 0x12); // x86-64
  out.writeUInt32LE(1, 0x14);
  out.writeBigUInt64LE(programTypes.length ? BigInt(phoff) : 0n, 0x20);
  out.writeBigUInt64LE(BigInt(shoff), 0x28);
  out.writeUInt16LE(64, 0x34);
  out.writeUInt16LE(56, 0x36);
  out.writeUInt16LE(programTypes.length, 0x38);
  out.writeUInt16LE(64, 0x3a);
  out.writeUInt16LE(all.length + 1, 0x3c);
  out.writeUInt16LE(all.length, 0x3e); // .shstrtab is last
  programTypes.forEach((type, i) => out.writeUInt32LE(type, phoff + i * 56));
  placed.forEach((s, i) => {
    s.data.copy(out, s.at);
    const sh = shoff + (i + 1) * 64;
    out.writeUInt32LE(nameOffsets[i + 1]!, sh);
    out.writeUInt32LE(s.type, sh + 4);
    out.writeBigUInt64LE(BigInt(s.at), sh + 0x18);
    out.writeBigUInt64LE(BigInt(s.data.length), sh + 0x20);
  });
  return out;
}

function synthesizeKo(name: string, depends: string[]): Buffer {
  const modinfo = ['license=GPL', `depends=${depends.join(',')}`, 'intree=Y', `name=${name}`, 'vermagic=6.1.0 SMP'];
  return synthesizeElf([
    { name: '.text', data: Buffer.from([0xc3]) },
    { name: '.modinfo', data: Buffer.from(modinfo.map((f) => `${f}\0`).join('')) },
  ]);
}

/** Writes `lib/modules/<v>/kernel/<file>.ko` for each module and returns the modules dir. */
async function kernelTree(
  root: string,
  modules: Record<string, { file?: string; depends: string[] }>,
  builtin: string[] = [],
): Promise<string> {
  const modulesDir = join(root, 'lib/modules/6.1.0-test');
  for (const [name, { file, depends }] of Object.entries(modules)) {
    const path = join(modulesDir, 'kernel', file ?? `drivers/${name}.ko`);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, synthesizeKo(name, depends));
  }
  await writeFile(join(modulesDir, 'modules.builtin'), builtin.map((b) => `kernel/${b}.ko\n`).join(''));
  return modulesDir;
}

async function withTemp<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'jitvm-modules-test-'));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('ELF and .modinfo', () => {
  it('reads name= and depends=', () => {
    assert.deepEqual(readModInfo(synthesizeKo('virtio_net', ['virtio', 'net_failover'])), {
      name: 'virtio_net',
      depends: ['virtio', 'net_failover'],
    });
    assert.deepEqual(readModInfo(synthesizeKo('virtio_ring', [])).depends, []);
  });

  it('lists sections and program header types', () => {
    const elf = parseElf64(synthesizeElf([{ name: '.a', data: Buffer.from('xy') }], [1, PT_INTERP]));
    assert.equal(elf.machine, 62);
    assert.deepEqual(elf.programHeaderTypes, [1, PT_INTERP]);
    assert.deepEqual(
      elf.sections.map((s) => [s.name, s.data.toString()]),
      [
        ['', ''],
        ['.a', 'xy'],
        ['.shstrtab', '\0.a\0.shstrtab\0'],
      ],
    );
  });

  it('rejects malformed files without reading out of bounds', () => {
    const good = synthesizeKo('m', []);
    const bad = (mutate: (b: Buffer) => void): Buffer => {
      const b = Buffer.from(good);
      mutate(b);
      return b;
    };
    const cases: Buffer[] = [
      Buffer.alloc(0),
      good.subarray(0, 63),
      good.subarray(0, good.length - 1), // section table cut short
      bad((b) => b.write('\x7fELG', 0, 'latin1')),
      bad((b) => (b[4] = 1)), // 32-bit
      bad((b) => (b[5] = 2)), // big-endian
      bad((b) => b.writeBigUInt64LE(0xffffffffffffffffn, 0x28)), // e_shoff
      bad((b) => b.writeUInt16LE(99, 0x3e)), // e_shstrndx
      bad((b) => b.writeUInt16LE(8, 0x3a)), // e_shentsize
      bad((b) => b.writeBigUInt64LE(BigInt(b.length), b.readUInt32LE(0x28) + 64 + 0x20)), // section size
      bad((b) => b.writeUInt32LE(1e6, b.readUInt32LE(0x28) + 64)), // section name offset
    ];
    for (const [i, buf] of cases.entries()) assert.throws(() => readModInfo(buf), ElfFormatError, `case ${i}`);
    assert.throws(() => readModInfo(synthesizeElf([{ name: '.text', data: Buffer.alloc(4) }])), /no .modinfo/);
  });
});

describe('module resolution', () => {
  it('indexes file names with - as _ and orders dependencies first, each once', async () => {
    await withTemp(async (root) => {
      const dir = await kernelTree(
        root,
        {
          virtio_ring: { depends: [] },
          virtio: { depends: [] },
          virtio_mmio: { depends: ['virtio', 'virtio_ring'] },
          virtio_rng: { file: 'char/hw_random/virtio-rng.ko', depends: ['virtio_ring', 'virtio'] },
          failover: { depends: [] },
          net_failover: { depends: ['failover'] },
          virtio_net: { depends: ['net_failover', 'virtio', 'virtio_ring'] },
          unrelated: { depends: [] },
        },
        ['fs/ext4/ext4'],
      );
      const index = await indexModules(dir);
      assert.equal(index.files.get('virtio_rng'), join(dir, 'kernel/char/hw_random/virtio-rng.ko'));
      const order = await resolveModules(index, ['virtio_mmio', 'virtio-rng', 'virtio_net', 'ext4', 'virtio_mmio']);
      assert.deepEqual(
        order.map((m) => m.name),
        ['virtio', 'virtio_ring', 'virtio_mmio', 'virtio_rng', 'failover', 'net_failover', 'virtio_net'],
      );
      const position = new Map(order.map((m, i) => [m.name, i]));
      for (const m of order) for (const d of m.depends) assert.ok(position.get(d)! < position.get(m.name)!);
    });
  });

  it('reports cycles and missing modules', async () => {
    await withTemp(async (root) => {
      const dir = await kernelTree(root, {
        a: { depends: ['b'] },
        b: { depends: ['c'] },
        c: { depends: ['a'] },
        d: { depends: ['nowhere'] },
      });
      const index = await indexModules(dir);
      await assert.rejects(resolveModules(index, ['a']), (e: unknown) => {
        assert.ok(e instanceof ImageBuildError);
        assert.match(e.message, /cycle: a → b → c → a/);
        return true;
      });
      await assert.rejects(resolveModules(index, ['d']), /nowhere \(needed by d\)/);
      await assert.rejects(resolveModules(index, ['zz']), ImageBuildError);
    });
  });
});
