/**
 * The warm pool: keeps `size` sandboxes of one spec started, so `acquire()` hands one out at once instead of a
 * restore (~0.1–0.4 s under TCG) or a cold boot (~2.4 s). One pool serves one (image, config) key. docs/pool.md.
 */
import { trackPool } from '../metrics/registry.js';
import { CancelledError, JitvmError } from '../core/errors.js';
import { parseWith } from '../core/config.js';
import { SnapshotStore } from '../snapshot/store.js';
import { PoolStatusFile } from './pool-status.js';
import {
  AcquireOptionsSchema,
  type PoolCoreOptions,
  type PoolOptions,
  type PoolSettings,
  parsePoolCoreOptions,
  parsePoolOptions,
} from './pool-options.js';
import { BackgroundTasks, Backoff, reporter } from './pool-background.js';
import { ReadyList, isAlive } from './pool-ready.js';
import type { AcquireOptions, PoolStarter, PoolStats, PooledVm } from './pool-types.js';
import { type WaitOptions, Waiters } from './pool-waiters.js';
import { sandboxStarter } from './pool-start.js';
import type { Sandbox } from './sandbox.js';

export type { AcquireOptions, PoolStarter, PoolStats, PooledVm } from './pool-types.js';
export type { PoolCoreOptions, PoolOptions } from './pool-options.js';

type Counter = 'handedOut' | 'hits' | 'misses' | 'started' | 'refillErrors' | 'retired' | 'discarded';

/**
 * Keeps `size` sandboxes ready and refills in the background with at most `maxConcurrentStarts` starts at once; a
 * failed start is reported to `onError` and retried after a backoff (`retry`: 250 ms doubling to 30 s by default).
 * Never hands a VM out twice. `close()` (or `await using`) destroys what is still ready; sandboxes handed out are
 * their callers' to destroy. An open pool keeps the process alive (its VMMs do): close it.
 */
export class Pool<T extends PooledVm = Sandbox> implements AsyncDisposable {
  private readonly ready: ReadyList<T>;
  private readonly acquirers = new Waiters<T>();
  private readonly warmers = new Waiters<void>();
  private readonly report: (error: unknown) => void;
  /** Starts and destroys in flight; `close()` waits for all of them. */
  private readonly tasks: BackgroundTasks;
  private readonly backoff: Backoff;
  private readonly stopStarts = new AbortController();
  private readonly counts: Record<Counter, number> = {
    handedOut: 0,
    hits: 0,
    misses: 0,
    started: 0,
    refillErrors: 0,
    retired: 0,
    discarded: 0,
  };
  private starting = 0;
  private startMsTotal = 0;
  private lastError: unknown;
  private fillSoon: NodeJS.Immediate | undefined;
  private closing: Promise<void> | undefined;
  /** What `jitvm pool` reads (pools from `Pool.start` only). */
  private status: PoolStatusFile | undefined;
  /** Stops counting this pool in the pool metrics. */
  private readonly untrack: () => void;

  private constructor(
    private readonly settings: PoolSettings,
    private readonly starter: PoolStarter<T>,
  ) {
    this.report = reporter(settings.onError);
    this.tasks = new BackgroundTasks(this.report);
    this.backoff = new Backoff(settings.retry, () => this.fill());
    this.ready = new ReadyList(settings.maxAgeMs, (vm) => {
      this.counts.retired++;
      this.dispose(vm);
      this.scheduleFill();
    });
    this.untrack = trackPool(() => this.stats());
    this.fill();
  }

  /**
   * Starts a pool of sandboxes: clones of the stored snapshot `fromSnapshot` (refused at once with `not_found` if
   * it is not in the store), else cold boots with the `sandbox` options; each runs one `true` before it counts as
   * ready (`warmUp`, default true). Resolves before any sandbox is ready: see `warm()`. Invalid options are refused
   * with InvalidArgumentError before anything starts.
   */
  static async start(options: PoolOptions): Promise<Pool> {
    const { settings, fromSnapshot, sandbox, warmUp } = parsePoolOptions(options);
    if (fromSnapshot) await new SnapshotStore().inspect(fromSnapshot);
    const pool = new Pool(settings, sandboxStarter({ ...sandbox, fromSnapshot }, warmUp));
    const source = fromSnapshot ? `snapshot ${fromSnapshot}` : 'cold boot';
    pool.status = new PoolStatusFile(source, () => pool.stats());
    return pool;
  }

  /** A pool whose VMs come from `starter` instead of `Sandbox.create` (tests, or a caller's own start logic). */
  static withStarter<T extends PooledVm>(options: PoolCoreOptions, starter: PoolStarter<T>): Pool<T> {
    return new Pool(parsePoolCoreOptions(options), starter);
  }

  /** The number of sandboxes the pool keeps ready. */
  get size(): number {
    return this.settings.size;
  }

