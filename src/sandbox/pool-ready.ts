/**
 * A pool's ready sandboxes, oldest first. With a maximum age, an unref'd timer (armed for the oldest entry only)
 * retires each one as it expires, so an idle pool never holds a VM longer than that nor keeps the process alive.
 */
import type { PooledVm } from './pool-types.js';

interface ReadyEntry<T> {
  readonly vm: T;
  readonly readyAt: number;
}

/** Whether a VM can be handed out: its VMM still runs. */
export const isAlive = (vm: PooledVm): boolean => vm.instance.state.kind === 'running';

/** Ready VMs in the order they became ready. */
export class ReadyList<T extends PooledVm> {
  private readonly entries: ReadyEntry<T>[] = [];
  private timer: NodeJS.Timeout | undefined;

  /** `onRetire` receives each VM that reached `maxAgeMs` (undefined: none ever does); it is no longer listed. */
  constructor(
    private readonly maxAgeMs: number | undefined,
    private readonly onRetire: (vm: T) => void,
  ) {}

  get length(): number {
    return this.entries.length;
  }

  /** Lists a VM that just became ready. */
  add(vm: T): void {
    this.entries.push({ vm, readyAt: performance.now() });
    this.arm();
  }

  /** Removes and returns the oldest live VM; expired ones go to `onRetire`, dead ones to `onDead`, first. */
  take(onDead: (vm: T) => void): T | undefined {
    this.retireExpired();
    for (let entry = this.entries.shift(); entry; entry = this.entries.shift()) {
      if (isAlive(entry.vm)) return entry.vm;
      onDead(entry.vm);
    }
    return undefined;
  }

  /** Removes and returns every VM, and stops the timer for good. */
  clear(): T[] {
    clearTimeout(this.timer);
    return this.entries.splice(0).map((entry) => entry.vm);
  }

  private retireExpired(): void {
    const maxAgeMs = this.maxAgeMs;
    if (maxAgeMs === undefined) return;
    const now = performance.now();
    while (this.entries[0] && now - this.entries[0].readyAt >= maxAgeMs) this.onRetire(this.entries.shift()!.vm);
    this.arm();
  }

  private arm(): void {
    const oldest = this.entries[0];
    if (this.maxAgeMs === undefined || this.timer || !oldest) return;
    const dueMs = Math.max(0, oldest.readyAt + this.maxAgeMs - performance.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.retireExpired();
    }, dueMs).unref();
  }
}
