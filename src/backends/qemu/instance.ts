import { rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { connectLocal } from '../../channel/local-endpoint.js';
import { ChannelClosedError, JitvmError, VmmError } from '../../core/errors.js';
import type { StopOptions, VmExit, VmSnapshot } from '../../core/hypervisor.js';
import { beforeDeadline, delay } from '../../core/process.js';
import type { VmmProcess } from '../../core/vmm-process.js';
import { VmmInstance } from '../vmm-instance.js';
import type { QemuPaths } from './args.js';
import { servesOneClient } from './chardev.js';
import { HeldConnection } from './held-connection.js';
import type { MachineProfile } from './machine.js';
import { loadDeviceState } from './migration.js';
import { QmpClient } from './qmp.js';
import { type SnapshotSource, writeQemuSnapshot } from './snapshot.js';

const DEFAULT_STOP_TIMEOUT_MS = 5000;
const QUIT_GRACE_MS = 2000;
/** Pause between attempts to reach an endpoint QEMU has not created yet. */
const CONNECT_RETRY_MS = 10;

/** One QEMU process, driven over QMP. */
export class QemuInstance extends VmmInstance {
  readonly backend = 'qemu';
  private qmp: QmpClient | undefined;
  /** The agent's one connection, where QEMU serves the agent endpoint to a single client (Windows pipes). */
  private heldAgent: HeldConnection | undefined;

  constructor(
    id: string,
    runtimeDir: string,
    private readonly paths: QemuPaths,
    process: VmmProcess,
    private readonly machine: Pick<MachineProfile, 'powerButton'>,
    private readonly snapshotSource?: SnapshotSource,
    /** A directory outside the runtime dir that goes with the VM (its RAM file's). */
    private readonly ramDir?: string,
  ) {
    super(id, runtimeDir, paths, process, paths.qmpSocket);
  }

  protected cleanUpAfterExit(): void {
    if (this.ramDir) rmSync(this.ramDir, { recursive: true, force: true });
  }

  /**
   * Connects QMP while QEMU starts (retrying until QEMU created the endpoint) and marks the VM running. Where QEMU
   * serves each endpoint to one client (Windows pipes), the agent's only connection is opened here too: QEMU's
   * start-up waits for it, and the QMP greeting comes after.
   */
  async attachControl(timeoutMs: number, expected: 'running' | 'inmigrate' = 'running'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const stream = await this.connectWhileStarting(this.paths.qmpSocket, deadline);
    // Nothing reads QMP while the agent pipe is awaited: an error meanwhile (QEMU died) must not go unheard.
    let earlyError: Error | undefined;
    const keepError = (error: Error): void => {
      earlyError ??= error;
    };
    stream.on('error', keepError);
    try {
      if (servesOneClient(this.paths.transport)) {
        const agent = await this.connectWhileStarting(this.paths.agentSocket, deadline);
        this.heldAgent = new HeldConnection(agent, `the agent pipe of VM ${this.id}`);
      }
      if (earlyError)
        throw new JitvmError('vmm_failed', 'the QMP connection failed during start', { cause: earlyError });
      this.qmp = await beforeDeadline(QmpClient.open(stream), deadline, `QEMU did not greet on QMP in ${timeoutMs} ms`);
    } catch (error) {
      stream.destroy();
      throw error;
    } finally {
      stream.removeListener('error', keepError);
    }
    const status = await this.qmp.status();
    if (status !== expected) throw new VmmError(`QEMU started but the VM is ${status}, not ${expected}`);
    if (expected === 'running' && this.currentState.kind === 'starting') this.moveTo({ kind: 'running' });
  }

  /**
   * Loads a snapshot's device state into this QEMU (started with `-incoming defer`), then leaves it paused or, with
   * `resume`, runs it.
   */
  async loadSnapshot(stateFile: string, resume: boolean, timeoutMs: number): Promise<void> {
    const qmp = await this.control();
    await loadDeviceState(qmp, join(this.runtimeDir, 'migrate.sock'), stateFile, timeoutMs);
    if (resume) await qmp.resume();
    this.moveTo({ kind: resume ? 'running' : 'paused' });
  }

  private async connectWhileStarting(address: string, deadline: number): Promise<Socket> {
    for (;;) {
      try {
        return await connectLocal(address);
      } catch (error) {
        if (!this.process.isAlive()) throw new JitvmError('vmm_failed', 'QEMU exited during start', { cause: error });
        if (Date.now() > deadline) {
          throw new JitvmError('timeout', `QEMU did not serve ${address} in time`, { cause: error });
        }
        await delay(CONNECT_RETRY_MS);
      }
    }
  }

  connectAgent(signal?: AbortSignal): Promise<Duplex> {
    if (this.currentState.kind === 'exited') {
      return Promise.reject(new ChannelClosedError(`VM ${this.id} has exited; its agent cannot be reached`));
    }
    if (!servesOneClient(this.paths.transport)) return connectLocal(this.paths.agentSocket, signal);
    if (this.heldAgent) return this.heldAgent.take();
    return Promise.reject(this.oneClientOnly('reach its agent'));
  }

  /** Refused where QEMU serves its endpoints to one client: nobody could reach the VM after this process. */
  release(): void {
    if (servesOneClient(this.paths.transport)) throw this.oneClientOnly('detach it');
    super.release();
  }

  protected async pauseVmm(): Promise<void> {
    await (await this.control()).pause();
  }

  protected async resumeVmm(): Promise<void> {
    await (await this.control()).resume();
  }

  /**
   * Pauses the VM (if it runs) and writes a snapshot into `dir`; the VM stays paused. Needs a VM started with its
   * RAM in a file (Linux hosts); elsewhere unsupported.
   */
  async snapshot(dir: string): Promise<VmSnapshot> {
    if (!this.snapshotSource) {
      throw new JitvmError(
        'unsupported',
        `VM ${this.id} keeps its RAM in anonymous memory, so it cannot be snapshotted: QEMU VMs keep RAM in a file ` +
          'only on Linux with room for it in /dev/shm, and a clone maps its snapshot privately',
      );
    }
    if (this.currentState.kind === 'running') await this.pause();
    this.requireLive('snapshot');
    return writeQemuSnapshot(await this.control(), this.snapshotSource, this.runtimeDir, dir);
  }

  /**
   * Presses the power button and waits `timeoutMs` for the guest to power off, where the machine has a button the
   * guest sees (profile.powerButton); then asks QEMU to quit, then kills it. A paused guest or one without a power
   * button is sent straight to quit: waiting for it would only burn the timeout.
   */
  async stop(options: StopOptions = {}): Promise<VmExit> {
    if (this.currentState.kind === 'exited') return this.currentState.exit;
    const paused = this.currentState.kind === 'paused';
    this.currentState = { kind: 'stopping' };
    const control = await this.control().catch(() => undefined);
    if (!paused && this.machine.powerButton) {
      await control?.powerdown().catch(() => undefined);
      if (await this.exitWithin(options.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS)) return this.exited;
    }
    await control?.quit().catch(() => undefined);
    if (await this.exitWithin(QUIT_GRACE_MS)) return this.exited;
    return this.kill();
  }

  protected closeControl(): void {
    this.qmp?.close();
    this.qmp = undefined;
    this.heldAgent?.close();
  }

  /** The QMP connection, opened on demand for instances attached from another process. */
  private async control(): Promise<QmpClient> {
    if (this.qmp && !this.qmp.isClosed) return this.qmp;
    if (servesOneClient(this.paths.transport)) throw this.oneClientOnly('reopen its QMP connection');
    this.qmp = await QmpClient.connect(this.paths.qmpSocket);
    return this.qmp;
  }

  private oneClientOnly(action: string): JitvmError {
    return new JitvmError(
      'unsupported',
      `cannot ${action} for VM ${this.id}: QEMU serves its ${this.paths.transport} endpoints to one client, the ` +
        'process that started it (see docs/backends/qemu.md, "Windows named pipes")',
    );
  }
}
