import { accessSync, constants, existsSync } from 'node:fs';
import { type Accelerator, type Arch, hostArch } from './config.js';

/** The accelerator a VM of `arch` gets on this host, and why. */
export interface AcceleratorChoice {
  readonly accelerator: Accelerator;
  readonly reason: string;
}

/** Whether /dev/kvm can run ordinary guests here, and why not when it cannot. */
export function kvmUsable(): { usable: boolean; reason: string } {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { usable: false, reason: existsSync('/dev/kvm') ? '/dev/kvm is not read-writable by you' : 'no /dev/kvm' };
  }
  // arm64 KVM is built into the kernel (no vendor module), and PVM exists on x86 only.
  if (process.arch === 'arm64') return { usable: true, reason: '/dev/kvm is usable (arm64 KVM)' };
  // A PVM host (kvm_pvm) exposes /dev/kvm but only runs PVM-patched guest kernels: ordinary guests hang at boot.
  const vendorModule = ['kvm_intel', 'kvm_amd'].find((name) => existsSync(`/sys/module/${name}`));
  if (vendorModule) return { usable: true, reason: `/dev/kvm is usable (${vendorModule})` };
  if (existsSync('/sys/module/kvm_pvm')) {
    return { usable: false, reason: '/dev/kvm is provided by kvm_pvm, which runs only PVM guest kernels' };
  }
  return { usable: false, reason: '/dev/kvm exists but neither kvm_intel nor kvm_amd is loaded' };
}

/**
 * Picks the fastest accelerator for `arch`: kvm on Linux, hvf on macOS, whpx on Windows when the guest matches the
 * host's architecture, else tcg (software emulation). `JITVM_ACCEL` overrides the choice.
 */
export function chooseAccelerator(arch: Arch): AcceleratorChoice {
  const forced = process.env.JITVM_ACCEL;
  if (forced === 'kvm' || forced === 'hvf' || forced === 'whpx' || forced === 'tcg') {
    return { accelerator: forced, reason: `JITVM_ACCEL=${forced}` };
  }
  if (arch !== hostArch()) {
    return { accelerator: 'tcg', reason: `a ${arch} guest on a ${process.arch} host needs emulation` };
  }
  if (process.platform === 'darwin') return { accelerator: 'hvf', reason: 'macOS Hypervisor.framework' };
  if (process.platform === 'win32') return { accelerator: 'whpx', reason: 'Windows Hypervisor Platform' };
  const kvm = kvmUsable();
  if (kvm.usable) return { accelerator: 'kvm', reason: kvm.reason };
  return { accelerator: 'tcg', reason: `${kvm.reason}; software emulation (TCG) is much slower` };
}
