import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PayloadReader, PayloadWriter } from '../../src/channel/wire.js';
import { ProtocolError } from '../../src/core/errors.js';

describe('payload encoding', () => {
  it('round-trips integers and strings', () => {
    const payload = new PayloadWriter()
      .u8(7)
      .u32(0xfffffffe)
      .u64(2n ** 40n)
      .str('héllo')
      .finish();
    const reader = new PayloadReader(payload, 'test');
    assert.equal(reader.u8(), 7);
    assert.equal(reader.u32(), 0xfffffffe);
    assert.equal(reader.u64(), 2n ** 40n);
    assert.equal(reader.str(), 'héllo');
    reader.end();
  });

  it('writes u16 little-endian at both ends of its range, refuses values past it and short reads', () => {
    const payload = new PayloadWriter().u16(0).u16(0x1234).u16(65535).finish();
    assert.deepEqual([...payload], [0, 0, 0x34, 0x12, 0xff, 0xff]);
    const reader = new PayloadReader(payload, 'P');
    assert.deepEqual([reader.u16(), reader.u16(), reader.u16()], [0, 0x1234, 65535]);
    reader.end();
    assert.throws(() => new PayloadWriter().u16(65536), RangeError);
    assert.throws(() => new PayloadWriter().u16(-1), RangeError);
    assert.throws(() => new PayloadReader(Buffer.from([7]), 'P').u16(), /P: truncated payload \(needs 2 more bytes/);
  });

  it('refuses a string length that runs past the payload', () => {
    const payload = new PayloadWriter().u32(1000).bytes(Buffer.from('short')).finish();
    assert.throws(() => new PayloadReader(payload, 'X').str(), /X: truncated payload/);
  });

  it('refuses trailing bytes and truncated integers', () => {
    const reader = new PayloadReader(Buffer.from([1, 2, 3]), 'Y');
    assert.throws(() => reader.u32(), ProtocolError);
    assert.equal(reader.u8(), 1);
    assert.throws(() => reader.end(), /2 unexpected trailing bytes/);
  });

  it('refuses NUL bytes in strings bound for C', () => {
    assert.throws(() => new PayloadWriter().str('a\0b'), /NUL/);
  });
});
