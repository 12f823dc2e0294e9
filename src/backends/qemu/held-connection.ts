import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ChannelClosedError, JitvmError } from '../../core/errors.js';

type HeldState = { kind: 'held'; stream: Socket } | { kind: 'taken' } | { kind: 'closed'; error: Error };

/**
 * The one connection an endpoint that serves a single client will ever accept (QEMU's Windows pipe chardev, see
 * chardev.ts), opened while QEMU starts and kept until someone takes it. It is handed out once: a second take is
 * refused as unsupported, since no new connection can be made to that VM.
 */
export class HeldConnection {
  private state: HeldState;
  private failure: Error | undefined;
  private readonly onError = (error: Error): void => {
    this.failure = error;
  };

  /** `what` names the endpoint in errors ("the agent pipe of VM jv-…"). */
  constructor(
    stream: Socket,
    private readonly what: string,
  ) {
    this.state = { kind: 'held', stream };
    // Until it is taken nobody else listens: an error must be kept, not thrown at the event loop.
    stream.on('error', this.onError);
  }

  /** The held stream, once. Rejects with what ended it if it failed or closed first, and as unsupported after. */
  take(): Promise<Duplex> {
    const state = this.state;
    if (state.kind === 'taken') {
      return Promise.reject(
        new JitvmError(
          'unsupported',
          `${this.what} was already handed out and QEMU serves it to one client only; a new connection needs a new VM`,
        ),
      );
    }
    if (state.kind === 'closed') return Promise.reject(state.error);
    const { stream } = state;
    stream.removeListener('error', this.onError);
    if (this.failure || stream.destroyed) {
      const error = this.failure ?? new ChannelClosedError(`${this.what} closed before it was used`);
      this.state = { kind: 'closed', error };
      stream.destroy();
      return Promise.reject(error);
    }
    this.state = { kind: 'taken' };
    return Promise.resolve(stream);
  }

  /** Closes the stream if it was never taken (the VM is going away); a taken stream belongs to its taker. */
  close(): void {
    if (this.state.kind !== 'held') return;
    this.state.stream.destroy();
    this.state = { kind: 'closed', error: new ChannelClosedError(`${this.what} was closed: its VM is gone`) };
  }
}
