import { AgentConnection } from '../channel/client.js';
import { setIdentity } from '../channel/identity.js';
import { Capability, MsgType } from '../channel/protocol.js';
import { type VmConfig, VmConfigSchema, parseVmConfig, parseWith } from '../core/config.js';
import { InvalidArgumentError, JitvmError } from '../core/errors.js';
import { beforeDeadline } from '../core/process.js';
import type { Hypervisor, VmInstance } from '../core/hypervisor.js';
import { disownVmRecord, readVmRecord } from '../core/vm-record.js';
import { backendByName, selectBackend } from '../backends/index.js';
import { resolveImage } from '../image/index.js';
import { connectAgentWithin, reconnectAgent } from './boot.js';
import { type Command, CommandHandle, type ExecOptions, type SpawnOptions, runCommand } from './command.js';
import type { ExecResult } from './exec-result.js';
import { SandboxFiles } from './files.js';
import { BOOT_ONLY_OPTIONS, type SandboxOptions, SandboxOptionsSchema } from './options.js';
import { restoreFromStore, takeSnapshot } from './snapshots.js';
import { storagePlan } from './storage.js';
import { type StartOrigin, countingErrors, recordEnd, recordError, recordExec, recordStart } from '../metrics/sdk.js';
import { type CommandDefaults, commandDefaults, withDefaults } from './command-defaults.js';
import { SandboxNetwork, type SandboxNetworkOptions } from './network.js';
import type { PublishedPort, PortForwardInput } from './ports.js';
import type { OpenedSnapshot } from '../snapshot/compat.js';
import type { Pool } from './pool.js';
import type { SandboxApi } from './api.js';
import { type DaemonConnectOptions, RemoteSandbox, type RemoteSandboxOptions } from '../remote/sandbox.js';

const RECONNECT_TIMEOUT_MS = 15_000;
/** A restored guest answers in well under a second; this bounds hangs only. */
const RESTORE_TIMEOUT_MS = 60_000;
/** Clones started by one fork call. */
const MAX_FORK = 64;

/** Options of `Sandbox.fork`. */
export interface ForkOptions {
  readonly count: number;
  /** Default: the backend named in the snapshot. */
  readonly hypervisor?: Hypervisor;
  readonly timeoutMs?: number;
}

/** Options of `sandbox.snapshot`. */
export interface SandboxSnapshotOptions {
  /** The snapshot's name in the store: a letter or digit, then up to 63 letters, digits, `_`, `.` or `-`. */
  readonly name: string;
  /** What the sandbox does afterwards (default `resume`). */
  readonly then?: 'resume' | 'destroy';
}
const GRACEFUL_STOP_TIMEOUT_MS = 5_000;

/** `Sandbox.create({ pool })`: only `signal` may come with the pool, which fixes everything else about the VM. */
function takeFromPool(pool: Pool, { pool: _pool, signal, ...rest }: SandboxOptions): Promise<Sandbox> {
  const given = Object.entries(rest).filter(([, value]) => value !== undefined);
  if (given.length > 0) {
    const names = given.map(([name]) => name).join(', ');
    throw new InvalidArgumentError(`${names} cannot be combined with pool: the pool's options fix the VM`);
  }
  return pool.acquire({ signal });
}

/** Lets a detached sandbox outlive this process, now that it is ready; on failure it is destroyed. */
async function disown(sandbox: Sandbox): Promise<void> {
  try {
    disownVmRecord(sandbox.id);
  } catch (error) {
    await sandbox.destroy();
    throw error;
  }
}

/**
 * A running micro-VM with a guest agent: run commands, move files, destroy it.
 * `await using sandbox = await Sandbox.create()` destroys it at the end of the scope.
 */
export class Sandbox implements SandboxApi {
  readonly files: SandboxFiles;
  private destroyed: Promise<void> | undefined;
  private network: SandboxNetwork | undefined;
  private defaults: CommandDefaults = { env: {} };
  /** Whether this object counts in the active-sandbox metric. */
  private counted = false;

  private constructor(
    readonly instance: VmInstance,
    private connection: AgentConnection,
  ) {
    this.files = new SandboxFiles(() => this.liveConnection());
  }

