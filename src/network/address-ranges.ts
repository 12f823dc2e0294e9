/**
 * Which addresses are public, for the DNS-rebinding defence: the special-purpose blocks of the IANA IPv4 and IPv6
 * registries (RFC 6890 and successors) are not. IPv6 counts as public only inside global unicast 2000::/3, and a
 * NAT64 address (64:ff9b::/96) only when the IPv4 address it embeds is. IPv4-mapped IPv6 arrives here already as
 * IPv4 (see parseIpAddress).
 */
import { JitvmError } from '../core/errors.js';
import { AddressSet, type Cidr, type IpAddress, ipv4, parseCidr } from './ip-address.js';

/** Why an address is not public, in words a refusal can quote. */
export type NonPublicRange =
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'shared (carrier-grade NAT)'
  | 'link-local'
  | 'multicast'
  | 'broadcast'
  | 'documentation'
  | 'benchmarking'
  | 'protocol-assignment'
  | 'IPv6-transition'
  | 'reserved';

/** First match wins: broadcast sits inside 240.0.0.0/4. */
const SPECIAL_RANGES: ReadonlyArray<readonly [NonPublicRange, readonly string[]]> = [
  ['unspecified', ['0.0.0.0/8', '::/128']],
  ['loopback', ['127.0.0.0/8', '::1/128']],
  ['private', ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7', 'fec0::/10']],
  ['shared (carrier-grade NAT)', ['100.64.0.0/10']],
  ['link-local', ['169.254.0.0/16', 'fe80::/10']],
  ['multicast', ['224.0.0.0/4', 'ff00::/8']],
  ['broadcast', ['255.255.255.255/32']],
  ['documentation', ['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24', '2001:db8::/32', '3fff::/20']],
  ['benchmarking', ['198.18.0.0/15']],
  ['protocol-assignment', ['192.0.0.0/24', '2001::/23']],
  ['IPv6-transition', ['192.88.99.0/24', '2002::/16', '64:ff9b:1::/48']],
  ['reserved', ['240.0.0.0/4', '100::/64']],
];

const RANGE_SETS = SPECIAL_RANGES.map(([range, cidrs]) => [range, new AddressSet(cidrs.map(cidr))] as const);
const GLOBAL_UNICAST = new AddressSet([cidr('2000::/3')]);
const NAT64 = new AddressSet([cidr('64:ff9b::/96')]);

/** The special-purpose range `ip` falls in, or undefined when it is a public address. */
export function nonPublicRange(ip: IpAddress): NonPublicRange | undefined {
  if (NAT64.has(ip)) return nonPublicRange(ipv4(ip.bytes.slice(12)));
  const special = RANGE_SETS.find(([, set]) => set.has(ip));
  if (special) return special[0];
  return ip.family === 'ipv6' && !GLOBAL_UNICAST.has(ip) ? 'reserved' : undefined;
}

function cidr(text: string): Cidr {
  const parsed = parseCidr(text);
  if (typeof parsed === 'string') throw new JitvmError('internal', `built-in range ${text} is wrong: ${parsed}`);
  return parsed;
}
