import { JitvmError } from '../core/errors.js';
import type { Hypervisor, ProbeResult } from '../core/hypervisor.js';
import { FirecrackerHypervisor } from './firecracker/index.js';
import { QemuHypervisor } from './qemu/index.js';

/**
 * Every backend this build knows, in order of preference when several are available: Firecracker where it can run
 * (Linux with KVM: the fastest boot and the smallest VMM), else QEMU.
 */
export function allBackends(): Hypervisor[] {
  return [new FirecrackerHypervisor(), new QemuHypervisor()];
}

/** A backend by name, or not_found listing the known names. */
export function backendByName(name: string): Hypervisor {
  const backend = allBackends().find((candidate) => candidate.name === name);
  if (!backend) {
    const known = allBackends().map((candidate) => candidate.name);
    throw new JitvmError('not_found', `unknown backend "${name}"; known backends: ${known.join(', ')}`);
  }
  return backend;
}

export interface BackendReport {
  readonly name: string;
  readonly probe: ProbeResult;
}

/** Probes every backend (for `doctor` and for automatic selection). */
export async function probeBackends(): Promise<BackendReport[]> {
  return Promise.all(allBackends().map(async (backend) => ({ name: backend.name, probe: await backend.probe() })));
}

/**
 * The backend to use: `requested` (e.g. `--backend`), else `JITVM_BACKEND`, else the first available one.
 * A named backend that is unavailable is an error saying why, never a silent fallback.
 */
export async function selectBackend(requested?: string): Promise<Hypervisor> {
  const name = requested ?? process.env.JITVM_BACKEND;
  if (name) {
    const backend = backendByName(name);
    const probe = await backend.probe();
    if (!probe.available) throw new JitvmError('unsupported', `backend ${name} is not available: ${probe.reason}`);
    return backend;
  }
  const reports = await probeBackends();
  const chosen = reports.find((report) => report.probe.available);
  if (!chosen) {
    const reasons = reports.map((report) => `${report.name}: ${report.probe.reason}`).join('; ');
    throw new JitvmError('unsupported', `no backend can run VMs on this host (${reasons}); run \`jitvm doctor\``);
  }
  return backendByName(chosen.name);
}
