import { Readable } from 'node:stream';
import { DATA_CHUNK, INITIAL_WINDOW } from './protocol.js';

/** Credit is returned in batches of a quarter window: fewer WINDOW frames, and the sender never runs dry. */
const GRANT_BATCH = INITIAL_WINDOW / 4;

/**
 * Send-side credit of one flow-controlled data channel: `take` waits until the peer has granted room.
 * A failed credit (stream ended, connection lost) rejects every waiter with the failure.
 */
export class SendCredit {
  private waiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  private failure: Error | undefined;

  constructor(private available: number) {}

  grant(bytes: number): void {
    this.available += bytes;
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.resolve();
  }

  fail(error: Error): void {
    this.failure ??= error;
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.reject(error);
  }

  /** Resolves with how many bytes (1..max) may be sent now, waiting for a grant when none are left. */
  async take(max: number): Promise<number> {
    for (;;) {
      if (this.failure) throw this.failure;
      if (this.available > 0) {
        const size = Math.min(max, this.available);
        this.available -= size;
        return size;
      }
      await new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    }
  }
}

/**
 * Receive side of one data channel as a Node Readable. Bytes are granted back to the sender once the consumer has
 * taken them (push accepted, or the consumer asked for more), so a slow reader stops the guest rather than
 * growing host memory.
 */
export class CreditedReadable extends Readable {
  private owed = 0;

  constructor(private readonly sendGrant: (bytes: number) => void) {
    super({ highWaterMark: DATA_CHUNK * 4 });
  }

  override _read(): void {
    this.flush();
  }

  /** Delivers one data frame's bytes. The payload is a view of a buffer the decoder never reuses, so no copy. */
  deliver(data: Buffer): void {
    if (data.length === 0) return;
    this.owed += data.length;
    if (this.push(data) && this.owed >= GRANT_BATCH) this.flush();
  }

  private flush(): void {
    if (this.owed === 0) return;
    const bytes = this.owed;
    this.owed = 0;
    this.sendGrant(bytes);
  }
}
