import { createInterface } from 'node:readline';
import { z } from 'zod';
import { parseWith } from '../core/config.js';
import { CancelledError, ExecTimeoutError, InvalidArgumentError, JitvmError } from '../core/errors.js';
import type { ExecExit } from '../channel/exec-process.js';
import {
  CreateSandboxBody,
  ExecEvent,
  PingResult,
  PublishedPortSchema,
  SandboxInfo,
  SandboxList,
} from '../daemon/schemas.js';
import { SnapshotInfo } from '../daemon/schemas-snapshots.js';
import type { SandboxApi } from '../sandbox/api.js';
import { type Command, type ExecOptions, type SpawnOptions, collectRun, toArgv } from '../sandbox/command.js';
import { ExecResult } from '../sandbox/exec-result.js';
import { ExecOptionsSchema } from '../sandbox/options.js';
import type { PortForwardInput, PublishedPort } from '../sandbox/ports.js';
import { DaemonClient } from './daemon-client.js';
import { RemoteCommand, exitOf } from './command.js';
import { RemoteFiles } from './files.js';

/** Which daemon to use: its address (`unix:///…/jitvm.sock` or `http://127.0.0.1:PORT`) and bearer token. */
export interface DaemonConnectOptions {
  readonly daemon: string;
  /** Default: `$JITVM_TOKEN`, else the token file of a daemon of this user on this host (none for a Unix socket). */
  readonly token?: string;
}

/**
 * `Sandbox.create({ daemon })`: the VM options of `Sandbox.create` (the daemon boots it), the sandbox's timeouts in
 * the daemon (idle and absolute), and the daemon to use.
 */
export type RemoteSandboxOptions = z.input<typeof CreateSandboxBody> &
  DaemonConnectOptions & {
    /** Cancels the request; a sandbox the daemon still boots is reaped by its idle timeout. */
    readonly signal?: AbortSignal;
  };

/**
 * Stdin up to this size goes in the NDJSON exec's JSON body (limited to 1 MiB, base64 grows it by a third); more, or
 * a stream, goes over the exec WebSocket.
 */
const INLINE_STDIN_BYTES = 512 * 1024;

/** Options of the SDK that only a sandbox held by this process can have. */
const LOCAL_ONLY = ['hypervisor', 'pool', 'onImageProgress', 'onEgressDecision', 'detached'] as const;

/** The daemon's answer to a request on a sandbox it no longer has: it expired, or was destroyed elsewhere. */
const isGone = (error: unknown): boolean => error instanceof JitvmError && error.code === 'not_found';

/**
 * A sandbox held by a jitvm daemon (`jitvm serve`), driven over its REST API: the same methods as a local `Sandbox`
 * (`SandboxApi`), plus the daemon's timeouts. Output and files stream; `spawn` runs over a WebSocket so stdin can
 * be written while the command runs.
 */
export class RemoteSandbox implements SandboxApi {
  readonly files: RemoteFiles;
  private ended: { readonly why: 'destroyed' | 'detached'; readonly done: Promise<void> } | undefined;

  private constructor(
    private readonly client: DaemonClient,
    private latest: SandboxInfo,
  ) {
    this.files = new RemoteFiles(client, latest.id);
  }

  /** Asks the daemon to boot a sandbox (or restore one, `fromSnapshot`) and resolves once its agent answers. */
  static async create(options: RemoteSandboxOptions): Promise<RemoteSandbox> {
    const { daemon, token, signal, ...rest } = options;
    const local = LOCAL_ONLY.filter((name) => (rest as Record<string, unknown>)[name] !== undefined);
    if (local.length > 0) {
      throw new InvalidArgumentError(
        `${local.join(', ')} cannot be combined with daemon: the daemon's process holds the VM, not this one`,
      );
    }
    const body = parseWith(CreateSandboxBody, rest, 'invalid sandbox options');
    return RemoteSandbox.open(daemon, token, (client) =>
      client.json(SandboxInfo, 'POST', '/v1/sandboxes', { json: body, signal }),
    );
  }

