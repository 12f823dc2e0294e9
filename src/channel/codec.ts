import { ProtocolError } from '../core/errors.js';
import { FLAG_FIN, FRAME_HEADER_SIZE, MAX_PAYLOAD } from './protocol.js';

/** One decoded frame. `payload` is a view of received bytes or a buffer of its own; the decoder never reuses it. */
export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  readonly payload: Buffer;
}

const KNOWN_FLAGS = FLAG_FIN;

/** The 12-byte little-endian header of a frame. Refuses payload lengths over MAX_PAYLOAD. */
export function encodeHeader(type: number, stream: number, length: number, flags = 0): Buffer {
  if (length > MAX_PAYLOAD) throw new ProtocolError(`payload of ${length} bytes exceeds ${MAX_PAYLOAD}`);
  const header = Buffer.allocUnsafe(FRAME_HEADER_SIZE);
  header.writeUInt32LE(length, 0);
  header.writeUInt8(type, 4);
  header.writeUInt8(flags, 5);
  header.writeUInt16LE(0, 6);
  header.writeUInt32LE(stream >>> 0, 8);
  return header;
}

/** Encodes one whole frame into a single buffer (header + payload). */
export function encodeFrame(type: number, stream: number, payload: Buffer = Buffer.alloc(0), flags = 0): Buffer {
  const header = encodeHeader(type, stream, payload.length, flags);
  return payload.length === 0 ? header : Buffer.concat([header, payload]);
}

/**
 * Incremental decoder for a hostile byte stream. It checks each header before allocating anything for the payload
 * (at most MAX_PAYLOAD), copies every byte at most once (a frame that lies inside one received chunk is not copied
 * at all), and refuses all input after the first error.
 */
export class FrameDecoder {
  private readonly header = Buffer.alloc(FRAME_HEADER_SIZE);
  private headerFill = 0;
  private payload: Buffer | undefined;
  private payloadFill = 0;
  private failed: ProtocolError | undefined;

  /** Feeds received bytes; returns every frame now complete. Throws ProtocolError on a malformed header. */
  push(data: Buffer): Frame[] {
    if (this.failed) throw this.failed;
    const frames: Frame[] = [];
    let offset = 0;
    while (offset < data.length) {
      if (this.payload === undefined && this.headerFill === 0 && data.length - offset >= FRAME_HEADER_SIZE) {
        const length = this.check(data.subarray(offset, offset + FRAME_HEADER_SIZE));
        if (data.length - offset - FRAME_HEADER_SIZE >= length) {
          frames.push(
            this.frame(data, offset, data.subarray(offset + FRAME_HEADER_SIZE, offset + FRAME_HEADER_SIZE + length)),
          );
          offset += FRAME_HEADER_SIZE + length;
          continue;
        }
      }
      offset = this.accumulate(data, offset, frames);
    }
    return frames;
  }

  /** Bytes received but not yet part of a complete frame. */
  get pendingBytes(): number {
    return this.headerFill + this.payloadFill;
  }

  /** Copies bytes of a frame that spans chunks into the header, then into a payload buffer sized from it. */
  private accumulate(data: Buffer, offset: number, frames: Frame[]): number {
    if (this.payload === undefined) {
      const taken = data.copy(this.header, this.headerFill, offset, offset + FRAME_HEADER_SIZE - this.headerFill);
      this.headerFill += taken;
      offset += taken;
      if (this.headerFill < FRAME_HEADER_SIZE) return offset;
      this.payload = Buffer.allocUnsafe(this.check(this.header));
      this.payloadFill = 0;
    }
    const taken = data.copy(this.payload, this.payloadFill, offset, offset + this.payload.length - this.payloadFill);
    this.payloadFill += taken;
    offset += taken;
    if (this.payloadFill === this.payload.length) {
      frames.push(this.frame(this.header, 0, this.payload));
      this.payload = undefined;
      this.headerFill = 0;
      this.payloadFill = 0;
    }
    return offset;
  }

  /** Validates a 12-byte header and returns its payload length. */
  private check(header: Buffer): number {
    const length = header.readUInt32LE(0);
    const flags = header.readUInt8(5);
    if (length > MAX_PAYLOAD) this.fail(`frame payload length ${length} exceeds the maximum ${MAX_PAYLOAD}`);
    if ((flags & ~KNOWN_FLAGS) !== 0) this.fail(`frame has unknown flag bits 0x${flags.toString(16)}`);
    if (header.readUInt16LE(6) !== 0) this.fail('frame reserved bits are not zero');
    return length;
  }

  private frame(header: Buffer, at: number, payload: Buffer): Frame {
    return {
      type: header.readUInt8(at + 4),
      flags: header.readUInt8(at + 5),
      stream: header.readUInt32LE(at + 8),
      payload,
    };
  }

  private fail(message: string): never {
    this.failed = new ProtocolError(message);
    this.payload = undefined;
    throw this.failed;
  }
}
