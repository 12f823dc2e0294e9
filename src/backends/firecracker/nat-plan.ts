/**
 * Pure planning of a Firecracker VM's host NAT: the TAP's name, a free /30 out of 172.30.0.0/16, the guest's MAC
 * and DNS server, the `jitvm.net` boot argument and the nftables ruleset. host-nat.ts reads the host and applies it.
 */
import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { z } from 'zod';
import { BOOT_ARG } from '../../channel/protocol.js';
import { JitvmError } from '../../core/errors.js';

/** The pool every NAT'ed VM's /30 comes from. */
const POOL = { base: ipToInt('172.30.0.0'), prefix: 16 } as const;
const SUBNET_PREFIX = 30;
const SUBNET_SIZE = 2 ** (32 - SUBNET_PREFIX);
const SUBNET_COUNT = 2 ** (SUBNET_PREFIX - POOL.prefix);

/** One interface of `ip -j addr`: its name and IPv4 networks (other fields and families are ignored). */
export const IpAddrSchema = z.array(
  z.object({
    ifname: z.string(),
    addr_info: z.array(z.object({ family: z.string(), local: z.string().optional(), prefixlen: z.number().int() })),
  }),
);
export type HostInterfaces = z.infer<typeof IpAddrSchema>;

/** What one VM's host NAT consists of. Addresses are dotted quads; the subnet is `<network>/30`. */
export interface NatPlan {
  /** The TAP device (≤ 15 characters, IFNAMSIZ). */
  readonly tap: string;
  /** The nftables table, in family `ip`. */
  readonly table: string;
  readonly subnet: string;
  /** The TAP's address: the guest's gateway. */
  readonly host: string;
  readonly guest: string;
  readonly mac: string;
  /** The host's first non-loopback IPv4 nameserver; undefined when it has none (the guest then resolves no names). */
  readonly dns: string | undefined;
  /** Who may attach to the TAP: the uid Firecracker runs as. */
  readonly owner: number;
}

export interface NatPlanInput {
  readonly id: string;
  /** The MAC the config asks for; default derived from the id (locally administered). */
  readonly mac?: string;
  readonly owner: number;
  /** `ip -j addr`, read once. */
  readonly interfaces: HostInterfaces;
  /** The host's /etc/resolv.conf. */
  readonly resolvConf: string;
}

/** `jv` and 10 hex digits of the id's SHA-256: 12 characters, the same for the same id. */
export function natTapName(id: string): string {
  return `jv${digest(id).toString('hex').slice(0, 10)}`;
}

/** `jitvm_<id>` with `-` as `_` (ids have no `_`, so two ids never share a table). */
export function natTableName(id: string): string {
  return `jitvm_${id.replaceAll('-', '_')}`;
}

/**
 * Plans one VM's NAT. Refuses (invalid_state) when an interface already has the TAP's name (a leftover) and
 * (unsupported) when every /30 of 172.30.0.0/16 overlaps an address on the host.
 */
export function planHostNat(input: NatPlanInput): NatPlan {
  const tap = natTapName(input.id);
  if (input.interfaces.some((iface) => iface.ifname === tap)) {
    throw new JitvmError(
      'invalid_state',
      `the network interface ${tap} (VM ${input.id}'s TAP) exists already: a VM with this id still runs, or one ` +
        `left it behind; remove it with \`ip link del ${tap}\``,
    );
  }
  const network = freeSubnet(input.id, takenNetworks(input.interfaces));
  return {
    tap,
    table: natTableName(input.id),
    subnet: `${intToIp(network)}/${SUBNET_PREFIX}`,
    host: intToIp(network + 1),
    guest: intToIp(network + 2),
    mac: input.mac?.toLowerCase() ?? derivedMac(input.id),
    dns: firstNameserver(input.resolvConf),
    owner: input.owner,
  };
}

/**
 * The first `nameserver` of a resolv.conf that the guest can reach through the NAT: IPv4 (the guest has no IPv6)
 * and not loopback (127.0.0.53 of systemd-resolved means the host's own stub, which the guest cannot reach).
 */