  /**
   * A Sandbox for a VM whose agent answers: its network's host side started (published ports, the allowlist proxy)
   * and its command defaults read. On failure the VM is killed.
   */
  private static async ready(
    instance: VmInstance,
    connection: AgentConnection,
    config: VmConfig,
    start: { readonly origin: StartOrigin; readonly at: number } & Omit<SandboxNetworkOptions, 'fresh'>,
  ): Promise<Sandbox> {
    const sandbox = new Sandbox(instance, connection);
    const { origin, at, ...network } = start;
    try {
      sandbox.network = await SandboxNetwork.start(connection, sandbox.files, config.network, {
        ...network,
        fresh: origin === 'boot',
      });
      sandbox.defaults = await commandDefaults(config, sandbox.network.commandEnv());
    } catch (error) {
      await sandbox.destroy();
      throw error;
    }
    recordStart(instance.backend, origin, at);
    sandbox.counted = true;
    return sandbox;
  }

  /**
   * Boots a VM and waits for its agent. Rejects with SandboxBootError (console tail included) if it never answers.
   * With `pool`, takes a ready sandbox from the warm pool instead (`pool.acquire`). With `daemon`, a jitvm daemon
   * (`jitvm serve`) boots and holds it, and the RemoteSandbox returned drives it over the daemon's API.
   */
  static create(options: RemoteSandboxOptions): Promise<RemoteSandbox>;
  static create(options?: SandboxOptions): Promise<Sandbox>;
  static async create(options: SandboxOptions | RemoteSandboxOptions = {}): Promise<Sandbox | RemoteSandbox> {
    if ('daemon' in options) return RemoteSandbox.create(options);
    if (options.pool) return takeFromPool(options.pool, options);
    return countingErrors('create', async () => {
      const sandbox = await Sandbox.start(options, performance.now());
      if (options.detached) await disown(sandbox);
      return sandbox;
    });
  }

  private static async start(options: SandboxOptions, at: number): Promise<Sandbox> {
    const { signal, onImageProgress, hypervisor, onEgressDecision, ...rest } = options;
    const checked = parseWith(SandboxOptionsSchema, rest, 'invalid sandbox options');
    if (hypervisor && checked.backend && checked.backend !== hypervisor.name) {
      throw new InvalidArgumentError(
        `backend "${checked.backend}" conflicts with the ${hypervisor.name} hypervisor given; pass only one of them`,
      );
    }
    if (checked.fromSnapshot) {
      const fixed = BOOT_ONLY_OPTIONS.filter((option) => checked[option] !== undefined);
      if (fixed.length > 0) {
        throw new InvalidArgumentError(
          `${fixed.join(', ')} cannot be combined with fromSnapshot: the snapshot fixes the VM's configuration`,
        );
      }
      const restoring = hypervisor ?? (checked.backend ? backendByName(checked.backend) : undefined);
      const [restored] = await restoreFromStore(checked.fromSnapshot, 1, {
        hypervisor: restoring,
        detached: checked.detached,
        timeoutMs: checked.bootTimeoutMs ?? RESTORE_TIMEOUT_MS,
      });
      const { instance, connection, config } = restored!;
      return Sandbox.ready(instance, connection, config, {
        ports: checked.ports,
        onEgressDecision,
        origin: 'snapshot',
        at,
      });
    }
    const backend = hypervisor ?? (await selectBackend(checked.backend, checked.arch));
    // The built guest image of the guest's architecture supplies whichever of kernel and initrd the caller did not.
    const image =
      checked.kernel && checked.initrd
        ? undefined
        : await resolveImage({ arch: checked.arch, onProgress: onImageProgress, signal });
    const storage = storagePlan(checked);
    const config = parseVmConfig({
      cpus: checked.cpus,
      memoryMiB: checked.memoryMiB,
      kernel: checked.kernel ?? image?.kernel,
      initrd: checked.initrd ?? image?.initrd,
      kernelArgs: [...storage.kernelArgs, ...(checked.kernelArgs ?? [])],
      arch: checked.arch,
      bootTimeoutMs: checked.bootTimeoutMs,
      drives: storage.drives,
      shares: storage.shares,
      network: checked.network,
    });
    const instance = await backend.spawn(config, { detached: checked.detached });
    let connection: AgentConnection;
    try {
      connection = await connectAgentWithin(instance, config.bootTimeoutMs, signal);
      // Under emulation, with no hardware RNG, a fresh guest's RNG takes minutes to be ready: seed it, set its clock.
      if (connection.hasCapability(Capability.IDENTITY)) await setIdentity(connection, { hostname: instance.id });
    } catch (error) {
      await instance.kill();
      throw error;
    }
    return Sandbox.ready(instance, connection, config, { ports: checked.ports, onEgressDecision, origin: 'boot', at });
  }

