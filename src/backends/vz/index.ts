/**
 * The vz backend: Apple Virtualization.framework on macOS, driven through the `vfkit` binary (crc-org/vfkit). vfkit
 * starts the VM as it starts and ends when the VM stops; jitvm configures it on the command line (args.ts), drives its
 * lifecycle over its REST API (api-client.ts) and reaches the agent on a guest vsock port vfkit exposes as a Unix
 * socket (vsock-stream.ts). See docs/backends/vz.md.
 */
import { attachScratchDisks, withScratchPaths } from '../scratch-disk.js';
import { existsSync, mkdirSync, openSync, readSync, closeSync, rmSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { type Arch, type VmConfig, requireBootFiles } from '../../core/config.js';
import { HostToolMissingError, InvalidArgumentError, JitvmError } from '../../core/errors.js';
import { findOnPath, toolVersion } from '../../core/host-tools.js';
import type { BackendCapabilities, Hypervisor, ProbeResult, SpawnOptions, VmInstance } from '../../core/hypervisor.js';
import { ensurePrivateDir, vmsRoot } from '../../core/paths.js';
import { requireLiveVmRecord, newVmId, recordRunningVm } from '../../core/vm-record.js';
import { versionAtLeast } from '../../core/version.js';
import { childVmmProcess, foreignVmmProcess } from '../../core/vmm-process.js';
import { spawnVmm } from '../spawn-vmm.js';
import { VfkitApi, VfkitApiError } from './api-client.js';
import {
  type VfkitPaths,
  buildVfkitArgs,
  isUncompressedArm64Image,
  parseVfkitVersion,
  vfkitRuntimePaths,
} from './args.js';
import { VfkitInstance } from './instance.js';

export { VfkitApiError } from './api-client.js';

/**
 * macOS 12 (Darwin 21): vfkit gives every Linux VM a VZGenericPlatformConfiguration (pkg/vf/vm.go) and implements
 * HardStop with VZVirtualMachine.stop (Code-Hex/vz), both macOS 12 APIs; current vfkit is built with Go 1.25, which
 * itself needs macOS 12. vfkit only supports (and CI-tests) macOS 14 and newer (doc/supported_platforms.md), so
 * macOS 12 and 13 work with a warning.
 */
const MIN_DARWIN = 21;
const SUPPORTED_DARWIN = 23;
/**
 * vfkit 0.6.0 (2024-11-27) is the first release whose virtio-blk takes `readonly` (commit 6c92cb58, "Add readonly
 * option for storage devices"); jitvm's drives are read-only by default, and an older vfkit would refuse the option.
 * The other flags jitvm uses (`--bootloader linux`, `virtio-vsock,…,connect`, `virtio-serial,logFilePath`,
 * `--restful-uri unix://`, GET /vm/state with its `can*` fields, HardStop) are all in 0.5.0 already.
 */
export const MIN_VFKIT_VERSION = [0, 6, 0] as const;
const INSTALL = 'brew install vfkit';
/** vfkit opens its API before starting the VM and waits up to 5 s for it to run (cmd/vfkit/main.go). */
const START_TIMEOUT_MS = 15_000;

export interface VfkitOptions {
  /** The vfkit binary; default `$JITVM_VFKIT`, else `vfkit` on PATH. */
  readonly binary?: string;
  /** The host OS (process.platform); replaceable so the probe and the contract tests can run off macOS. */
  readonly platform?: NodeJS.Platform;
  /** The host kernel release (os.release(): Darwin's version on macOS). */
  readonly osRelease?: string;
  /** The host CPU (process.arch): guests have the host's architecture. */
  readonly arch?: string;
}

/** Darwin major version → macOS version: Darwin 20-24 are macOS 11-15, Darwin 25 is macOS 26 (Tahoe). */
export function macosVersionOf(darwinMajor: number): number {
  return darwinMajor >= 25 ? darwinMajor + 1 : darwinMajor - 9;
}

function guestArchOf(arch: string): Arch | undefined {
  if (arch === 'arm64') return 'aarch64';
  if (arch === 'x64') return 'x86_64';
  return undefined;
}

/** What the probe found, and the error spawn throws when it found the backend unusable. */
interface Probed {
  readonly result: ProbeResult;
  readonly refusal: Error | undefined;
}

export class VfkitHypervisor implements Hypervisor {
  readonly name = 'vz';
  readonly capabilities: BackendCapabilities;

  private readonly platform: NodeJS.Platform;
  private readonly hostArch: Arch | undefined;
  private probed: Promise<Probed> | undefined;

  constructor(private readonly options: VfkitOptions = {}) {
    this.platform = options.platform ?? process.platform;
    this.hostArch = guestArchOf(options.arch ?? process.arch);
    this.capabilities = {
      // VZ runs guests of the host's architecture only: arm64 on Apple silicon, x86_64 on Intel Macs.
      arches: this.hostArch ? [this.hostArch] : [],
      gracefulStop: true,
      pause: true,
      snapshot: false,
      detach: true,
      agentTransport: 'vsock',
    };
  }

  async probe(): Promise<ProbeResult> {
    this.probed ??= this.probeHost();
    return (await this.probed).result;
  }

  private binary(): string | undefined {
    return this.options.binary ?? process.env.JITVM_VFKIT ?? findOnPath('vfkit');
  }

  private async probeHost(): Promise<Probed> {
    const warnings: string[] = [];
    const unavailable = (reason: string, refusal?: Error, binary?: string, version?: string): Probed => ({
      result: { available: false, reason, accelerator: undefined, binary, version, warnings },
      refusal: refusal ?? new JitvmError('unsupported', `the vz backend cannot run here: ${reason}`),
    });
    if (this.platform !== 'darwin') {
      return unavailable(
        `the vz backend needs macOS (Apple Virtualization.framework through vfkit); this host runs ${this.platform}`,
      );
    }
    const osRelease = this.options.osRelease ?? release();
    const darwin = Number.parseInt(osRelease, 10);
    if (!Number.isInteger(darwin)) return unavailable(`cannot tell the macOS version from Darwin ${osRelease}`);
    const macos = macosVersionOf(darwin);
    if (darwin < MIN_DARWIN) {
      return unavailable(
        `the vz backend needs macOS ${macosVersionOf(MIN_DARWIN)} or newer (vfkit's Linux VMs use macOS 12 APIs); ` +
          `this is macOS ${macos} (Darwin ${osRelease})`,
      );
    }
    if (darwin < SUPPORTED_DARWIN) {
      warnings.push(`vfkit supports macOS ${macosVersionOf(SUPPORTED_DARWIN)} and newer; macOS ${macos} is untested`);
    }
    if (!this.hostArch) {
      return unavailable(
        `Virtualization.framework runs arm64 or x86_64 guests; this Mac's CPU is ${this.options.arch ?? process.arch}`,
      );
    }
    const binary = this.binary();
    if (!binary || !existsSync(binary)) {
      const what = binary ? `vfkit (${binary}) does not exist` : 'vfkit is not on PATH';
      return unavailable(
        `${what}; install it with: ${INSTALL} (or set JITVM_VFKIT to the binary)`,
        binary ? undefined : new HostToolMissingError('vfkit', INSTALL),
        binary,
      );
    }
    const output = await toolVersion(binary);
    const version = parseVfkitVersion(output);
    if (!version) {
      return unavailable(
        `${binary} --version did not print "vfkit version: …" (it said ${JSON.stringify(output)})`,
        undefined,
        binary,
      );
    }
    const minimum = MIN_VFKIT_VERSION.join('.');
    if (!version.semver) {
      warnings.push(`vfkit reports version "${version.text}"; jitvm cannot check that it is ${minimum} or newer`);
    } else if (!versionAtLeast(version.semver, MIN_VFKIT_VERSION)) {
      return unavailable(
        `vfkit ${version.text} is too old; jitvm needs ${minimum} or newer (virtio-blk readonly): ${INSTALL}`,
        undefined,
        binary,
        version.text,
      );
    }
    return {
      result: {
        available: true,
        reason: `${binary} (vfkit ${version.text || 'of unknown version'}); macOS ${macos} on ${this.hostArch}`,
        accelerator: 'hvf',
        binary,
        version: version.text,
        warnings,
      },
      refusal: undefined,
    };
  }

  private async requireAvailable(): Promise<ProbeResult & { binary: string }> {
    const { result, refusal } = await (this.probed ??= this.probeHost());
    if (refusal || !result.binary) throw refusal ?? new JitvmError('unsupported', result.reason);
    return { ...result, binary: result.binary };
  }

  async spawn(config: VmConfig, options: SpawnOptions = {}): Promise<VmInstance> {
    const probe = await this.requireAvailable();
    this.checkConfig(config);
    const id = options.id ?? newVmId();
    const runtimeDir = join(ensurePrivateDir(vmsRoot()), id);
    const paths = vfkitRuntimePaths(runtimeDir);
    // Built before anything exists on disk: a path vfkit cannot take is refused with nothing to clean up.
    const args = buildVfkitArgs(withScratchPaths(config, runtimeDir), paths);
    const detached = options.detached ?? false;
    mkdirSync(runtimeDir, { mode: 0o700 });
    try {
      const attached = await attachScratchDisks(config, runtimeDir);
      return await this.launch(probe, attached, args, id, runtimeDir, paths, detached);
    } catch (error) {
      rmSync(runtimeDir, { recursive: true, force: true });
      throw error;
    }
  }

  private async launch(
    probe: ProbeResult & { binary: string },
    config: VmConfig,
    args: string[],
    id: string,
    runtimeDir: string,
    paths: VfkitPaths,
    detached: boolean,
  ): Promise<VfkitInstance> {
    const child = await spawnVmm(probe.binary, args, { cwd: runtimeDir, detached, stderrPath: paths.vmmLog });
    const vmm = childVmmProcess(child);
    const api = new VfkitApi(paths.restSocket);
    const instance = new VfkitInstance(id, runtimeDir, paths, vmm, api);
    let state;
    try {
      state = await api.waitUntilRunning(START_TIMEOUT_MS, () => vmm.isAlive());
    } catch (error) {
      throw await failedStart(instance, error);
    }
    await recordRunningVm(instance, runtimeDir, {
      id,
      backend: this.name,
      pid: vmm.pid,
      detached,
      controlSocket: paths.restSocket,
      agentSocket: paths.vsockSocket,
      consoleLog: paths.consoleLog,
      accelerator: 'hvf',
      processMarker: runtimeDir,
      config,
      vmmVersion: probe.version,
    });
    instance.started(state.state);
    return instance;
  }

  /** vfkit cannot emulate or boot a compressed arm64 kernel: refused before anything starts (a TAP NIC: args.ts). */
  private checkConfig(config: VmConfig): void {
    if (config.arch !== this.hostArch) {
      throw new InvalidArgumentError(
        `Virtualization.framework runs ${this.hostArch ?? 'no'} guests on this Mac, not ${config.arch}`,
      );
    }
    if (config.accelerator && config.accelerator !== 'hvf') {
      throw new InvalidArgumentError(
        `vfkit always runs on Virtualization.framework (hvf); accelerator ${config.accelerator} is not possible`,
      );
    }
    requireBootFiles(config);
    if (config.arch === 'aarch64' && !isUncompressedArm64Image(readHead(config.kernel, 2048))) {
      throw new InvalidArgumentError(
        `kernel ${config.kernel} is not an uncompressed arm64 Image: Virtualization.framework cannot decompress a ` +
          'kernel on Apple silicon (vfkit refuses it, see docs/backends/vz.md); gunzip it or use the image jitvm builds',
      );
    }
  }

  restore(): Promise<VmInstance> {
    return Promise.reject(
      new JitvmError(
        'unsupported',
        'the vz backend cannot restore snapshots: vfkit has no save/restore endpoint (crc-org/vfkit#449); ' +
          'capabilities.snapshot is false',
      ),
    );
  }

  /** Re-attaches to a detached VM from its record; needs no probe (it may run a vfkit other than the one on PATH). */
  async attach(id: string): Promise<VmInstance> {
    const record = requireLiveVmRecord(id);
    const runtimeDir = join(vmsRoot(), id);
    const paths: VfkitPaths = {
      restSocket: record.controlSocket,
      vsockSocket: record.agentSocket,
      consoleLog: record.consoleLog,
      vmmLog: join(runtimeDir, 'vmm.log'),
    };
    const vmm = foreignVmmProcess(record.pid, record.processMarker ?? runtimeDir);
    const api = new VfkitApi(paths.restSocket);
    const instance = new VfkitInstance(id, runtimeDir, paths, vmm, api);
    instance.started((await api.getState()).state);
    return instance;
  }
}

/** The first `bytes` bytes of a file (fewer when it is shorter). */
function readHead(path: string, bytes: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    return buf.subarray(0, readSync(fd, buf, 0, bytes, 0));
  } finally {
    closeSync(fd);
  }
}

/** Kills a VM whose start failed and explains why, with what vfkit printed on stderr. */
async function failedStart(instance: VfkitInstance, error: unknown): Promise<Error> {
  await instance.kill();
  const output = instance.vmmOutput();
  if (error instanceof VfkitApiError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new JitvmError('vmm_failed', `vfkit failed to start the VM: ${message}${output ? `\n${output}` : ''}`, {
    cause: error,
  });
}
