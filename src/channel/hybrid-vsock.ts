/**
 * The host side of Firecracker's hybrid vsock (docs/vsock.md, "Host-Initiated Connections"; Cloud Hypervisor speaks
 * the same): connect to the VM's `uds_path`, write `CONNECT <port>\n` in one write, read `OK <hostport>\n`, after
 * which the stream carries raw bytes to whatever listens on that AF_VSOCK port in the guest. When nothing listens,
 * or the request is malformed, the muxer closes the connection without a reply.
 */

import { type Socket, createConnection } from 'node:net';
import type { Duplex } from 'node:stream';

import { CancelledError, ChannelClosedError, InvalidArgumentError, JitvmError, ProtocolError } from '../core/errors.js';

/** Firecracker drops a host connection the guest kernel has not answered within 2 s; this leaves room for a busy host. */
const DEFAULT_TIMEOUT_MS = 5_000;
/** `OK 4294967295\n` is 14 bytes: a reply with no newline within this many is not a muxer's. */
const MAX_REPLY_LINE = 32;
const MAX_PORT = 0xffffffff;
const NEWLINE = 0x0a;

export interface HybridVsockOptions {
  /** Aborting rejects with CancelledError. */
  readonly signal?: AbortSignal;
  /** Bound on the whole exchange, in ms (default 5000); past it the call rejects with a `timeout` JitvmError. */
  readonly timeoutMs?: number;
}

interface Outcome<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

/**
 * Connects to the hybrid-vsock socket `udsPath` and asks for guest port `port`. Resolves with the socket positioned
 * right after the `OK` line (bytes the guest sent in the same chunk are put back, unread). Refused / missing socket
 * and a guest port nobody listens on → ChannelClosedError; a reply that is not `OK <n>` → ProtocolError; the socket
 * is destroyed on every failure. The handshake's listeners are gone once it resolves: attach an 'error' listener at
 * once (AgentConnection does).
 */
export async function connectHybridVsock(
  udsPath: string,
  port: number,
  options: HybridVsockOptions = {},
): Promise<Duplex> {
  checkPort(port);
  const peer = `the vsock socket ${udsPath}`;
  let socket: Socket | undefined;
  try {
    await bounded<number>(options, `connecting to guest vsock port ${port} through ${udsPath}`, (outcome) => {
      const opened = createConnection(udsPath);
      socket = opened;
      let stopReply = (): void => {};
      const onError = (error: NodeJS.ErrnoException): void => outcome.reject(unreachable(udsPath, error));
      const onConnect = (): void => {
        opened.off('error', onError);
        stopReply = awaitReply(opened, port, peer, outcome);
      };
      opened.once('connect', onConnect).once('error', onError);
      return () => {
        opened.off('connect', onConnect).off('error', onError);
        stopReply();
      };
    });
    return socket as Socket;
  } catch (error) {
    socket?.destroy();
    throw error;
  }
}

/**
 * Runs the hybrid-vsock handshake on an already open stream to a muxer and resolves with the host-side port from
 * its `OK <n>` reply; the stream is then positioned right after that line. Errors as for connectHybridVsock; on
 * failure the stream is left to the caller.
 */
export async function hybridVsockHandshake(
  stream: Duplex,
  port: number,
  options: HybridVsockOptions = {},
): Promise<number> {
  checkPort(port);
  const peer = 'the vsock muxer';
  return bounded(options, `the vsock handshake for guest port ${port}`, (outcome) =>
    awaitReply(stream, port, peer, outcome),
  );
}

/** Writes the CONNECT line and reads the reply line; returns the function that detaches it. */
function awaitReply(stream: Duplex, port: number, peer: string, outcome: Outcome<number>): () => void {
  let line: Buffer = Buffer.alloc(0);
  const onReadable = (): void => {
    let chunk: Buffer | null;
    while ((chunk = stream.read() as Buffer | null) !== null) {
      const next = extendLine(line, chunk);
      line = next.line;
      if (next.rest) {
        detach();
        if (next.rest.length > 0) stream.unshift(next.rest);
        const hostPort = parseOk(line);
        if (hostPort === undefined) return outcome.reject(notAMuxer(peer, port, `answered with ${quote(line)}`));
        return outcome.resolve(hostPort);
      }
      if (line.length >= MAX_REPLY_LINE) {
        return outcome.reject(notAMuxer(peer, port, `sent ${quote(line)}… with no newline`));
      }
    }
  };
  const onEnd = (): void => outcome.reject(closedWithoutOk(peer, port, line));
  const onError = (error: Error): void =>
    outcome.reject(
      new ChannelClosedError(`${peer} failed before answering CONNECT ${port}: ${error.message}`, { cause: error }),
    );
  const detach = (): void => {
    stream.off('readable', onReadable).off('end', onEnd).off('close', onEnd).off('error', onError);
  };
  stream.on('readable', onReadable).on('end', onEnd).on('close', onEnd).on('error', onError);
  stream.write(`CONNECT ${port}\n`);
  return detach;
}

