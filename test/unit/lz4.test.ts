import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, it, type TestContext } from 'node:test';

import fc from 'fast-check';

import { findOnPath } from '../../src/core/host-tools.js';
import { ImageBuildError } from '../../src/image/errors.js';
import { LZ4_LEGACY_MAGIC, decodeLz4Legacy, isLz4Legacy } from '../../src/image/lz4.js';

const LZ4 = findOnPath('lz4');
const MiB = 1024 * 1024;

/** `lz4 -l` (legacy frame) at `level`; the reference encoder every decoded buffer is checked against. */
function lz4Legacy(data: Uint8Array, level = 1): Buffer {
  const result = spawnSync(LZ4!, ['-l', `-${level}`, '-c'], { input: data, maxBuffer: 256 * MiB });
  assert.equal(result.status, 0, `lz4 -l failed: ${result.stderr?.toString()}`);
  return result.stdout;
}

function needLz4(t: TestContext): boolean {
  if (LZ4) return true;
  t.skip('the lz4 command is not installed (apt-get install lz4); it produces the reference frames');
  return false;
}

/** The kernel build's `size_append`: the uncompressed size as 4 LE bytes after the stream. */
function withSize(frame: Buffer, size: number): Buffer {
  const trailer = Buffer.alloc(4);
  trailer.writeUInt32LE(size);
  return Buffer.concat([frame, trailer]);
}

/** Throws unless `fn` throws an ImageBuildError (a RangeError or any other error fails the test). */
function assertCorrupt(fn: () => unknown): void {
  assert.throws(fn, (error: unknown) => error instanceof ImageBuildError && /corrupt LZ4 data/.test(error.message));
}

/** Bytes from a mix of random runs, repeated short patterns (overlapping matches) and long single-byte runs. */
const mixedBytes = fc
  .array(
    fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc
        .tuple(fc.uint8Array({ minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 2000 }))
        .map(([pattern, times]) => new Uint8Array(Buffer.concat(Array(times).fill(Buffer.from(pattern))))),
      fc.tuple(fc.nat({ max: 255 }), fc.integer({ min: 1, max: 70000 })).map(([b, n]) => new Uint8Array(n).fill(b)),
      // A random run seen twice: one long match that does not overlap its source.
      fc.uint8Array({ minLength: 32, maxLength: 3000 }).map((a) => new Uint8Array(Buffer.concat([a, a]))),
    ),
    { maxLength: 12 },
  )
  .map((parts) => Buffer.concat(parts));

describe('decodeLz4Legacy', () => {
  it('decodes what `lz4 -l` encodes: random, repetitive and mixed buffers at fast and high levels', (t) => {
    if (!needLz4(t)) return;
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 5000 }).map((a) => Buffer.from(a)),
          mixedBytes,
        ),
        fc.constantFrom(1, 9, 12),
        (data, level) => {
          const frame = lz4Legacy(data, level);
          assert.ok(isLz4Legacy(frame));
          assert.ok(decodeLz4Legacy(frame).equals(data));
          assert.ok(decodeLz4Legacy(withSize(frame, data.length)).equals(data), 'with a trailing size');
        },
      ),
      { numRuns: 150 },
    );
  });

  it('decodes the empty frame (the magic alone) to nothing', (t) => {
    if (!needLz4(t)) return;
    const frame = lz4Legacy(Buffer.alloc(0));
    assert.equal(frame.length, 4);
    assert.equal(decodeLz4Legacy(frame).length, 0);
    assert.equal(decodeLz4Legacy(withSize(frame, 0)).length, 0);
  });

  it('decodes a multi-chunk frame (> 8 MiB) with and without the trailing size, and concatenated frames', (t) => {
    if (!needLz4(t)) return;
    const parts: Buffer[] = [];
    for (let i = 0; i < 20; i++) {
      parts.push(randomBytes(300_000), Buffer.alloc(400_000, i), Buffer.from('jitvm '.repeat(50_000)));
    }
    const data = Buffer.concat(parts); // ~20 MiB: three chunks
    assert.ok(data.length > 2 * 8 * MiB);
    const frame = lz4Legacy(data, 1);
    const started = performance.now();
    assert.ok(decodeLz4Legacy(withSize(frame, data.length)).equals(data));
    const elapsedMs = performance.now() - started;
    assert.ok(decodeLz4Legacy(frame).equals(data));
    t.diagnostic(`${(data.length / MiB).toFixed(1)} MiB decoded in ${elapsedMs.toFixed(0)} ms`);

    const small = Buffer.from('hello, kernel '.repeat(100));
    const concatenated = Buffer.concat([frame, lz4Legacy(small)]);
    assert.ok(decodeLz4Legacy(concatenated).equals(Buffer.concat([data, small])));
  });

  it('refuses a missing magic, stray bytes and a trailing size that does not match', (t) => {
    if (!needLz4(t)) return;
    const data = Buffer.from('abcdefgh'.repeat(1000));
    const frame = lz4Legacy(data);
    assertCorrupt(() => decodeLz4Legacy(Buffer.alloc(0)));
    assertCorrupt(() => decodeLz4Legacy(Buffer.from([0x04, 0x22, 0x4d, 0x18, 0, 0, 0, 0]))); // the modern frame
    assertCorrupt(() => decodeLz4Legacy(Buffer.concat([frame, Buffer.from([1, 2])])));
    assertCorrupt(() => decodeLz4Legacy(withSize(frame, data.length + 1)));
    assertCorrupt(() => decodeLz4Legacy(withSize(frame, data.length - 1)));
    assertCorrupt(() => decodeLz4Legacy(withSize(frame, 0xffffffff)));
  });

  it('refuses every truncation of a one-chunk frame', (t) => {
    if (!needLz4(t)) return;
    fc.assert(
      fc.property(
        mixedBytes.filter((d) => d.length > 0 && d.length < 8 * MiB),
        fc.nat(),
        (data, cut) => {
          const frame = lz4Legacy(data);
          const at = 5 + (cut % (frame.length - 5)); // 4 bytes would be the (valid) empty frame
          assertCorrupt(() => decodeLz4Legacy(frame.subarray(0, at)));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('throws only ImageBuildError, and returns promptly, for damaged frames and random bytes', (t) => {
    if (!needLz4(t)) return;
    const check = (input: Buffer): void => {
      const started = performance.now();
      try {
        decodeLz4Legacy(input);
      } catch (error) {
        assert.ok(error instanceof ImageBuildError, `unexpected ${String(error)}`);
      }
      assert.ok(performance.now() - started < 2000, 'decoding took too long');
    };
    fc.assert(
      fc.property(
        mixedBytes,
        fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 8 }),
        (data, flips) => {
          const frame = lz4Legacy(data);
          for (const [at, value] of flips) frame[at % frame.length] = value;
          check(frame);
        },
      ),
      { numRuns: 150 },
    );
    const magic = Buffer.alloc(4);
    magic.writeUInt32LE(LZ4_LEGACY_MAGIC);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (tail) => check(Buffer.concat([magic, tail]))),
      { numRuns: 300 },
    );
  });
});

