/**
 * The warm pool's bookkeeping, against an injected start function whose starts the tests finish by hand (or at
 * once): hand-out-once, the concurrency bound, refills, backoff after failed starts, retirement by age, dead entries,
 * abort/timeout of acquire, close, and no unhandled rejection anywhere.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { CancelledError, InvalidArgumentError, JitvmError } from '../../src/core/errors.js';
import { Pool } from '../../src/sandbox/pool.js';
import type { PooledVm } from '../../src/sandbox/pool-types.js';

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
process.on('unhandledRejection', onUnhandled);
after(() => process.off('unhandledRejection', onUnhandled));

/** A VM as the pool sees one: an id, a state, and a destroy that may be told to fail. */
class FakeVm implements PooledVm {
  readonly instance = { state: { kind: 'running' } };
  destroyCalls = 0;

  constructor(
    readonly id: string,
    private readonly onDestroy: () => void,
    private readonly destroyFails = false,
  ) {}

  async destroy(): Promise<void> {
    this.destroyCalls++;
    this.instance.state = { kind: 'exited' };
    this.onDestroy();
    if (this.destroyFails) throw new JitvmError('vmm_failed', `cannot destroy ${this.id}`);
  }
}

interface PendingStart {
  readonly resolve: (vm: FakeVm) => void;
  readonly reject: (error: Error) => void;
  readonly signal: AbortSignal;
}

/**
 * The injected start function, and what it saw. `auto` finishes each start on the next turn of the event loop;
 * else the test finishes them with `finish()` / `fail()`. `until(condition)` waits for a change that makes it true.
 */
class Starts {
  readonly pending: PendingStart[] = [];
  readonly vms: FakeVm[] = [];
  readonly callTimes: number[] = [];
  inFlight = 0;
  maxInFlight = 0;
  private readonly watchers = new Set<() => void>();

  constructor(private readonly options: { auto?: boolean; failFirst?: number; destroyFails?: boolean } = {}) {}

  get calls(): number {
    return this.callTimes.length;
  }

  readonly start = (signal: AbortSignal): Promise<FakeVm> => {
    this.callTimes.push(performance.now());
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const call = this.calls;
    const started = new Promise<FakeVm>((resolve, reject) => {
      this.pending.push({ resolve, reject, signal });
      if (call <= (this.options.failFirst ?? 0)) {
        setImmediate(() => this.fail(new JitvmError('boot_failed', `start ${call} failed`)));
      } else if (this.options.auto) setImmediate(() => this.finish());
    });
    this.changed();
    return started;
  };

  /** Finishes the oldest start in flight with a new VM. */
  finish(): FakeVm {
    const vm = new FakeVm(`vm-${this.vms.length}`, () => this.changed(), this.options.destroyFails);
    this.vms.push(vm);
    this.settle().resolve(vm);
    return vm;
  }

  /** Fails the oldest start in flight. */
  fail(error: Error): void {
    this.settle().reject(error);
  }

