/** The shapes a warm pool deals in: what it needs of a VM, how it starts one, and what it counts. */
import type { WaitOptions } from './pool-waiters.js';

/** What the pool needs of a VM. `Sandbox` is one; unit tests start fakes. */
export interface PooledVm {
  readonly id: string;
  /** Only a VM whose state is `running` is handed out. */
  readonly instance: { readonly state: { readonly kind: string } };
  destroy(): Promise<void>;
}

/** Starts one VM for a pool. `signal` aborts when the pool closes. */
export type PoolStarter<T extends PooledVm> = (signal: AbortSignal) => Promise<T>;

/** Options of `pool.acquire()` and `pool.warm()`: give up on `signal` (CancelledError) or after `timeoutMs`. */
export type AcquireOptions = WaitOptions;

/** A snapshot of a pool's bookkeeping (`pool.stats()`). */
export interface PoolStats {
  readonly size: number;
  /** Started and waiting to be handed out. */
  readonly ready: number;
  /** Starts in flight. */
  readonly starting: number;
  /** `acquire()` calls waiting for a start to finish. */
  readonly waiting: number;
  /** Sandboxes given to callers; they are the callers' to destroy. */
  readonly handedOut: number;
  /** Acquires served at once from a ready sandbox. */
  readonly hits: number;
  /** Acquires that had to wait (served, timed out or cancelled). */
  readonly misses: number;
  /** hits / (hits + misses); 0 before the first acquire. */
  readonly hitRatio: number;
  /** Starts that succeeded: handed out + ready + retired + discarded + (after close) destroyed by close. */
  readonly started: number;
  /** Starts that failed (each also went to `onError`). */
  readonly refillErrors: number;
  /** Ready sandboxes destroyed for being older than `maxAgeMs`. */
  readonly retired: number;
  /** Ready sandboxes found dead (VMM exited) and destroyed instead of handed out. */
  readonly discarded: number;
  /** Mean time of a successful start (the refill cost of one sandbox); undefined before the first. */
  readonly meanStartMs: number | undefined;
}
