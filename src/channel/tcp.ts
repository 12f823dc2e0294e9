/**
 * TCP tunnels over the agent channel: a connection the agent opens to a port on the guest's 127.0.0.1 (TCP_CONNECT),
 * or one a guest program opens to a port the agent listens on for the host (TCP_ACCEPT). Either way the host gets a
 * Duplex whose bytes travel as flow-controlled TCP_DATA frames. See docs/protocol.md#tcp.
 */
import { Duplex } from 'node:stream';
import { CancelledError, InvalidArgumentError, JitvmError, ProtocolError } from '../core/errors.js';
import type { Frame } from './codec.js';
import { type AgentConnection, decodeGuestError, decodeOk } from './client.js';
import { CreditedReadable, SendCredit, decodeWindow, encodeWindow } from './credit.js';
import { Capability, DATA_CHUNK, FLAG_FIN, INITIAL_WINDOW, MsgType, WindowChannel } from './protocol.js';
import { PayloadReader, PayloadWriter } from './wire.js';

/** Options of openTcp and acceptTcp. */
export interface TcpOptions {
  /**
   * Aborting before the tunnel is open withdraws the request (a pending accept stops waiting) and the call rejects
   * with CancelledError. It has no effect on a tunnel already handed out: destroy that one.
   */
  readonly signal?: AbortSignal;
  /**
   * Node's Duplex option: whether our side stays writable after the guest side ended. Default true; with false, the
   * guest's FIN ends our side too (like a net.Socket's default).
   */
  readonly allowHalfOpen?: boolean;
}

/**
 * One TCP connection in the guest, carried over the agent channel. Writes wait for the agent's credit (backpressure
 * reaches the writer), `end()` half-closes the guest side (shutdown of its write direction), the guest program's EOF
 * ends the readable side, and a slow reader stops the guest program rather than growing host memory. `destroy()`
 * resets the guest connection. A socket error in the guest destroys it with a GuestError; a lost channel with
 * ChannelClosedError (`agent_lost`).
 */
export interface TcpTunnel extends Duplex {
  /** The guest port: the one connected to, or the one the agent listened on. */
  readonly guestPort: number;
  /** For an accepted connection, the guest client's source port (for logs); undefined for openTcp. */
  readonly peerPort: number | undefined;
}

class Tunnel extends Duplex implements TcpTunnel {
  private readonly credit = new SendCredit(INITIAL_WINDOW);
  private readonly incoming: CreditedReadable;
  private wanted = false;
  private active = true;
  private finSent = false;

  constructor(
    private readonly connection: AgentConnection,
    private readonly stream: number,
    readonly guestPort: number,
    readonly peerPort: number | undefined,
    allowHalfOpen: boolean,
  ) {
    super({ allowHalfOpen });
    this.incoming = new CreditedReadable(`TCP data from guest port ${guestPort}`, (bytes) => this.grant(bytes));
    this.incoming.on('readable', () => {
      if (this.wanted) this.pull();
    });
    this.incoming.on('end', () => this.push(null));
  }

  /** Frames of the open stream; throws ProtocolError (closing the connection) on one the agent must not send. */
  handle(frame: Frame): void {
    switch (frame.type) {
      case MsgType.TCP_DATA:
        this.incoming.deliver(frame.payload);
        if (frame.flags & FLAG_FIN) this.incoming.receiveEnd();
        return;
      case MsgType.WINDOW:
        this.credit.grant(decodeWindow(frame.payload, WindowChannel.TCP));
        return;
      case MsgType.OK:
        decodeOk(frame.payload);
        if (!this.incoming.senderEnded || !this.finSent) throw new ProtocolError('TCP stream: OK before both ends');
        this.finish(new JitvmError('invalid_state', 'the TCP tunnel has ended: open a new one'));
        return;
      case MsgType.ERROR:
        this.lost(decodeGuestError(frame.payload));
        return;
      default:
        throw new ProtocolError(`unexpected message type ${frame.type} on an open TCP stream`);
    }
  }

  /** The stream failed (the guest's socket, or the channel): the tunnel is destroyed with `error`. */
  lost(error: Error): void {
    this.finish(error);
    this.destroy(error);
  }

  override _read(): void {
    this.wanted = true;
    this.pull();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.send(chunk).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    try {
      this.connection.send(MsgType.TCP_DATA, this.stream, undefined, FLAG_FIN);
      this.finSent = true;
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  /**
   * Resets the guest connection unless both directions already ended cleanly (Node destroys a Duplex by itself then):
   * the agent still writes what it holds for the guest program and ends the stream with OK, as a TCP close would.
   */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.active && (error || !this.incoming.senderEnded || !this.finSent)) {
      if (!this.connection.closed) this.connection.send(MsgType.CANCEL, this.stream);
      this.finish(error ?? new CancelledError('the TCP tunnel was destroyed'));
    }
    this.incoming.destroy();
    callback(error);
  }

