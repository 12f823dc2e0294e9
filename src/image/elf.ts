/**
 * A bounds-checked reader for the parts of 64-bit little-endian ELF files jitvm needs: the header, program headers,
 * section headers (by name) and how far into the file they reach. Every offset is validated before use.
 */

/** One section, with its bytes sliced out of the file. */
export interface ElfSection {
  name: string;
  type: number;
  data: Buffer;
}

/** One program header (segment). Addresses are bigints: kernel virtual addresses exceed 2^53. */
export interface ElfProgramHeader {
  type: number;
  /** Where the segment's bytes start in the file (`p_offset`). */
  offset: number;
  /** How many bytes it has in the file (`p_filesz`). */
  fileSize: number;
  vaddr: bigint;
  paddr: bigint;
  /** Its size in memory (`p_memsz`), at least fileSize for a loadable segment. */
  memSize: bigint;
}

/** What jitvm reads from an ELF file. */
export interface ElfFile {
  /** `e_type` (2 = ET_EXEC). */
  type: number;
  /** `e_machine` (62 = x86-64, 183 = AArch64). */
  machine: number;
  /** `e_entry`. */
  entry: bigint;
  /** `p_type` of each program header, in order. */
  programHeaderTypes: number[];
  programHeaders: ElfProgramHeader[];
  sections: ElfSection[];
  /** Where the last byte any header, segment or section occupies ends: the ELF's length without trailing data. */
  extent: number;
}

/** `p_type` of a loadable segment. */
export const PT_LOAD = 1;

/** `p_type` of the program header naming a dynamic loader; a static executable has none. */
export const PT_INTERP = 3;
/** `sh_type` of sections that occupy no bytes in the file. */
const SHT_NOBITS = 8;

const EHDR_SIZE = 64;
const SHDR_SIZE = 64;
const PHDR_SIZE = 56;

/** Thrown for anything that is not a well-formed ELF64 LE file. */
export class ElfFormatError extends Error {}

/** Parses the ELF header, program header types and section table of `buf`. */
export function parseElf64(buf: Buffer): ElfFile {
  if (buf.length < EHDR_SIZE || buf.readUInt32BE(0) !== 0x7f454c46) throw new ElfFormatError('not an ELF file');
  if (buf[4] !== 2) throw new ElfFormatError('not a 64-bit ELF file');
  if (buf[5] !== 1) throw new ElfFormatError('not a little-endian ELF file');

  const type = buf.readUInt16LE(0x10);
  const machine = buf.readUInt16LE(0x12);
  const entry = buf.readBigUInt64LE(0x18);
  const phoff = readOffset(buf, 0x20);
  const shoff = readOffset(buf, 0x28);
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const shstrndx = buf.readUInt16LE(0x3e);

  const programHeaders: ElfProgramHeader[] = [];
  let extent = EHDR_SIZE;
  if (phnum > 0) {
    if (phentsize < PHDR_SIZE) throw new ElfFormatError('program header entries too small');
    extent = Math.max(extent, checkRange(buf, phoff, phentsize * phnum, 'program header table'));
    for (let i = 0; i < phnum; i++) {
      const header = readProgramHeader(buf, phoff + i * phentsize);
      extent = Math.max(extent, checkRange(buf, header.offset, header.fileSize, `segment ${i}`));
      programHeaders.push(header);
    }
  }
  const head = { type, machine, entry, programHeaderTypes: programHeaders.map((p) => p.type), programHeaders };

  if (shnum === 0) return { ...head, sections: [], extent };
  if (shentsize < SHDR_SIZE) throw new ElfFormatError('section header entries too small');
  extent = Math.max(extent, checkRange(buf, shoff, shentsize * shnum, 'section header table'));
  if (shstrndx >= shnum) throw new ElfFormatError('section name table index out of range');

  const raw = Array.from({ length: shnum }, (_, i) => {
    const at = shoff + i * shentsize;
    const type = buf.readUInt32LE(at + 4);
    const offset = readOffset(buf, at + 0x18);
    const size = type === SHT_NOBITS ? 0 : readOffset(buf, at + 0x20);
    extent = Math.max(extent, checkRange(buf, offset, size, `section ${i}`));
    return { nameOffset: buf.readUInt32LE(at), type, data: buf.subarray(offset, offset + size) };
  });
  const names = raw[shstrndx]!.data;
  const sections = raw.map((s) => ({ name: readCString(names, s.nameOffset), type: s.type, data: s.data }));
  return { ...head, sections, extent };
}

function readProgramHeader(buf: Buffer, at: number): ElfProgramHeader {
  return {
    type: buf.readUInt32LE(at),
    offset: readOffset(buf, at + 0x08),
    vaddr: buf.readBigUInt64LE(at + 0x10),
    paddr: buf.readBigUInt64LE(at + 0x18),
    fileSize: readOffset(buf, at + 0x20),
    memSize: buf.readBigUInt64LE(at + 0x28),
  };
}

function readOffset(buf: Buffer, at: number): number {
  const value = buf.readBigUInt64LE(at);
  if (value > BigInt(buf.length)) throw new ElfFormatError(`offset ${value} beyond end of file`);
  return Number(value);
}

/** Checks that `size` bytes at `offset` lie inside `buf`; returns where they end. */
function checkRange(buf: Buffer, offset: number, size: number, what: string): number {
  if (offset + size > buf.length) throw new ElfFormatError(`${what} extends beyond end of file`);
  return offset + size;
}

function readCString(buf: Buffer, offset: number): string {
  if (offset >= buf.length) throw new ElfFormatError('section name offset out of range');
  const end = buf.indexOf(0, offset);
  if (end < 0) throw new ElfFormatError('unterminated section name');
  return buf.toString('utf8', offset, end);
}
