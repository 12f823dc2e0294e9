import { z } from 'zod';
import { ARCHES, DriveSchema, NetworkSchema } from '../core/config.js';
import { PortForwardSchema } from './ports.js';
import { RootfsSchema, VolumeSchema } from './storage.js';
import type { Hypervisor } from '../core/hypervisor.js';
import type { EgressDecision } from '../network/egress-options.js';
import type { Pool } from './pool.js';

/** What `Sandbox.create()` accepts. Unset fields get the VmConfig defaults; kernel/initrd default to the built image. */
export const SandboxOptionsSchema = z.object({
  cpus: z.number().int().min(1).max(64).optional(),
  memoryMiB: z.number().int().min(64).max(65536).optional(),
  backend: z.string().min(1).optional(),
  kernel: z.string().min(1).optional(),
  initrd: z.string().min(1).optional(),
  kernelArgs: z.array(z.string()).optional(),
  arch: z.enum(ARCHES).optional(),
  bootTimeoutMs: z.number().int().min(1000).max(600_000).optional(),
  /** Disk images attached as virtio block devices (read-only unless `readOnly: false`). */
  drives: z.array(DriveSchema).optional(),
  /** `none` (the default: no NIC), `nat`, `allowlist` (domains and CIDRs, through a host-side proxy) or `tap`. */
  network: NetworkSchema.optional(),
  /** Boot into this root filesystem image (read-only, shared) with the sandbox's writes in an overlay. */
  rootfs: RootfsSchema.optional(),
  /** Extra disk images mounted in the guest, read-only unless `readOnly: false`. */
  volumes: z.array(VolumeSchema).max(4).optional(),
  /** Guest TCP ports published on the host's 127.0.0.1 (`host: 0` or absent: any free port); see `getHost`. */
  ports: z.array(PortForwardSchema).max(32).optional(),
  /** Keep the VM running after this process exits (CLI `create`); `Sandbox.connect(id)` reaches it later. */
  detached: z.boolean().optional(),
  /** Start from this stored snapshot (see `sandbox.snapshot()`) instead of booting: its config comes with it. */
  fromSnapshot: z.string().min(1).optional(),
});

/** The options that describe a VM to boot, which a snapshot already fixes. */
export const BOOT_ONLY_OPTIONS = [
  'cpus',
  'memoryMiB',
  'kernel',
  'initrd',
  'kernelArgs',
  'arch',
  'drives',
  'network',
  'rootfs',
  'volumes',
] as const;

export type SandboxOptions = z.input<typeof SandboxOptionsSchema> & {
  /** A configured backend to use instead of one chosen by name (e.g. Firecracker with the jailer). */
  hypervisor?: Hypervisor;
  /** Cancels the boot; the half-started VM is torn down. */
  signal?: AbortSignal;
  /** Progress of a first-use image build. */
  onImageProgress?: (progress: { step: string; message: string; done?: boolean }) => void;
  /** Told every allow/deny verdict of the allowlist proxy (network mode `allowlist`). */
  onEgressDecision?: (decision: EgressDecision) => void;
  /** Take the sandbox from this warm pool (`Pool.start`); the pool fixes the VM, so no other VM option may be given. */
  pool?: Pool;
};

const envKey = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Per-exec options, validated at the SDK boundary. */
export const ExecOptionsSchema = z.object({
  env: z
    .record(z.string(), z.string())
    .refine((env) => Object.keys(env).every((key) => envKey.test(key)), 'env names must match [A-Za-z_][A-Za-z0-9_]*')
    .optional(),
  cwd: z.string().min(1).optional(),
  timeoutMs: z
    .number()
    .int()
    .min(1)
    .max(2 ** 31 - 1)
    .optional(),
});