export function firstNameserver(resolvConf: string): string | undefined {
  for (const line of resolvConf.split('\n')) {
    const [keyword, address] = line.trim().split(/\s+/);
    if (keyword !== 'nameserver' || !address || !isIPv4(address)) continue;
    const first = Number(address.split('.')[0]);
    if (first !== 127 && first !== 0) return address;
  }
  return undefined;
}

/**
 * `jitvm.net=<guest>/30,<host>,<dns>` for the agent. Without a DNS server the host's address stands in: the agent
 * needs one, and the host drops the guest's queries to itself, so names fail to resolve while addresses work.
 */
export function natBootArg(plan: NatPlan): string {
  return `${BOOT_ARG.NET}=${plan.guest}/${SUBNET_PREFIX},${plan.host},${plan.dns ?? plan.host}`;
}

/**
 * The VM's nftables table, loaded atomically by `nft -f -` (re-creating a leftover of the same name):
 * - postrouting: the guest's address is masqueraded when it leaves through any other interface;
 * - forward: only packets from the guest's own address leave the TAP (no spoofing); towards the TAP only replies
 *   pass, so nothing outside (nor another VM) opens a connection to the guest;
 * - input: the guest opens no connection to the host itself (its services, on any address), except DNS to the
 *   planned nameserver when that is one of the host's addresses; replies to the host's own connections pass.
 */
export function natRuleset(plan: NatPlan): string {
  const tap = `"${plan.tap}"`;
  const dns = plan.dns
    ? [`    iifname ${tap} ip saddr ${plan.guest} ip daddr ${plan.dns} meta l4proto { tcp, udp } th dport 53 accept`]
    : [];
  return [
    `add table ip ${plan.table}`,
    `delete table ip ${plan.table}`,
    `table ip ${plan.table} {`,
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    ip saddr ${plan.guest} oifname != ${tap} masquerade`,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    `    iifname ${tap} ip saddr ${plan.guest} accept`,
    `    iifname ${tap} drop`,
    `    oifname ${tap} ct state established,related accept`,
    `    oifname ${tap} drop`,
    '  }',
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    `    iifname ${tap} ct state established,related accept`,
    ...dns,
    `    iifname ${tap} drop`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** The IPv4 networks on the host's interfaces, as [first, last] address ranges. */
function takenNetworks(interfaces: HostInterfaces): [number, number][] {
  return interfaces.flatMap((iface) =>
    iface.addr_info
      .filter((addr) => addr.family === 'inet' && addr.local !== undefined && isIPv4(addr.local))
      .map((addr): [number, number] => {
        const size = 2 ** (32 - addr.prefixlen);
        const first = Math.floor(ipToInt(addr.local as string) / size) * size;
        return [first, first + size - 1];
      }),
  );
}

/** The VM's /30: the one its id hashes to, else the next one that overlaps no host network. */
function freeSubnet(id: string, taken: [number, number][]): number {
  const start = digest(id).readUInt32BE(8) % SUBNET_COUNT;
  for (let i = 0; i < SUBNET_COUNT; i++) {
    const network = POOL.base + ((start + i) % SUBNET_COUNT) * SUBNET_SIZE;
    const last = network + SUBNET_SIZE - 1;
    if (!taken.some(([first, end]) => network <= end && first <= last)) return network;
  }
  throw new JitvmError(
    'unsupported',
    `every /30 of 172.30.0.0/16 overlaps an address on this host, so a NAT'ed VM has no subnet: free some, ` +
      "or use network mode 'tap' with a TAP you set up",
  );
}

/** A locally administered unicast MAC (06:…) from the id. */
function derivedMac(id: string): string {
  const bytes = [0x06, 0x00, ...digest(id).subarray(12, 16)];
  return bytes.map((byte) => byte.toString(16).padStart(2, '0')).join(':');
}

function digest(id: string): Buffer {
  return createHash('sha256').update(id).digest();
}

function ipToInt(ip: string): number {
  return ip.split('.').reduce((value, octet) => value * 256 + Number(octet), 0);
}

function intToIp(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}