  /**
   * Starts `count` independent sandboxes from the stored snapshot `name` (verified once): each sees the state the
   * snapshot captured, gets its own channel, fresh entropy, the current time and its own hostname, and diverges from
   * the others from then on. If one fails to start, the others are destroyed. With `daemon`, the daemon starts them.
   */
  static fork(name: string, options: { readonly count: number } & DaemonConnectOptions): Promise<RemoteSandbox[]>;
  static fork(name: string, options: ForkOptions): Promise<Sandbox[]>;
  static async fork(
    name: string,
    options: ForkOptions | ({ readonly count: number } & DaemonConnectOptions),
  ): Promise<Sandbox[] | RemoteSandbox[]> {
    if ('daemon' in options) return RemoteSandbox.fork(name, options);
    const count = options.count;
    if (!Number.isInteger(count) || count < 1 || count > MAX_FORK) {
      throw new InvalidArgumentError(`fork count must be an integer from 1 to ${MAX_FORK}, got ${count}`);
    }
    return countingErrors('fork', async () => {
      const at = performance.now();
      const restored = await restoreFromStore(name, count, {
        hypervisor: options.hypervisor,
        timeoutMs: options.timeoutMs ?? RESTORE_TIMEOUT_MS,
      });
      return Promise.all(
        restored.map(({ instance, connection, config }) =>
          Sandbox.ready(instance, connection, config, { origin: 'snapshot', at }),
        ),
      );
    });
  }

  /** Re-attaches to a detached sandbox by id (from `jitvm create` or `detach()`), or to a daemon's sandbox. */
  static connect(id: string, options: DaemonConnectOptions): Promise<RemoteSandbox>;
  static connect(id: string): Promise<Sandbox>;
  static async connect(id: string, options?: DaemonConnectOptions): Promise<Sandbox | RemoteSandbox> {
    if (options) return RemoteSandbox.connect(id, options);
    const record = readVmRecord(id);
    const instance = await backendByName(record.backend).attach(id);
    let connection: AgentConnection;
    try {
      connection = await reconnectAgent(instance, RECONNECT_TIMEOUT_MS);
    } catch (error) {
      instance.release();
      throw error;
    }
    const config = parseWith(VmConfigSchema, record.config, `the record of sandbox ${id}`);
    return Sandbox.ready(instance, connection, config, { origin: 'attach', at: performance.now() });
  }

  get id(): string {
    return this.instance.id;
  }

  /** Runs a command to completion and returns its exit code and output. A non-zero exit is not an error. */
  async exec(command: Command, options: ExecOptions = {}): Promise<ExecResult> {
    return countingErrors('exec', async () => {
      const at = performance.now();
      const result = await runCommand(this.liveConnection(), command, withDefaults(this.defaults, options));
      recordExec(at);
      return result;
    });
  }

  /**
   * Starts a command and returns a handle with streaming stdout/stderr, kill and wait. Its stdin is a pipe fed by
   * `options.stdin` or by `sendStdin` until `closeStdin`, as with Node's child_process.spawn.
   */
  spawn(command: Command, options: SpawnOptions = {}): CommandHandle {
    const at = performance.now();
    const handle = CommandHandle.start(this.liveConnection(), command, withDefaults(this.defaults, options), true);
    handle.wait().then(
      () => recordExec(at),
      (error: unknown) => recordError('exec', error),
    );
    return handle;
  }

  /**
   * `127.0.0.1:<host port>` where the host reaches guest TCP port `guestPort` (published with the `ports` option or
   * `publishPort`); refuses a port that is not published.
   */
  getHost(guestPort: number): string {
    const host = this.liveNetwork().ports.hostPort(guestPort);
    if (host === undefined) {
      throw new InvalidArgumentError(
        `guest port ${guestPort} is not published; pass it in \`ports\` or call publishPort`,
      );
    }
    return `127.0.0.1:${host}`;
  }

