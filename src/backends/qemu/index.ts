import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type VmConfig, hostArch } from '../../core/config.js';
import { chooseAccelerator } from '../../core/accelerator.js';
import { HostToolMissingError, InvalidArgumentError, JitvmError } from '../../core/errors.js';
import { findOnPath, toolVersion } from '../../core/host-tools.js';
import type { Hypervisor, ProbeResult, SpawnOptions, VmInstance } from '../../core/hypervisor.js';
import { ensurePrivateDir, vmsRoot } from '../../core/paths.js';
import { requireLiveVmRecord, writeVmRecord } from '../../core/vm-record.js';
import { childVmmProcess, foreignVmmProcess } from '../../core/vmm-process.js';
import { buildQemuArgs, qemuBinary, runtimePaths } from './args.js';
import { qemuHasSeccomp } from './features.js';
import { QemuInstance } from './instance.js';
import { spawnVmm } from '../spawn-vmm.js';

const QMP_CONNECT_TIMEOUT_MS = 10_000;
const DEBIAN_PACKAGE = { x86_64: 'qemu-system-x86', aarch64: 'qemu-system-arm' } as const;

function requireBinary(config: VmConfig): string {
  const name = qemuBinary(config.arch);
  const binary = findOnPath(name);
  if (!binary) throw new HostToolMissingError(name, `apt-get install ${DEBIAN_PACKAGE[config.arch]}`);
  return binary;
}

function requireFile(path: string, what: string): void {
  if (!existsSync(path)) throw new InvalidArgumentError(`${what} ${path} does not exist; run \`jitvm image build\``);
}

let tcgWarned = false;

/** One line per process when VMs fall back to software emulation, which is many times slower than KVM. */
function warnTcgOnce(reason: string): void {
  if (tcgWarned) return;
  tcgWarned = true;
  process.emitWarning(`no hardware acceleration, guests run under TCG: ${reason}`, {
    code: 'JITVM_TCG',
  });
}

/** QEMU: KVM on Linux, HVF on macOS, WHPX on Windows, TCG anywhere. Agent over virtio-serial. */
export class QemuHypervisor implements Hypervisor {
  readonly name = 'qemu';
  readonly capabilities = {
    arches: ['x86_64', 'aarch64'],
    gracefulStop: true,
    pause: true,
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
    const name = qemuBinary(arch);
    const binary = findOnPath(name);
    if (!binary) {
      return {
        available: false,
        reason: `${name} not found on PATH (install: apt-get install ${DEBIAN_PACKAGE[arch]})`,
        accelerator: undefined,
        binary: undefined,
        version: undefined,
        warnings: [],
      };
    }
    const choice = chooseAccelerator(arch);
    const seccomp = await qemuHasSeccomp(binary);
    return {
      available: true,
      reason: `${binary} found; accelerator ${choice.accelerator} (${choice.reason})`,
      accelerator: choice.accelerator,
      binary,
      version: await toolVersion(binary),
      warnings: [
        ...(choice.accelerator === 'tcg' ? ['no hardware acceleration: guests run under TCG emulation'] : []),
        ...(seccomp ? [] : ['this QEMU has no seccomp support (-sandbox): the VMM runs without a syscall filter']),
      ],
    };
  }

  async spawn(config: VmConfig, options: SpawnOptions = {}): Promise<VmInstance> {
    const binary = requireBinary(config);
    requireFile(config.kernel, 'kernel');
    requireFile(config.initrd, 'initrd');
    if (config.network.mode === 'tap' && (config.network.rxRateLimiter || config.network.txRateLimiter)) {
      throw new JitvmError('unsupported', 'the qemu backend cannot rate-limit a NIC; use the firecracker backend');
    }
    const id = options.id ?? `jv-${randomBytes(5).toString('hex')}`;
    const runtimeDir = join(ensurePrivateDir(vmsRoot()), id);
    mkdirSync(runtimeDir, { mode: 0o700 });
    try {
      return await this.launch(binary, config, id, runtimeDir, options.detached ?? false);
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
    const paths = runtimePaths(runtimeDir);
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
    const instance = new QemuInstance(id, runtimeDir, paths, childVmmProcess(child));
    try {
      await instance.attachControl(QMP_CONNECT_TIMEOUT_MS);
    } catch (error) {
      await instance.kill();
      const stderr = instance.vmmOutput();
      throw new JitvmError('vmm_failed', `QEMU failed to start${stderr ? `: ${stderr}` : ''}`, { cause: error });
    }
    writeVmRecord(runtimeDir, {
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
    const record = requireLiveVmRecord(id);
    const runtimeDir = join(vmsRoot(), id);
    return new QemuInstance(id, runtimeDir, runtimePaths(runtimeDir), foreignVmmProcess(record.pid, runtimeDir));
  }
}
