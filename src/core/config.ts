import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { InvalidArgumentError } from './errors.js';
import { ALLOWLIST_FORMS, parseAllowEntry } from '../network/allowlist.js';
import { normalizeDomainName } from '../network/domain-name.js';
import { parseIpAddress } from '../network/ip-address.js';

export const ARCHES = ['x86_64', 'aarch64'] as const;
export type Arch = (typeof ARCHES)[number];

export const ACCELERATORS = ['kvm', 'hvf', 'whpx', 'tcg'] as const;
export type Accelerator = (typeof ACCELERATORS)[number];

/** The host's architecture in jitvm's naming, or undefined on a host jitvm cannot run guests for. */
export function hostArch(): Arch | undefined {
  if (process.arch === 'x64') return 'x86_64';
  if (process.arch === 'arm64') return 'aarch64';
  return undefined;
}

const kernelArg = z
  .string()
  .min(1)
  .regex(/^[^\s"]+$/, 'a kernel argument may not contain spaces or quotes');

/** A host file path, made absolute: a VMM resolves relative paths against its own working directory, not ours. */
function hostPath(message: string) {
  return z
    .string()
    .min(1, message)
    .transform((path) => resolve(path));
}

/** A token bucket: `size` tokens (bytes or operations), refilled over `refillTimeMs`, plus an optional first burst. */
export const TokenBucketSchema = z
  .object({
    size: z.number().int().min(1),
    refillTimeMs: z.number().int().min(1),
    oneTimeBurst: z.number().int().min(0).optional(),
  })
  .strict();
export type TokenBucket = z.output<typeof TokenBucketSchema>;

/** Limits on a device's bandwidth (bytes) and/or operations. */
export const RateLimiterSchema = z
  .object({ bandwidth: TokenBucketSchema.optional(), ops: TokenBucketSchema.optional() })
  .strict()
  .refine((limiter) => limiter.bandwidth || limiter.ops, 'a rate limiter needs `bandwidth`, `ops` or both');
export type RateLimiter = z.output<typeof RateLimiterSchema>;

/**
 * A virtio block device: a host file (read-only unless asked otherwise), or — with `sizeMiB` instead of `path` — a
 * fresh empty ext4 scratch disk the backend makes in the VM's runtime dir and removes with it.
 */
export const DriveSchema = z
  .object({
    /** Firecracker's drive_id rules: letters, digits and `_`. */
    id: z.string().regex(/^[A-Za-z0-9_]{1,32}$/, 'a drive id is 1-32 letters, digits or `_`'),
    path: hostPath('a drive needs the path of a disk image on the host').optional(),
    sizeMiB: z.number().int().min(8).max(1_048_576).optional(),
    readOnly: z.boolean().default(true),
    /** The guest's root device (at most one): attached first, so it is /dev/vda. */
    root: z.boolean().default(false),
    rateLimiter: RateLimiterSchema.optional(),
  })
  .strict()
  .refine((drive) => (drive.path === undefined) !== (drive.sizeMiB === undefined), {
    message: 'a drive needs either `path` (a disk image on the host) or `sizeMiB` (a fresh scratch disk), not both',
  })
  .refine((drive) => drive.sizeMiB === undefined || !drive.readOnly, {
    message: 'a scratch disk (`sizeMiB`) is writable: set `readOnly: false`',
  });
export type Drive = z.output<typeof DriveSchema>;
/** A drive whose host file exists: a scratch disk after the backend made it. */
export type AttachedDrive = Drive & { readonly path: string };

/** Drives in the order a backend attaches them: the root drive first (so it is /dev/vda), the rest as given. */
export function attachOrder<T extends Pick<Drive, 'root'>>(drives: readonly T[]): T[] {
  return [...drives.filter((drive) => drive.root), ...drives.filter((drive) => !drive.root)];
}

/**
 * Host names the guest's lookups of which go to the given address instead of DNS (`allowed.test` → `127.0.0.1`):
 * the guest's /etc/hosts in nat mode, the proxy's resolver in allowlist mode.
 */
export const HostsSchema = z.record(z.string(), z.string()).transform((hosts, ctx) => {
  const entries = Object.entries(hosts);
  if (entries.length > 256) ctx.addIssue({ code: 'custom', message: 'at most 256 hosts entries' });
  const normalized: Record<string, string> = {};
  for (const [name, ip] of entries) {
    const address = parseIpAddress(ip);
    if (normalizeDomainName(name) === undefined) {
      ctx.addIssue({ code: 'custom', path: [name], message: 'not a host name (labels of letters, digits, `-`, `_`)' });
    } else if (address === undefined) {
      ctx.addIssue({ code: 'custom', path: [name], message: `${JSON.stringify(ip)} is not an IP address (no port)` });
    } else {
      normalized[name] = address.text;
    }
  }
  return normalized;
});

/** Allowlist entries: each must be a name, a `*.` wildcard, an IP address or a CIDR (src/network/allowlist.ts). */
const AllowEntriesSchema = z
  .array(
    z.string().superRefine((entry, ctx) => {
      const parsed = parseAllowEntry(entry);
      if (typeof parsed === 'string') {
        ctx.addIssue({ code: 'custom', message: `${JSON.stringify(entry)}: ${parsed}; use ${ALLOWLIST_FORMS}` });
      }
    }),
  )
  .min(1, 'an allowlist needs at least one entry')
  .max(256);

const MacSchema = z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i, 'a MAC address looks like 06:00:ac:10:00:02');

/**
 * The guest's network, enforced on the host:
 * - `none` (the default): no NIC at all.
 * - `nat`: a NIC behind the backend's NAT (QEMU user-mode networking: the guest reaches the internet and the host's
 *   loopback through the gateway 10.0.2.2); `hosts` go to the guest's /etc/hosts.
 * - `allowlist`: no NIC; the only way out is the HTTP(S) proxy at the guest's 127.0.0.1:3128, carried over the agent
 *   channel to the host, which lets through only the listed domains (`*.example.com` for subdomains) and CIDRs.
 * - `tap`: a NIC on an existing host TAP device (Linux; you route it).
 */
export const NetworkSchema = z.discriminatedUnion('mode', [
  z.object({ mode: z.literal('none') }).strict(),
  z.object({ mode: z.literal('nat'), hosts: HostsSchema.optional(), mac: MacSchema.optional() }).strict(),
  z
    .object({
      mode: z.literal('allowlist'),
      allow: AllowEntriesSchema,
      hosts: HostsSchema.optional(),
    })
    .strict(),
  z
    .object({
      mode: z.literal('tap'),
      /** The host TAP device; create it first, e.g. `ip tuntap add jv0 mode tap user $USER`. */
      tap: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, 'a TAP device name is 1-15 letters, digits, `_`, `.` or `-`'),
      mac: MacSchema.optional(),
      rxRateLimiter: RateLimiterSchema.optional(),
      txRateLimiter: RateLimiterSchema.optional(),
    })
    .strict(),
]);
export type Network = z.output<typeof NetworkSchema>;