  /** The daemon's sandbox `id` (one created by another client, or detached). */
  static connect(id: string, options: DaemonConnectOptions): Promise<RemoteSandbox> {
    return RemoteSandbox.open(options.daemon, options.token, (client) =>
      client.json(SandboxInfo, 'GET', `/v1/sandboxes/${encodeURIComponent(id)}`),
    );
  }

  /** Starts `count` sandboxes from the stored snapshot `name` in the daemon; if one fails, the others are destroyed. */
  static async fork(name: string, options: DaemonConnectOptions & { count: number }): Promise<RemoteSandbox[]> {
    const { count, ...daemon } = options;
    if (!Number.isInteger(count) || count < 1 || count > 64) {
      throw new InvalidArgumentError(`fork count must be an integer from 1 to 64, got ${count}`);
    }
    const started = await Promise.allSettled(
      Array.from({ length: count }, () => RemoteSandbox.create({ ...daemon, fromSnapshot: name })),
    );
    const failed = started.find((result) => result.status === 'rejected');
    const sandboxes = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    if (!failed) return sandboxes;
    await Promise.allSettled(sandboxes.map((sandbox) => sandbox.destroy()));
    throw failed.reason;
  }

  /** The daemon's sandboxes, as it reports them. */
  static async list(options: DaemonConnectOptions): Promise<SandboxInfo[]> {
    const client = DaemonClient.of(options.daemon, options.token);
    try {
      return (await client.json(SandboxList, 'GET', '/v1/sandboxes')).sandboxes;
    } finally {
      await client.close();
    }
  }

  private static async open(
    daemon: string,
    token: string | undefined,
    fetchInfo: (client: DaemonClient) => Promise<SandboxInfo>,
  ): Promise<RemoteSandbox> {
    const client = DaemonClient.of(daemon, token);
    try {
      return new RemoteSandbox(client, await fetchInfo(client));
    } catch (error) {
      await client.close();
      throw error;
    }
  }

  get id(): string {
    return this.latest.id;
  }

  /** What the daemon reported last (deadlines, ports, options); `refresh()` asks again. */
  get info(): SandboxInfo {
    return this.latest;
  }

  async refresh(): Promise<SandboxInfo> {
    this.latest = await this.client.json(SandboxInfo, 'GET', this.path(''));
    return this.latest;
  }

  /** The daemon destroys the sandbox `timeoutMs` from now (at most 24 h) instead of at its current deadline. */
  async setTimeout(timeoutMs: number): Promise<SandboxInfo> {
    this.latest = await this.client.json(SandboxInfo, 'POST', this.path('/timeout'), { json: { timeoutMs } });
    return this.latest;
  }

  async exec(command: Command, options: ExecOptions = {}): Promise<ExecResult> {
    const { stdin } = options;
    const inline =
      stdin === undefined ||
      ((typeof stdin === 'string' || Buffer.isBuffer(stdin)) && Buffer.byteLength(stdin) <= INLINE_STDIN_BYTES);
    if (!inline) return collectRun(this.spawn(command, options), options);
    const checked = parseWith(
      ExecOptionsSchema,
      { env: options.env, cwd: options.cwd, timeoutMs: options.timeoutMs },
      'invalid exec options',
    );
    if (options.signal?.aborted) throw new CancelledError('the command was cancelled before it started');
    const started = performance.now();
    const json = {
      command: toArgv(command),
      ...checked,
      ...(stdin === undefined ? {} : { stdin: { base64: Buffer.from(stdin as string | Buffer).toString('base64') } }),
    };
    const response = await this.client.send('POST', this.path('/exec'), { json, signal: options.signal });
    const output = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    let exit: ExecExit | undefined;
    try {
      for await (const line of createInterface({ input: response.body, crlfDelay: Infinity })) {
        const event = execEvent(line);
        if (event.type === 'exit') {
          exit = exitOf(event);
          continue;
        }
        const chunk = Buffer.from(event.data, 'base64');
        output[event.type].push(chunk);
        (event.type === 'stdout' ? options.onStdout : options.onStderr)?.(chunk);
      }
    } catch (error) {
      if (options.signal?.aborted) throw new CancelledError('the command was cancelled and killed');
      throw this.client.transportError(error);
    }
    if (!exit) throw new JitvmError('agent_lost', `the daemon ended the output of the command before its exit`);
    const [stdout, stderr] = [Buffer.concat(output.stdout), Buffer.concat(output.stderr)];
    if (exit.reason === 'timed_out') throw new ExecTimeoutError(options.timeoutMs ?? 0, stdout, stderr);
    if (options.signal?.aborted) throw new CancelledError('the command was cancelled and killed');
    return new ExecResult(exit, stdout, stderr, performance.now() - started);
  }

