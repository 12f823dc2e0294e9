/**
 * The egress allowlist: which names and addresses a sandbox in `allowlist` network mode may reach (on any port).
 *
 * - `example.com` allows exactly that name (any case, with or without a trailing dot).
 * - `*.example.com` allows every name below it, at any depth (`api.example.com`, `a.b.example.com`), but NOT
 *   `example.com` itself: list both to allow both. `*` is accepted only as the whole first label.
 * - `192.0.2.1`, `2001:db8::1` allow that address; `10.0.0.0/8`, `fd00::/8` allow the range. IPv4-mapped IPv6
 *   (`::ffff:192.0.2.1`) counts as the IPv4 address. Addresses allow raw-IP targets (`CONNECT 192.0.2.1:443`) and
 *   let an allowed name resolve into them; they never allow a name on their own.
 */
import { z } from 'zod';

import { normalizeDomainName } from './domain-name.js';
import { AddressSet, type Cidr, type IpAddress, parseCidr } from './ip-address.js';

/** One parsed allowlist entry. `suffix` is the domain a wildcard covers, without its `*.`. */
export type AllowEntry =
  | { readonly kind: 'name'; readonly name: string }
  | { readonly kind: 'wildcard'; readonly suffix: string }
  | { readonly kind: 'range'; readonly range: Cidr };

/** The forms an entry may take, for error messages. */
export const ALLOWLIST_FORMS =
  'a host name (example.com), a wildcard for all its subdomains (*.example.com), an IP address (192.0.2.1, ' +
  '2001:db8::1) or a CIDR range (10.0.0.0/8, fd00::/8)';

const MAX_ENTRIES = 4096;

/**
 * Parses one entry, or returns why it is not one. An entry with a `/` or `:`, or of digits and dots only, is read as
 * an address or range; the rest as a name, where `*` may only be the whole first label.
 */
export function parseAllowEntry(entry: string): AllowEntry | string {
  if (/[/:]|^[0-9.]+$/.test(entry)) {
    const range = parseCidr(entry);
    return typeof range === 'string' ? range : { kind: 'range', range };
  }
  const wildcard = entry.startsWith('*.');
  const name = normalizeDomainName(wildcard ? entry.slice(2) : entry);
  if (name === undefined) {
    return entry.includes('*')
      ? 'a wildcard may only be the whole first label, as in *.example.com'
      : 'not a host name: labels of letters, digits, `-` and `_`, the last one not all digits';
  }
  return wildcard ? { kind: 'wildcard', suffix: name } : { kind: 'name', name };
}

/** Allowlist entries as written: each is checked and turned into an AllowEntry; a wrong one names itself. */
export const AllowlistSchema = z
  .array(
    z.string().transform((entry, ctx): AllowEntry => {
      const parsed = parseAllowEntry(entry);
      if (typeof parsed !== 'string') return parsed;
      ctx.addIssue({
        code: 'custom',
        message: `${JSON.stringify(entry)} is not an allowlist entry (${parsed}); use ${ALLOWLIST_FORMS}`,
      });
      return z.NEVER;
    }),
  )
  .max(MAX_ENTRIES);

/** A compiled allowlist: name checks cost one set lookup per label, address checks one BlockList lookup. */
export class Allowlist {
  private readonly names = new Set<string>();
  private readonly wildcards = new Set<string>();
  private readonly ranges = new AddressSet();

  constructor(entries: readonly AllowEntry[]) {
    for (const entry of entries) {
      if (entry.kind === 'name') this.names.add(entry.name);
      else if (entry.kind === 'wildcard') this.wildcards.add(entry.suffix);
      else this.ranges.add(entry.range);
    }
  }

  /** Whether a name entry allows `name`, which must be in normalizeDomainName's form. */
  allowsName(name: string): boolean {
    if (this.names.has(name)) return true;
    for (let dot = name.indexOf('.'); dot >= 0; dot = name.indexOf('.', dot + 1)) {
      if (this.wildcards.has(name.slice(dot + 1))) return true;
    }
    return false;
  }

  /** Whether an address or range entry contains `ip`. */
  containsAddress(ip: IpAddress): boolean {
    return this.ranges.has(ip);
  }
}
