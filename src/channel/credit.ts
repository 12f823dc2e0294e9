import { Readable } from 'node:stream';
import { ProtocolError } from '../core/errors.js';
import { DATA_CHUNK, INITIAL_WINDOW, type WindowChannel } from './protocol.js';
import { PayloadReader, PayloadWriter } from './wire.js';

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

  /** Whether the channel was failed (refused, closed): no more data may be sent. */
  get failed(): boolean {
    return this.failure !== undefined;
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
 * taken them, in quarter-window batches, so a slow reader stops the guest rather than growing host memory. The
 * peer is held to its window: data beyond it, or after the end, is a ProtocolError (which closes the connection).
 */
export class CreditedReadable extends Readable {
  private owed = 0;
  private allowed = INITIAL_WINDOW;
  private ended = false;

  constructor(
    private readonly what: string,
    private readonly sendGrant: (bytes: number) => void,
  ) {
    super({ highWaterMark: DATA_CHUNK * 4 });
  }

  override _read(): void {
    if (this.owed >= GRANT_BATCH) this.flush();
  }

  /** Delivers one data frame's bytes (the decoder never reuses a payload, so no copy). */
  deliver(data: Buffer): void {
    if (this.ended) throw new ProtocolError(`${this.what}: data after its end`);
    if (data.length > this.allowed) throw new ProtocolError(`${this.what}: the peer sent beyond its window`);
    if (data.length === 0) return;
    this.allowed -= data.length;
    this.owed += data.length;
    if (this.push(data) && this.owed >= GRANT_BATCH) this.flush();
  }

  /** The sender's end of this channel (FIN). */
  receiveEnd(): void {
    if (this.ended) throw new ProtocolError(`${this.what}: ended twice`);
    this.ended = true;
    this.push(null);
  }

  /** Whether the sender has ended this channel. */
  get senderEnded(): boolean {
    return this.ended;
  }

  private flush(): void {
    const bytes = this.owed;
    this.owed = 0;
    this.allowed += bytes;
    this.sendGrant(bytes);
  }
}

/** A WINDOW payload granting `bytes` more on `channel`. */
export function encodeWindow(channel: WindowChannel, bytes: number): Buffer {
  return new PayloadWriter().u8(channel).u32(bytes).finish();
}

/** Reads a WINDOW payload and checks it names the channel this stream expects. */
export function decodeWindow(payload: Buffer, expected: WindowChannel): number {
  const reader = new PayloadReader(payload, 'WINDOW');
  const channel = reader.u8();
  const increment = reader.u32();
  reader.end();
  if (channel !== expected) throw new ProtocolError(`WINDOW for channel ${channel} on a stream expecting ${expected}`);
  return increment;
}
