/**
 * The policy verdict for one target, and the addresses to connect to. A name that the allowlist does not allow is
 * never looked up (a lookup would itself carry data out through DNS). An allowed name goes to its `hosts` override
 * if it has one, else to DNS, and then every address DNS returns must be public or inside a listed range: one
 * private answer refuses the whole name, so a rebinding DNS server cannot mix a private address in. The caller
 * connects to exactly the addresses returned here, never resolving again.
 */
import { lookup } from 'node:dns/promises';

import { type NonPublicRange, nonPublicRange } from './address-ranges.js';
import type { EgressPolicy } from './egress-policy.js';
import type { EgressTarget } from './egress-target.js';
import { type IpAddress, parseIpAddress } from './ip-address.js';

/** Resolves a name to its addresses, as `dns.promises.lookup(name, { all: true })` does. */
export type EgressLookup = (hostname: string) => Promise<ReadonlyArray<{ readonly address: string }>>;

/** The system resolver (getaddrinfo: /etc/hosts, then DNS), answers in the order it gives them. */
export const systemLookup: EgressLookup = (hostname) => lookup(hostname, { all: true, verbatim: true });

export type EgressResolution =
  | {
      readonly kind: 'allowed';
      readonly reason: 'listed_name' | 'listed_address' | 'hosts_override';
      readonly addresses: readonly IpAddress[];
    }
  | {
      readonly kind: 'denied';
      readonly reason: 'not_allowlisted' | 'address_not_listed' | 'non_public_address';
      /** Words for the guest, e.g. `it is not in the allowlist`. */
      readonly why: string;
      /** The address that was refused, for address_not_listed and non_public_address. */
      readonly address?: IpAddress;
    }
  /** The lookup failed or gave nothing usable: an upstream failure, not a policy verdict. */
  | { readonly kind: 'unresolved'; readonly why: string };

/** Decides `target` under `policy`, calling `resolve` only for an allowed name without a `hosts` override. */
export async function resolveEgressTarget(
  policy: EgressPolicy,
  target: EgressTarget,
  resolve: EgressLookup,
): Promise<EgressResolution> {
  if (target.ip) {
    return policy.allowlist.containsAddress(target.ip)
      ? { kind: 'allowed', reason: 'listed_address', addresses: [target.ip] }
      : {
          kind: 'denied',
          reason: 'address_not_listed',
          why: 'raw IP address not in the allowlist',
          address: target.ip,
        };
  }
  if (!policy.allowlist.allowsName(target.host)) {
    return { kind: 'denied', reason: 'not_allowlisted', why: 'not in the allowlist' };
  }
  const override = policy.hosts.get(target.host);
  if (override) return { kind: 'allowed', reason: 'hosts_override', addresses: [override] };
  const addresses = await lookupAddresses(target.host, resolve);
  if (!Array.isArray(addresses)) return addresses;
  for (const address of addresses) {
    const range = nonPublicRange(address);
    if (range && !policy.allowlist.containsAddress(address)) return nonPublic(range, address);
  }
  return { kind: 'allowed', reason: 'listed_name', addresses };
}

async function lookupAddresses(
  name: string,
  resolve: EgressLookup,
): Promise<IpAddress[] | { kind: 'unresolved'; why: string }> {
  let answers: ReadonlyArray<{ readonly address: string }>;
  try {
    answers = await resolve(name);
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
    return { kind: 'unresolved', why: `cannot resolve ${name}: ${why}` };
  }
  const addresses = answers.map((answer) => parseIpAddress(answer.address));
  if (addresses.length === 0 || addresses.some((address) => address === undefined)) {
    return { kind: 'unresolved', why: `the resolver gave no usable address for ${name}` };
  }
  return addresses as IpAddress[];
}

function nonPublic(range: NonPublicRange, address: IpAddress): EgressResolution {
  return {
    kind: 'denied',
    reason: 'non_public_address',
    why: `resolves to a non-public (${range}) address`,
    address,
  };
}