  /** Publishes guest TCP port `guest` on the host's 127.0.0.1 (`host` 0 or absent: a free port); resolves with it. */
  publishPort(forward: PortForwardInput): Promise<number> {
    return this.liveNetwork().ports.publish(forward);
  }

  /** The published ports: guest port and the host port on 127.0.0.1 that reaches it. */
  get ports(): PublishedPort[] {
    return this.network?.ports.list() ?? [];
  }

  /** Round trip to the agent, in milliseconds. */
  async ping(payload: Buffer = Buffer.alloc(0)): Promise<number> {
    const started = performance.now();
    const reply = await this.liveConnection().request(MsgType.PING, payload, MsgType.PONG);
    if (!reply.payload.equals(payload)) throw new JitvmError('protocol', 'PONG did not echo the PING payload');
    return performance.now() - started;
  }

  /**
   * Ends the VM and removes everything it left on the host. By default the VMM is killed at once (nothing in an
   * ephemeral sandbox outlives it); `graceful` asks the guest to power off first.
   */
  destroy(options: { graceful?: boolean } = {}): Promise<void> {
    this.destroyed ??= this.teardown(options.graceful ?? false);
    return this.destroyed;
  }

  /** Freezes the VM's vCPUs; commands and transfers wait until `resume()`. */
  async pause(): Promise<void> {
    this.liveConnection();
    await this.instance.pause();
  }

  /** Lets a paused VM run again. */
  async resume(): Promise<void> {
    this.liveConnection();
    await this.instance.resume();
  }

  /**
   * Saves the VM's memory, device state and disks as the stored snapshot `name` (`jitvm snapshot ls`), pausing it
   * for the duration; then resumes it (`then: 'resume'`, the default) or destroys it (`then: 'destroy'`).
   * `Sandbox.create({ fromSnapshot: name })` and `Sandbox.fork(name, { count })` start VMs from it.
   */
  async snapshot(options: SandboxSnapshotOptions): Promise<OpenedSnapshot> {
    this.liveConnection();
    const taken = await takeSnapshot(this.instance, options.name).catch(async (error: unknown) => {
      if (this.instance.state.kind === 'paused') await this.instance.resume().catch(() => undefined);
      throw error;
    });
    if (options.then === 'destroy') await this.destroy();
    else await this.instance.resume();
    return taken;
  }

  /** Leaves the VM running after this process ends; `Sandbox.connect(id)` reaches it again. */
  detach(): void {
    // First, so a backend that cannot leave a VM running (QEMU on Windows) refuses before anything is closed.
    this.instance.release();
    void this.network?.close();
    this.connection.close();
    this.uncount(false);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }

  private async teardown(graceful: boolean): Promise<void> {
    if (graceful && !this.connection.closed) {
      const acknowledged = await this.connection.request(MsgType.SHUTDOWN, Buffer.alloc(0), MsgType.OK).then(
        () => true,
        () => false,
      );
      // The agent answers before it stops its processes, syncs and powers off: let the guest get there by itself
      // (on `virt` there is no power button, so stop() would otherwise end the VMM at once).
      if (acknowledged) {
        const deadline = Date.now() + GRACEFUL_STOP_TIMEOUT_MS;
        await beforeDeadline(this.instance.wait(), deadline, 'the guest did not power off').catch(() => undefined);
      }
      await this.instance.stop({ timeoutMs: GRACEFUL_STOP_TIMEOUT_MS });
    }
    await this.network?.close();
    this.connection.close();
    await this.instance.kill();
    this.uncount(true);
  }

  /** This object stops counting as an active sandbox (once). */
  private uncount(destroyed: boolean): void {
    if (!this.counted) return;
    this.counted = false;
    recordEnd(this.instance.backend, destroyed);
  }

  private liveNetwork(): SandboxNetwork {
    this.liveConnection();
    if (!this.network) throw new JitvmError('internal', `sandbox ${this.id} has no network state`);
    return this.network;
  }

  private liveConnection(): AgentConnection {
    if (this.destroyed) throw new JitvmError('invalid_state', `sandbox ${this.id} was destroyed`);
    return this.connection;
  }
}
