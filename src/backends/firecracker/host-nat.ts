/**
 * A Firecracker VM's `nat` network on the host: a TAP device, IPv4 forwarding and one nftables table per VM.
 * Firecracker has no user-mode networking, so this is the only way to NAT its guests; it needs CAP_NET_ADMIN, `ip`
 * (iproute2) and `nft` (nftables). What it creates is removed by removeHostLeftovers (src/core/vm-record.ts).
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { JitvmError } from '../../core/errors.js';
import { findOnPath } from '../../core/host-tools.js';
import { parseJsonOrUndefined } from '../../core/json.js';
import { type HostLeftovers, removeHostLeftovers } from '../../core/vm-record.js';
import { IpAddrSchema, type NatPlan, natRuleset, planHostNat } from './nat-plan.js';

/** CAP_NET_ADMIN's bit in /proc/self/status's CapEff. */
const CAP_NET_ADMIN = 12n;
const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';
const RESOLV_CONF = '/etc/resolv.conf';
const COMMAND_TIMEOUT_MS = 10_000;
const ALTERNATIVES =
  "Run jitvm as root on a host with iproute2 and nftables, use network mode 'tap' with a TAP you set up, " +
  "mode 'allowlist' (it needs no NIC), or the qemu backend (user-mode NAT, no privileges)";

/** What the preconditions look at, injectable so tests can play any host. */
export interface NatHost {
  readonly platform: NodeJS.Platform;
  /** Whether this process holds CAP_NET_ADMIN (root does, unless a container took it away). */
  readonly netAdmin: boolean;
  findTool(name: string): string | undefined;
}

/** The host this process runs on. Reads /proc/self/status. */
export function thisNatHost(): NatHost {
  return { platform: process.platform, netAdmin: holdsNetAdmin(), findTool: (name) => findOnPath(name) };
}

function holdsNetAdmin(): boolean {
  try {
    const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    return hex !== undefined && ((BigInt(`0x${hex}`) >> CAP_NET_ADMIN) & 1n) === 1n;
  } catch {
    return false;
  }
}

/** The programs applying a NAT runs. */
export interface NatTools {
  readonly ip: string;
  readonly nft: string;
}

/**
 * Checks, before anything is created, that this host can set up a NAT: Linux, CAP_NET_ADMIN, `ip` and `nft` on PATH.
 * Refuses with `unsupported`, naming everything missing and the alternatives.
 */
export function requireNatHost(host: NatHost): NatTools {
  if (host.platform !== 'linux') {
    throw new JitvmError(
      'unsupported',
      `nat for Firecracker needs a Linux host, not ${host.platform}. ${ALTERNATIVES}`,
    );
  }
  const ip = host.findTool('ip');
  const nft = host.findTool('nft');
  const missing = [
    ...(host.netAdmin ? [] : ['CAP_NET_ADMIN (run jitvm as root)']),
    ...(ip ? [] : ['`ip` (Debian package iproute2)']),
    ...(nft ? [] : ['`nft` (Debian package nftables)']),
  ];
  if (!ip || !nft || !host.netAdmin) {
    throw new JitvmError(
      'unsupported',
      `nat for Firecracker creates a TAP device and nftables NAT rules on the host, which needs ` +
        `${missing.join(', ')}. ${ALTERNATIVES}`,
    );
  }
  return { ip, nft };
}

/** What removeHostLeftovers must remove for a VM's NAT. */
export function natLeftovers(plan: NatPlan): Pick<HostLeftovers, 'tap' | 'nftTable'> {
  return { tap: plan.tap, nftTable: plan.table };
}

/**
 * Plans and applies VM `id`'s NAT: the TAP (owned by `owner`, addressed and up), IPv4 forwarding on (host-wide, and
 * left on), the nftables table. Reads `ip -j addr` and /etc/resolv.conf once; costs five short processes. A failure
 * removes whatever was created and is an `unsupported` error carrying the tool's message.
 */
export async function setUpHostNat(tools: NatTools, vm: { id: string; mac?: string; owner: number }): Promise<NatPlan> {
  const interfaces = IpAddrSchema.safeParse(parseJsonOrUndefined(await run(tools.ip, ['-j', 'addr'])));
  if (!interfaces.success) throw new JitvmError('internal', '`ip -j addr` printed something other than its JSON');
  const plan = planHostNat({ ...vm, interfaces: interfaces.data, resolvConf: readResolvConf() });
  try {
    await run(tools.ip, ['tuntap', 'add', 'dev', plan.tap, 'mode', 'tap', 'user', String(plan.owner)]);
    await run(tools.ip, ['addr', 'add', `${plan.host}/30`, 'dev', plan.tap]);
    await run(tools.ip, ['link', 'set', plan.tap, 'up']);
    enableForwarding();
    await run(tools.nft, ['-f', '-'], natRuleset(plan));
  } catch (error) {
    removeHostLeftovers({ dirs: [], ...natLeftovers(plan) });
    throw error;
  }
  return plan;
}

function readResolvConf(): string {
  try {
    return readFileSync(RESOLV_CONF, 'utf8');
  } catch {
    return '';
  }
}

/** Written only when off, so a host that forwards already needs no write access to /proc/sys. */
function enableForwarding(): void {
  try {
    if (readFileSync(IP_FORWARD, 'utf8').trim() !== '1') writeFileSync(IP_FORWARD, '1\n');
  } catch (error) {
    throw new JitvmError('unsupported', `cannot turn on IPv4 forwarding (${IP_FORWARD}): ${String(error)}`, {
      cause: error,
    });
  }
}

/** Runs a tool without a shell, `input` on stdin, and resolves with its stdout. */
function run(program: string, args: readonly string[], input = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      program,
      args,
      { encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS, env: { ...process.env, LC_ALL: 'C' } },
      (error, stdout, stderr) => {
        if (!error) return resolve(stdout);
        const detail = stderr.trim() || error.message;
        reject(
          new JitvmError('unsupported', `setting up nat: \`${program} ${args.join(' ')}\` failed: ${detail}`, {
            cause: error,
          }),
        );
      },
    );
    child.stdin?.on('error', () => {});
    child.stdin?.end(input);
  });
}
