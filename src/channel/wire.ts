import { InvalidArgumentError, ProtocolError } from '../core/errors.js';
import { MAX_PAYLOAD } from './protocol.js';

/** Builds a payload: little-endian integers and length-prefixed strings, as docs/protocol.md defines. */
export class PayloadWriter {
  private readonly parts: Buffer[] = [];

  u8(value: number): this {
    const b = Buffer.allocUnsafe(1);
    b.writeUInt8(value);
    return this.push(b);
  }

  u16(value: number): this {
    const b = Buffer.allocUnsafe(2);
    b.writeUInt16LE(value);
    return this.push(b);
  }

  u32(value: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(value >>> 0);
    return this.push(b);
  }

  u64(value: bigint): this {
    const b = Buffer.allocUnsafe(8);
    b.writeBigUInt64LE(value);
    return this.push(b);
  }

  /** A u32 byte length then UTF-8 bytes. NUL bytes are refused: the agent passes strings to C APIs. */
  str(value: string): this {
    if (value.includes('\0')) {
      throw new InvalidArgumentError(
        `${JSON.stringify(value)} contains a NUL byte, which paths, arguments and env cannot hold`,
      );
    }
    const bytes = Buffer.from(value, 'utf8');
    return this.u32(bytes.length).push(bytes);
  }

  bytes(value: Buffer): this {
    return this.push(value);
  }

  finish(): Buffer {
    const payload = Buffer.concat(this.parts);
    if (payload.length > MAX_PAYLOAD) {
      throw new ProtocolError(`request of ${payload.length} bytes exceeds the protocol maximum of ${MAX_PAYLOAD}`);
    }
    return payload;
  }

  private push(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
}

/** Reads a payload from untrusted bytes: every read is bounds-checked and fails as a ProtocolError. */
export class PayloadReader {
  private offset = 0;

  constructor(
    private readonly payload: Buffer,
    private readonly what: string,
  ) {}

  u8(): number {
    this.need(1);
    return this.payload.readUInt8(this.offset++);
  }

  u16(): number {
    this.need(2);
    const value = this.payload.readUInt16LE(this.offset);
    this.offset += 2;
    return value;
  }

  u32(): number {
    this.need(4);
    const value = this.payload.readUInt32LE(this.offset);
    this.offset += 4;
    return value;
  }

  i32(): number {
    this.need(4);
    const value = this.payload.readInt32LE(this.offset);
    this.offset += 4;
    return value;
  }

  u64(): bigint {
    this.need(8);
    const value = this.payload.readBigUInt64LE(this.offset);
    this.offset += 8;
    return value;
  }

  i64(): bigint {
    this.need(8);
    const value = this.payload.readBigInt64LE(this.offset);
    this.offset += 8;
    return value;
  }

  str(): string {
    const length = this.u32();
    this.need(length);
    const value = this.payload.toString('utf8', this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  /** Asserts the whole payload was consumed: trailing bytes mean the peer and we disagree on the format. */
  end(): void {
    if (this.offset !== this.payload.length) {
      throw new ProtocolError(`${this.what}: ${this.payload.length - this.offset} unexpected trailing bytes`);
    }
  }

  private need(size: number): void {
    if (this.offset + size > this.payload.length) {
      throw new ProtocolError(`${this.what}: truncated payload (needs ${size} more bytes at offset ${this.offset})`);
    }
  }
}
