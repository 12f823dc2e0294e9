/**
 * A bounds-checked reader for the parts of 64-bit little-endian ELF files jitvm needs:
 * section headers (by name) and program header types. Every offset is validated before use.
 */

/** One section, with its bytes sliced out of the file. */
export interface ElfSection {
  name: string;
  type: number;
  data: Buffer;
}

/** What jitvm reads from an ELF file. */
export interface ElfFile {
  /** `e_machine` (62 = x86-64, 183 = AArch64). */
  machine: number;
  /** `p_type` of each program header, in order. */
  programHeaderTypes: number[];
  sections: ElfSection[];
}

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

  const machine = buf.readUInt16LE(0x12);
  const phoff = readOffset(buf, 0x20);
  const shoff = readOffset(buf, 0x28);
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const shstrndx = buf.readUInt16LE(0x3e);

  const programHeaderTypes: number[] = [];
  if (phnum > 0) {
    if (phentsize < PHDR_SIZE) throw new ElfFormatError('program header entries too small');
    checkRange(buf, phoff, phentsize * phnum, 'program header table');
    for (let i = 0; i < phnum; i++) programHeaderTypes.push(buf.readUInt32LE(phoff + i * phentsize));
  }

  if (shnum === 0) return { machine, programHeaderTypes, sections: [] };
  if (shentsize < SHDR_SIZE) throw new ElfFormatError('section header entries too small');
  checkRange(buf, shoff, shentsize * shnum, 'section header table');
  if (shstrndx >= shnum) throw new ElfFormatError('section name table index out of range');

  const raw = Array.from({ length: shnum }, (_, i) => {
    const at = shoff + i * shentsize;
    const type = buf.readUInt32LE(at + 4);
    const offset = readOffset(buf, at + 0x18);
    const size = type === SHT_NOBITS ? 0 : readOffset(buf, at + 0x20);
    checkRange(buf, offset, size, `section ${i}`);
    return { nameOffset: buf.readUInt32LE(at), type, data: buf.subarray(offset, offset + size) };
  });
  const names = raw[shstrndx]!.data;
  const sections = raw.map((s) => ({ name: readCString(names, s.nameOffset), type: s.type, data: s.data }));
  return { machine, programHeaderTypes, sections };
}

function readOffset(buf: Buffer, at: number): number {
  const value = buf.readBigUInt64LE(at);
  if (value > BigInt(buf.length)) throw new ElfFormatError(`offset ${value} beyond end of file`);
  return Number(value);
}

function checkRange(buf: Buffer, offset: number, size: number, what: string): void {
  if (offset + size > buf.length) throw new ElfFormatError(`${what} extends beyond end of file`);
}

function readCString(buf: Buffer, offset: number): string {
  if (offset >= buf.length) throw new ElfFormatError('section name offset out of range');
  const end = buf.indexOf(0, offset);
  if (end < 0) throw new ElfFormatError('unterminated section name');
  return buf.toString('utf8', offset, end);
}
