/**
 * IP address literals and CIDR ranges as the egress filter compares them. Every address has one canonical text, and
 * an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) becomes the IPv4 address it stands for, so that a rule or a range
 * check written for IPv4 cannot be sidestepped by spelling the same address as IPv6.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

export type IpFamily = 'ipv4' | 'ipv6';

/** A validated address: dotted quad, or IPv6 in RFC 5952 form (lower case, `::` for the longest run of zeros). */
export interface IpAddress {
  readonly family: IpFamily;
  readonly text: string;
  /** The address in network order: 4 or 16 bytes. */
  readonly bytes: Uint8Array;
}

/** An address range: `ip` with only its first `prefix` bits set. */
export interface Cidr {
  readonly ip: IpAddress;
  readonly prefix: number;
}

/**
 * Parses a dotted quad or an IPv6 literal, bracketed or not. Refuses (undefined) zone ids (`fe80::1%eth0`), leading
 * zeros and the shorthand IPv4 forms (`127.1`, `0x7f.0.0.1`) that some resolvers would read as another address.
 */
export function parseIpAddress(text: string): IpAddress | undefined {
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (isIPv4(bare)) return ipv4(Uint8Array.from(bare.split('.').map(Number)));
  if (!isIPv6(bare) || bare.includes('%')) return undefined;
  const bytes = ipv6Bytes(bare);
  const mapped = bytes.subarray(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  return mapped ? ipv4(bytes.slice(12)) : { family: 'ipv6', text: ipv6Text(bytes), bytes };
}

/** The IPv4 address built from four bytes. */
export function ipv4(bytes: Uint8Array): IpAddress {
  return { family: 'ipv4', text: bytes.join('.'), bytes };
}

/**
 * Parses `address` or `address/prefix` (a bare address is a one-address range). Returns a sentence saying what is
 * wrong instead when the prefix is out of range, has host bits set, or is written on an IPv4-mapped IPv6 address.
 */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  const ip = parseIpAddress(slash < 0 ? text : text.slice(0, slash));
  if (!ip) return 'not an IP address';
  const bits = ip.bytes.length * 8;
  if (slash < 0) return { ip, prefix: bits };
  if (ip.family === 'ipv4' && text.includes(':')) return 'write IPv4-mapped ranges in IPv4 form (10.0.0.0/8)';
  const prefixText = text.slice(slash + 1);
  const prefix = /^(0|[1-9][0-9]{0,2})$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix <= bits)) return `the prefix length must be a number from 0 to ${bits}`;
  const network = maskTo(ip.bytes, prefix);
  if (network.some((byte, i) => byte !== ip.bytes[i])) {
    const base = ip.family === 'ipv4' ? ipv4(network).text : ipv6Text(network);
    return `host bits are set past the /${prefix} prefix: write ${base}/${prefix}`;
  }
  return { ip, prefix };
}

/** A set of CIDR ranges, one node BlockList per family: an IPv4 address never matches an IPv6 range, nor the reverse. */
export class AddressSet {
  private readonly lists = { ipv4: new BlockList(), ipv6: new BlockList() };

  constructor(ranges: Iterable<Cidr> = []) {
    for (const range of ranges) this.add(range);
  }

  add(range: Cidr): void {
    this.lists[range.ip.family].addSubnet(range.ip.text, range.prefix, range.ip.family);
  }

  has(ip: IpAddress): boolean {
    return this.lists[ip.family].check(ip.text, ip.family);
  }
}

function maskTo(bytes: Uint8Array, prefix: number): Uint8Array {
  return bytes.map((byte, i) => {
    const keep = Math.min(Math.max(prefix - i * 8, 0), 8);
    return byte & ((0xff << (8 - keep)) & 0xff);
  });
}

/** The 16 bytes of an address that isIPv6 accepted (so: at most one `::`, groups of 1-4 hex digits, maybe a v4 tail). */
function ipv6Bytes(text: string): Uint8Array {
  const groups = (part: string): number[] =>
    part === ''
      ? []
      : part.split(':').flatMap((group) => {
          if (!group.includes('.')) return [parseInt(group, 16)];
          const [a = 0, b = 0, c = 0, d = 0] = group.split('.').map(Number);
          return [(a << 8) | b, (c << 8) | d];
        });
  const [head = '', tail] = text.split('::');
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

/** RFC 5952 text: lower-case hex without leading zeros, the first longest run of two or more zero groups as `::`. */
function ipv6Text(bytes: Uint8Array): string {
  const groups = Array.from({ length: 8 }, (_, i) => ((bytes[2 * i] ?? 0) << 8) | (bytes[2 * i + 1] ?? 0));
  let best = { start: -1, length: 1 };
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === 0) length++;
    if (length > best.length) best = { start, length };
  }
  const hex = groups.map((group) => group.toString(16));
  if (best.start < 0) return hex.join(':');
  return `${hex.slice(0, best.start).join(':')}::${hex.slice(best.start + best.length).join(':')}`;
}
