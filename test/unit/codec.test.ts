import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FrameDecoder, encodeFrame } from '../../src/channel/codec.js';
import { FRAME_HEADER_SIZE, MAX_PAYLOAD, MsgType } from '../../src/channel/protocol.js';
import { ProtocolError } from '../../src/core/errors.js';

function header(length: number, type = MsgType.PING, flags = 0, reserved = 0, stream = 1): Buffer {
  const b = Buffer.alloc(FRAME_HEADER_SIZE);
  b.writeUInt32LE(length, 0);
  b.writeUInt8(type, 4);
  b.writeUInt8(flags, 5);
  b.writeUInt16LE(reserved, 6);
  b.writeUInt32LE(stream, 8);
  return b;
}

describe('frame codec', () => {
  it('round-trips frames however the bytes are split', () => {
    const frameArb = fc.record({
      type: fc.integer({ min: 0, max: 255 }),
      stream: fc.nat(),
      fin: fc.boolean(),
      payload: fc.uint8Array({ maxLength: 3000 }).map((a) => Buffer.from(a)),
    });
    fc.assert(
      fc.property(
        fc.array(frameArb, { maxLength: 8 }),
        fc.array(fc.nat({ max: 5000 }), { maxLength: 10 }),
        (frames, cuts) => {
          const wire = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.stream, f.payload, f.fin ? 1 : 0)));
          const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
          const decoder = new FrameDecoder();
          const decoded = [];
          let last = 0;
          for (const point of [...points, wire.length]) {
            decoded.push(...decoder.push(wire.subarray(last, point)));
            last = point;
          }
          assert.equal(decoded.length, frames.length);
          decoded.forEach((frame, i) => {
            const expected = frames[i]!;
            assert.equal(frame.type, expected.type);
            assert.equal(frame.stream, expected.stream);
            assert.equal(frame.flags, expected.fin ? 1 : 0);
            assert.deepEqual(frame.payload, expected.payload);
          });
          assert.equal(decoder.pendingBytes, 0);
        },
      ),
    );
  });

  it('accepts a payload of exactly MAX_PAYLOAD and refuses to encode more', () => {
    const frames = new FrameDecoder().push(encodeFrame(MsgType.FILE_DATA, 3, Buffer.alloc(MAX_PAYLOAD, 7)));
    assert.equal(frames[0]?.payload.length, MAX_PAYLOAD);
    assert.throws(() => encodeFrame(MsgType.FILE_DATA, 3, Buffer.alloc(MAX_PAYLOAD + 1)), ProtocolError);
  });

  it('refuses an oversized length from the header alone, before any payload arrives', () => {
    const decoder = new FrameDecoder();
    assert.throws(() => decoder.push(header(0xffffffff)), /exceeds the maximum/);
    assert.throws(() => decoder.push(Buffer.alloc(1)), ProtocolError, 'stays failed after an error');
  });

  it('refuses reserved bits and unknown flags', () => {
    assert.throws(() => new FrameDecoder().push(header(0, MsgType.PING, 0, 1)), /reserved/);
    assert.throws(() => new FrameDecoder().push(header(0, MsgType.PING, 0x80)), /unknown flag/);
  });

  it('either decodes or throws ProtocolError on arbitrary bytes, buffering at most one frame', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), (bytes) => {
        const decoder = new FrameDecoder();
        try {
          decoder.push(Buffer.from(bytes));
        } catch (error) {
          assert.ok(error instanceof ProtocolError);
          return;
        }
        assert.ok(decoder.pendingBytes <= FRAME_HEADER_SIZE + MAX_PAYLOAD);
      }),
    );
  });
});
