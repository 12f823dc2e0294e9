/**
 * A sandbox's egress policy: the allowlist, plus the operator's `hosts` overrides (name → address, consulted before
 * DNS, like /etc/hosts). An override does not allow a name by itself: the allowlist still decides. What it changes
 * is where an allowed name goes, and its address is trusted even when it is loopback or private, because the
 * operator chose it.
 */
import { z } from 'zod';

import { parseWith } from '../core/config.js';
import { Allowlist, AllowlistSchema } from './allowlist.js';
import { normalizeDomainName } from './domain-name.js';
import { type IpAddress, parseIpAddress } from './ip-address.js';

const MAX_OVERRIDES = 4096;

const HostsSchema = z.record(z.string(), z.string()).transform((hosts, ctx) => {
  const overrides = new Map<string, IpAddress>();
  for (const [key, value] of Object.entries(hosts)) {
    const name = normalizeDomainName(key);
    const ip = parseIpAddress(value);
    if (name === undefined) {
      ctx.addIssue({ code: 'custom', path: [key], message: `${JSON.stringify(key)} is not a host name` });
    } else if (ip === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: [key],
        message: `${JSON.stringify(value)} is not an IP address (write 127.0.0.1 or ::1, no port)`,
      });
    } else {
      overrides.set(name, ip);
    }
  }
  if (overrides.size > MAX_OVERRIDES) {
    ctx.addIssue({ code: 'custom', message: `at most ${MAX_OVERRIDES} host overrides are accepted` });
  }
  return overrides;
});

/** `allow`: allowlist entries (see allowlist.ts); `hosts`: name → IP overrides, e.g. `{ 'api.test': '127.0.0.1' }`. */
export const EgressPolicySchema = z
  .object({
    allow: AllowlistSchema,
    hosts: HostsSchema.default(() => new Map()),
  })
  .strict();
export type EgressPolicyInput = z.input<typeof EgressPolicySchema>;

/** A checked, compiled policy; build it with compileEgressPolicy and share it between connections. */
export interface EgressPolicy {
  readonly allowlist: Allowlist;
  /** Keys in normalizeDomainName's form. */
  readonly hosts: ReadonlyMap<string, IpAddress>;
}

/** Validates `input` and compiles it; a wrong entry throws InvalidArgumentError naming it and the accepted forms. */
export function compileEgressPolicy(input: unknown): EgressPolicy {
  const policy = parseWith(EgressPolicySchema, input, 'invalid egress policy');
  return { allowlist: new Allowlist(policy.allow), hosts: policy.hosts };
}
