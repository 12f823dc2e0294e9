import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { FastifyBaseLogger } from 'fastify';
import { WebSocket } from 'ws';
import type { z } from 'zod';
import { parseWith } from '../core/config.js';
import { InvalidArgumentError, JitvmError } from '../core/errors.js';
import type { CommandHandle } from '../sandbox/command.js';
import { exitEvent } from './exec-stream.js';
import { problemFromError } from './problem.js';
import {
  ExecWsControl,
  type ExecWsEvent,
  ExecWsStart,
  OUTPUT_STREAM_ID,
  WS_OUTPUT_HIGH_WATER,
  WS_STDIN_WINDOW,
} from './schemas-exec-ws.js';

/** Starts the command a `start` message asks for (throws JitvmError: no such sandbox…). */
export type SpawnFromStart = (start: ExecWsStart) => CommandHandle;

function parseMessage<S extends z.ZodType>(schema: S, data: Buffer, what: string): z.output<S> {
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch {
    throw new InvalidArgumentError(`the ${what} is not JSON; see docs/api.md, "Exec over a WebSocket"`);
  }
  return parseWith(schema, value, `invalid ${what}`);
}

function signalOf(name: string): NodeJS.Signals {
  if (!(name in osConstants.signals)) {
    throw new InvalidArgumentError(`unknown signal ${name}: use a name such as SIGTERM, SIGINT, SIGHUP or SIGKILL`);
  }
  return name as NodeJS.Signals;
}

/**
 * One exec over a WebSocket, as src/daemon/schemas-exec-ws.ts defines it: reads the `start` message, spawns the
 * command, then pumps stdin in and output out with backpressure both ways until the `exit` (or an `error`), and
 * closes the socket with 1000. A socket closed before the exit kills the command.
 */
export class ExecSocketSession {
  private handle: CommandHandle | undefined;
  /** Set once `exit` or `error` was sent, or the socket closed: nothing more is read or sent. */
  private done = false;
  private stdinEnded = false;
  /** Stdin writes in order: each waits for the guest's credit, then is granted back to the client. */
  private stdin: Promise<void> = Promise.resolve();
  /** Stdin bytes the client may still send (granted with `stdin_credit`). */
  private stdinCredit = 0;
  /** Output bytes handed to the socket whose write has not completed. */
  private unflushed = 0;

  constructor(
    private readonly socket: WebSocket,
    private readonly spawn: SpawnFromStart,
    private readonly log: FastifyBaseLogger,
  ) {
    socket.on('message', (data: Buffer, isBinary) => {
      try {
        this.onMessage(data, isBinary);
      } catch (error) {
        this.fail(error);
      }
    });
    socket.once('close', () => this.onClose());
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.done) return;
    if (!this.handle) return this.start(data, isBinary);
    if (isBinary) return this.writeStdin(this.handle, data);
    const message = parseMessage(ExecWsControl, data, 'control message');
    if (message.type === 'signal') return this.handle.kill(signalOf(message.signal));
    this.stdinEnded = true;
    const handle = this.handle;
    this.stdin = this.stdin.then(() => handle.closeStdin());
  }

  private start(data: Buffer, isBinary: boolean): void {
    if (isBinary) throw new InvalidArgumentError('the first message must be a `start` text message, not bytes');
    const handle = this.spawn(parseMessage(ExecWsStart, data, '`start` message'));
    this.handle = handle;
    handle.pid.then(
      (pid) => {
        this.send({ type: 'started', pid });
        this.grantStdin(WS_STDIN_WINDOW);
        this.pumpOutput(handle);
      },
      (error: unknown) => this.fail(error),
    );
  }

  private writeStdin(handle: CommandHandle, data: Buffer): void {
    if (this.stdinEnded) {
      throw new JitvmError('invalid_state', 'stdin bytes after `stdin_end`: the command has no stdin any more');
    }
    if (data.length > this.stdinCredit) {
      throw new InvalidArgumentError(
        `${data.length} stdin bytes sent with ${this.stdinCredit} granted: wait for \`stdin_credit\` messages`,
      );
    }
    this.stdinCredit -= data.length;
    this.stdin = this.stdin
      .then(() => handle.sendStdin(data))
      .then(
        () => this.grantStdin(data.length),
        // A write fails only when the command has exited or the channel dropped: `exit` or `error` reports that.
        () => undefined,
      );
  }

  private grantStdin(bytes: number): void {
    if (this.stdinEnded || this.done || bytes === 0) return;
    this.stdinCredit += bytes;
    this.send({ type: 'stdin_credit', bytes });
  }

  private pumpOutput(handle: CommandHandle): void {
    const outputs: [Readable, number][] = [
      [handle.stdout, OUTPUT_STREAM_ID.stdout],
      [handle.stderr, OUTPUT_STREAM_ID.stderr],
    ];
    for (const [stream, id] of outputs) stream.on('data', (chunk: Buffer) => this.sendOutput(outputs, id, chunk));
    const ended = Promise.all(outputs.map(([stream]) => finished(stream)));
    ended.catch(() => undefined);
    handle
      .wait()
      .then(async (exit) => {
        await ended;
        this.end(exitEvent(exit));
      })
      .catch((error: unknown) => this.fail(error));
  }

  private sendOutput(outputs: [Readable, number][], id: number, chunk: Buffer): void {
    if (this.socket.readyState !== WebSocket.OPEN) return;
    const frame = Buffer.concat([Buffer.of(id), chunk]);
    this.unflushed += frame.length;
    this.socket.send(frame, { binary: true }, () => {
      this.unflushed -= frame.length;
      if (this.unflushed < WS_OUTPUT_HIGH_WATER) outputs.forEach(([stream]) => stream.resume());
    });
    if (this.unflushed > WS_OUTPUT_HIGH_WATER) outputs.forEach(([stream]) => stream.pause());
  }

  /** Sends the problem for `error`, kills the command if it runs, and closes. */
  private fail(error: unknown): void {
    const problem = problemFromError(error);
    if (problem.code === 'internal') this.log.error({ err: error }, 'exec over WebSocket failed');
    this.handle?.kill('SIGKILL');
    this.end({ type: 'error', problem });
  }

  /** Sends the last message and closes (once). */
  private end(last: ExecWsEvent): void {
    if (this.done) return;
    this.done = true;
    this.send(last);
    this.socket.close(1000);
  }

  private onClose(): void {
    if (!this.done) this.handle?.kill('SIGKILL');
    this.done = true;
    // Output nobody will read is drained, so the guest can send it all and report the exit.
    this.handle?.stdout.resume();
    this.handle?.stderr.resume();
  }

  private send(event: ExecWsEvent): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(event));
  }
}
