import type { Duplex } from 'node:stream';
import type { Accelerator, Arch, VmConfig } from './config.js';

/** What a backend's probe found: usable or not, and why — `doctor` prints it verbatim. */
export interface ProbeResult {
  readonly available: boolean;
  /** One sentence: why this backend can or cannot run here. */
  readonly reason: string;
  readonly accelerator: Accelerator | undefined;
  /** The VMM binary that would be used, when found. */
  readonly binary: string | undefined;
  readonly version: string | undefined;
  readonly warnings: readonly string[];
}

/** Features a backend supports, so callers ask instead of guessing. */
export interface BackendCapabilities {
  readonly arches: readonly Arch[];
  /** `stop()` asks the guest to power off before forcing. */
  readonly gracefulStop: boolean;
  /** `pause()` / `resume()` work. */
  readonly pause: boolean;
  /** `snapshot()` and `Hypervisor.restore()` work. */
  readonly snapshot: boolean;
  /** A VM can outlive the process that starts it (`detached`) and be attached to from another process. */
  readonly detach: boolean;
  readonly agentTransport: 'virtio-serial' | 'vsock';
}

/** Lifecycle of one VM, with the data each state carries. */
export type VmState =
  | { readonly kind: 'starting' }
  | { readonly kind: 'running' }
  | { readonly kind: 'paused' }
  | { readonly kind: 'stopping' }
  | { readonly kind: 'exited'; readonly exit: VmExit };

/** How a VMM process ended. `code`/`signal` are undefined when unknown (e.g. a VM that was not our child). */
export interface VmExit {
  readonly code: number | undefined;
  readonly signal: NodeJS.Signals | undefined;
}

export interface SpawnOptions {
  /** Let the VMM outlive this process (CLI `create`). Its state is kept in the runtime dir. */
  readonly detached?: boolean;
  /** Use this id instead of a generated one. */
  readonly id?: string;
}

export interface StopOptions {
  /** How long the guest gets to power off before the VMM is forced down. Default 5000. */
  readonly timeoutMs?: number;
}

/** The files a backend wrote for one snapshot, and what restoring them needs. */
export interface VmSnapshot {
  /** The directory holding the files. */
  readonly dir: string;
  readonly backend: string;
  /** The VMM version that wrote it: VMMs load only snapshots of their own format. */
  readonly vmmVersion: string | undefined;
  /** The snapshotted VM's config; a restored VM has the same devices, memory and vCPUs. */
  readonly config: VmConfig;
  /** File names inside `dir`: device and vCPU state, and guest memory. */
  readonly files: { readonly state: string; readonly memory: string };
}

export interface RestoreOptions extends SpawnOptions {
  /** Resume the guest as soon as it is loaded (default true); else it stays paused until `resume()`. */
  readonly resume?: boolean;
}

/** One running (or finished) VM. Knows its process and sockets; knows nothing of exec or files. */
export interface VmInstance {
  readonly id: string;
  readonly backend: string;
  /** The VMM's pid; undefined once it has been reaped and the pid may be reused. */
  readonly pid: number | undefined;
  /** The VMM control socket (QMP, REST…); undefined once the VM has exited. */
  readonly controlSocket: string | undefined;
  readonly consoleLogPath: string;
  readonly runtimeDir: string;
  readonly state: VmState;
  /** The last lines of the serial console; still available after exit, when the runtime dir is gone. */
  consoleTail(): string;
  /** Opens a fresh byte stream to the guest agent. Refused once the VM has exited. */
  connectAgent(signal?: AbortSignal): Promise<Duplex>;
  /** Asks the guest to power off, waits `timeoutMs`, then forces the VMM down. Always ends with the VM gone. */
  stop(options?: StopOptions): Promise<VmExit>;
  /** Kills the VMM at once. */
  kill(): Promise<VmExit>;
  /** Resolves when the VMM has exited and its runtime dir is removed. */
  wait(): Promise<VmExit>;
  /** Freezes the guest's vCPUs (capabilities.pause). */
  pause(): Promise<void>;
  /** Lets a paused guest run again. */
  resume(): Promise<void>;
  /**
   * Writes a snapshot of this paused VM into `dir`, which must not exist yet (capabilities.snapshot). The VM stays
   * paused: resume it, or stop it.
   */
  snapshot(dir: string): Promise<VmSnapshot>;
  /** Leaves a detached VM running and releases this process's hold on it (sockets, listeners). */
  release(): void;
}

/** A VMM jitvm can drive. */
export interface Hypervisor {
  readonly name: string;
  readonly capabilities: BackendCapabilities;
  probe(): Promise<ProbeResult>;
  /** Starts a VM. Resolves once the VMM is running (not once the guest booted). */
  spawn(config: VmConfig, options?: SpawnOptions): Promise<VmInstance>;
  /** Re-attaches to a detached VM started by this backend, from its runtime dir. */
  attach(id: string): Promise<VmInstance>;
  /** Starts a new VM from a snapshot this backend wrote; each call gives an independent VM with its own channel. */
  restore(snapshot: VmSnapshot, options?: RestoreOptions): Promise<VmInstance>;
}