describe('decodeLz4Legacy on hand-made blocks', () => {
  /** A legacy frame holding one chunk with these block bytes. */
  function frameOf(...blocks: number[][]): Buffer {
    const parts = [Buffer.from([0x02, 0x21, 0x4c, 0x18])];
    for (const block of blocks) {
      const length = Buffer.alloc(4);
      length.writeUInt32LE(block.length);
      parts.push(length, Buffer.from(block));
    }
    return Buffer.concat(parts);
  }

  it('decodes literals, a match and an overlapping match', () => {
    // "ab", then a match of 6 at offset 2 ("ababab"), then the literal "!".
    const out = decodeLz4Legacy(frameOf([0x22, 0x61, 0x62, 0x02, 0x00, 0x10, 0x21]));
    assert.equal(out.toString(), 'abababab!');
  });

  it('refuses a zero offset, an offset before the block, a match across chunks, and a block ending in a match', () => {
    assertCorrupt(() => decodeLz4Legacy(frameOf([0x10, 0x61, 0x00, 0x00, 0x10, 0x62])));
    assertCorrupt(() => decodeLz4Legacy(frameOf([0x10, 0x61, 0x02, 0x00, 0x10, 0x62])));
    assertCorrupt(() => decodeLz4Legacy(frameOf([0x10, 0x61], [0x00, 0x01, 0x00, 0x10, 0x62])));
    assertCorrupt(() => decodeLz4Legacy(frameOf([0x10, 0x61, 0x01, 0x00])));
    assertCorrupt(() => decodeLz4Legacy(frameOf([0xf0]))); // a literal length with no extension byte
    assertCorrupt(() => decodeLz4Legacy(frameOf([0x50, 0x61]))); // 5 literals announced, 1 present
  });

  it('refuses a chunk that decodes to more than 8 MiB, and a zero-length chunk', () => {
    // Literal "a", a match of 15 + extension + 4 bytes at offset 1, literal "b": 8 MiB + 1 bytes in all.
    const extensionSum = 8 * MiB + 1 - 2 - 19;
    const extension = [...Array<number>(Math.floor(extensionSum / 255)).fill(255), extensionSum % 255];
    const block = [0x1f, 0x61, 0x01, 0x00, ...extension, 0x10, 0x62];
    assertCorrupt(() => decodeLz4Legacy(frameOf(block)));
    const fits = [0x1f, 0x61, 0x01, 0x00, ...extension.slice(0, -1), (extensionSum % 255) - 1, 0x10, 0x62];
    assert.equal(decodeLz4Legacy(frameOf(fits)).length, 8 * MiB);
    // (A lone zero word after the magic would be the trailing size of an empty stream, so a chunk follows it here.)
    assertCorrupt(() => decodeLz4Legacy(frameOf([], [0x10, 0x61])));
  });
});
