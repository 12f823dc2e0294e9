/** What every VmInstance backed by one VMM process shares: state, exit watching, logs kept past exit, teardown. */
import { rmSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { readConsoleTail } from '../core/console-log.js';
import { JitvmError } from '../core/errors.js';
import type { StopOptions, VmExit, VmInstance, VmSnapshot, VmState } from '../core/hypervisor.js';
import type { VmmProcess } from '../core/vmm-process.js';

/** Files of a VM's runtime dir every backend has. */
export interface VmmLogs {
  /** The guest's serial console. */
  readonly consoleLog: string;
  /** The VMM's own stderr (start-up errors). */
  readonly vmmLog: string;
}

/**
 * The instance that spawned the VMM (or the last one attached to it) owns the teardown: once the VMM is gone the
 * runtime dir (and whatever `cleanUpAfterExit` adds) is removed, unless the VM was released to run detached.
 */
export abstract class VmmInstance implements VmInstance {
  abstract readonly backend: string;
  protected currentState: VmState = { kind: 'starting' };
  protected released = false;
  private tailAtExit: string | undefined;
  private vmmOutputAtExit: string | undefined;
  private exitedPromise: Promise<VmExit> | undefined;

  constructor(
    readonly id: string,
    readonly runtimeDir: string,
    private readonly logs: VmmLogs,
    protected readonly process: VmmProcess,
    private readonly controlPath: string,
  ) {
    // A child's exit is watched at once so teardown happens even if nobody waits; a foreign VMM is polled on demand.
    if (process.child) this.exited.catch(() => undefined);
  }

  abstract connectAgent(signal?: AbortSignal): Promise<Duplex>;
  abstract snapshot(dir: string): Promise<VmSnapshot>;
  abstract stop(options?: StopOptions): Promise<VmExit>;
  /** Closes this process's control connection to the VMM, if any. */
  protected abstract closeControl(): void;
  /** Asks the VMM to freeze / unfreeze the vCPUs. */
  protected abstract pauseVmm(): Promise<void>;
  protected abstract resumeVmm(): Promise<void>;

  async pause(): Promise<void> {
    this.requireLive('pause');
    await this.pauseVmm();
    this.moveTo({ kind: 'paused' });
  }

  async resume(): Promise<void> {
    this.requireLive('resume');
    await this.resumeVmm();
    this.moveTo({ kind: 'running' });
  }

  /** Changes between live states; a stop or exit that happened while we awaited the VMM wins. */
  protected moveTo(state: { kind: 'running' } | { kind: 'paused' }): void {
    if (this.currentState.kind !== 'stopping' && this.currentState.kind !== 'exited') this.currentState = state;
  }

  protected get exited(): Promise<VmExit> {
    this.exitedPromise ??= this.process.exited.then((exit) => this.onExit(exit));
    return this.exitedPromise;
  }

  get pid(): number | undefined {
    return this.currentState.kind === 'exited' ? undefined : this.process.pid;
  }

  get controlSocket(): string | undefined {
    return this.currentState.kind === 'exited' ? undefined : this.controlPath;
  }

  get consoleLogPath(): string {
    return this.logs.consoleLog;
  }

  get state(): VmState {
    return this.currentState;
  }

  consoleTail(): string {
    return this.tailAtExit ?? readConsoleTail(this.logs.consoleLog);
  }

  /** What the VMM itself printed (start-up errors), kept after exit like the console tail. */
  vmmOutput(): string {
    return this.vmmOutputAtExit ?? readConsoleTail(this.logs.vmmLog);
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
    this.closeControl();
  }

  protected requireLive(action: string): void {
    if (this.currentState.kind === 'exited' || this.currentState.kind === 'stopping') {
      throw new JitvmError('invalid_state', `cannot ${action} VM ${this.id}: it is ${this.currentState.kind}`);
    }
  }

  /** Whether the VMM exits within `ms`. */
  protected async exitWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    const result = await Promise.race([this.exited.then(() => true), timedOut]);
    clearTimeout(timer);
    return result;
  }

  /** Host state beyond the runtime dir to remove once the VMM is gone (a jail, a cgroup). */
  protected cleanUpAfterExit(): void {}

  private onExit(exit: VmExit): VmExit {
    this.tailAtExit = readConsoleTail(this.logs.consoleLog);
    this.vmmOutputAtExit = readConsoleTail(this.logs.vmmLog);
    this.currentState = { kind: 'exited', exit };
    this.closeControl();
    if (!this.released) {
      // Teardown runs from an exit callback: a failure here must be reported, never crash the host program.
      try {
        rmSync(this.runtimeDir, { recursive: true, force: true });
        this.cleanUpAfterExit();
      } catch (error) {
        process.emitWarning(`could not remove everything VM ${this.id} left: ${(error as Error).message}`, {
          code: 'JITVM_CLEANUP',
        });
      }
    }
    return exit;
  }
}
