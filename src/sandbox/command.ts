import { Readable } from 'node:stream';
import type { AgentConnection } from '../channel/client.js';
import { type ExecExit, ExecProcess } from '../channel/exec-process.js';
import { CancelledError, ExecTimeoutError, InvalidArgumentError } from '../core/errors.js';
import { parseWith } from '../core/config.js';
import { ExecResult } from './exec-result.js';
import { ExecOptionsSchema } from './options.js';
import type { RunningCommand } from './api.js';

/** Standard input for a guest command: bytes, text, or a stream of bytes. */
export type StdinSource = string | Buffer | Readable | AsyncIterable<Buffer | string>;

/** Options shared by `exec` and `spawn`. */
export interface SpawnOptions {
  readonly env?: Record<string, string>;
  readonly cwd?: string;
  readonly stdin?: StdinSource;
  /** The agent kills the command and its whole process group after this long. */
  readonly timeoutMs?: number;
  /** Aborting kills the command's process group; the call rejects with CancelledError. */
  readonly signal?: AbortSignal;
}

export interface ExecOptions extends SpawnOptions {
  /** Called with each chunk of stdout as it arrives. */
  readonly onStdout?: (chunk: Buffer) => void;
  readonly onStderr?: (chunk: Buffer) => void;
}

/** A string runs through `/bin/sh -c`; an array is argv, run without a shell. */
export type Command = string | readonly string[];

export function toArgv(command: Command): string[] {
  const argv = typeof command === 'string' ? ['/bin/sh', '-c', command] : [...command];
  if (argv.length === 0 || argv[0] === '') throw new InvalidArgumentError('command must not be empty');
  return argv;
}

async function* chunksOf(source: StdinSource): AsyncIterable<Buffer> {
  if (typeof source === 'string' || Buffer.isBuffer(source)) {
    yield typeof source === 'string' ? Buffer.from(source) : source;
    return;
  }
  for await (const chunk of source) yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
}

/**
 * A command running in the sandbox: stdout/stderr are Node Readables (flow-controlled end to end), stdin can be
 * written while it runs, and `wait()` resolves with its exit.
 */
export class CommandHandle implements RunningCommand {
  readonly stdout: Readable;
  readonly stderr: Readable;
  private readonly startedAt = performance.now();

  constructor(
    private readonly process: ExecProcess,
    options: SpawnOptions,
  ) {
    this.stdout = process.stdout;
    this.stderr = process.stderr;
    applySpawnOptions(this, options);
  }

  /**
   * Starts `command` on `connection`. With `pipeStdin` the command's stdin stays open for `sendStdin` until
   * `closeStdin` (or until `options.stdin` is drained); without it and without `options.stdin` it reads /dev/null.
   * A command that cannot start rejects (GuestError NOT_FOUND…) through `pid` and `wait`.
   */
  static start(
    connection: AgentConnection,
    command: Command,
    options: SpawnOptions = {},
    pipeStdin = false,
  ): CommandHandle {
    const checked = parseWith(
      ExecOptionsSchema,
      { env: options.env, cwd: options.cwd, timeoutMs: options.timeoutMs },
      'invalid exec options',
    );
    if (options.signal?.aborted) throw new CancelledError('the command was cancelled before it started');
    const process = new ExecProcess(connection, {
      argv: toArgv(command),
      ...checked,
      stdin: pipeStdin || options.stdin !== undefined,
    });
    return new CommandHandle(process, options);
  }

  /** The guest pid, once the program is running. */
  get pid(): Promise<number> {
    return this.process.started;
  }

  /** Writes to the command's stdin (waits for the guest's credit). */
  sendStdin(data: string | Buffer): Promise<void> {
    return this.process.writeStdin(typeof data === 'string' ? Buffer.from(data) : data);
  }

  /** Closes the command's stdin. */
  closeStdin(): void {
    this.process.endStdin();
  }

  /** Signals the command's whole process group (SIGKILL by default). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.process.kill(signal);
  }

  /** Resolves with the exit once the command ended and the guest sent all its output (it may still be unread here). */
  wait(): Promise<ExecExit> {
    return this.process.exit;
  }

  get elapsedMs(): number {
    return performance.now() - this.startedAt;
  }
}

/** Feeds `options.stdin` to a started command, and kills it (SIGKILL) when `options.signal` aborts. */
export function applySpawnOptions(command: RunningCommand, options: SpawnOptions): void {
  if (options.stdin !== undefined) void pumpStdin(command, options.stdin);
  const signal = options.signal;
  if (!signal) return;
  const onAbort = (): void => command.kill('SIGKILL');
  signal.addEventListener('abort', onAbort, { once: true });
  void command
    .wait()
    .finally(() => signal.removeEventListener('abort', onAbort))
    .catch(() => undefined);
}

async function pumpStdin(command: RunningCommand, source: StdinSource): Promise<void> {
  try {
    for await (const chunk of chunksOf(source)) await command.sendStdin(chunk);
    command.closeStdin();
  } catch {
    // The process ended or the channel closed; wait() reports that.
  }
}

async function collect(stream: Readable, onChunk?: (chunk: Buffer) => void): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer);
    onChunk?.(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Runs a command to completion, collecting its output. Timeout → ExecTimeoutError; abort → CancelledError. */
export async function runCommand(
  connection: AgentConnection,
  command: Command,
  options: ExecOptions = {},
): Promise<ExecResult> {
  return collectRun(CommandHandle.start(connection, command, options), options);
}

/** Waits for a started command's exit, collecting its output; its timeout and abort become errors, as in `exec`. */
export async function collectRun(handle: RunningCommand, options: ExecOptions): Promise<ExecResult> {
  const output = Promise.all([collect(handle.stdout, options.onStdout), collect(handle.stderr, options.onStderr)]);
  output.catch(() => undefined);
  const exit = await handle.wait();
  const [stdout, stderr] = await output;
  if (exit.reason === 'timed_out') throw new ExecTimeoutError(options.timeoutMs ?? 0, stdout, stderr);
  if (options.signal?.aborted) throw new CancelledError('the command was cancelled and killed');
  return new ExecResult(exit, stdout, stderr, handle.elapsedMs);
}
