import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { localTransport } from '../../channel/local-endpoint.js';
import { ACCELERATORS, ARCHES, type VmConfig, VmConfigSchema, hostArch, requireBootFiles } from '../../core/config.js';
import { chooseAccelerator } from '../../core/accelerator.js';
import { JitvmError } from '../../core/errors.js';
import { toolVersion } from '../../core/host-tools.js';
import type {
  BackendCapabilities,
  Hypervisor,
  ProbeResult,
  RestoreOptions,
  SpawnOptions,
  VmInstance,
  VmSnapshot,
} from '../../core/hypervisor.js';
import { ensurePrivateDir, vmsRoot } from '../../core/paths.js';
import { type VmRecord, requireLiveVmRecord, newVmId, recordRunningVm } from '../../core/vm-record.js';
import { childVmmProcess, foreignVmmProcess } from '../../core/vmm-process.js';
import { buildQemuArgs, runtimePaths } from './args.js';
import { findQemu, requireQemu } from './binary.js';
import { servesOneClient } from './chardev.js';
import { qemuHasSeccomp } from './features.js';
import { createOverlays } from './disk-overlay.js';
import { type GuestRam, ramDirFor, ramFileIn } from './guest-ram.js';
import { QemuInstance } from './instance.js';
import { startVirtiofsd } from './virtiofs.js';
import { checkRestorable } from './snapshot.js';
import { machineProfile } from './machine.js';
import { acceleratorFailureHint, qemuFound, qemuMissing, tcgWarning } from './probe-report.js';
import { attachScratchDisks } from '../scratch-disk.js';
import { spawnVmm } from '../spawn-vmm.js';

const QMP_CONNECT_TIMEOUT_MS = 10_000;
const RESTORE_TIMEOUT_MS = 30_000;

/** How one QEMU is started: its RAM file, and for a restore the device state to load. */
interface LaunchPlan {
  readonly ram?: GuestRam;
  /** A directory outside the runtime dir that goes with the VM (its own RAM file's). */
  readonly ramDir?: string;
  /** The snapshot's device state: start with `-incoming defer` and load it. */
  readonly incomingState?: string;
  /** A clone's qcow2 overlays on the snapshot's copies of its writable drives, by drive id. */
  readonly overlays?: ReadonlyMap<string, string>;
  readonly resume?: boolean;
}

/** Refused before anything starts where nobody but the starting process could ever reach the VM (Windows pipes). */
function requireDetachable(capabilities: BackendCapabilities): void {
  if (!capabilities.detach) {
    throw new JitvmError(
      'unsupported',
      `the qemu backend cannot run detached VMs on ${process.platform}: QEMU serves its ${localTransport()} ` +
        'endpoints to one client, the process that starts it (docs/backends/qemu.md, "Windows named pipes")',
    );
  }
}

/** The machine of a VM another process started, from its record (which another jitvm version may have written). */
function recordedMachine(record: VmRecord) {
  const recorded = z.object({ arch: z.enum(ARCHES), accelerator: z.enum(ACCELERATORS) }).safeParse(record);
  if (!recorded.success) {
    throw new JitvmError(
      'invalid_state',
      `VM ${record.id} records an unknown arch or accelerator; stop it with its pid`,
    );
  }
  return machineProfile(recorded.data.arch, recorded.data.accelerator);
}

let tcgWarned = false;

/** One line per process when VMs fall back to software emulation: many times slower, and no security boundary. */
function warnTcgOnce(reason: string): void {
  if (tcgWarned) return;
  tcgWarned = true;
  process.emitWarning(tcgWarning(reason), { code: 'JITVM_TCG' });
}

/** QEMU: KVM on Linux, HVF on macOS, WHPX on Windows, TCG anywhere. Agent over virtio-serial. */
export class QemuHypervisor implements Hypervisor {
  readonly name = 'qemu';
  readonly capabilities = {
    arches: ['x86_64', 'aarch64'],
    gracefulStop: true,
    pause: true,
    // RAM in a /dev/shm file makes snapshots cheap (guest-ram.ts); WHPX cannot migrate at all, HVF is unverified.
    snapshot: process.platform === 'linux',
    // Windows named pipes serve one client, the process that started QEMU (see requireDetachable).
    detach: !servesOneClient(localTransport()),
    agentTransport: 'virtio-serial',
  } as const;