/** Whether the network mode gives the guest a NIC (allowlist mode has none: its proxy rides the agent channel). */
export function hasNic(network: Network): network is Extract<Network, { mode: 'nat' | 'tap' }> {
  return network.mode === 'nat' || network.mode === 'tap';
}

/** microvm has eight virtio-mmio slots; the agent channel takes one, drives, shares and a NIC share the rest. */
const MAX_DRIVES = 6;
const MAX_DEVICES = 7;

/**
 * A host directory shared with the guest over virtio-fs, mounted by its `tag`; read-only unless asked otherwise.
 * QEMU serves it with virtiofsd (Linux), vfkit with Virtualization.framework's own virtio-fs.
 */
export const ShareSchema = z
  .object({
    tag: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'a share tag is 1-32 letters, digits, `_` or `-`'),
    path: hostPath('a share needs the path of a host directory'),
    readOnly: z.boolean().default(true),
  })
  .strict();
export type Share = z.output<typeof ShareSchema>;

/** What a backend needs to boot one VM. Every field has a sane default and a hard limit. */
export const VmConfigSchema = z
  .object({
    cpus: z.number().int().min(1).max(64).default(1),
    memoryMiB: z.number().int().min(64).max(65536).default(256),
    kernel: hostPath('kernel must be a path to a kernel image'),
    initrd: hostPath('initrd must be a path to an initramfs'),
    kernelArgs: z.array(kernelArg).max(64).default([]),
    arch: z.enum(ARCHES).default(hostArch() ?? 'x86_64'),
    accelerator: z.enum(ACCELERATORS).optional(),
    bootTimeoutMs: z.number().int().min(1000).max(600_000).default(60_000),
    drives: z
      .array(DriveSchema)
      .max(MAX_DRIVES)
      .default([])
      .refine((drives) => new Set(drives.map((d) => d.id)).size === drives.length, 'drive ids must be unique')
      .refine((drives) => drives.filter((d) => d.root).length <= 1, 'at most one drive can be the root device'),
    network: NetworkSchema.default({ mode: 'none' }),
    shares: z
      .array(ShareSchema)
      .max(4)
      .default([])
      .refine((shares) => new Set(shares.map((s) => s.tag)).size === shares.length, 'share tags must be unique'),
  })
  .refine((config) => config.drives.length + config.shares.length + (hasNic(config.network) ? 1 : 0) <= MAX_DEVICES, {
    message: `drives, shares and a NIC together take at most ${MAX_DEVICES} virtio devices`,
  });

export type VmConfigInput = z.input<typeof VmConfigSchema>;
export type VmConfig = z.output<typeof VmConfigSchema>;

/** Turns a zod failure into one readable line per wrong field, naming the field and what it accepts. */
export function describeZodError(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(input)'}: ${issue.message}`)
    .join('; ');
}

/** Validates caller input into a complete VmConfig or throws InvalidArgumentError naming each wrong field. */
export function parseVmConfig(input: unknown): VmConfig {
  return parseWith(VmConfigSchema, input, 'invalid VM config');
}

/** Parses `input` with `schema`, throwing InvalidArgumentError with `context` and every wrong field. */
export function parseWith<S extends z.ZodType>(schema: S, input: unknown, context: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw new InvalidArgumentError(`${context}: ${describeZodError(result.error)}`);
  return result.data;
}

/** Refuses a config whose kernel or initrd is missing on the host, before any VMM is started. */
export function requireBootFiles(config: Pick<VmConfig, 'kernel' | 'initrd'>): void {
  for (const [what, path] of [
    ['kernel', config.kernel],
    ['initrd', config.initrd],
  ] as const) {
    if (!existsSync(path)) throw new InvalidArgumentError(`${what} ${path} does not exist; run \`jitvm image build\``);
  }
}
