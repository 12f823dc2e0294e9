/** jitvm's public API: the Sandbox SDK, its error types, and the backend interfaces. */
export { Sandbox, type ForkOptions, type SandboxSnapshotOptions } from './sandbox/sandbox.js';
export type { SandboxOptions } from './sandbox/options.js';
export type { SandboxApi, SandboxFilesApi, RunningCommand } from './sandbox/api.js';
export { RemoteSandbox, type RemoteSandboxOptions, type DaemonConnectOptions } from './remote/sandbox.js';
export { RemoteCommand } from './remote/command.js';
export { RemoteFiles } from './remote/files.js';
export { DaemonError } from './remote/daemon-client.js';
export {
  Pool,
  type PoolOptions,
  type PoolCoreOptions,
  type PoolStats,
  type PoolStarter,
  type PooledVm,
  type AcquireOptions,
} from './sandbox/pool.js';
export {
  CommandHandle,
  type Command,
  type ExecOptions,
  type SpawnOptions,
  type StdinSource,
} from './sandbox/command.js';
export { ExecResult } from './sandbox/exec-result.js';
export { SandboxFiles, type FileEntry, type WriteFileOptions } from './sandbox/files.js';
export * from './core/errors.js';
export type {
  Hypervisor,
  VmInstance,
  VmState,
  VmExit,
  VmSnapshot,
  RestoreOptions,
  ProbeResult,
  BackendCapabilities,
} from './core/hypervisor.js';
export {
  parseVmConfig,
  type VmConfig,
  type VmConfigInput,
  type Drive,
  type Network,
  type Share,
  type RateLimiter,
} from './core/config.js';
export { allBackends, probeBackends, selectBackend } from './backends/index.js';
export { FirecrackerHypervisor, type FirecrackerOptions } from './backends/firecracker/index.js';
export { FirecrackerApiError } from './backends/firecracker/api-client.js';
export type { JailerOptionsInput as JailerOptions } from './backends/firecracker/jailer.js';
export { QemuHypervisor } from './backends/qemu/index.js';
export { VfkitHypervisor, type VfkitOptions, VfkitApiError } from './backends/vz/index.js';
export { buildImage, resolveImage, type GuestImage } from './image/index.js';
export {
  fromDirectory,
  fromOci,
  readRootfsConfig,
  type FromDirectoryOptions,
  type FromOciOptions,
  type RootfsBuildOptions,
  type RootfsImage,
  type RootfsConfig,
} from './image/rootfs/index.js';
export type { PublishedPort, PortForwardInput } from './sandbox/ports.js';
export type { EgressDecision } from './network/egress-options.js';
export { SnapshotStore } from './snapshot/store.js';
export { snapshotRoot, type SnapshotEntry } from './snapshot/layout.js';
export { SnapshotRejectedError } from './snapshot/errors.js';
export type { OpenedSnapshot } from './snapshot/compat.js';
export type { SnapshotManifest } from './snapshot/manifest.js';
export { setIdentity, type IdentityOptions } from './channel/identity.js';
export { createDaemon, type Daemon, type DaemonOptions } from './daemon/server.js';
export { createMcpServer } from './mcp/server.js';
export { SandboxSession } from './mcp/session.js';
export { metricsRegistry } from './metrics/registry.js';