  private static probed: Promise<ProbeResult> | undefined;

  /** Probes once per process: the host's QEMU and accelerator do not change under a running program. */
  probe(): Promise<ProbeResult> {
    QemuHypervisor.probed ??= this.probeHost();
    return QemuHypervisor.probed;
  }

  private async probeHost(): Promise<ProbeResult> {
    const arch = hostArch() ?? 'x86_64';
    const binary = findQemu(arch);
    if (!binary) return qemuMissing(arch, process.platform);
    let choice;
    try {
      choice = chooseAccelerator(arch);
    } catch (error) {
      // A bad JITVM_ACCEL: say so as the reason (doctor shows it) rather than fail the whole probe.
      const reason = error instanceof Error ? error.message : String(error);
      return { available: false, reason, accelerator: undefined, binary, version: undefined, warnings: [] };
    }
    return qemuFound({
      binary,
      version: await toolVersion(binary),
      choice,
      seccomp: await qemuHasSeccomp(binary),
      platform: process.platform,
    });
  }

  async spawn(config: VmConfig, options: SpawnOptions = {}): Promise<VmInstance> {
    const binary = requireQemu(config.arch);
    requireBootFiles(config);
    if (config.network.mode === 'tap' && process.platform !== 'linux') {
      throw new JitvmError('unsupported', `TAP networking needs a Linux host; this one is ${process.platform}`);
    }
    if (config.network.mode === 'tap' && (config.network.rxRateLimiter || config.network.txRateLimiter)) {
      throw new JitvmError('unsupported', 'the qemu backend cannot rate-limit a NIC; use the firecracker backend');
    }
    const detached = options.detached ?? false;
    if (detached) requireDetachable(this.capabilities);
    const id = options.id ?? newVmId();
    const runtimeDir = join(ensurePrivateDir(vmsRoot()), id);
    mkdirSync(runtimeDir, { mode: 0o700 });
    const ramDir = ramDirFor(id, config.memoryMiB);
    try {
      if (ramDir) mkdirSync(ramDir, { mode: 0o700 });
      const ram = ramDir ? { path: ramFileIn(ramDir), shared: true } : undefined;
      const attached = await attachScratchDisks(config, runtimeDir);
      return await this.launch(binary, attached, id, runtimeDir, detached, { ram, ramDir });
    } catch (error) {
      rmSync(runtimeDir, { recursive: true, force: true });
      if (ramDir) rmSync(ramDir, { recursive: true, force: true });
      throw error;
    }
  }

