/**
 * The fake's snapshot state file, laid out like Firecracker's (src/vmm/src/snapshot/mod.rs): a serialized
 * `{ header: { magic, version }, data }` (JSON here, bitcode there) followed by the CRC64 of those bytes, 8 bytes
 * little-endian, so that crc64(whole file) == 0. Loading checks in Firecracker's order: size cap, length, decoding,
 * magic, version, CRC. `data` is the VM's full configuration (GET /vm/config's shape).
 */
import { readFileSync, writeFileSync } from 'node:fs';

/** SNAPSHOT_VERSION (src/vmm/src/persist.rs). */
export const SNAPSHOT_VERSION = '11.0.0';
/** x86_64 SNAPSHOT_MAGIC_ID. */
const MAGIC = 0x0710_1984_8664_0000n;
const SIZE_LIMIT = 10_000_000;

/** Firecracker's `SnapshotError` Display, e.g. "CRC64 validation failed". */
export class SnapshotFileError extends Error {}

let table: bigint[] | undefined;

/** The `crc64` crate: Jones polynomial, reflected, no init or final xor. */
function crc64(data: Uint8Array): bigint {
  table ??= Array.from({ length: 256 }, (_, n) => {
    let c = BigInt(n);
    for (let k = 0; k < 8; k++) c = c & 1n ? (c >> 1n) ^ 0x95ac9329ac4bc9b5n : c >> 1n;
    return c;
  });
  let crc = 0n;
  for (const byte of data) crc = table[Number((crc ^ BigInt(byte)) & 0xffn)]! ^ (crc >> 8n);
  return crc;
}

export function writeSnapshotFile(path: string, data: unknown): void {
  const body = Buffer.from(JSON.stringify({ header: { magic: MAGIC.toString(), version: SNAPSHOT_VERSION }, data }));
  const crc = Buffer.alloc(8);
  crc.writeBigUInt64LE(crc64(body));
  writeFileSync(path, Buffer.concat([body, crc]));
}

/** The header's version and the data; throws SnapshotFileError for a damaged file, Node's error if unreadable. */
export function readSnapshotFile(path: string): { version: string; data: unknown } {
  const buf = readFileSync(path);
  if (buf.length > SIZE_LIMIT) throw new SnapshotFileError(`Snapshot size exceeds limit of ${SIZE_LIMIT} bytes`);
  if (buf.length < 8) throw new SnapshotFileError('IO Error: File too short to contain CRC');
  let parsed: { header?: { magic?: unknown; version?: unknown }; data?: unknown };
  try {
    parsed = JSON.parse(buf.subarray(0, buf.length - 8).toString('utf8')) as typeof parsed;
  } catch (error) {
    throw new SnapshotFileError(`An error occurred during bitcode serialization: ${(error as Error).message}`);
  }
  const magic = String(parsed.header?.magic);
  if (magic !== MAGIC.toString()) throw new SnapshotFileError(`Magic value does not match arch: ${magic}`);
  const version = String(parsed.header?.version);
  const [major, minor] = version.split('.').map(Number);
  const [ourMajor, ourMinor] = SNAPSHOT_VERSION.split('.').map(Number);
  if (major !== ourMajor || (minor ?? 0) > (ourMinor ?? 0))
    throw new SnapshotFileError(`Invalid data version: ${version}`);
  if (crc64(buf) !== 0n) throw new SnapshotFileError('CRC64 validation failed');
  return { version, data: parsed.data };
}
