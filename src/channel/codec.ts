import { ProtocolError } from '../core/errors.js';
import { FLAG_FIN, FRAME_HEADER_SIZE, MAX_PAYLOAD } from './protocol.js';

/** One decoded frame. `payload` is a view into the received bytes, which the decoder never reuses or mutates. */
export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  readonly payload: Buffer;
}

const KNOWN_FLAGS = FLAG_FIN;

/** Encodes one frame: 12-byte little-endian header + payload. Refuses payloads over MAX_PAYLOAD. */
export function encodeFrame(type: number, stream: number, payload: Buffer = Buffer.alloc(0), flags = 0): Buffer {
  if (payload.length > MAX_PAYLOAD)
    throw new ProtocolError(`payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  const header = Buffer.allocUnsafe(FRAME_HEADER_SIZE);
  header.writeUInt32LE(payload.length, 0);
  header.writeUInt8(type, 4);
  header.writeUInt8(flags, 5);
  header.writeUInt16LE(0, 6);
  header.writeUInt32LE(stream >>> 0, 8);
  return payload.length === 0 ? header : Buffer.concat([header, payload]);
}

/**
 * Incremental decoder for a hostile byte stream: it checks every header before waiting for (or allocating) the
 * payload, and buffers at most one frame. After the first error it refuses all further input.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed: ProtocolError | undefined;

  /** Feeds received bytes; returns every frame now complete. Throws ProtocolError on a malformed header. */
  push(data: Buffer): Frame[] {
    if (this.failed) throw this.failed;
    this.chunks.push(data);
    this.buffered += data.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < FRAME_HEADER_SIZE) return frames;
      const header = this.peek(FRAME_HEADER_SIZE);
      const length = header.readUInt32LE(0);
      const flags = header.readUInt8(5);
      if (length > MAX_PAYLOAD) this.fail(`frame payload length ${length} exceeds the maximum ${MAX_PAYLOAD}`);
      if ((flags & ~KNOWN_FLAGS) !== 0) this.fail(`frame has unknown flag bits 0x${flags.toString(16)}`);
      if (header.readUInt16LE(6) !== 0) this.fail('frame reserved bits are not zero');
      if (this.buffered < FRAME_HEADER_SIZE + length) return frames;
      const bytes = this.take(FRAME_HEADER_SIZE + length);
      frames.push({
        type: header.readUInt8(4),
        flags,
        stream: header.readUInt32LE(8),
        payload: bytes.subarray(FRAME_HEADER_SIZE),
      });
    }
  }

  /** Bytes received but not yet part of a complete frame. */
  get pendingBytes(): number {
    return this.buffered;
  }

  private fail(message: string): never {
    this.failed = new ProtocolError(message);
    this.chunks = [];
    this.buffered = 0;
    throw this.failed;
  }

  private peek(size: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length >= size) return first.subarray(0, size);
    this.chunks = [Buffer.concat(this.chunks)];
    return (this.chunks[0] as Buffer).subarray(0, size);
  }

  private take(size: number): Buffer {
    if ((this.chunks[0] as Buffer).length < size) this.chunks = [Buffer.concat(this.chunks)];
    const first = this.chunks[0] as Buffer;
    if (first.length === size) this.chunks.shift();
    else this.chunks[0] = first.subarray(size);
    this.buffered -= size;
    return first.subarray(0, size);
  }
}
