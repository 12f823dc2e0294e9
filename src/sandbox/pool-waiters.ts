/**
 * Callers waiting on a pool, served oldest first. Each may give up (AbortSignal, timeout) without disturbing the
 * others, and every settled wait leaves no timer or listener behind.
 */
import { CancelledError } from '../core/errors.js';

/** How long a caller is willing to wait. */
export interface WaitOptions {
  /** Aborting rejects the wait with CancelledError. */
  readonly signal?: AbortSignal;
  /** Rejects the wait with the error `onTimeout` makes, after this many milliseconds. */
  readonly timeoutMs?: number;
}

type Outcome<T> = { readonly value: T } | { readonly error: Error };

interface Waiter<T> {
  settle(outcome: Outcome<T>): void;
}

/** A FIFO of pending waits for values of type T. */
export class Waiters<T> {
  private readonly queue: Waiter<T>[] = [];

  /** Waits not yet served, given up or rejected. */
  get length(): number {
    return this.queue.length;
  }

  /**
   * Waits until `serve` or `serveAll` hands this wait a value. Rejects with CancelledError when `signal` aborts
   * (at once if it already has), with `onTimeout()` after `timeoutMs`, or with what `rejectAll` is given.
   */
  wait(options: WaitOptions, onTimeout: () => Error): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const { signal, timeoutMs } = options;
      const onAbort = (): void =>
        waiter.settle({ error: new CancelledError('the wait for a pooled sandbox was cancelled') });
      const timer =
        timeoutMs === undefined ? undefined : setTimeout(() => waiter.settle({ error: onTimeout() }), timeoutMs);
      const waiter: Waiter<T> = {
        settle: (outcome) => {
          this.queue.splice(this.queue.indexOf(waiter), 1);
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          if ('value' in outcome) resolve(outcome.value);
          else reject(outcome.error);
        },
      };
      this.queue.push(waiter);
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Hands `value` to the oldest wait; false when nobody waits (the caller keeps the value). */
  serve(value: T): boolean {
    const oldest = this.queue[0];
    oldest?.settle({ value });
    return oldest !== undefined;
  }

  /** Hands `value` to every wait (for waits on a condition rather than on a value of their own). */
  serveAll(value: T): void {
    for (const waiter of [...this.queue]) waiter.settle({ value });
  }

  /** Rejects every wait with `error`. */
  rejectAll(error: Error): void {
    for (const waiter of [...this.queue]) waiter.settle({ error });
  }
}