  private async launch(
    binary: string,
    config: VmConfig,
    id: string,
    runtimeDir: string,
    detached: boolean,
    plan: LaunchPlan,
  ): Promise<QemuInstance> {
    const paths = runtimePaths(runtimeDir, { vmId: id });
    const choice = config.accelerator
      ? { accelerator: config.accelerator, reason: `accelerator ${config.accelerator} was requested` }
      : chooseAccelerator(config.arch);
    const accelerator = choice.accelerator;
    if (accelerator === 'tcg') warnTcgOnce(choice.reason);
    const args = buildQemuArgs({
      config,
      accelerator,
      paths,
      seccomp: await qemuHasSeccomp(binary),
      name: `jitvm-${id}`,
      ram: plan.ram,
      incoming: plan.incomingState !== undefined,
      overlays: plan.overlays,
    });
    if (config.shares.length > 0 && !plan.ram) {
      throw new JitvmError(
        'unsupported',
        'virtio-fs shares need the guest RAM in a shared file (/dev/shm on Linux), which this VM cannot have: ' +
          `/dev/shm is too small for ${config.memoryMiB} MiB, or this host is not Linux`,
      );
    }
    const daemons = await startVirtiofsd(config.shares, runtimeDir, detached);
    const child = await spawnVmm(binary, args, { cwd: runtimeDir, detached, stderrPath: paths.vmmLog }).catch(
      (error: unknown) => {
        for (const daemon of daemons) daemon.kill('SIGKILL');
        throw error;
      },
    );
    const pid = child.pid;
    const machine = machineProfile(config.arch, accelerator);
    const version = (await this.probe()).version;
    // Only a VM whose RAM file is its own (not a clone's private mapping of a snapshot) can be snapshotted.
    const source = plan.ram?.shared ? { ramFile: plan.ram.path, config, vmmVersion: version } : undefined;
    const instance = new QemuInstance(id, runtimeDir, paths, childVmmProcess(child), machine, source, plan.ramDir);
    try {
      await instance.attachControl(QMP_CONNECT_TIMEOUT_MS, plan.incomingState ? 'inmigrate' : 'running');
      if (plan.incomingState) await instance.loadSnapshot(plan.incomingState, plan.resume ?? true, RESTORE_TIMEOUT_MS);
    } catch (error) {
      await instance.kill();
      const stderr = instance.vmmOutput();
      const hint = acceleratorFailureHint(accelerator, stderr);
      const message = `QEMU failed to start${stderr ? `: ${stderr}` : ''}${hint ? `\n${hint}` : ''}`;
      throw new JitvmError('vmm_failed', message, { cause: error });
    }
    await recordRunningVm(instance, runtimeDir, {
      id,
      backend: this.name,
      pid,
      detached,
      controlSocket: paths.qmpSocket,
      agentSocket: paths.agentSocket,
      consoleLog: paths.consoleLog,
      accelerator,
      config,
      vmmVersion: version,
      ...(plan.ramDir ? { cleanup: { dirs: [plan.ramDir] } } : {}),
    });
    return instance;
  }

  /**
   * A new VM from a snapshot this backend wrote: the same device layout, the snapshot's RAM mapped copy-on-write
   * (the snapshot is never written, and clones share its pages), its device state loaded through QMP, then resumed
   * unless `resume: false`; each writable drive becomes the clone's own qcow2 overlay on the snapshot's copy of it.
   * Refused for another QEMU version and for a TAP NIC (clones would share its MAC).
   */
  async restore(snapshot: VmSnapshot, options: RestoreOptions = {}): Promise<VmInstance> {
    if (!this.capabilities.snapshot) {
      throw new JitvmError(
        'unsupported',
        `the qemu backend restores snapshots on Linux hosts only, not ${process.platform}`,
      );
    }
    const config = snapshot.config;
    const binary = requireQemu(config.arch);
    requireBootFiles(config);
    checkRestorable(snapshot, (await this.probe()).version);
    const detached = options.detached ?? false;
    const id = options.id ?? newVmId();
    const runtimeDir = join(ensurePrivateDir(vmsRoot()), id);
    mkdirSync(runtimeDir, { mode: 0o700 });
    try {
      const ram = { path: join(snapshot.dir, snapshot.files.memory), shared: false };
      const incomingState = join(snapshot.dir, snapshot.files.state);
      const overlays = await createOverlays(config, snapshot.dir, runtimeDir);
      const plan = { ram, incomingState, overlays, resume: options.resume };
      return await this.launch(binary, config, id, runtimeDir, detached, plan);
    } catch (error) {
      rmSync(runtimeDir, { recursive: true, force: true });
      throw error;
    }
  }

  async attach(id: string): Promise<VmInstance> {
    requireDetachable(this.capabilities);
    const record = requireLiveVmRecord(id);
    const runtimeDir = join(vmsRoot(), id);
    const vmm = foreignVmmProcess(record.pid, runtimeDir);
    const ramDir = record.cleanup?.dirs[0];
    const config = VmConfigSchema.safeParse(record.config);
    const source =
      ramDir && config.success
        ? { ramFile: ramFileIn(ramDir), config: config.data, vmmVersion: record.vmmVersion }
        : undefined;
    return new QemuInstance(id, runtimeDir, runtimePaths(runtimeDir), vmm, recordedMachine(record), source, ramDir);
  }
}