  /**
   * Hands out a ready sandbox (a hit, no await on any VM) or waits for the next start to finish (a miss), and
   * triggers a refill. Each sandbox is handed out once; destroying it is the caller's job. Rejects with
   * CancelledError on `signal`, JitvmError `timeout` after `timeoutMs` (its cause: the last failed start, if any),
   * CancelledError if the pool closes meanwhile, and `invalid_state` once it is closed.
   */
  async acquire(options: AcquireOptions = {}): Promise<T> {
    parseWith(AcquireOptionsSchema, options, 'invalid acquire options');
    this.refuseClosed();
    if (options.signal?.aborted) throw new CancelledError('acquire was cancelled before it began');
    const vm = this.ready.take((dead) => this.discard(dead));
    this.scheduleFill();
    if (vm) {
      this.counts.hits++;
      this.counts.handedOut++;
      return vm;
    }
    this.counts.misses++;
    return this.acquirers.wait(options, () => this.timedOut('no pooled sandbox became ready', options.timeoutMs));
  }

  /** Resolves once `size` sandboxes are ready (at once if they are). Rejects as `acquire()` does. */
  async warm(options: WaitOptions = {}): Promise<void> {
    parseWith(AcquireOptionsSchema, options, 'invalid warm options');
    this.refuseClosed();
    if (this.ready.length >= this.settings.size) return;
    await this.warmers.wait(options, () => this.timedOut('the pool did not fill', options.timeoutMs));
  }

  /** The pool's counters right now. */
  stats(): PoolStats {
    const { hits, misses, started } = this.counts;
    return {
      size: this.settings.size,
      ready: this.ready.length,
      starting: this.starting,
      waiting: this.acquirers.length,
      ...this.counts,
      hitRatio: hits + misses === 0 ? 0 : hits / (hits + misses),
      meanStartMs: started === 0 ? undefined : this.startMsTotal / started,
    };
  }

  /**
   * Stops refilling, rejects waiting acquires with CancelledError, aborts and waits for the starts in flight, and
   * destroys every sandbox not handed out. Idempotent: every call returns the same promise.
   */
  close(): Promise<void> {
    this.closing ??= this.drain();
    return this.closing;
  }

  /** `close()`, for `await using pool = await Pool.start(…)`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private async drain(): Promise<void> {
    this.backoff.cancel();
    clearImmediate(this.fillSoon);
    this.stopStarts.abort(new CancelledError('the pool was closed'));
    const closed = new CancelledError('the pool was closed while this call waited');
    this.acquirers.rejectAll(closed);
    this.warmers.rejectAll(closed);
    for (const vm of this.ready.clear()) this.dispose(vm);
    // A start that finishes now destroys its VM, which adds a task: wait until none is left.
    await this.tasks.idle();
    this.status?.close();
    this.untrack();
  }

  private refuseClosed(): void {
    if (this.closing) throw new JitvmError('invalid_state', 'this pool is closed; start another with Pool.start()');
  }

  private timedOut(what: string, timeoutMs: number | undefined): JitvmError {
    const { starting, refillErrors } = this.stats();
    const state = `${starting} starting, ${refillErrors} failed starts so far`;
    return new JitvmError('timeout', `${what} within ${timeoutMs} ms (${state}); raise timeoutMs or the pool's size`, {
      cause: this.lastError,
    });
  }

  /** Starts VMs until ready + starting covers `size` and the waiting acquires, within the concurrency bound. */
  private fill(): void {
    const wanted = (): boolean => this.ready.length + this.starting < this.settings.size + this.acquirers.length;
    // A start can fail before its first await (and set the backoff): check the backoff on every turn.
    while (!this.closing && !this.backoff.pausing && wanted() && this.starting < this.settings.maxConcurrentStarts) {
      this.tasks.run(() => this.startOne());
    }
  }

  /** Runs `fill` after the current callers have their sandbox: a hit never waits for a start to be set off. */
  private scheduleFill(): void {
    this.fillSoon ??= setImmediate(() => {
      this.fillSoon = undefined;
      this.fill();
    });
  }

  private async startOne(): Promise<void> {
    this.starting++;
    const began = performance.now();
    let vm: T;
    try {
      vm = await this.starter(this.stopStarts.signal);
    } catch (error) {
      this.starting--;
      if (!this.closing) this.startFailed(error);
      return;
    }
    this.starting--;
    if (this.closing) return this.dispose(vm);
    this.counts.started++;
    this.startMsTotal += performance.now() - began;
    this.backoff.succeeded();
    this.accept(vm);
    this.fill();
  }

  /** A fresh VM goes to the oldest waiting acquire, else joins the ready list. */
  private accept(vm: T): void {
    if (!isAlive(vm)) return this.discard(vm);
    if (this.acquirers.serve(vm)) {
      this.counts.handedOut++;
      return;
    }
    this.ready.add(vm);
    if (this.ready.length >= this.settings.size) this.warmers.serveAll();
  }

  /** Counts and reports a failed start, and pauses refilling for the backoff (no tight retry loop). */
  private startFailed(error: unknown): void {
    this.counts.refillErrors++;
    this.lastError = error;
    this.report(error);
    this.backoff.failed();
  }

  /** Destroys a ready VM whose VMM has exited, instead of handing it out. */
  private discard(vm: T): void {
    this.counts.discarded++;
    this.dispose(vm);
  }

  /** Destroys a VM nobody holds, in the background; `close()` waits for it. */
  private dispose(vm: T): void {
    this.tasks.run(() => vm.destroy());
  }
}
