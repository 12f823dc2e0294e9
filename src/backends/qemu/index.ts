import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { localTransport } from '../../channel/local-endpoint.js';
import { ACCELERATORS, ARCHES, type VmConfig, hostArch, requireBootFiles } from '../../core/config.js';
import { chooseAccelerator } from '../../core/accelerator.js';
import { JitvmError } from '../../core/errors.js';
import { toolVersion } from '../../core/host-tools.js';
import type { Hypervisor, ProbeResult, SpawnOptions, VmInstance } from '../../core/hypervisor.js';
import { ensurePrivateDir, vmsRoot } from '../../core/paths.js';
import { type VmRecord, requireLiveVmRecord, newVmId, recordRunningVm } from '../../core/vm-record.js';
import { childVmmProcess, foreignVmmProcess } from '../../core/vmm-process.js';
import { buildQemuArgs, runtimePaths } from './args.js';
import { findQemu, requireQemu } from './binary.js';
import { servesOneClient } from './chardev.js';
import { qemuHasSeccomp } from './features.js';
import { QemuInstance } from './instance.js';
import { machineProfile } from './machine.js';
import { acceleratorFailureHint, qemuFound, qemuMissing, tcgWarning } from './probe-report.js';
import { spawnVmm } from '../spawn-vmm.js';

const QMP_CONNECT_TIMEOUT_MS = 10_000;

/** Refused before anything starts where nobody but the starting process could ever reach the VM (Windows pipes). */
function requireDetachable(): void {
  if (servesOneClient(localTransport())) {
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
    // Not yet (#5); under WHPX it cannot be: QEMU's WHPX accelerator does not migrate.
    snapshot: false,
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
    if (detached) requireDetachable();
    const id = options.id ?? newVmId();
    const runtimeDir = join(ensurePrivateDir(vmsRoot()), id);
    mkdirSync(runtimeDir, { mode: 0o700 });
    try {
      return await this.launch(binary, config, id, runtimeDir, detached);
    } catch (error) {
      rmSync(runtimeDir, { recursive: true, force: true });
      throw error;
    }
  }

  private async launch(
    binary: string,
    config: VmConfig,
    id: string,
    runtimeDir: string,
    detached: boolean,
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
    });
    const child = await spawnVmm(binary, args, { cwd: runtimeDir, detached, stderrPath: paths.vmmLog });
    const pid = child.pid;
    const machine = machineProfile(config.arch, accelerator);
    const instance = new QemuInstance(id, runtimeDir, paths, childVmmProcess(child), machine);
    try {
      await instance.attachControl(QMP_CONNECT_TIMEOUT_MS);
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
      createdAt: new Date().toISOString(),
      detached,
      ownerPid: detached ? undefined : process.pid,
      controlSocket: paths.qmpSocket,
      agentSocket: paths.agentSocket,
      consoleLog: paths.consoleLog,
      cpus: config.cpus,
      memoryMiB: config.memoryMiB,
      arch: config.arch,
      accelerator,
      config,
    });
    return instance;
  }

  restore(): Promise<VmInstance> {
    return Promise.reject(
      new JitvmError('unsupported', 'the qemu backend cannot restore snapshots yet (capabilities.snapshot is false)'),
    );
  }

  async attach(id: string): Promise<VmInstance> {
    requireDetachable();
    const record = requireLiveVmRecord(id);
    const runtimeDir = join(vmsRoot(), id);
    const vmm = foreignVmmProcess(record.pid, runtimeDir);
    return new QemuInstance(id, runtimeDir, runtimePaths(runtimeDir), vmm, recordedMachine(record));
  }
}
