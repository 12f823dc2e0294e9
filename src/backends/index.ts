import { type Arch, hostArch } from '../core/config.js';
import { JitvmError } from '../core/errors.js';
import type { Hypervisor, ProbeResult } from '../core/hypervisor.js';
import { FirecrackerHypervisor } from './firecracker/index.js';
import { QemuHypervisor } from './qemu/index.js';
import { VfkitHypervisor } from './vz/index.js';

/**
 * Every backend this build knows, in order of preference when several are available: Firecracker where it can run
 * (Linux with KVM: the fastest boot and the smallest VMM), vz on a Mac with vfkit (Virtualization.framework), else
 * QEMU (KVM, HVF on a Mac without vfkit, WHPX, TCG).
 */
export function allBackends(): Hypervisor[] {
  return [new FirecrackerHypervisor(), new VfkitHypervisor(), new QemuHypervisor()];
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
  /** The guest architectures it runs on this host. */
  readonly arches: readonly Arch[];
}

/** Probes every backend (for `doctor` and for automatic selection), in order of preference. */
export async function probeBackends(): Promise<BackendReport[]> {
  return Promise.all(
    allBackends().map(async (backend) => ({
      name: backend.name,
      probe: await backend.probe(),
      arches: backend.capabilities.arches,
    })),
  );
}

/** The automatic choice for `arch` guests: the first report (preference order) that is available and runs `arch`. */
export function chooseBackend(reports: readonly BackendReport[], arch: Arch): BackendReport | undefined {
  return reports.find((report) => report.probe.available && report.arches.includes(arch));
}

/** Why a preferred backend was passed over for `arch` guests. */
function passedOverBecause(report: BackendReport, arch: Arch): string {
  return report.probe.available ? `runs no ${arch} guests here` : report.probe.reason;
}

/**
 * One sentence for `doctor`: which backend `arch` guests get and why — every backend preferred over it, with the
 * reason it could not be used — or why none can run them.
 */
export function explainBackendChoice(reports: readonly BackendReport[], arch: Arch): string {
  const chosen = chooseBackend(reports, arch);
  const order = reports.map((report) => report.name).join(' > ');
  const passedOver = reports
    .slice(0, chosen ? reports.indexOf(chosen) : reports.length)
    .map((report) => `${report.name}: ${passedOverBecause(report, arch)}`);
  if (!chosen) return `none for ${arch} guests (${passedOver.join('; ')})`;
  const why = passedOver.length > 0 ? `; preferred ones are unavailable (${passedOver.join('; ')})` : '';
  return `${chosen.name} — first available in the order ${order}${why}`;
}

/**
 * The backend to use for a guest of `arch`: `requested` (e.g. `--backend`), else `JITVM_BACKEND`, else the first
 * available one that runs `arch` guests here (Firecracker and vz run only the host's architecture; QEMU emulates the
 * other). A named backend that is unavailable or cannot run `arch` is an error saying why, never a silent fallback.
 */
export async function selectBackend(requested?: string, arch: Arch = hostArch() ?? 'x86_64'): Promise<Hypervisor> {
  const name = requested ?? process.env.JITVM_BACKEND;
  if (name) {
    const backend = backendByName(name);
    const probe = await backend.probe();
    if (!probe.available) throw new JitvmError('unsupported', `backend ${name} is not available: ${probe.reason}`);
    if (!backend.capabilities.arches.includes(arch)) {
      throw new JitvmError('unsupported', `backend ${name} cannot run ${arch} guests on this host; use --backend qemu`);
    }
    return backend;
  }
  const reports = await probeBackends();
  const chosen = chooseBackend(reports, arch);
  if (!chosen) {
    throw new JitvmError(
      'unsupported',
      `no backend can run ${arch} VMs on this host: ${explainBackendChoice(reports, arch)}; run \`jitvm doctor\``,
    );
  }
  return backendByName(chosen.name);
}