  spawn(command: Command, options: SpawnOptions = {}): RemoteCommand {
    this.live();
    return RemoteCommand.start(this.client, this.id, command, options);
  }

  getHost(guestPort: number): string {
    const port = this.latest.ports.find((published) => published.guest === guestPort);
    if (!port) {
      throw new InvalidArgumentError(
        `guest port ${guestPort} is not published; pass it in \`ports\` or call publishPort`,
      );
    }
    return `127.0.0.1:${port.host}`;
  }

  async publishPort(forward: PortForwardInput): Promise<number> {
    const published = await this.client.json(PublishedPortSchema, 'POST', this.path('/ports'), { json: forward });
    this.latest = { ...this.latest, ports: [...this.latest.ports, published] };
    return published.host;
  }

  /** The published ports, on the daemon host's 127.0.0.1. */
  get ports(): PublishedPort[] {
    return [...this.latest.ports];
  }

  /** Round trip through the daemon to the agent and back, in milliseconds. */
  async ping(): Promise<number> {
    const started = performance.now();
    await this.client.json(PingResult, 'POST', this.path('/ping'));
    return performance.now() - started;
  }

  async pause(): Promise<void> {
    await this.client.empty('POST', this.path('/pause'));
  }

  async resume(): Promise<void> {
    await this.client.empty('POST', this.path('/resume'));
  }

  /** Stores a snapshot in the daemon's snapshot store; `then: 'destroy'` ends the sandbox once it is written. */
  async snapshot(options: { readonly name: string; readonly then?: 'resume' | 'destroy' }): Promise<SnapshotInfo> {
    const taken = await this.client.json(SnapshotInfo, 'POST', this.path('/snapshots'), { json: options });
    if (options.then === 'destroy') this.end('destroyed', Promise.resolve());
    return taken;
  }

  /** Asks the daemon to destroy the sandbox (resolves too when the daemon already had: expired, or destroyed). */
  destroy(options: { graceful?: boolean } = {}): Promise<void> {
    if (this.ended?.why === 'destroyed') return this.ended.done;
    this.live();
    const query = { graceful: String(options.graceful ?? false) };
    const done = this.client.empty('DELETE', this.path(''), { query }).catch((error: unknown) => {
      if (!isGone(error)) throw error;
    });
    return this.end('destroyed', done);
  }

  /** Lets go of the sandbox; the daemon keeps it until its timeouts (`Sandbox.connect(id, { daemon })` reaches it). */
  detach(): void {
    this.live();
    void this.end('detached', Promise.resolve());
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }

  /** Records how the sandbox ended and closes the connection to the daemon once `done` settles. */
  private end(why: 'destroyed' | 'detached', done: Promise<void>): Promise<void> {
    const closed = done.finally(() => this.client.close());
    this.ended = { why, done: closed };
    return closed;
  }

  /** `/v1/sandboxes/<id><suffix>`, for a sandbox still held. */
  private path(suffix: string): string {
    this.live();
    return `/v1/sandboxes/${encodeURIComponent(this.id)}${suffix}`;
  }

  private live(): void {
    if (this.ended) throw new JitvmError('invalid_state', `sandbox ${this.id} was ${this.ended.why}`);
  }
}

/** One NDJSON line of an exec's output. */
function execEvent(line: string): ExecEvent {
  let parsed: ReturnType<typeof ExecEvent.safeParse> | undefined;
  try {
    parsed = ExecEvent.safeParse(JSON.parse(line));
  } catch {
    parsed = undefined;
  }
  if (!parsed?.success)
    throw new JitvmError('protocol', `the daemon sent a malformed exec output line: ${line.slice(0, 120)}`);
  return parsed.data;
}
