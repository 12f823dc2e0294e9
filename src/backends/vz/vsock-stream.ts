/**
 * The host end of a guest vsock port that vfkit exposes in `connect` mode (`--device virtio-vsock,port=N,
 * socketURL=PATH,connect`). vfkit listens on PATH and, for each connection it accepts, dials guest port N; the stream
 * then carries raw bytes, with no handshake (crc-org/vfkit pkg/vf/vsock.go connectVsock, over inetaf/tcpproxy's
 * DialProxy). When nothing listens on port N yet, the dial fails and vfkit closes the connection it already accepted
 * (tcpproxy onDialError: log, then src.Close()), so the host sees a connection that opens and then ends without a
 * byte.
 *
 * jitvm's agent speaks only when spoken to (the host sends HELLO first), so that refusal cannot be told from a slow
 * agent by waiting. This stream makes it invisible instead: until the guest sent its first byte, everything written is
 * kept, and a connection that ends (or fails) before that is replaced by a fresh one with the kept bytes written
 * again. From the first guest byte on it is a plain byte stream. Each new connection makes the agent start over, so
 * replaying the opening bytes is what a reconnecting host would do anyway.
 */
import { type Socket, createConnection } from 'node:net';
import { Duplex } from 'node:stream';
import { CancelledError, ChannelClosedError } from '../../core/errors.js';

/** Pause between a refused dial and the next attempt (as src/sandbox/boot.ts retries a refused vsock connect). */
const RETRY_MS = 20;

export interface VfkitVsockOptions {
  readonly signal?: AbortSignal;
  /** Whether a refused dial may be retried: false once the VM is gone. */
  readonly retry: () => boolean;
}

/** Opens the Unix socket, resolving once connected; a missing or refusing socket is ChannelClosedError. */
function openSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    const onError = (error: NodeJS.ErrnoException): void => {
      socket.destroy();
      const why =
        error.code === 'ENOENT' ? 'does not exist yet' : error.code === 'ECONNREFUSED' ? 'refuses connections' : '';
      reject(
        new ChannelClosedError(
          `the vsock socket ${path} ${why || `cannot be connected to (${error.message})`}: vfkit creates it once ` +
            'the VM runs, and removes it when the VM stops',
          { cause: error },
        ),
      );
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/**
 * Connects to the vfkit vsock socket `path`. Rejects with ChannelClosedError while the socket does not exist (the VM
 * is not running yet, or has stopped); otherwise resolves with a stream that hides refused dials as described above.
 */
export async function connectVfkitVsock(path: string, options: VfkitVsockOptions): Promise<Duplex> {
  if (options.signal?.aborted) throw new CancelledError('connecting to the guest agent was cancelled');
  const socket = await openSocket(path);
  return new VfkitVsockStream(path, socket, options);
}

class VfkitVsockStream extends Duplex {
  /** The bytes written before the guest answered, replayed on each fresh connection. */
  private opening: Buffer[] = [];
  private established = false;
  private socket: Socket | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private ended = false;
  private readEnded = false;
  private readonly onAbort = (): void => {
    this.destroy(new CancelledError('connecting to the guest agent was cancelled'));
  };

  constructor(
    private readonly path: string,
    socket: Socket,
    private readonly options: VfkitVsockOptions,
  ) {
    // Not half-open: once the guest's side ends, so does ours, and the stream closes.
    super({ allowHalfOpen: false });
    options.signal?.addEventListener('abort', this.onAbort, { once: true });
    this.use(socket);
  }

  private use(socket: Socket): void {
    this.socket = socket;
    socket.on('data', (data: Buffer) => {
      if (this.socket !== socket) return;
      if (!this.established) {
        this.established = true;
        this.opening = [];
        this.options.signal?.removeEventListener('abort', this.onAbort);
      }
      if (!this.push(data)) socket.pause();
    });
    socket.on('end', () => {
      if (this.socket !== socket) return;
      if (!this.established) return this.refused(socket);
      this.readEnded = true;
      this.push(null);
    });
    socket.on('close', () => {
      if (this.socket !== socket) return;
      if (!this.established) this.refused(socket);
      else if (!this.readEnded) this.destroy();
    });
    socket.on('error', (error) => {
      if (this.socket !== socket) return;
      if (this.established) this.destroy(new ChannelClosedError(`agent channel failed: ${error.message}`));
      else this.refused(socket);
    });
    for (const chunk of this.opening) socket.write(chunk);
    if (this.ended) socket.end();
  }

  /** vfkit closed a connection before the guest said anything: its dial found no listener. Try a fresh one. */
  private refused(socket: Socket | undefined): void {
    socket?.destroy();
    this.socket = undefined;
    if (this.destroyed || this.retryTimer) return;
    if (!this.options.retry()) {
      this.destroy(new ChannelClosedError(`the VM stopped before its agent listened on vsock (${this.path})`));
      return;
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.destroyed) return;
      openSocket(this.path).then(
        (fresh) => {
          if (this.destroyed) fresh.destroy();
          else this.use(fresh);
        },
        (error: unknown) => {
          if (this.destroyed) return;
          if (this.options.retry()) this.refused(undefined);
          else this.destroy(error as Error);
        },
      );
    }, RETRY_MS);
  }

  override _read(): void {
    this.socket?.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (!this.established) {
      // Kept for a replay, so the caller need not wait for a connection that may be refused.
      this.opening.push(chunk);
      this.socket?.write(chunk);
      callback();
      return;
    }
    const socket = this.socket;
    if (!socket) {
      callback(new ChannelClosedError('the agent channel closed'));
      return;
    }
    if (socket.write(chunk)) callback();
    else socket.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.ended = true;
    this.socket?.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.retryTimer);
    this.options.signal?.removeEventListener('abort', this.onAbort);
    this.socket?.destroy();
    this.socket = undefined;
    callback(error);
  }
}
