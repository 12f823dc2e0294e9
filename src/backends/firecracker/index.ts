import { attachScratchDisks, driveFile } from '../scratch-disk.js';
import { existsSync, mkdirSync, realpathSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { kvmUsable } from '../../core/accelerator.js';
import { type VmConfig, VmConfigSchema, hostArch, parseWith, requireBootFiles } from '../../core/config.js';
import { readConsoleTail } from '../../core/console-log.js';
import { InvalidArgumentError, JitvmError } from '../../core/errors.js';
import { findOnPath, toolVersion } from '../../core/host-tools.js';
import type {
  Hypervisor,
  ProbeResult,
  RestoreOptions,
  SpawnOptions,
  VmInstance,
  VmSnapshot,
} from '../../core/hypervisor.js';
import { ensurePrivateDir, vmsRoot } from '../../core/paths.js';
import { requireLiveVmRecord, removeHostLeftovers, newVmId, recordRunningVm } from '../../core/vm-record.js';
import { versionAtLeast } from '../../core/version.js';
import { childVmmProcess, foreignVmmProcess, type VmmProcess } from '../../core/vmm-process.js';
import { vmlinuxFor } from '../../image/vmlinux.js';
import { spawnVmm } from '../spawn-vmm.js';
import { FirecrackerApi, FirecrackerApiError } from './api-client.js';
import { bootRequests } from './boot-config.js';
import { type FileSpace, jailFileSpace, plainFileSpace } from './file-space.js';
import { type NatHost, type NatTools, natLeftovers, requireNatHost, setUpHostNat, thisNatHost } from './host-nat.js';
import { FirecrackerInstance, type FirecrackerLayout } from './instance.js';
import {
  JAILED_API_SOCKET,
  type JailerOptions,
  type JailerOptionsInput,
  JailerOptionsSchema,
  jailCgroup,
  jailDir,
  jailRoot,
  jailPidFile,
  jailedVmmPid,
  jailerArgs,
} from './jailer.js';
import type { NatPlan } from './nat-plan.js';

/** ACPI device discovery (1.8) is what lets Debian's kernel, which lacks virtio-mmio cmdline devices, find them. */
const MIN_VERSION = [1, 8] as const;
/** `vsock_override` on snapshot load (1.16) lets an unjailed clone use its own vsock socket. */
const VSOCK_OVERRIDE_VERSION = [1, 16] as const;
/** Firecracker's vCPU limit (swagger: MachineConfiguration.vcpu_count). */
const MAX_VCPUS = 32;
const API_READY_TIMEOUT_MS = 10_000;
const INSTALL_HINT = 'see docs/backends/firecracker.md, or set JITVM_FIRECRACKER to the binary';

export interface FirecrackerOptions {
  /** The firecracker binary; default `$JITVM_FIRECRACKER`, else `firecracker` on PATH. */
  readonly binary?: string;
  /** Run every VM under the jailer (needs root). */
  readonly jailer?: JailerOptionsInput;
  /** Whether KVM can run ordinary guests here; replaceable so the API contract can be tested without KVM. */
  readonly kvmCheck?: () => { usable: boolean; reason: string };
  /** What `nat` mode's preconditions read (platform, CAP_NET_ADMIN, `ip`, `nft`); default this host. */
  readonly natHost?: NatHost;
}

type Version = readonly [number, number, number];

/** `Firecracker v1.12.0` → [1, 12, 0]. */
export function parseFirecrackerVersion(text: string | undefined): Version | undefined {
  const match = /^Firecracker v(\d+)\.(\d+)\.(\d+)/.exec(text?.trim() ?? '');
  return match ? [Number(match[1]), Number(match[2]), Number(match[3])] : undefined;
}

interface Started {
  readonly instance: FirecrackerInstance;
  readonly api: FirecrackerApi;
  readonly files: FileSpace;
}

/** Firecracker: Linux + KVM only, the agent over hybrid vsock, snapshots through its API, optional jailer. */
export class FirecrackerHypervisor implements Hypervisor {
  readonly name = 'firecracker';
  readonly capabilities = {
    arches: hostArch() ? [hostArch() ?? 'x86_64'] : [],
    // SendCtrlAltDel exists on x86 only.
    gracefulStop: hostArch() === 'x86_64',
    pause: true,
    snapshot: true,
    detach: true,
    agentTransport: 'vsock',
  } as const;

  private readonly jailer: JailerOptions | undefined;
  private probed: Promise<ProbeResult> | undefined;

  constructor(private readonly options: FirecrackerOptions = {}) {
    this.jailer = options.jailer ? parseWith(JailerOptionsSchema, options.jailer, 'invalid jailer options') : undefined;
  }

  probe(): Promise<ProbeResult> {
    this.probed ??= this.probeHost();
    return this.probed;
  }

  private binary(): string | undefined {
    return this.options.binary ?? process.env.JITVM_FIRECRACKER ?? findOnPath('firecracker');
  }

  private jailerBinary(): string | undefined {
    return this.jailer?.binary ?? process.env.JITVM_JAILER ?? findOnPath('jailer');
  }

  private async probeHost(): Promise<ProbeResult> {
    const unavailable = (reason: string, binary?: string, version?: string): ProbeResult => ({
      available: false,
      reason,
      accelerator: undefined,
      binary,
      version,
      warnings: [],
    });
    if (process.platform !== 'linux')
      return unavailable(`Firecracker runs on Linux only (this is ${process.platform})`);
    const binary = this.binary();
    if (!binary || !existsSync(binary)) {
      return unavailable(`firecracker ${binary ? `(${binary}) does not exist` : 'not found on PATH'}; ${INSTALL_HINT}`);
    }
    const versionText = await toolVersion(binary);
    const version = parseFirecrackerVersion(versionText);
    if (!version) return unavailable(`${binary} --version did not print "Firecracker vX.Y.Z"`, binary, versionText);
    const versionName = version.join('.');
    if (!versionAtLeast(version, MIN_VERSION)) {
      return unavailable(
        `Firecracker ${versionName} is too old; jitvm needs ${MIN_VERSION.join('.')} or newer`,
        binary,
      );
    }
    const kvm = (this.options.kvmCheck ?? kvmUsable)();
    if (!kvm.usable) return unavailable(`Firecracker needs KVM: ${kvm.reason}`, binary, versionName);
    if (this.jailer) {
      const jailer = this.jailerBinary();
      if (!jailer || !existsSync(jailer)) {
        return unavailable(`the jailer was requested but is not installed (set JITVM_JAILER or put it on PATH)`);
      }
      if (process.getuid?.() !== 0) return unavailable('the jailer needs root (it chroots and drops privileges)');
    }
    return {
      available: true,
      reason: `${binary} (Firecracker ${versionName}); ${kvm.reason}${this.jailer ? '; jailed' : ''}`,
      accelerator: 'kvm',
      binary,
      version: versionName,
      warnings: this.jailer?.daemonize ? ['jailer --daemonize sends the guest console to /dev/null'] : [],
    };
  }

  private async requireAvailable(): Promise<ProbeResult & { binary: string; version: string }> {
    const probe = await this.probe();
    if (!probe.available || !probe.binary || !probe.version) {
      throw new JitvmError('unsupported', `the firecracker backend cannot run here: ${probe.reason}`);
    }
    return { ...probe, binary: probe.binary, version: probe.version };
  }

  async spawn(config: VmConfig, options: SpawnOptions = {}): Promise<VmInstance> {
    const probe = await this.requireAvailable();
    checkConfig(config);
    const natTools = config.network.mode === 'nat' ? this.requireNat() : undefined;
    requireBootFiles(config);
    // x86 Firecracker boots an uncompressed ELF; on aarch64 it takes the kernel's `Image` as it is.
    const kernel = config.arch === 'x86_64' ? await vmlinuxFor(config.kernel) : config.kernel;
    return this.withRuntimeDir(options, async (id, runtimeDir, detached) => {
      const attached = await attachScratchDisks(config, runtimeDir);
      const nat = natTools ? await this.setUpNat(natTools, id, config) : undefined;
      const { instance, api, files } = await this.startVmm(probe, attached, id, runtimeDir, detached, nat).catch(
        (error: unknown) => {
          // Once the VMM is up, its exit removes the NAT with its other leftovers.
          if (nat) removeHostLeftovers({ dirs: [], ...natLeftovers(nat) });
          throw error;
        },
      );
      try {
        const requests = bootRequests(
          attached,
          {
            kernel: files.expose(kernel, 'vmlinux', false),
            initrd: files.expose(config.initrd, 'initrd', false),
            drivePath: (drive) => files.expose(driveFile(drive), `drive-${drive.id}`, !drive.readOnly),
            vsockSocket: files.vmmPath('vsock.sock'),
          },
          nat,
        );
        await api.putBootSource(requests.bootSource);
        await api.putMachineConfig(requests.machineConfig);
        for (const drive of requests.drives) await api.putDrive(drive);
        for (const nic of requests.networkInterfaces) await api.putNetworkInterface(nic);
        await api.putVsock(requests.vsock);
        await api.action('InstanceStart');
      } catch (error) {
        throw await failedStart(instance, error);
      }
      instance.started(false);
      return instance;
    });
  }

  async restore(snapshot: VmSnapshot, options: RestoreOptions = {}): Promise<VmInstance> {
    const probe = await this.requireAvailable();
    if (snapshot.backend !== this.name) {
      throw new InvalidArgumentError(`snapshot ${snapshot.dir} was written by the ${snapshot.backend} backend`);
    }
    if (snapshot.config.network.mode === 'nat') {
      throw new JitvmError(
        'unsupported',
        `snapshot ${snapshot.dir} is of a VM with nat networking: its guest keeps the address of the original's ` +
          'TAP subnet, so clones would collide with it and each other on the host. Snapshot VMs without a NIC ' +
          "(network 'none' or 'allowlist'), or use the qemu backend, whose clones each get a private NAT",
      );
    }
    if (snapshot.vmmVersion !== probe.version) {
      throw new InvalidArgumentError(
        `snapshot ${snapshot.dir} was written by Firecracker ${snapshot.vmmVersion ?? '(unknown)'}, ` +
          `this host runs ${probe.version}: Firecracker loads only snapshots of its own version`,
      );
    }
    const version = parseFirecrackerVersion(`Firecracker v${probe.version}`) as Version;
    if (!this.jailer && !versionAtLeast(version, VSOCK_OVERRIDE_VERSION)) {
      throw new JitvmError(
        'unsupported',
        `restoring without the jailer needs Firecracker ${VSOCK_OVERRIDE_VERSION.join('.')}+ (vsock_override); ` +
          `this is ${probe.version}: upgrade, or use the jailer so every clone has its own chroot`,
      );
    }
    const { config } = snapshot;
    const writable = config.drives.filter((drive) => !drive.readOnly).map((drive) => drive.id);
    if (writable.length > 0) {
      throw new InvalidArgumentError(
        `snapshot ${snapshot.dir} has writable drives (${writable.join(', ')}): restored VMs would share them; ` +
          'snapshot VMs whose drives are read-only',
      );
    }
    const dir = resolve(snapshot.dir);
    const resume = options.resume ?? true;
    return this.withRuntimeDir(options, async (id, runtimeDir, detached) => {
      const { instance, api, files } = await this.startVmm(probe, config, id, runtimeDir, detached);
      try {
        // A jailed clone sees the same in-jail names as its original: the drives and vsock need no override.
        for (const drive of config.drives) files.expose(driveFile(drive), `drive-${drive.id}`, !drive.readOnly);
        await api.loadSnapshot({
          snapshot_path: files.expose(join(dir, snapshot.files.state), 'snapshot.vmstate', false),
          mem_backend: {
            backend_type: 'File',
            backend_path: files.expose(join(dir, snapshot.files.memory), 'snapshot.memory', false),
          },
          resume_vm: resume,
          ...(files.jailed ? {} : { vsock_override: { uds_path: files.vmmPath('vsock.sock') } }),
        });
      } catch (error) {
        throw await failedStart(instance, error);
      }
      instance.started(!resume);
      return instance;
    });
  }

  async attach(id: string): Promise<VmInstance> {
    const record = requireLiveVmRecord(id);
    const config = VmConfigSchema.safeParse(record.config);
    if (!config.success) {
      throw new JitvmError(
        'invalid_state',
        `sandbox ${id} was started by another jitvm version; its config is unreadable`,
      );
    }
    const runtimeDir = join(vmsRoot(), id);
    const files = record.vmmRoot ? jailFileSpace(record.vmmRoot) : plainFileSpace(runtimeDir);
    const layout: FirecrackerLayout = {
      files,
      apiSocket: record.controlSocket,
      vsockSocket: record.agentSocket,
      consoleLog: record.consoleLog,
      vmmLog: join(runtimeDir, 'vmm.log'),
      leftovers: record.cleanup ?? { dirs: [] },
    };
    const vmm = foreignVmmProcess(record.pid, record.processMarker ?? runtimeDir);
    const api = new FirecrackerApi(record.controlSocket);
    const instance = new FirecrackerInstance(id, runtimeDir, layout, vmm, api, config.data, record.vmmVersion);
    const info = await api.describeInstance();
    instance.started(info.state === 'Paused');
    return instance;
  }

  /** nat's preconditions, plus one of the jailer's: a TAP in the host's namespace is invisible from another one. */
  private requireNat(): NatTools {
    if (this.jailer?.netns) {
      throw new JitvmError(
        'unsupported',
        `nat creates its TAP in the host's network namespace, which a jailer joining ${this.jailer.netns} cannot ` +
          "see: set up a TAP inside that namespace and use network mode 'tap', or drop the jailer's netns",
      );
    }
    return requireNatHost(this.options.natHost ?? thisNatHost());
  }

  /** The TAP is owned by the uid Firecracker runs as, so only it (and root) can attach to it. */
  private setUpNat(tools: NatTools, id: string, config: VmConfig): Promise<NatPlan> {
    const mac = config.network.mode === 'nat' ? config.network.mac : undefined;
    return setUpHostNat(tools, { id, mac, owner: this.jailer?.uid ?? process.geteuid?.() ?? 0 });
  }

  private async withRuntimeDir(
    options: SpawnOptions,
    start: (id: string, runtimeDir: string, detached: boolean) => Promise<FirecrackerInstance>,
  ): Promise<VmInstance> {
    const id = options.id ?? newVmId();
    const runtimeDir = join(ensurePrivateDir(vmsRoot()), id);
    mkdirSync(runtimeDir, { mode: 0o700 });
    try {
      return await start(id, runtimeDir, options.detached ?? false);
    } catch (error) {
      rmSync(runtimeDir, { recursive: true, force: true });
      throw error;
    }
  }

  /** Starts Firecracker (jailed or not), waits for its API and configures logs and metrics. */
  private async startVmm(
    probe: { binary: string; version: string },
    config: VmConfig,
    id: string,
    runtimeDir: string,
    detached: boolean,
    nat?: NatPlan,
  ): Promise<Started> {
    const consoleLog = join(runtimeDir, 'console.log');
    const vmmLog = join(runtimeDir, 'vmm.log');
    const jailer = this.jailer;
    // The jailer names the jail after the file a symlinked binary points to.
    const execFile = jailer ? realpathSync(probe.binary) : probe.binary;
    const jail = jailer ? jailRoot(jailer, execFile, id) : undefined;
    const files = jail ? jailFileSpace(jail) : plainFileSpace(runtimeDir);
    const layout: FirecrackerLayout = {
      files,
      apiSocket: files.hostPath(jail ? JAILED_API_SOCKET : 'api.sock'),
      vsockSocket: files.hostPath('vsock.sock'),
      consoleLog,
      vmmLog,
      leftovers: {
        ...(jailer
          ? { dirs: [jailDir(jailer, execFile, id)], cgroup: jailCgroup(jailer, execFile, id) }
          : { dirs: [] }),
        ...(nat ? natLeftovers(nat) : {}),
      },
    };
    const launch = { cwd: runtimeDir, detached, stdoutPath: consoleLog, stderrPath: vmmLog };
    let vmm: VmmProcess;
    if (jailer) {
      // The jailer canonicalizes the base dir, so it must exist; it is root's (the jailer runs as root).
      mkdirSync(jailer.chrootBaseDir, { recursive: true, mode: 0o755 });
      const child = await spawnVmm(this.jailerBinary() as string, jailerArgs(jailer, execFile, id), launch);
      const failed = (): boolean => (child.exitCode !== null ? child.exitCode !== 0 : child.signalCode !== null);
      try {
        const pid = await jailedVmmPid(jailPidFile(jailer, execFile, id), failed);
        vmm = pid === child.pid ? childVmmProcess(child) : foreignVmmProcess(pid, id);
      } catch (error) {
        child.kill('SIGKILL');
        removeHostLeftovers(layout.leftovers);
        const output = readConsoleTail(vmmLog);
        throw new JitvmError('vmm_failed', `${(error as Error).message}${output ? `:\n${output}` : ''}`, {
          cause: error,
        });
      }
    } else {
      const child = await spawnVmm(probe.binary, ['--api-sock', layout.apiSocket, '--id', id], launch);
      vmm = childVmmProcess(child);
    }
    const api = new FirecrackerApi(layout.apiSocket);
    const instance = new FirecrackerInstance(id, runtimeDir, layout, vmm, api, config, probe.version);
    try {
      await api.waitUntilReady(API_READY_TIMEOUT_MS, () => vmm.isAlive());
      await api.putLogger({ log_path: files.vmmPath('firecracker.log'), level: 'Info', show_level: true });
      await api.putMetrics({ metrics_path: files.vmmPath('metrics.json') });
    } catch (error) {
      throw await failedStart(instance, error);
    }
    await recordRunningVm(instance, runtimeDir, {
      id,
      backend: this.name,
      pid: vmm.pid,
      detached,
      controlSocket: layout.apiSocket,
      agentSocket: layout.vsockSocket,
      consoleLog,
      accelerator: 'kvm',
      processMarker: jail ? id : runtimeDir,
      vmmRoot: jail,
      cleanup: layout.leftovers,
      config,
      vmmVersion: probe.version,
    });
    return { instance, api, files };
  }
}

function checkConfig(config: VmConfig): void {
  if (config.arch !== hostArch()) {
    throw new InvalidArgumentError(`Firecracker runs ${hostArch() ?? 'no'} guests on this host, not ${config.arch}`);
  }
  if (config.cpus > MAX_VCPUS) throw new InvalidArgumentError(`Firecracker supports at most ${MAX_VCPUS} vCPUs`);
  if (config.accelerator && config.accelerator !== 'kvm') {
    throw new InvalidArgumentError(`Firecracker always uses KVM; accelerator ${config.accelerator} is not possible`);
  }
  if (config.shares.length > 0) {
    throw new JitvmError(
      'unsupported',
      'Firecracker has no virtio-fs, so host directories cannot be shared; attach an ext4 volume image instead',
    );
  }
}

/**
 * Kills a VM whose start failed and explains why: Firecracker's refusal as it is (its fault_message says it all),
 * anything else with what Firecracker printed on stderr.
 */
async function failedStart(instance: FirecrackerInstance, error: unknown): Promise<Error> {
  await instance.kill();
  if (error instanceof FirecrackerApiError) return error;
  const output = instance.vmmOutput();
  if (error instanceof JitvmError && !output) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new JitvmError('vmm_failed', `Firecracker failed to start the VM: ${message}${output ? `\n${output}` : ''}`, {
    cause: error,
  });
}
