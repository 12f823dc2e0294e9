/**
 * Reads the server name (SNI, RFC 6066) from the first TLS record a client sends (RFC 8446 §4.1.2 ClientHello;
 * TLS 1.0–1.3 share its layout). Every length is checked against the bytes actually present before it is used;
 * the input is never copied and never grows past one record.
 */

const CONTENT_TYPE_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXTENSION_SERVER_NAME = 0x0000;
const NAME_TYPE_HOST_NAME = 0x00;
const RECORD_HEADER_BYTES = 5;
/** TLSPlaintext.length may not exceed 2^14 (RFC 8446 §5.1). */
const MAX_RECORD_PAYLOAD = 16384;
const MAX_SESSION_ID = 32;
const MAX_HOST_NAME = 255;

/** The most bytes inspectClientHello needs to decide: one whole record, header included. */
export const MAX_CLIENT_HELLO_BYTES = RECORD_HEADER_BYTES + MAX_RECORD_PAYLOAD;

export type ClientHelloInspection =
  /** A TLS record has begun and is not complete yet: read more, up to MAX_CLIENT_HELLO_BYTES. */
  | { readonly kind: 'incomplete' }
  /** The first byte is not a TLS handshake record: some other protocol. */
  | { readonly kind: 'not_tls' }
  /** A well-formed ClientHello; `serverName` as sent (ASCII), undefined when it has no server_name extension. */
  | { readonly kind: 'client_hello'; readonly serverName: string | undefined }
  /** A handshake record that is not a well-formed ClientHello contained in this one record. */
  | { readonly kind: 'invalid'; readonly why: string };

/** Inspects the first bytes a client sent. Never throws: any input gets one of the four answers. */
export function inspectClientHello(bytes: Uint8Array): ClientHelloInspection {
  if (bytes.length === 0) return { kind: 'incomplete' };
  if (bytes[0] !== CONTENT_TYPE_HANDSHAKE) return { kind: 'not_tls' };
  if (bytes.length < RECORD_HEADER_BYTES) return { kind: 'incomplete' };
  if (bytes[1] !== 0x03) return { kind: 'invalid', why: 'the record version is not TLS 1.x' };
  const length = ((bytes[3] ?? 0) << 8) | (bytes[4] ?? 0);
  if (length > MAX_RECORD_PAYLOAD) return { kind: 'invalid', why: `the record is ${length} bytes, over 2^14` };
  if (bytes.length < RECORD_HEADER_BYTES + length) return { kind: 'incomplete' };
  try {
    return { kind: 'client_hello', serverName: readClientHello(new Reader(bytes, RECORD_HEADER_BYTES, length)) };
  } catch (error) {
    if (error instanceof Malformed) return { kind: 'invalid', why: error.message };
    throw error;
  }
}

function readClientHello(record: Reader): string | undefined {
  if (record.u8() !== HANDSHAKE_CLIENT_HELLO) throw new Malformed('the first handshake message is not a ClientHello');
  const length = record.u24();
  if (length > record.remaining) throw new Malformed('the ClientHello does not fit in its first record');
  const hello = record.sub(length);
  hello.skip(2 + 32); // legacy_version, random
  if (hello.vector(1).remaining > MAX_SESSION_ID) throw new Malformed('the session id is over 32 bytes');
  const suites = hello.vector(2).remaining;
  if (suites === 0 || suites % 2 !== 0) throw new Malformed('the cipher suite list is empty or odd');
  if (hello.vector(1).remaining === 0) throw new Malformed('the compression method list is empty');
  if (hello.remaining === 0) return undefined;
  const extensions = hello.vector(2);
  if (hello.remaining !== 0) throw new Malformed('bytes follow the extensions');
  const seen = new Set<number>();
  let serverName: string | undefined;
  while (extensions.remaining > 0) {
    const type = extensions.u16();
    const data = extensions.vector(2);
    if (seen.has(type)) throw new Malformed(`extension ${type} appears twice`);
    seen.add(type);
    if (type === EXTENSION_SERVER_NAME) serverName = readServerName(data);
  }
  return serverName;
}

/** A ServerNameList holding exactly one host_name of printable ASCII (RFC 6066 §3 allows no other name type). */
function readServerName(data: Reader): string {
  const list = data.vector(2);
  if (data.remaining !== 0 || list.remaining === 0) throw new Malformed('the server_name list is malformed');
  let name: string | undefined;
  while (list.remaining > 0) {
    if (list.u8() !== NAME_TYPE_HOST_NAME) throw new Malformed('the server_name list holds an unknown name type');
    const bytes = list.bytes(list.u16());
    if (name !== undefined) throw new Malformed('the server_name list holds two host names');
    if (bytes.length === 0 || bytes.length > MAX_HOST_NAME || !bytes.every((byte) => byte > 0x20 && byte < 0x7f)) {
      throw new Malformed('the server name is empty, too long or not printable ASCII');
    }
    name = Buffer.from(bytes).toString('latin1');
  }
  return name as string;
}

class Malformed extends Error {}

/** A bounds-checked big-endian cursor over `length` bytes of `data` from `start`. */
class Reader {
  private offset: number;
  private readonly end: number;

  constructor(
    private readonly data: Uint8Array,
    start: number,
    length: number,
  ) {
    this.offset = start;
    this.end = start + length;
  }

  get remaining(): number {
    return this.end - this.offset;
  }

  u8(): number {
    return this.data[this.take(1)] ?? 0;
  }

  u16(): number {
    const at = this.take(2);
    return ((this.data[at] ?? 0) << 8) | (this.data[at + 1] ?? 0);
  }

  u24(): number {
    const at = this.take(3);
    return ((this.data[at] ?? 0) << 16) | ((this.data[at + 1] ?? 0) << 8) | (this.data[at + 2] ?? 0);
  }

  skip(count: number): void {
    this.take(count);
  }

  bytes(count: number): Uint8Array {
    const at = this.take(count);
    return this.data.subarray(at, at + count);
  }

  /** A reader over the next `length` bytes, which this one skips. */
  sub(length: number): Reader {
    return new Reader(this.data, this.take(length), length);
  }

  /** A reader over a vector whose length prefix is `prefixBytes` long (TLS `opaque x<0..2^8-1>` and friends). */
  vector(prefixBytes: 1 | 2): Reader {
    return this.sub(prefixBytes === 1 ? this.u8() : this.u16());
  }

  private take(count: number): number {
    if (count > this.remaining) throw new Malformed('a length runs past the end of its container');
    const at = this.offset;
    this.offset += count;
    return at;
  }
}
