import type { IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import WebSocket from 'ws';
import type { ExecExit } from '../channel/exec-process.js';
import { parseWith } from '../core/config.js';
import { parseJsonOrUndefined } from '../core/json.js';
import { CancelledError, JitvmError } from '../core/errors.js';
import { ProblemSchema } from '../daemon/schemas.js';
import { type ExecWsControl, ExecWsEvent, type ExecWsStart, OUTPUT_STREAM_ID } from '../daemon/schemas-exec-ws.js';
import type { RunningCommand } from '../sandbox/api.js';
import { type Command, type SpawnOptions, applySpawnOptions, toArgv } from '../sandbox/command.js';
import { ExecOptionsSchema } from '../sandbox/options.js';
import { DaemonError, type DaemonClient } from './daemon-client.js';

/** A socket error in jitvm's terms (`agent_lost` unless the client recognizes it). */
function asJitvmError(error: unknown, client: DaemonClient): JitvmError {
  const mapped = client.transportError(error);
  if (mapped instanceof JitvmError) return mapped;
  return new JitvmError('agent_lost', `the exec socket to the daemon failed: ${String(error)}`, { cause: error });
}

/** The exit of an `exit` message, as the local SDK reports it. */
export function exitOf(event: { exitCode: number; signal: string | null; timedOut: boolean }): ExecExit {
  const signal = (event.signal ?? undefined) as NodeJS.Signals | undefined;
  const reason = event.timedOut ? 'timed_out' : signal ? 'signaled' : 'exited';
  return { reason, exitCode: event.exitCode, signal };
}

/**
 * Opens the WebSocket at `path` of the daemon. A Unix socket is dialled directly: a `ws+unix:` URL would
 * percent-encode a socket path holding a space, and refuse one holding `#`.
 */
function openWebSocket(client: DaemonClient, path: string): WebSocket {
  const { endpoint } = client;
  const options = { headers: client.authHeaders, perMessageDeflate: false };
  if (endpoint.kind === 'tcp') return new WebSocket(`${endpoint.origin.replace(/^http/, 'ws')}${path}`, options);
  return new WebSocket(`ws://localhost${path}`, { ...options, createConnection: () => connect(endpoint.socketPath) });
}

/**
 * Output held per stream before the socket is paused: as much as the local SDK lets a command run ahead of its
 * reader (a channel window), so `wait()` resolves, and one unread stream does not stall the other, as locally.
 */
const OUTPUT_BUFFER_BYTES = 1024 * 1024;

/**
 * A command running in a daemon's sandbox, over `GET /v1/sandboxes/:id/exec/ws` (src/daemon/schemas-exec-ws.ts):
 * the same handle as a local `spawn`, with stdin, signals and output flow-controlled through the socket.
 */
export class RemoteCommand implements RunningCommand {
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly pid: Promise<number>;
  private readonly exit: Promise<ExecExit>;
  private readonly opened: Promise<void>;
  private readonly socket: WebSocket;
  private readonly startedAt = performance.now();
  private readonly settle: { pid: (pid: number) => void; exit: (exit: ExecExit) => void; fail: (error: Error) => void };
  private ended = false;
  /** Why the command ended without an exit, if it did. */
  private failure: Error | undefined;
  private stdinCredit = 0;
  private stdinClosed = false;
  private stdinQueue: Promise<void> = Promise.resolve();
  private creditWaiters: { resolve: () => void; reject: (error: Error) => void }[] = [];

  private constructor(client: DaemonClient, sandboxId: string, start: ExecWsStart) {
    let settlePid!: { resolve: (pid: number) => void; reject: (error: Error) => void };
    let settleExit!: { resolve: (exit: ExecExit) => void; reject: (error: Error) => void };
    this.pid = new Promise((resolve, reject) => (settlePid = { resolve, reject }));
    this.exit = new Promise((resolve, reject) => (settleExit = { resolve, reject }));
    this.settle = {
      pid: settlePid.resolve,
      exit: settleExit.resolve,
      fail: (error) => {
        settlePid.reject(error);
        settleExit.reject(error);
      },
    };
    this.pid.catch(() => undefined);
    this.exit.catch(() => undefined);
    // A stream asking for more resumes the socket unless the other one is still full (its reader lags).
    const highWaterMark = OUTPUT_BUFFER_BYTES;
    this.stdout = new Readable({ highWaterMark, read: () => this.resumeUnlessFull(this.stderr) });
    this.stderr = new Readable({ highWaterMark, read: () => this.resumeUnlessFull(this.stdout) });
    this.socket = openWebSocket(client, `/v1/sandboxes/${encodeURIComponent(sandboxId)}/exec/ws`);
    this.opened = new Promise<void>((resolve, reject) => {
      this.socket.once('open', resolve);
      this.socket.once('close', () => reject(new JitvmError('agent_lost', 'the exec socket closed')));
    });
    this.opened.catch(() => undefined);
    this.socket.once('open', () => this.socket.send(JSON.stringify(start)));
    this.socket.on('message', (data: Buffer, isBinary) => (isBinary ? this.output(data) : this.event(data)));
    this.socket.once('unexpected-response', (request, response) =>
      this.refused(request, response, client).catch((error: unknown) => this.fail(asJitvmError(error, client))),
    );
    this.socket.on('error', (error) => this.fail(asJitvmError(error, client)));
    this.socket.once('close', (code) =>
      this.fail(
        new JitvmError('agent_lost', `the daemon closed the exec socket (code ${code}) before the command's exit`),
      ),
    );
  }

  /** Starts `command` in the daemon's sandbox `sandboxId`; its stdin stays open until `closeStdin`. */
  static start(client: DaemonClient, sandboxId: string, command: Command, options: SpawnOptions = {}): RemoteCommand {
    const checked = parseWith(
      ExecOptionsSchema,
      { env: options.env, cwd: options.cwd, timeoutMs: options.timeoutMs },
      'invalid exec options',
    );
    if (options.signal?.aborted) throw new CancelledError('the command was cancelled before it started');
    const started = new RemoteCommand(client, sandboxId, { type: 'start', command: toArgv(command), ...checked });
    applySpawnOptions(started, options);
    return started;
  }

  /** Sends stdin within the daemon's credit (src/daemon/schemas-exec-ws.ts), waiting for more when it runs out. */
  async sendStdin(data: string | Buffer): Promise<void> {
    // As locally, where the agent drops stdin that follows its end.
    if (this.stdinClosed) return;
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    // Writes go out whole and in call order: each waits for the one before it.
    const previous = this.stdinQueue;
    const written = previous.then(() => this.writeWithinCredit(bytes));
    this.stdinQueue = written.catch(() => undefined);
    return written;
  }

  private async writeWithinCredit(bytes: Buffer): Promise<void> {
    for (let offset = 0; offset < bytes.length;) {
      const granted = await this.credit();
      const slice = bytes.subarray(offset, offset + granted);
      this.stdinCredit -= slice.length;
      offset += slice.length;
      this.socket.send(slice, { binary: true });
    }
  }

  /** Resolves with the stdin bytes the daemon granted and this side has not sent, once there are some. */
  private credit(): Promise<number> {
    if (this.ended) return Promise.reject(this.endedError());
    if (this.stdinCredit > 0) return Promise.resolve(this.stdinCredit);
    return new Promise((resolve, reject) =>
      this.creditWaiters.push({ resolve: () => resolve(this.stdinCredit), reject }),
    );
  }

  /** Closes stdin after the writes already asked for. */
  closeStdin(): void {
    if (this.stdinClosed) return;
    this.stdinClosed = true;
    void this.stdinQueue.then(() => this.control({ type: 'stdin_end' }));
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.control({ type: 'signal', signal });
  }

  wait(): Promise<ExecExit> {
    return this.exit;
  }

  get elapsedMs(): number {
    return performance.now() - this.startedAt;
  }

  /** Sends a control message once the socket is open; dropped when the command already ended. */
  private control(message: ExecWsControl): void {
    void this.opened.then(
      () => {
        if (this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
      },
      () => undefined,
    );
  }

  private output(frame: Buffer): void {
    const stream =
      frame[0] === OUTPUT_STREAM_ID.stdout
        ? this.stdout
        : frame[0] === OUTPUT_STREAM_ID.stderr
          ? this.stderr
          : undefined;
    if (!stream || this.ended) return this.fail(new JitvmError('protocol', `unexpected output frame from the daemon`));
    if (!stream.push(frame.subarray(1))) this.socket.pause();
  }

  private resumeUnlessFull(other: Readable): void {
    if (other.readableLength < other.readableHighWaterMark) this.socket.resume();
  }

  private event(data: Buffer): void {
    let parsed: ReturnType<typeof ExecWsEvent.safeParse>;
    try {
      parsed = ExecWsEvent.safeParse(JSON.parse(data.toString('utf8')));
    } catch {
      return this.fail(new JitvmError('protocol', 'the daemon sent a text frame that is not JSON'));
    }
    if (!parsed.success)
      return this.fail(new JitvmError('protocol', `malformed exec message: ${parsed.error.message}`));
    const event = parsed.data;
    if (event.type === 'started') return this.settle.pid(event.pid);
    if (event.type === 'stdin_credit') {
      this.stdinCredit += event.bytes;
      return this.creditWaiters.splice(0).forEach((waiter) => waiter.resolve());
    }
    if (event.type === 'error') return this.fail(new DaemonError(event.problem.status, event.problem));
    this.finish(exitOf(event));
  }

  private finish(exit: ExecExit): void {
    if (this.ended) return;
    this.ended = true;
    this.stdout.push(null);
    this.stderr.push(null);
    // Ended streams never ask for more: read on, so the daemon's close is seen and the socket released.
    this.socket.resume();
    this.settle.exit(exit);
    this.creditWaiters.splice(0).forEach((waiter) => waiter.reject(this.endedError()));
  }

  private endedError(): Error {
    return this.failure ?? new JitvmError('invalid_state', 'the command has exited: its stdin is closed');
  }

  /** Ends the command with `error` (once): its streams are destroyed and `pid`/`wait` reject. */
  private fail(error: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = error;
    this.settle.fail(error);
    this.creditWaiters.splice(0).forEach((waiter) => waiter.reject(error));
    // As a local command's: the streams end early, and `wait()` says why.
    for (const output of [this.stdout, this.stderr]) if (!output.readableEnded) output.destroy();
    this.socket.terminate();
  }

  /** The daemon answered the upgrade with an error (401, 404…): its problem document says why. */
  private async refused(request: { destroy(): void }, response: IncomingMessage, client: DaemonClient): Promise<void> {
    const status = response.statusCode ?? 0;
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of response) chunks.push(chunk as Buffer);
    } finally {
      request.destroy();
    }
    const problem = ProblemSchema.safeParse(parseJsonOrUndefined(Buffer.concat(chunks).toString()));
    this.fail(
      problem.success
        ? new DaemonError(status, problem.data)
        : new JitvmError(
            'protocol',
            `the daemon at ${client.endpoint.text} refused the exec socket with HTTP ${status}`,
          ),
    );
  }
}
