/**
 * A decoder for the LZ4 legacy frame (`lz4 -l`), the format of x86 kernels built with CONFIG_KERNEL_LZ4: the magic
 * 0x184C2102, then chunks of a 4-byte LE compressed length and one independent LZ4 block of at most 8 MiB, and, from
 * the kernel build's `size_append`, an optional 4-byte LE uncompressed size after the last chunk. Every read and
 * write is bounds-checked, and every loop consumes input, so corrupt data is an ImageBuildError, never a hang.
 */

import { ImageBuildError } from './errors.js';

/** The magic number opening an LZ4 legacy frame (bytes `02 21 4c 18`). */
export const LZ4_LEGACY_MAGIC = 0x184c2102;
/** No kernel decompresses to more than this; a frame claiming more is refused before allocating. */
const MAX_OUTPUT = 1024 * 1024 * 1024;

/** Uncompressed size of every chunk but the last (LZ4IO_LEGACY_BLOCKSIZE); no chunk decodes to more. */
const CHUNK_MAX = 8 * 1024 * 1024;
/** LZ4_compressBound(CHUNK_MAX): no valid chunk is longer (the kernel's decompressor checks the same). */
const CHUNK_COMPRESSED_MAX = CHUNK_MAX + Math.floor(CHUNK_MAX / 255) + 16;
/** One input byte yields at most 255 output bytes (a run-length byte), which bounds a chunk's output. */
const MAX_RATIO = 255;
/** Runs shorter than this are copied byte by byte: cheaper than a native copy call. */
const SHORT_COPY = 32;
const MIN_MATCH = 4;

const REMEDY = 'The compressed kernel is damaged or truncated: download or copy it again.';

/** Whether `data` starts with the LZ4 legacy magic. */
export function isLz4Legacy(data: Uint8Array): boolean {
  return data.length >= 4 && readU32(data, 0) === LZ4_LEGACY_MAGIC;
}

interface Chunk {
  start: number;
  end: number;
}

/**
 * Decodes a whole LZ4 legacy frame. Exactly 4 bytes left after the last chunk are taken as the uncompressed size
 * (the kernel's `size_append`): the output is allocated to it and must match it. Concatenated frames are accepted.
 * Throws ImageBuildError for a bad magic, a truncated chunk, a malformed block or a size mismatch.
 */
export function decodeLz4Legacy(input: Uint8Array): Buffer {
  if (!isLz4Legacy(input)) fail('no LZ4 legacy magic (02 21 4c 18)', 0);
  const { chunks, declaredSize } = scanChunks(input);
  const bound = chunks.reduce((sum, c) => sum + Math.min(CHUNK_MAX, (c.end - c.start) * MAX_RATIO), 0);
  if (declaredSize !== undefined && declaredSize > bound) {
    fail(`the trailing size ${declaredSize} is more than ${chunks.length} chunk(s) can hold`, input.length - 4);
  }
  const size = declaredSize ?? bound;
  if (size > MAX_OUTPUT) fail(`the frame would decode to ${size} bytes, more than any kernel (${MAX_OUTPUT})`, 0);
  const out = Buffer.allocUnsafe(size);
  let op = 0;
  for (const chunk of chunks) {
    op = decodeBlock(input, chunk.start, chunk.end, out, op, Math.min(out.length, op + CHUNK_MAX));
  }
  if (declaredSize !== undefined && op !== declaredSize) {
    fail(`decoded ${op} bytes but the trailing size says ${declaredSize}`, input.length - 4);
  }
  return op === out.length ? out : out.subarray(0, op);
}

/** Walks the chunk headers without decoding: where each block lies, and the trailing size if there is one. */
function scanChunks(input: Uint8Array): { chunks: Chunk[]; declaredSize: number | undefined } {
  const chunks: Chunk[] = [];
  let pos = 4;
  while (pos < input.length) {
    const left = input.length - pos;
    if (left < 4) fail(`${left} stray byte(s) after the last chunk`, pos);
    const length = readU32(input, pos);
    if (left === 4) return { chunks, declaredSize: length };
    pos += 4;
    if (length === LZ4_LEGACY_MAGIC) continue; // a concatenated frame starts here
    if (length === 0 || length > CHUNK_COMPRESSED_MAX) fail(`invalid chunk length ${length}`, pos - 4);
    if (length > input.length - pos) fail(`chunk of ${length} bytes truncated to ${input.length - pos}`, pos - 4);
    chunks.push({ start: pos, end: pos + length });
    pos += length;
  }
  return { chunks, declaredSize: undefined };
}

/** Decodes the LZ4 block `src[ip, iend)` to `out[op, oend)`; returns the new output position. */
function decodeBlock(src: Uint8Array, ip: number, iend: number, out: Buffer, op: number, oend: number): number {
  const blockStart = op;
  for (;;) {
    const token = src[ip++]!;
    let literals = token >>> 4;
    if (literals === 15) [literals, ip] = readLength(src, ip, iend, literals);
    if (literals > iend - ip) fail('literals run past the end of the block', ip);
    if (literals > oend - op) fail('output exceeds the chunk or declared size', ip);
    copyLiterals(src, ip, out, op, literals);
    ip += literals;
    op += literals;
    if (ip === iend) return op; // the last sequence holds literals only
    if (iend - ip < 2) fail('truncated match offset', ip);
    const offset = src[ip]! | (src[ip + 1]! << 8);
    ip += 2;
    if (offset === 0 || offset > op - blockStart) fail(`match offset ${offset} points before the block`, ip - 2);
    let length = token & 15;
    if (length === 15) [length, ip] = readLength(src, ip, iend, length);
    length += MIN_MATCH;
    if (length > oend - op) fail('output exceeds the chunk or declared size', ip);
    copyMatch(out, op, offset, length);
    op += length;
    if (ip >= iend) fail('block ends with a match instead of literals', ip);
  }
}

/** Adds the 255-terminated extension bytes to a length of 15; returns it with the new input position. */
function readLength(src: Uint8Array, ip: number, iend: number, length: number): [number, number] {
  let byte: number;
  do {
    if (ip >= iend) fail('truncated length', ip);
    byte = src[ip++]!;
    length += byte;
  } while (byte === 255);
  return [length, ip];
}

function copyLiterals(src: Uint8Array, ip: number, out: Buffer, op: number, length: number): void {
  if (length < SHORT_COPY) {
    for (let i = 0; i < length; i++) out[op + i] = src[ip + i]!;
  } else {
    out.set(src.subarray(ip, ip + length), op);
  }
}

/** Copies `length` bytes from `offset` back; an overlapping match repeats its pattern, copied in doubling strides. */
function copyMatch(out: Buffer, op: number, offset: number, length: number): void {
  if (length < SHORT_COPY) {
    for (let i = 0; i < length; i++) out[op + i] = out[op - offset + i]!;
    return;
  }
  if (offset >= length) {
    out.copyWithin(op, op - offset, op - offset + length);
    return;
  }
  // out[p] = out[p - k·offset] for any k: after copying `stride` bytes, twice the stride is available.
  let stride = offset;
  let done = 0;
  while (done < length) {
    const n = Math.min(stride, length - done);
    out.copyWithin(op + done, op + done - stride, op + done - stride + n);
    done += n;
    stride *= 2;
  }
}

function readU32(data: Uint8Array, at: number): number {
  return (data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16) | (data[at + 3]! << 24)) >>> 0;
}

function fail(detail: string, at: number): never {
  throw new ImageBuildError(`corrupt LZ4 data at byte ${at}: ${detail}`, REMEDY);
}