/**
 * Adds `chunk` to the reply line read so far, looking no further than MAX_REPLY_LINE bytes into it. `rest` is set
 * once the line is complete: the bytes after its newline, which belong to the guest's stream.
 */
function extendLine(line: Buffer, chunk: Buffer): { line: Buffer; rest?: Buffer } {
  const room = chunk.subarray(0, MAX_REPLY_LINE - line.length);
  const newline = room.indexOf(NEWLINE);
  if (newline < 0) return { line: Buffer.concat([line, room]) };
  return { line: Buffer.concat([line, room.subarray(0, newline)]), rest: chunk.subarray(newline + 1) };
}

function parseOk(line: Buffer): number | undefined {
  const match = /^OK ([0-9]{1,10})$/.exec(line.toString('latin1'));
  const hostPort = match ? Number(match[1]) : NaN;
  return hostPort <= MAX_PORT ? hostPort : undefined;
}

function notAMuxer(peer: string, port: number, what: string): ProtocolError {
  return new ProtocolError(
    `${peer} ${what} in reply to CONNECT ${port} instead of "OK <port>": it is not a Firecracker hybrid vsock ` +
      'socket (check the uds_path given to the VM)',
  );
}

function closedWithoutOk(peer: string, port: number, partial: Buffer): ChannelClosedError {
  const after = partial.length > 0 ? ` after a partial reply ${quote(partial)}` : '';
  return new ChannelClosedError(
    `nothing listens on vsock port ${port} in the guest: ${peer} closed the connection${after} without answering ` +
      `CONNECT ${port}. Check that the guest service (the jitvm agent) is running and listening on that port.`,
  );
}

function quote(bytes: Buffer): string {
  return JSON.stringify(bytes.toString('latin1'));
}

function unreachable(udsPath: string, error: NodeJS.ErrnoException): ChannelClosedError {
  const why =
    error.code === 'ENOENT'
      ? 'does not exist'
      : error.code === 'ECONNREFUSED'
        ? 'refuses connections'
        : `cannot be connected to (${error.message})`;
  return new ChannelClosedError(
    `the vsock socket ${udsPath} ${why}: the VM is not running, or its vsock device uses another uds_path`,
    { cause: error },
  );
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > MAX_PORT) {
    throw new InvalidArgumentError(`vsock port must be an integer from 0 to ${MAX_PORT}, got ${port}`);
  }
}

/**
 * Runs `start` (which returns its own cleanup) until it settles, within the options' timeout and abort signal.
 * Cleanup runs exactly once, whichever way it ends.
 */
function bounded<T>(options: HybridVsockOptions, what: string, start: (outcome: Outcome<T>) => () => void): Promise<T> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new InvalidArgumentError(`timeoutMs must be a positive number of milliseconds, got ${timeoutMs}`);
  }
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(new CancelledError(`${what} was cancelled`));
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let cleanup: (() => void) | undefined;
    const settle = (finish: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      cleanup?.();
      finish();
    };
    const outcome: Outcome<T> = {
      resolve: (value) => settle(() => resolve(value)),
      reject: (error) => settle(() => reject(error)),
    };
    const onAbort = (): void => outcome.reject(new CancelledError(`${what} was cancelled`));
    const timer = setTimeout(
      () =>
        outcome.reject(
          new JitvmError('timeout', `${what} got no answer within ${timeoutMs} ms: the VM may be paused or hung`),
        ),
      timeoutMs,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      cleanup = start(outcome);
    } catch (error) {
      outcome.reject(error as Error);
    }
    if (settled) cleanup?.();
  });
}
