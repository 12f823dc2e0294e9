import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { ChannelClosedError, JitvmError, VmmError } from '../../core/errors.js';
import type { StopOptions, VmExit, VmSnapshot } from '../../core/hypervisor.js';
import { delay } from '../../core/process.js';
import type { VmmProcess } from '../../core/vmm-process.js';
import { VmmInstance } from '../vmm-instance.js';
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

/** One QEMU process, driven over QMP. */
export class QemuInstance extends VmmInstance {
  readonly backend = 'qemu';
  private qmp: QmpClient | undefined;

  constructor(
    id: string,
    runtimeDir: string,
    private readonly paths: QemuPaths,
    process: VmmProcess,
  ) {
    super(id, runtimeDir, paths, process, paths.qmpSocket);
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
    if (this.currentState.kind === 'starting') this.moveTo({ kind: 'running' });
  }

  connectAgent(signal?: AbortSignal): Promise<Duplex> {
    if (this.currentState.kind === 'exited') {
      return Promise.reject(new ChannelClosedError(`VM ${this.id} has exited; its agent cannot be reached`));
    }
    return connectUnix(this.paths.agentSocket, signal);
  }

  protected async pauseVmm(): Promise<void> {
    await (await this.control()).pause();
  }

  protected async resumeVmm(): Promise<void> {
    await (await this.control()).resume();
  }

  snapshot(): Promise<VmSnapshot> {
    return Promise.reject(
      new JitvmError('unsupported', 'the qemu backend cannot snapshot yet (capabilities.snapshot is false)'),
    );
  }

  async stop(options: StopOptions = {}): Promise<VmExit> {
    if (this.currentState.kind === 'exited') return this.currentState.exit;
    // A paused guest cannot see the power button: ask QEMU to quit straight away.
    const paused = this.currentState.kind === 'paused';
    this.currentState = { kind: 'stopping' };
    const timeoutMs = options.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    const control = await this.control().catch(() => undefined);
    if (!paused) {
      await control?.powerdown().catch(() => undefined);
      if (await this.exitWithin(timeoutMs)) return this.exited;
    }
    await control?.quit().catch(() => undefined);
    if (await this.exitWithin(QUIT_GRACE_MS)) return this.exited;
    return this.kill();
  }

  protected closeControl(): void {
    this.qmp?.close();
    this.qmp = undefined;
  }

  /** The QMP connection, opened on demand for instances attached from another process. */
  private async control(): Promise<QmpClient> {
    if (!this.qmp || this.qmp.isClosed) this.qmp = await QmpClient.connect(this.paths.qmpSocket);
    return this.qmp;
  }
}
