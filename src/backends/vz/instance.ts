/** One vfkit process (Apple Virtualization.framework), driven over its REST API; the agent over a vsock socket. */
import type { Duplex } from 'node:stream';
import { ChannelClosedError, JitvmError } from '../../core/errors.js';
import type { StopOptions, VmExit, VmSnapshot } from '../../core/hypervisor.js';
import type { VmmProcess } from '../../core/vmm-process.js';
import { VmmInstance } from '../vmm-instance.js';
import type { VfkitApi } from './api-client.js';
import { type VfkitPaths, type VfkitState, vmStateKind } from './args.js';
import { connectVfkitVsock } from './vsock-stream.js';

const DEFAULT_STOP_TIMEOUT_MS = 5000;
/** How long a HardStop (VZ stop(), which ends vfkit) gets before the process is killed. */
const HARD_STOP_GRACE_MS = 2000;

export class VfkitInstance extends VmmInstance {
  readonly backend = 'vz';

  constructor(
    id: string,
    runtimeDir: string,
    private readonly paths: VfkitPaths,
    process: VmmProcess,
    private readonly api: VfkitApi,
  ) {
    super(id, runtimeDir, paths, process, paths.restSocket);
  }

  /** Takes the state vfkit reported once the VM was started (spawn) or found (attach). */
  started(state: VfkitState): void {
    if (this.currentState.kind !== 'starting') return;
    const kind = vmStateKind(state, true);
    if (kind === 'running' || kind === 'paused') this.moveTo({ kind });
  }

  /**
   * A byte stream to the agent's vsock port (AGENT_VSOCK_PORT) through the socket vfkit listens on. While the VM is
   * not running yet the socket is missing: ChannelClosedError, which the boot sequence retries. A guest whose agent does
   * not listen yet is retried inside the stream (see vsock-stream.ts).
   */
  connectAgent(signal?: AbortSignal): Promise<Duplex> {
    if (this.currentState.kind === 'exited') {
      return Promise.reject(new ChannelClosedError(`VM ${this.id} has exited; its agent cannot be reached`));
    }
    return connectVfkitVsock(this.paths.vsockSocket, {
      signal,
      retry: () => this.currentState.kind !== 'exited' && this.process.isAlive(),
    });
  }

  protected async pauseVmm(): Promise<void> {
    await this.api.setState('Pause');
  }

  protected async resumeVmm(): Promise<void> {
    await this.api.setState('Resume');
  }

  snapshot(): Promise<VmSnapshot> {
    return Promise.reject(
      new JitvmError(
        'unsupported',
        'the vz backend cannot snapshot: vfkit has no save/restore endpoint (requested in crc-org/vfkit#449), ' +
          'although Virtualization.framework can save a paused VM since macOS 14 (capabilities.snapshot is false)',
      ),
    );
  }

  /**
   * Asks the guest to power off (POST Stop: VZ requestStop), waits up to `timeoutMs`, then stops the VM at once
   * (POST HardStop: VZ stop; vfkit exits when the VM stops), and kills vfkit if even that does not end it. A paused
   * guest cannot be asked: it goes straight to HardStop.
   */
  async stop(options: StopOptions = {}): Promise<VmExit> {
    if (this.currentState.kind === 'exited') return this.currentState.exit;
    const wasPaused = this.currentState.kind === 'paused';
    this.currentState = { kind: 'stopping' };
    const timeoutMs = options.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    const started = Date.now();
    if (!wasPaused) {
      // The deadline covers the request too: a VMM that hangs must not hold the stop up.
      const asked = await Promise.race([
        this.api.setState('Stop').then(
          () => true,
          () => false,
        ),
        this.exitWithin(timeoutMs).then(() => false),
      ]);
      if (asked && (await this.exitWithin(Math.max(0, timeoutMs - (Date.now() - started))))) return this.exited;
      if (!asked && (await this.exitWithin(0))) return this.exited;
    }
    const forced = await Promise.race([
      this.api.setState('HardStop').then(
        () => true,
        () => false,
      ),
      this.exitWithin(HARD_STOP_GRACE_MS).then(() => false),
    ]);
    if (forced && (await this.exitWithin(HARD_STOP_GRACE_MS))) return this.exited;
    if (await this.exitWithin(0)) return this.exited;
    return this.kill();
  }

  protected closeControl(): void {
    // Each REST request is its own connection: nothing stays open.
  }
}
