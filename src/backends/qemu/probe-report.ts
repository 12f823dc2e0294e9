/** What the QEMU backend's probe and start-up failures tell the user, per platform: pure, so every case is tested. */
import type { AcceleratorChoice } from '../../core/accelerator.js';
import { WHPX_REMEDY } from '../../core/accelerator.js';
import type { Accelerator, Arch } from '../../core/config.js';
import type { ProbeResult } from '../../core/hypervisor.js';
import { qemuBinary } from './args.js';
import { qemuInstallHint } from './binary.js';

/** The probe of a host without QEMU for `arch`. */
export function qemuMissing(arch: Arch, platform: NodeJS.Platform): ProbeResult {
  const name = qemuBinary(arch);
  return {
    available: false,
    reason: `${name} not found on PATH (install: ${qemuInstallHint(arch, platform)})`,
    accelerator: undefined,
    binary: undefined,
    version: undefined,
    warnings: [],
  };
}

/**
 * The warning for guests under TCG: slow, and outside QEMU's security policy ("Users with non-virtualization use
 * cases must not rely on QEMU to provide guest isolation", docs/system/security.rst).
 */
export function tcgWarning(reason: string): string {
  return `no hardware acceleration, guests run under TCG, which is slow and not isolated per QEMU's security policy: ${reason}`;
}

/** What was found on a host that has QEMU. */
export interface QemuFound {
  readonly binary: string;
  readonly version: string | undefined;
  readonly choice: AcceleratorChoice;
  /** Whether this QEMU build has seccomp (`-sandbox`). */
  readonly seccomp: boolean;
  readonly platform: NodeJS.Platform;
}

/**
 * The probe of a host with QEMU: which accelerator guests get and why, with a warning when that is TCG (the
 * reason says how to get hardware acceleration: enable WHPX and reboot, load kvm_intel…).
 */
export function qemuFound(found: QemuFound): ProbeResult {
  const { choice } = found;
  const noSeccomp =
    found.platform === 'linux'
      ? 'this QEMU has no seccomp support (-sandbox): the VMM runs without a syscall filter'
      : `QEMU has no syscall filter on ${found.platform} (-sandbox is Linux-only): the VMM runs unconfined`;
  return {
    available: true,
    reason: `${found.binary} found; accelerator ${choice.accelerator} (${choice.reason})`,
    accelerator: choice.accelerator,
    binary: found.binary,
    version: found.version,
    warnings: [
      ...(choice.accelerator === 'tcg' ? [tcgWarning(choice.reason)] : []),
      ...(found.seccomp ? [] : [noSeccomp]),
    ],
  };
}

/**
 * What to add to a QEMU start-up failure that QEMU's own output blames on the hardware accelerator: "failed to
 * initialize <accel>" (system/vl.c) or "invalid accelerator <accel>" (a build without it). Undefined otherwise:
 * QEMU also names the accelerator when it starts fine ("WHPX: setting APIC emulation mode…").
 */
export function acceleratorFailureHint(accelerator: Accelerator, vmmOutput: string): string | undefined {
  if (accelerator === 'tcg') return undefined;
  const output = vmmOutput.toLowerCase();
  const withoutIt = 'or set JITVM_ACCEL=tcg to run without acceleration';
  if (output.includes(`invalid accelerator ${accelerator}`)) {
    return `this QEMU build has no ${accelerator} accelerator: install one that has it, ${withoutIt}`;
  }
  if (!output.includes(`failed to initialize ${accelerator}`)) return undefined;
  const remedy = accelerator === 'whpx' ? `${WHPX_REMEDY}; ` : '';
  return `the ${accelerator} accelerator failed to start: ${remedy}${withoutIt}`;
}
