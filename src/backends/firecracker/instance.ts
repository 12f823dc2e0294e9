/** One Firecracker process, driven over its REST API; the agent is reached over hybrid vsock. */
import { copyFileSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { connectHybridVsock } from '../../channel/hybrid-vsock.js';
import { AGENT_VSOCK_PORT } from '../../channel/protocol.js';
import type { VmConfig } from '../../core/config.js';
import { ChannelClosedError, InvalidArgumentError } from '../../core/errors.js';
import type { StopOptions, VmExit, VmSnapshot } from '../../core/hypervisor.js';
import { type HostLeftovers, removeHostLeftovers } from '../../core/vm-record.js';
import type { VmmProcess } from '../../core/vmm-process.js';
import { VmmInstance } from '../vmm-instance.js';
import type { FirecrackerApi } from './api-client.js';
import type { FileSpace } from './file-space.js';

const DEFAULT_STOP_TIMEOUT_MS = 5000;

/** File names of a Firecracker snapshot inside its directory. */
export const SNAPSHOT_FILES = { state: 'vmstate', memory: 'memory' } as const;

/** Where one Firecracker VM's files are. */
export interface FirecrackerLayout {
  readonly files: FileSpace;
  /** Host paths. */
  readonly apiSocket: string;
  readonly vsockSocket: string;
  readonly consoleLog: string;
  readonly vmmLog: string;
  readonly leftovers: HostLeftovers;
}

export class FirecrackerInstance extends VmmInstance {
  readonly backend = 'firecracker';

  constructor(
    id: string,
    runtimeDir: string,
    private readonly layout: FirecrackerLayout,
    process: VmmProcess,
    private readonly api: FirecrackerApi,
    private readonly config: VmConfig,
    private readonly vmmVersion: string | undefined,
  ) {
    super(id, runtimeDir, layout, process, layout.apiSocket);
  }

  /** Called once the guest was started or restored. */
  started(paused: boolean): void {
    if (paused && this.currentState.kind === 'starting') this.currentState = { kind: 'paused' };
    else this.markRunning();
  }

  connectAgent(signal?: AbortSignal): Promise<Duplex> {
    if (this.currentState.kind === 'exited') {
      return Promise.reject(new ChannelClosedError(`VM ${this.id} has exited; its agent cannot be reached`));
    }
    return connectHybridVsock(this.layout.vsockSocket, AGENT_VSOCK_PORT, { signal });
  }

  async pause(): Promise<void> {
    this.requireLive('pause');
    await this.api.setVmState('Paused');
    this.currentState = { kind: 'paused' };
  }

  async resume(): Promise<void> {
    this.requireLive('resume');
    await this.api.setVmState('Resumed');
    this.currentState = { kind: 'running' };
  }

  async snapshot(dir: string): Promise<VmSnapshot> {
    this.requireLive('snapshot');
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (error) {
      throw new InvalidArgumentError(`snapshot directory ${dir} cannot be created (it must not exist yet)`, {
        cause: error,
      });
    }
    try {
      if (this.currentState.kind !== 'paused') await this.pause();
      await this.writeSnapshot(dir);
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
    return { dir, backend: this.backend, vmmVersion: this.vmmVersion, config: this.config, files: SNAPSHOT_FILES };
  }

  /** Firecracker writes where it can see: straight into `dir`, or into its jail and then moved out. */
  private async writeSnapshot(dir: string): Promise<void> {
    const { files } = this.layout;
    if (!files.jailed) {
      await this.api.createSnapshot({
        snapshot_path: join(dir, SNAPSHOT_FILES.state),
        mem_file_path: join(dir, SNAPSHOT_FILES.memory),
        snapshot_type: 'Full',
      });
      return;
    }
    const names = { state: `snapshot.${SNAPSHOT_FILES.state}`, memory: `snapshot.${SNAPSHOT_FILES.memory}` };
    await this.api.createSnapshot({
      snapshot_path: files.vmmPath(names.state),
      mem_file_path: files.vmmPath(names.memory),
      snapshot_type: 'Full',
    });
    moveFile(files.hostPath(names.state), join(dir, SNAPSHOT_FILES.state));
    moveFile(files.hostPath(names.memory), join(dir, SNAPSHOT_FILES.memory));
  }

  /**
   * SendCtrlAltDel: the guest's i8042 sees Ctrl-Alt-Del, the kernel signals PID 1 (the agent), which shuts down and
   * reboots, and Firecracker exits on the reset. x86 only; on aarch64 the VMM is killed.
   */
  async stop(options: StopOptions = {}): Promise<VmExit> {
    if (this.currentState.kind === 'exited') return this.currentState.exit;
    const wasPaused = this.currentState.kind === 'paused';
    this.currentState = { kind: 'stopping' };
    if (this.config.arch === 'x86_64' && !wasPaused) {
      const asked = await this.api.action('SendCtrlAltDel').then(
        () => true,
        () => false,
      );
      if (asked && (await this.exitWithin(options.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS))) return this.exited;
    }
    return this.kill();
  }

  protected closeControl(): void {
    // Each API request is its own connection: nothing stays open.
  }

  protected cleanUpAfterExit(): void {
    removeHostLeftovers(this.layout.leftovers);
  }
}

function moveFile(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    copyFileSync(from, to);
    rmSync(from);
  }
}