  /** Moves what the agent sent into this Duplex while its consumer wants more; reading `incoming` grants credit. */
  private pull(): void {
    for (let chunk: Buffer | null; (chunk = this.incoming.read() as Buffer | null) !== null;) {
      if (!this.push(chunk)) {
        this.wanted = false;
        return;
      }
    }
  }

  private async send(data: Buffer): Promise<void> {
    for (let offset = 0; offset < data.length;) {
      const size = await this.credit.take(Math.min(DATA_CHUNK, data.length - offset));
      this.connection.send(MsgType.TCP_DATA, this.stream, data.subarray(offset, offset + size));
      offset += size;
    }
  }

  private grant(bytes: number): void {
    if (this.active && !this.connection.closed) {
      this.connection.send(MsgType.WINDOW, this.stream, encodeWindow(WindowChannel.TCP, bytes));
    }
  }

  /** Forgets the stream; a pending or later write fails with `reason`. */
  private finish(reason: Error): void {
    if (!this.active) return;
    this.active = false;
    this.connection.release(this.stream);
    this.credit.fail(reason);
  }
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidArgumentError(`guest port ${port} is not a TCP port: give an integer from 1 to 65535`);
  }
}

/** The port in a TCP_ACCEPTED payload (`u16`); TCP_CONNECTED carries none. */
function decodeOpened(frame: Frame): number | undefined {
  const reader = new PayloadReader(
    frame.payload,
    frame.type === MsgType.TCP_ACCEPTED ? 'TCP_ACCEPTED' : 'TCP_CONNECTED',
  );
  const port = frame.type === MsgType.TCP_ACCEPTED ? reader.u16() : undefined;
  reader.end();
  return port;
}

/** Sends `request` for `port` and resolves with the tunnel once the agent answers. */
async function openTunnel(
  connection: AgentConnection,
  request: typeof MsgType.TCP_CONNECT | typeof MsgType.TCP_ACCEPT,
  port: number,
  options: TcpOptions,
): Promise<TcpTunnel> {
  connection.requireCapability(Capability.TCP, 'tunnel TCP connections to and from guest ports');
  checkPort(port);
  const opened = request === MsgType.TCP_CONNECT ? MsgType.TCP_CONNECTED : MsgType.TCP_ACCEPTED;
  const what = request === MsgType.TCP_CONNECT ? `connection to guest port ${port}` : `accept on guest port ${port}`;
  const { signal } = options;
  if (signal?.aborted) throw new CancelledError(`the TCP ${what} was cancelled before it was sent`);
  return new Promise((resolve, reject) => {
    let tunnel: Tunnel | undefined;
    const onAbort = (): void => {
      connection.release(stream);
      if (!connection.closed) connection.send(MsgType.CANCEL, stream);
      reject(new CancelledError(`the TCP ${what} was cancelled before it was open`));
    };
    const stop = (): void => signal?.removeEventListener('abort', onAbort);
    const stream = connection.open({
      onFrame: (frame) => {
        if (tunnel) tunnel.handle(frame);
        else if (frame.type === MsgType.ERROR) {
          stop();
          connection.release(stream);
          reject(decodeGuestError(frame.payload));
        } else if (frame.type === opened) {
          stop();
          tunnel = new Tunnel(connection, stream, port, decodeOpened(frame), options.allowHalfOpen ?? true);
          resolve(tunnel);
        } else throw new ProtocolError(`expected message type ${opened} in reply to ${request}, got ${frame.type}`);
      },
      onClose: (error) => {
        stop();
        if (tunnel) tunnel.lost(error);
        else reject(error);
      },
    });
    signal?.addEventListener('abort', onAbort, { once: true });
    connection.send(request, stream, new PayloadWriter().u32(0).u16(port).finish());
  });
}

/**
 * Connects to `port` on the guest's 127.0.0.1 (the agent's network namespace; in dev mode the host's own loopback)
 * and resolves with the tunnel once the connection is established. Refuses with `unsupported` when the agent lacks
 * the TCP capability and `invalid_argument` for a bad port, sending nothing; a port nobody listens on rejects with a
 * GuestError `not_found`. Holds one of the connection's 64 streams while open.
 */
export function openTcp(connection: AgentConnection, port: number, options: TcpOptions = {}): Promise<TcpTunnel> {
  return openTunnel(connection, MsgType.TCP_CONNECT, port, options);
}

/**
 * Waits for a guest program to connect to `port` on the guest's 127.0.0.1, where the agent listens (opening the
 * listening socket on the first pending accept for that port; it closes 2 s after the last one ends). Resolves with
 * the tunnel when a client connects. Several accepts may wait on one port, each taking one client; clients arriving
 * while none waits queue in the backlog. A port a guest program already listens on rejects with a GuestError
 * (ALREADY_EXISTS). Refusals as for openTcp; `options.signal` withdraws the wait. Holds one stream while pending.
 */
export function acceptTcp(connection: AgentConnection, port: number, options: TcpOptions = {}): Promise<TcpTunnel> {
  return openTunnel(connection, MsgType.TCP_ACCEPT, port, options);
}
