import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { OutputCap } from '../../src/mcp/output-cap.js';

function capped(limit: number, chunks: Buffer[]): OutputCap {
  const cap = new OutputCap(limit);
  for (const chunk of chunks) cap.push(chunk);
  return cap;
}

describe('OutputCap', () => {
  it('keeps output within the limit whole', () => {
    const cap = capped(8, [Buffer.from('abc'), Buffer.from('defgh')]);
    assert.equal(cap.text(), 'abcdefgh');
    assert.equal(cap.truncatedBytes, 0);
  });

  it('keeps both ends of longer output around a marker that counts what it left out', () => {
    const cap = capped(8, [Buffer.from('0123456789'), Buffer.from('abcdef')]);
    assert.equal(cap.truncatedBytes, 8);
    assert.equal(cap.text(), '0123\n[truncated 8 bytes]\ncdef');
  });

  it('keeps exactly the first and last bytes for any chunking', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 20 }),
        fc.integer({ min: 2, max: 64 }),
        (parts, limit) => {
          const chunks = parts.map((part) => Buffer.from(part.map((byte) => 97 + (byte % 26))));
          const whole = Buffer.concat(chunks).toString('latin1');
          const cap = capped(limit, chunks);
          const head = whole.slice(0, Math.floor(limit / 2));
          const tail = whole.slice(whole.length - (limit - head.length));
          const expected =
            whole.length <= limit ? whole : `${head}\n[truncated ${whole.length - limit} bytes]\n${tail}`;
          assert.equal(cap.text(), expected);
          assert.equal(cap.truncatedBytes, Math.max(0, whole.length - limit));
        },
      ),
    );
  });
});
