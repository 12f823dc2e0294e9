import { constants as osConstants } from 'node:os';
import { JitvmError, ProtocolError } from '../core/errors.js';
import type { Frame } from './codec.js';
import { type AgentConnection, decodeGuestError } from './client.js';
import { CreditedReadable, SendCredit, decodeWindow, encodeWindow } from './credit.js';
import { DATA_CHUNK, ExecFlag, ExitReason, FLAG_FIN, INITIAL_WINDOW, MsgType, WindowChannel } from './protocol.js';
import { PayloadReader, PayloadWriter } from './wire.js';

/** What to run in the guest. argv[0] is looked up in PATH; no shell unless argv runs one. */
export interface ExecRequest {
  readonly argv: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** The agent kills the whole process group after this long. 0 or undefined: no limit. */
  readonly timeoutMs?: number;
  /** Whether stdin is streamed by the host (else the process reads /dev/null). */
  readonly stdin?: boolean;
}

/** How a guest process ended. `exitCode` follows the shell convention: 128 + signal number when signaled. */
export interface ExecExit {
  readonly reason: 'exited' | 'signaled' | 'timed_out';
  readonly exitCode: number;
  readonly signal: NodeJS.Signals | undefined;
}

function signalName(signo: number): NodeJS.Signals | undefined {
  const entry = Object.entries(osConstants.signals).find(([, value]) => value === signo);
  return entry?.[0] as NodeJS.Signals | undefined;
}

function encodeExec(request: ExecRequest): Buffer {
  const env = Object.entries(request.env ?? {}).map(([key, value]) => `${key}=${value}`);
  const writer = new PayloadWriter()
    .u32(request.stdin ? ExecFlag.STDIN : 0)
    .u32(request.timeoutMs ?? 0)
    .str(request.cwd ?? '')
    .u32(request.argv.length);
  for (const arg of request.argv) writer.str(arg);
  writer.u32(env.length);
  for (const entry of env) writer.str(entry);
  return writer.finish();
}

function decodeExit(payload: Buffer): ExecExit {
  const reader = new PayloadReader(payload, 'EXIT');
  const reason = reader.u8();
  const value = reader.i32();
  reader.end();
  if (reason === ExitReason.EXITED) return { reason: 'exited', exitCode: value, signal: undefined };
  if (reason === ExitReason.SIGNALED || reason === ExitReason.TIMED_OUT) {
    return {
      reason: reason === ExitReason.SIGNALED ? 'signaled' : 'timed_out',
      exitCode: 128 + value,
      signal: signalName(value),
    };
  }
  throw new ProtocolError(`EXIT has unknown reason ${reason}`);
}

/**
 * A process running in the guest: its pid once started, stdout/stderr as flow-controlled streams, stdin writes
 * that wait for the agent's credit, signals, and its exit.
 */
export class ExecProcess {
  readonly stdout: CreditedReadable;
  readonly stderr: CreditedReadable;
  /** Resolves with the guest pid once the program runs; rejects (GuestError NOT_FOUND…) if it could not start. */
  readonly started: Promise<number>;
  /** Resolves when the process has exited and both outputs ended. */
  readonly exit: Promise<ExecExit>;
  private readonly stdinCredit = new SendCredit(INITIAL_WINDOW);
  private readonly stream: number;
  private settle!: { started: (pid: number) => void; exit: (exit: ExecExit) => void; fail: (error: Error) => void };
  private finished = false;

  constructor(
    private readonly connection: AgentConnection,
    request: ExecRequest,
  ) {
    const payload = encodeExec(request);
    const grant = (channel: WindowChannel) => (bytes: number) => this.grant(channel, bytes);
    this.stdout = new CreditedReadable('stdout', grant(WindowChannel.STDOUT));
    this.stderr = new CreditedReadable('stderr', grant(WindowChannel.STDERR));
    let startedResolve!: (pid: number) => void;
    let startedReject!: (error: Error) => void;
    this.started = new Promise((resolve, reject) => ((startedResolve = resolve), (startedReject = reject)));
    this.exit = new Promise<ExecExit>((resolve, reject) => {
      this.settle = {
        started: startedResolve,
        exit: resolve,
        fail: (error) => {
          startedReject(error);
          reject(error);
        },
      };
    });
    // A caller that never waits must not get an unhandled rejection when the channel drops; awaiters still see it.
    this.started.catch(() => undefined);
    this.exit.catch(() => undefined);
    this.stream = connection.open({ onFrame: (frame) => this.onFrame(frame), onClose: (error) => this.fail(error) });
    connection.send(MsgType.EXEC, this.stream, payload);
  }

  /** Streams bytes to the process's stdin, waiting for the agent's credit; resolves once all were sent. */
  async writeStdin(data: Buffer): Promise<void> {
    for (let offset = 0; offset < data.length;) {
      const size = await this.stdinCredit.take(Math.min(DATA_CHUNK, data.length - offset));
      if (this.finished) return;
      this.connection.send(MsgType.STDIN, this.stream, data.subarray(offset, offset + size));
      offset += size;
    }
  }

  /** Closes the process's stdin (EOF). */
  endStdin(): void {
    if (!this.finished) this.connection.send(MsgType.STDIN, this.stream, undefined, FLAG_FIN);
  }

  /** Sends a signal to the process's whole process group. */
  kill(signal: NodeJS.Signals | number = 'SIGKILL'): void {
    if (this.finished) return;
    const signo = typeof signal === 'number' ? signal : osConstants.signals[signal];
    this.connection.send(MsgType.SIGNAL, this.stream, new PayloadWriter().u32(signo).finish());
  }

  private onFrame(frame: Frame): void {
    switch (frame.type) {
      case MsgType.EXEC_STARTED: {
        const reader = new PayloadReader(frame.payload, 'EXEC_STARTED');
        const pid = reader.u32();
        reader.end();
        this.settle.started(pid);
        return;
      }
      case MsgType.STDOUT:
      case MsgType.STDERR: {
        const target = frame.type === MsgType.STDOUT ? this.stdout : this.stderr;
        target.deliver(frame.payload);
        if (frame.flags & FLAG_FIN) target.receiveEnd();
        return;
      }
      case MsgType.WINDOW:
        this.stdinCredit.grant(decodeWindow(frame.payload, WindowChannel.STDIN));
        return;
      case MsgType.EXIT: {
        const exit = decodeExit(frame.payload);
        if (!this.stdout.senderEnded || !this.stderr.senderEnded)
          throw new ProtocolError('EXIT before both outputs ended');
        this.finish(new JitvmError('invalid_state', 'the process has exited; its stdin is closed'));
        this.settle.exit(exit);
        return;
      }
      case MsgType.ERROR:
        this.fail(decodeGuestError(frame.payload));
        return;
      default:
        throw new ProtocolError(`unexpected message type ${frame.type} on an exec stream`);
    }
  }

  private grant(channel: WindowChannel, bytes: number): void {
    if (this.finished || this.connection.closed) return;
    this.connection.send(MsgType.WINDOW, this.stream, encodeWindow(channel, bytes));
  }

  /** Forgets the stream; a pending or later stdin write fails with `reason`. */
  private finish(reason: Error): void {
    this.finished = true;
    this.connection.release(this.stream);
    this.stdinCredit.fail(reason);
  }

  private fail(error: Error): void {
    if (this.finished) return;
    this.finish(error);
    for (const output of [this.stdout, this.stderr]) if (!output.readableEnded) output.destroy();
    this.settle.fail(error);
  }
}
