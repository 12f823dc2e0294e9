/**
 * What `Pool.start` accepts, checked before any VM starts: a wrong option would otherwise fail every refill, forever.
 */
import { z } from 'zod';
import { parseWith } from '../core/config.js';
import { InvalidArgumentError } from '../core/errors.js';
import { BOOT_ONLY_OPTIONS, type SandboxOptions, SandboxOptionsSchema } from './options.js';

/** Sandboxes one pool keeps ready. */
export const MAX_POOL_SIZE = 64;
/** Starts one pool runs at once; each is a VMM process competing for the host's cores. */
export const MAX_CONCURRENT_STARTS = 16;
const MAX_TIMER_MS = 2 ** 31 - 1;

const isFunction = (value: unknown): boolean => typeof value === 'function';
const isObject = (value: unknown): boolean => typeof value === 'object' && value !== null;
const timerMs = z.number().int().min(1).max(MAX_TIMER_MS);

/** The first wait after a failed start, doubled after each further failure up to `maxMs`. */
const RetrySchema = z
  .strictObject({ initialMs: timerMs, maxMs: timerMs })
  .refine((retry) => retry.initialMs <= retry.maxMs, 'initialMs must not exceed maxMs');

/** The options every pool takes, whatever starts its VMs. */
export const PoolCoreOptionsSchema = z.strictObject({
  /** Sandboxes kept ready. */
  size: z.number().int().min(1).max(MAX_POOL_SIZE),
  /** Starts in flight at once (default 2). */
  maxConcurrentStarts: z.number().int().min(1).max(MAX_CONCURRENT_STARTS).default(2),
  /** A ready sandbox older than this is destroyed and replaced (default: kept until handed out). */
  maxAgeMs: timerMs.optional(),
  /** Backoff after failed starts (default 250 ms, doubling up to 30 s); refilling pauses meanwhile. */
  retry: RetrySchema.default({ initialMs: 250, maxMs: 30_000 }),
  /** Told of every failed start and failed destroy; the pool goes on (retrying starts with a backoff). */
  onError: z.custom<(error: Error) => void>(isFunction, 'must be a function').optional(),
});

/** What `Pool.start` accepts. */
export const PoolOptionsSchema = PoolCoreOptionsSchema.extend({
  /** Keep clones of this stored snapshot ready (`sandbox.snapshot({ name })`): the fast path. */
  fromSnapshot: z.string().min(1).optional(),
  /** How to start each sandbox (`Sandbox.create` options); with `fromSnapshot`, only backend and timeout apply. */
  /**
   * Run `true` in each sandbox before it counts as ready (default true): the first exec in a new VM is the slow one
   * under emulation (~96 ms vs ~9 ms), and the refill pays for it instead of the caller.
   */
  warmUp: z.boolean().default(true),
  sandbox: z.custom<SandboxOptions>(isObject, 'must be an object').optional(),
});

/** Options of `Pool.start`. */
export type PoolOptions = z.input<typeof PoolOptionsSchema>;
/** Options of a pool whose VMs come from a start function of the caller's (`Pool.withStarter`). */
export type PoolCoreOptions = z.input<typeof PoolCoreOptionsSchema>;
/** Checked pool options, defaults applied. */
export type PoolSettings = z.output<typeof PoolCoreOptionsSchema>;

/**
 * Sandbox options a pool cannot pass on to every start: they concern one caller's sandbox, or the pool itself.
 * The reason completes "cannot be a pool's sandbox option: …".
 */
const PER_CALLER_OPTIONS: Partial<Record<keyof SandboxOptions, string>> = {
  signal: 'pass it to acquire()',
  detached: 'pooled sandboxes end with the pool or their caller',
  fromSnapshot: "use the pool's own fromSnapshot option",
  pool: 'a pool cannot start from another pool',
  onImageProgress: 'the pool starts sandboxes in the background',
};

/** What each start of a pool may be given besides the VM options: a configured backend. */
const PooledSandboxSchema = z.strictObject({
  ...SandboxOptionsSchema.shape,
  hypervisor: z.custom(isObject, 'must be a Hypervisor').optional(),
});

/** Checks the options every pool takes; an InvalidArgumentError names each wrong field. */
export function parsePoolCoreOptions(options: PoolCoreOptions): PoolSettings {
  return parseWith(PoolCoreOptionsSchema, options, 'invalid pool options');
}

/** Checks `Pool.start`'s options, and the sandbox options each start will use; returns them apart. */
export function parsePoolOptions(options: PoolOptions): {
  settings: PoolSettings;
  fromSnapshot: string | undefined;
  sandbox: SandboxOptions;
  warmUp: boolean;
} {
  const { fromSnapshot, sandbox = {}, warmUp, ...core } = parseWith(PoolOptionsSchema, options, 'invalid pool options');
  for (const [field, reason] of Object.entries(PER_CALLER_OPTIONS)) {
    if (sandbox[field as keyof SandboxOptions] !== undefined) {
      throw new InvalidArgumentError(
        `invalid pool options: sandbox.${field} cannot be a pool's sandbox option: ${reason}`,
      );
    }
  }
  parseWith(PooledSandboxSchema, sandbox, 'invalid pool options: sandbox');
  const fixed = fromSnapshot ? BOOT_ONLY_OPTIONS.filter((field) => sandbox[field] !== undefined) : [];
  if (fixed.length > 0) {
    const fields = fixed.map((field) => `sandbox.${field}`).join(', ');
    throw new InvalidArgumentError(
      `invalid pool options: ${fields} cannot be combined with fromSnapshot: the snapshot fixes the VM's configuration`,
    );
  }
  return { settings: core, fromSnapshot, sandbox, warmUp };
}

/** Options of `pool.acquire()` and `pool.warm()`. */
export const AcquireOptionsSchema = z.strictObject({
  signal: z.instanceof(AbortSignal).optional(),
  timeoutMs: z.number().int().min(0).max(MAX_TIMER_MS).optional(),
});
