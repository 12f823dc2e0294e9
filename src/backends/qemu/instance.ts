import { rmSync } from 'node:fs';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { ChannelClosedError, JitvmError, VmmError } from '../../core/errors.js';
import type { StopOptions, VmExit, VmInstance, VmState } from '../../core/hypervisor.js';
import { readConsoleTail } from '../../core/console-log.js';
import { delay } from '../../core/process.js';
import type { VmmProcess } from '../../core/vmm-process.js';
import type { QemuPaths } from './args.js';
import { QmpClient } from './qmp.js';

const DEFAULT_STOP_TIMEOUT_MS = 5000;
const QUIT_GRACE_MS = 2000;

/** Opens a Unix stream socket and resolves once connected. */
export function connectUnix(path: string, signal?: AbortSignal): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path, signal });
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/**
 * One QEMU process and its runtime dir. The instance that spawned QEMU (or the last one attached to it) owns the
 * teardown: once QEMU is gone the runtime dir is removed, unless the VM was released to run detached.
 */
export class QemuInstance implements VmInstance {
  readonly backend = 'qemu';
  private currentState: VmState = { kind: 'starting' };
  private qmp: QmpClient | undefined;
  private released = false;
  private tailAtExit: string | undefined;
  private vmmOutputAtExit: string | undefined;
  private exitedPromise: Promise<VmExit> | undefined;

  constructor(
    readonly id: string,
    readonly runtimeDir: string,
    private readonly paths: QemuPaths,
    private readonly process: VmmProcess,
  ) {
    // A child's exit is watched at once so teardown happens even if nobody waits; a foreign VMM is polled on demand.
    if (process.child) void this.exited;
  }

  private get exited(): Promise<VmExit> {
    this.exitedPromise ??= this.process.exited.then((exit) => this.onExit(exit));
    return this.exitedPromise;
  }

  get pid(): number | undefined {
    return this.currentState.kind === 'exited' ? undefined : this.process.pid;
  }

  get controlSocket(): string | undefined {
    return this.currentState.kind === 'exited' ? undefined : this.paths.qmpSocket;
  }

  get consoleLogPath(): string {
    return this.paths.consoleLog;
  }

  get state(): VmState {
    return this.currentState;
  }

  /** Connects QMP (retrying while QEMU creates the socket) and marks the VM running. */
  async attachControl(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        this.qmp = await QmpClient.connect(this.paths.qmpSocket);
        break;
      } catch (error) {
        if (!this.process.isAlive()) throw new JitvmError('vmm_failed', 'QEMU exited during start', { cause: error });
        if (Date.now() > deadline)
          throw new JitvmError('timeout', `QEMU's QMP socket did not answer in ${timeoutMs} ms`);
        await delay(10);
      }
    }
    const status = await this.qmp.status();
    if (status !== 'running') throw new VmmError(`QEMU started but the VM is ${status}, not running`);
    if (this.currentState.kind === 'starting') this.currentState = { kind: 'running' };
  }

  consoleTail(): string {
    return this.tailAtExit ?? readConsoleTail(this.paths.consoleLog);
  }

  /** What QEMU itself printed (start-up errors), kept after exit like the console tail. */
  vmmOutput(): string {
    return this.vmmOutputAtExit ?? readConsoleTail(this.paths.vmmLog);
  }

  connectAgent(signal?: AbortSignal): Promise<Duplex> {
    if (this.currentState.kind === 'exited') {
      return Promise.reject(new ChannelClosedError(`VM ${this.id} has exited; its agent cannot be reached`));
    }
    return connectUnix(this.paths.agentSocket, signal);
  }

  async stop(options: StopOptions = {}): Promise<VmExit> {
    if (this.currentState.kind === 'exited') return this.currentState.exit;
    this.currentState = { kind: 'stopping' };
    const timeoutMs = options.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    const control = await this.control().catch(() => undefined);
    await control?.powerdown().catch(() => undefined);
    if (await this.exitWithin(timeoutMs)) return this.exited;
    await control?.quit().catch(() => undefined);
    if (await this.exitWithin(QUIT_GRACE_MS)) return this.exited;
    return this.kill();
  }

  async kill(): Promise<VmExit> {
    if (this.currentState.kind !== 'exited') this.process.signal('SIGKILL');
    return this.exited;
  }

  wait(): Promise<VmExit> {
    return this.exited;
  }

  release(): void {
    this.released = true;
    this.process.release();
    this.qmp?.close();
    this.qmp = undefined;
  }

  /** The QMP connection, opened on demand for instances attached from another process. */
  private async control(): Promise<QmpClient> {
    if (!this.qmp || this.qmp.isClosed) this.qmp = await QmpClient.connect(this.paths.qmpSocket);
    return this.qmp;
  }

  private async exitWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    const result = await Promise.race([this.exited.then(() => true), timedOut]);
    clearTimeout(timer);
    return result;
  }

  private onExit(exit: VmExit): VmExit {
    this.tailAtExit = readConsoleTail(this.paths.consoleLog);
    this.vmmOutputAtExit = readConsoleTail(this.paths.vmmLog);
    this.currentState = { kind: 'exited', exit };
    this.qmp?.close();
    this.qmp = undefined;
    if (!this.released) rmSync(this.runtimeDir, { recursive: true, force: true });
    return exit;
  }
}
