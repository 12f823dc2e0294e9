/**
 * The daemon's sandbox lifecycle rules as pure functions: deadlines (idle and absolute, E2B-like) and the limits on
 * how many sandboxes and how much guest memory one daemon may hold.
 */
import { totalmem } from 'node:os';
import { JitvmError } from '../core/errors.js';
import { type Problem, problemFor } from './problem.js';

/** A sandbox nobody touched (exec, files, get) for this long is destroyed: 5 minutes. */
export const DEFAULT_IDLE_TIMEOUT_MS = 5 * 60_000;
/** A sandbox is destroyed this long after its creation unless extended: 1 hour. */
export const DEFAULT_TIMEOUT_MS = 60 * 60_000;
/** The longest timeout (absolute or idle) one request may set: 24 hours. */
export const MAX_TIMEOUT_MS = 24 * 60 * 60_000;
/** The memory a create counts when it names none: the VmConfig default. */
export const DEFAULT_SANDBOX_MEMORY_MIB = 256;

/** When a sandbox ends: its absolute deadline (epoch ms) and how long it may sit idle. */
export interface Deadlines {
  readonly expiresAt: number;
  readonly idleTimeoutMs: number;
}

/** A sandbox's recent use: when a request last touched it, and how many requests on it are still open. */
export interface Activity {
  readonly lastActiveAt: number;
  readonly busy: number;
}

/** Why the reaper destroyed a sandbox. */
export type ExpiryReason = 'timeout' | 'idle';

/** The deadlines of a sandbox created at `now`, from the create request's optional timeouts. */
export function initialDeadlines(now: number, requested: { timeoutMs?: number; idleTimeoutMs?: number }): Deadlines {
  return {
    expiresAt: now + (requested.timeoutMs ?? DEFAULT_TIMEOUT_MS),
    idleTimeoutMs: requested.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
  };
}

/** When the sandbox becomes idle-expired: an open request keeps pushing this forward. */
export function idleExpiresAt(deadlines: Deadlines, activity: Activity, now: number): number {
  return (activity.busy > 0 ? now : activity.lastActiveAt) + deadlines.idleTimeoutMs;
}

/**
 * Whether the sandbox should be destroyed at `now`, and why. The absolute deadline is a hard cap (a running command
 * does not defer it); the idle one never passes while a request on the sandbox (a streaming exec…) is open.
 */
export function expiryReason(deadlines: Deadlines, activity: Activity, now: number): ExpiryReason | undefined {
  if (now >= deadlines.expiresAt) return 'timeout';
  if (now >= idleExpiresAt(deadlines, activity, now)) return 'idle';
  return undefined;
}

/** The most a daemon holds at once. */
export interface Limits {
  readonly maxSandboxes: number;
  /** Total guest memory of its sandboxes, creations in flight included. */
  readonly maxMemoryMiB: number;
}

/** Defaults: 16 sandboxes, and half of this host's RAM for their guests. */
export function defaultLimits(hostMemoryBytes: number = totalmem()): Limits {
  return { maxSandboxes: 16, maxMemoryMiB: Math.floor(hostMemoryBytes / 2 / 1024 / 1024) };
}

/** What a daemon holds now: its sandboxes and creations in flight. */
export interface Usage {
  readonly sandboxes: number;
  readonly memoryMiB: number;
}

/** A create refused because a limit is reached (`resource_exhausted`): answered 429 (count) or 507 (memory). */
export class LimitExceededError extends JitvmError {
  constructor(
    readonly status: 429 | 507,
    message: string,
  ) {
    super('resource_exhausted', message);
  }

  /** The problem document the daemon answers with. */
  problem(): Problem {
    const title = this.status === 429 ? 'Too many sandboxes' : 'Not enough memory for another sandbox';
    return { ...problemFor(this.code, this.message), status: this.status, title };
  }
}

/** Refuses (LimitExceededError) a create of `memoryMiB` that would take `usage` past `limits`. */
export function checkLimits(usage: Usage, memoryMiB: number, limits: Limits): void {
  if (usage.sandboxes + 1 > limits.maxSandboxes) {
    throw new LimitExceededError(
      429,
      `this daemon already holds ${usage.sandboxes} of its ${limits.maxSandboxes} sandboxes (creations in flight ` +
        'included); destroy one, or restart it with a higher `jitvm serve --max-sandboxes`',
    );
  }
  if (usage.memoryMiB + memoryMiB > limits.maxMemoryMiB) {
    throw new LimitExceededError(
      507,
      `a ${memoryMiB} MiB sandbox would take this daemon's guests to ${usage.memoryMiB + memoryMiB} MiB, past its ` +
        `limit of ${limits.maxMemoryMiB} MiB; destroy a sandbox, ask for less memoryMiB, or restart it with a higher ` +
        '`jitvm serve --max-memory-mib`',
    );
  }
}