  /**
   * Resolves once `condition` holds, re-checked at each start, settled start and destroy; rejects after
   * `deadlineMs`. The deadline timer also keeps the process alive: the pool's age timer is unref'd, as it must be.
   */
  async until(condition: () => boolean, deadlineMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`condition not met within ${deadlineMs} ms: ${condition}`)),
        deadlineMs,
      );
    });
    try {
      while (!condition()) await Promise.race([new Promise<void>((resolve) => this.watchers.add(resolve)), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private settle(): PendingStart {
    const oldest = this.pending.shift();
    assert.ok(oldest, 'no start in flight');
    this.inFlight--;
    // The pool reacts to a settled start in a later microtask: let it before telling the watchers.
    setImmediate(() => this.changed());
    return oldest;
  }

  private changed(): void {
    const watchers = [...this.watchers];
    this.watchers.clear();
    for (const watcher of watchers) watcher();
  }
}

const ids = (vms: readonly PooledVm[]): string[] => vms.map((vm) => vm.id);

describe('warm pool', { timeout: 10_000 }, () => {
  it('fills to size with at most maxConcurrentStarts starts at once', async () => {
    const starts = new Starts();
    const pool = Pool.withStarter({ size: 4, maxConcurrentStarts: 2 }, starts.start);
    assert.equal(starts.calls, 2, 'the refill begins at once, two at a time');
    assert.deepEqual({ ready: pool.stats().ready, starting: pool.stats().starting }, { ready: 0, starting: 2 });
    for (let finished = 1; finished <= 4; finished++) {
      starts.finish();
      await starts.until(() => pool.stats().ready === finished);
    }
    await pool.warm();
    assert.equal(starts.maxInFlight, 2);
    assert.equal(starts.calls, 4, 'no start beyond size');
    assert.deepEqual(pool.stats(), {
      size: 4,
      ready: 4,
      starting: 0,
      waiting: 0,
      handedOut: 0,
      hits: 0,
      misses: 0,
      hitRatio: 0,
      started: 4,
      refillErrors: 0,
      retired: 0,
      discarded: 0,
      meanStartMs: pool.stats().meanStartMs,
    });
    assert.ok(pool.stats().meanStartMs! >= 0);
    await pool.close();
    assert.ok(
      starts.vms.every((vm) => vm.destroyCalls === 1),
      'close destroys every ready VM once',
    );
  });

  it('hands each VM out once: concurrent acquires get distinct VMs, misses are served by new starts', async () => {
    const starts = new Starts({ auto: true });
    const pool = Pool.withStarter({ size: 2, maxConcurrentStarts: 2 }, starts.start);
    await pool.warm();
    const first = await Promise.all(Array.from({ length: 5 }, () => pool.acquire({ timeoutMs: 5000 })));
    assert.equal(new Set(ids(first)).size, 5, 'five distinct VMs');
    const stats = pool.stats();
    assert.deepEqual([stats.hits, stats.misses, stats.handedOut, stats.hitRatio], [2, 3, 5, 0.4]);
    assert.ok(starts.maxInFlight <= 2, `at most 2 starts at once, saw ${starts.maxInFlight}`);
    await pool.warm();
    const second = await Promise.all([pool.acquire(), pool.acquire()]);
    assert.deepEqual(
      ids(second).filter((id) => ids(first).includes(id)),
      [],
      'a VM handed out is never listed again',
    );
    await pool.warm();
    await pool.close();
    const handedOut = [...first, ...second];
    assert.ok(
      handedOut.every((vm) => (vm as FakeVm).destroyCalls === 0),
      'handed-out VMs belong to their callers',
    );
    assert.equal(starts.vms.filter((vm) => vm.destroyCalls === 1).length, starts.vms.length - handedOut.length);
  });

  it('refills after an acquire, off the acquiring caller', async () => {
    const starts = new Starts({ auto: true });
    const pool = Pool.withStarter({ size: 1 }, starts.start);
    await pool.warm();
    const vm = await pool.acquire();
    assert.equal(starts.calls, 1, 'a hit returns before the refill is set off');
    await starts.until(() => starts.calls === 2);
    await pool.warm();
    assert.equal(pool.stats().ready, 1);
    assert.notEqual((await pool.acquire()).id, vm.id);
    await pool.close();
  });

  it('counts and reports failed starts, retrying with a growing, capped backoff', async () => {
    const errors: Error[] = [];
    const starts = new Starts({ failFirst: 5 });
    const pool = Pool.withStarter(
      { size: 1, maxConcurrentStarts: 1, retry: { initialMs: 20, maxMs: 60 }, onError: (error) => errors.push(error) },
      starts.start,
    );
    const early = await pool.acquire({ timeoutMs: 5 }).catch((error: unknown) => error);
    assert.ok(early instanceof JitvmError && early.code === 'timeout', String(early));
    assert.ok(early.cause instanceof JitvmError && early.cause.code === 'boot_failed', 'the cause is the failed start');
    await starts.until(() => starts.calls === 6);
    starts.finish();
    await pool.warm();
    const gaps = starts.callTimes.slice(1).map((time, i) => time - starts.callTimes[i]!);
    [20, 40, 60, 60, 60].forEach((minimum, i) => {
      assert.ok(gaps[i]! >= minimum - 2, `retry ${i + 1} waited ${gaps[i]!.toFixed(1)} ms, expected ≥ ${minimum}`);
    });
    assert.ok(gaps[4]! < 1000, 'the backoff is capped');
    assert.equal(pool.stats().refillErrors, 5);
    assert.deepEqual(
      errors.map((error) => error.message),
      [1, 2, 3, 4, 5].map((n) => `start ${n} failed`),
    );
    await pool.close();
  });

  it('survives a start that throws synchronously and an onError that throws', async () => {
    let calls = 0;
    let reported = 0;
    let resolve = (): void => undefined;
    const threeReported = new Promise<void>((done) => (resolve = done));
    const pool = Pool.withStarter(
      {
        size: 1,
        retry: { initialMs: 1, maxMs: 1 },
        onError: () => {
          if (++reported === 3) resolve();
          throw new Error('onError itself failed');
        },
      },
      () => {
        calls++;
        throw new Error('not even a promise');
      },
    );
    await threeReported;
    assert.ok(calls >= 3 && pool.stats().refillErrors >= 3);
    await pool.close();
  });

  it('retires ready VMs older than maxAgeMs and replaces them', async () => {
    const starts = new Starts({ auto: true });
    const pool = Pool.withStarter({ size: 2, maxAgeMs: 40 }, starts.start);
    await pool.warm();
    const [a, b] = starts.vms;
    await starts.until(() => a!.destroyCalls === 1 && b!.destroyCalls === 1);
    assert.ok(pool.stats().retired >= 2);
    await starts.until(() => pool.stats().ready === 2);
    const vm = await pool.acquire();
    assert.ok(![a!.id, b!.id].includes(vm.id), 'a retired VM is never handed out');
    await pool.close();
    const { handedOut, retired, discarded } = pool.stats();
    assert.equal(starts.vms.filter((each) => each.destroyCalls === 1).length, starts.vms.length - handedOut);
    assert.equal(discarded, 0);
    assert.ok(retired >= 2);
  });

  it('discards a ready VM whose VMM died, hands out a live one and starts a replacement', async () => {
    const starts = new Starts({ auto: true });
    const pool = Pool.withStarter({ size: 2 }, starts.start);
    await pool.warm();
    const [dead, live] = starts.vms;
    dead!.instance.state = { kind: 'exited' };
    assert.equal((await pool.acquire()).id, live!.id);
    assert.equal(dead!.destroyCalls, 1);
    assert.equal(pool.stats().discarded, 1);
    await starts.until(() => pool.stats().ready === 2);
    await pool.close();
  });

  it('reports a failed destroy without stopping', async () => {
    const errors: Error[] = [];
    const starts = new Starts({ auto: true, destroyFails: true });
    const pool = Pool.withStarter({ size: 1, onError: (error) => errors.push(error) }, starts.start);
    await pool.warm();
    await pool.close();
    assert.deepEqual(
      errors.map((error) => error.message),
      ['cannot destroy vm-0'],
    );
  });

  it('gives up an acquire on timeout or abort and leaves the pool consistent', async () => {
    const starts = new Starts();
    const pool = Pool.withStarter({ size: 1, maxConcurrentStarts: 1 }, starts.start);
    await assert.rejects(pool.acquire({ timeoutMs: 10 }), (error: JitvmError) => error.code === 'timeout');
    assert.equal(pool.stats().waiting, 0);
    const controller = new AbortController();
    const aborted = pool.acquire({ signal: controller.signal });
    assert.equal(pool.stats().waiting, 1);
    controller.abort();
    await assert.rejects(aborted, CancelledError);
    await assert.rejects(pool.acquire({ signal: AbortSignal.abort() }), CancelledError);
    await assert.rejects(pool.acquire({ timeoutMs: -1 }), InvalidArgumentError);
    assert.deepEqual([pool.stats().waiting, pool.stats().starting, starts.calls], [0, 1, 1]);
    const vm = starts.finish();
    await starts.until(() => pool.stats().ready === 1);
    assert.equal((await pool.acquire()).id, vm.id, 'the start nobody waited for any more became ready');
    assert.deepEqual([pool.stats().hits, pool.stats().misses, pool.stats().handedOut], [1, 2, 1]);
    await starts.until(() => starts.calls === 2);
    starts.finish();
    await pool.close();
  });

  it('close rejects waiters, aborts and awaits starts in flight, destroys the ready VMs, is idempotent', async () => {
    const errors: Error[] = [];
    const starts = new Starts();
    const pool = Pool.withStarter({ size: 2, onError: (error) => errors.push(error) }, starts.start);
    const kept = starts.finish();
    await starts.until(() => pool.stats().ready === 1);
    assert.equal((await pool.acquire()).id, kept.id);
    const waiting = pool.acquire();
    const warming = pool.warm();
    await starts.until(() => starts.calls === 3);
    const closing = pool.close();
    assert.equal(pool.close(), closing, 'close is idempotent');
    await assert.rejects(waiting, CancelledError);
    await assert.rejects(warming, CancelledError);
    assert.ok(
      starts.pending.every((start) => start.signal.aborted),
      'starts in flight are told to stop',
    );
    const state = await Promise.race([closing.then(() => 'closed'), new Promise((r) => setImmediate(r, 'open'))]);
    assert.equal(state, 'open', 'close waits for the starts in flight');
    const late = starts.finish();
    starts.fail(new CancelledError('aborted by the pool'));
    await closing;
    assert.equal(late.destroyCalls, 1, 'a VM started during close is destroyed');
    assert.equal(kept.destroyCalls, 0, 'a VM handed out is its caller’s');
    assert.deepEqual(errors, [], 'a start aborted by close is no refill error');
    assert.equal(pool.stats().refillErrors, 0);
    await assert.rejects(pool.acquire(), (error: JitvmError) => error.code === 'invalid_state');
    await assert.rejects(pool.warm(), (error: JitvmError) => error.code === 'invalid_state');
  });

  it('closes at the end of an `await using` scope', async () => {
    const starts = new Starts({ auto: true });
    {
      await using pool = Pool.withStarter({ size: 2 }, starts.start);
      await pool.warm();
    }
    assert.deepEqual(
      starts.vms.map((vm) => vm.destroyCalls),
      [1, 1],
    );
  });

  it('refuses invalid options, naming the field', () => {
    const start = new Starts().start;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ size: 0 }, /size/],
      [{ size: 65 }, /size/],
      [{ size: 1.5 }, /size/],
      [{ size: 1, maxConcurrentStarts: 0 }, /maxConcurrentStarts/],
      [{ size: 1, maxAgeMs: 0 }, /maxAgeMs/],
      [{ size: 1, onError: 'log' }, /onError/],
      [{ size: 1, sise: 2 }, /sise/],
      [{ size: 1, retry: { initialMs: 0, maxMs: 10 } }, /retry.initialMs/],
      [{ size: 1, retry: { initialMs: 20, maxMs: 10 } }, /retry.*initialMs must not exceed maxMs/],
    ];
    for (const [options, field] of cases) {
      assert.throws(
        () => Pool.withStarter(options as { size: number }, start),
        (error: Error) => error instanceof InvalidArgumentError && field.test(error.message),
        JSON.stringify(options),
      );
    }
  });

  it('leaves no timer that keeps the process alive once closed', async () => {
    const pool = fileURLToPath(new URL('../../src/sandbox/pool.js', import.meta.url));
    const script = `
      const { Pool } = await import(${JSON.stringify(pool)});
      let n = 0;
      const vm = () => ({ id: 'vm-' + n++, instance: { state: { kind: 'running' } }, destroy: async () => {} });
      const ok = Pool.withStarter({ size: 2, maxAgeMs: 3_600_000 }, async () => vm());
      await ok.warm();
      await ok.acquire();
      const failing = Pool.withStarter({ size: 1, retry: { initialMs: 3_600_000, maxMs: 3_600_000 } }, async () => {
        throw new Error('down');
      });
      const waiting = failing.acquire({ timeoutMs: 3_600_000 }).catch((error) => error.code);
      await new Promise((resolve) => setTimeout(resolve, 20));
      await Promise.all([ok.close(), failing.close()]);
      console.log(await waiting);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const began = performance.now();
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0);
    assert.equal(stdout.trim(), 'cancelled', 'close rejected the waiting acquire');
    assert.ok(performance.now() - began < 5000, 'the process exited as soon as its work was done');
  });

  it('raised no unhandled rejection', () => {
    assert.deepEqual(unhandled, []);
  });
});
