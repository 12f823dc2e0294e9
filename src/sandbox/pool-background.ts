/**
 * What a pool does in the background: starts and destroys nobody awaits at once (their errors are reported, never
 * left unhandled, and `close()` can wait for all of them), and the pause in refilling after failed starts.
 */
import { JitvmError } from '../core/errors.js';

/** Turns `onError` into a reporter that takes any thrown value and never throws itself. */
export function reporter(onError: ((error: Error) => void) | undefined): (error: unknown) => void {
  return (error) => {
    try {
      onError?.(error instanceof Error ? error : new JitvmError('internal', String(error)));
    } catch {
      // A throwing onError must not stop the pool, nor become an unhandled rejection.
    }
  };
}

/** Work in flight that nobody awaits: each failure goes to `report`; `idle()` waits until none is left. */
export class BackgroundTasks {
  private readonly tasks = new Set<Promise<void>>();

  constructor(private readonly report: (error: unknown) => void) {}

  /** Runs `task` (a synchronous throw counts as a failure too). */
  run(task: () => Promise<void>): void {
    const settled = (async () => task())()
      .catch(this.report)
      .finally(() => this.tasks.delete(settled));
    this.tasks.add(settled);
  }

  /** Resolves once no task is in flight, including tasks started by tasks that were. */
  async idle(): Promise<void> {
    while (this.tasks.size > 0) await Promise.all(this.tasks);
  }
}

/**
 * The pause after failed starts: `initialMs`, doubled for each further failure in a row, at most `maxMs`. Its timer
 * is not unref'd (whoever waits on the pool must not see the process exit under them); `cancel()` clears it.
 */
export class Backoff {
  private failuresInARow = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly delays: { readonly initialMs: number; readonly maxMs: number },
    private readonly onElapsed: () => void,
  ) {}

  /** Whether a pause is under way. */
  get pausing(): boolean {
    return this.timer !== undefined;
  }

  /** Counts a failure and (re)starts the pause, calling `onElapsed` when it ends. */
  failed(): void {
    this.failuresInARow++;
    const pauseMs = Math.min(this.delays.initialMs * 2 ** (this.failuresInARow - 1), this.delays.maxMs);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.onElapsed();
    }, pauseMs);
  }

  /** A start succeeded: the next failure pauses for `initialMs` again. */
  succeeded(): void {
    this.failuresInARow = 0;
  }

  /** Ends the pause without calling `onElapsed`. */
  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
