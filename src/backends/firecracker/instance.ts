/** One Firecracker process, driven over its REST API; the agent is reached over hybrid vsock. */
import { chmodSync, chownSync, copyFileSync, lstatSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Duplex } from 'node:stream';
import { connectHybridVsock } from '../../channel/hybrid-vsock.js';
import { AGENT_VSOCK_PORT } from '../../channel/protocol.js';
import type { VmConfig } from '../../core/config.js';
import { ChannelClosedError, InvalidArgumentError, JitvmError, VmmError } from '../../core/errors.js';
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
    if (this.currentState.kind === 'starting') this.moveTo({ kind: paused ? 'paused' : 'running' });
  }

  connectAgent(signal?: AbortSignal): Promise<Duplex> {
    if (this.currentState.kind === 'exited') {
      return Promise.reject(new ChannelClosedError(`VM ${this.id} has exited; its agent cannot be reached`));
    }
    return connectHybridVsock(this.layout.vsockSocket, AGENT_VSOCK_PORT, { signal });
  }

  /**
   * Firecracker 1.16.0 and 1.16.1 stop delivering host-to-guest vsock data after a bare pause and resume (CHANGELOG
   * #6100), which would cut the agent off for good; pausing for a snapshot is not affected (the snapshot resets vsock).
   */
  protected async pauseVmm(): Promise<void> {
    if (this.vmmVersion === '1.16.0' || this.vmmVersion === '1.16.1') {
      throw new JitvmError(
        'unsupported',
        `Firecracker ${this.vmmVersion} loses the agent channel after pause/resume (fixed by #6100): upgrade it`,
      );
    }
    await this.api.setVmState('Paused');
  }

  protected async resumeVmm(): Promise<void> {
    await this.api.setVmState('Resumed');
  }

  async snapshot(target: string): Promise<VmSnapshot> {
    this.requireLive('snapshot');
    const dir = resolve(target);
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (error) {
      throw new InvalidArgumentError(`snapshot directory ${dir} cannot be created (it must not exist yet)`, {
        cause: error,
      });
    }
    try {
      if (this.currentState.kind !== 'paused') {
        await this.api.setVmState('Paused');
        this.moveTo({ kind: 'paused' });
      }
      await this.writeSnapshot(dir);
      sealSnapshot(dir);
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
      // The deadline covers the request too: a VMM busy writing a snapshot may not answer at all.
      const deadline = options.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
      const started = Date.now();
      const asked = await Promise.race([
        this.api.action('SendCtrlAltDel').then(
          () => true,
          () => false,
        ),
        this.exitWithin(deadline).then(() => false),
      ]);
      if (asked && (await this.exitWithin(Math.max(0, deadline - (Date.now() - started))))) return this.exited;
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

/**
 * Moves a file Firecracker wrote in its jail out of it. The jail belongs to the jailed uid, so the name must be a
 * regular file (not a link planted to make us copy a device or a FIFO).
 */
function moveFile(from: string, to: string): void {
  if (!lstatSync(from).isFile()) throw new VmmError(`Firecracker left ${from} as something other than a regular file`);
  try {
    renameSync(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    copyFileSync(from, to);
    rmSync(from);
  }
}

/**
 * Makes the snapshot's files ours and read-only. Clones map the memory file privately and read pages they have not
 * touched from it, so whoever can write it (a jailed VMM owns what it wrote) could change every clone's memory.
 */
function sealSnapshot(dir: string): void {
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  for (const name of Object.values(SNAPSHOT_FILES)) {
    const path = join(dir, name);
    if (uid !== undefined && gid !== undefined) chownSync(path, uid, gid);
    chmodSync(path, 0o400);
  }
}
