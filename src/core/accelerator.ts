import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import path from 'node:path';
import { ACCELERATORS, type Accelerator, type Arch, hostArch } from './config.js';
import { InvalidArgumentError } from './errors.js';

/** The accelerator a VM of `arch` gets on this host, and why. */
export interface AcceleratorChoice {
  readonly accelerator: Accelerator;
  readonly reason: string;
}

/** Whether one hardware accelerator can run guests here, and why (not). */
export interface Availability {
  readonly usable: boolean;
  readonly reason: string;
}

/** The file checks the accelerator probes make, injectable so every branch is tested on any host. */
export interface HostFiles {
  exists(path: string): boolean;
  readWritable(path: string): boolean;
}

const realFiles: HostFiles = {
  exists: existsSync,
  readWritable: (file) => {
    try {
      accessSync(file, constants.R_OK | constants.W_OK);
      return true;
    } catch {
      return false;
    }
  },
};

/** Whether /dev/kvm can run ordinary guests here, and why not when it cannot. */
export function kvmUsable(files: HostFiles = realFiles, cpu: NodeJS.Architecture = process.arch): Availability {
  if (!files.readWritable('/dev/kvm')) {
    return { usable: false, reason: files.exists('/dev/kvm') ? '/dev/kvm is not read-writable by you' : 'no /dev/kvm' };
  }
  // arm64 KVM is built into the kernel (no vendor module), and PVM exists on x86 only.
  if (cpu === 'arm64') return { usable: true, reason: '/dev/kvm is usable (arm64 KVM)' };
  // A PVM host (kvm_pvm) exposes /dev/kvm but only runs PVM-patched guest kernels: ordinary guests hang at boot.
  const vendorModule = ['kvm_intel', 'kvm_amd'].find((name) => files.exists(`/sys/module/${name}`));
  if (vendorModule) return { usable: true, reason: `/dev/kvm is usable (${vendorModule})` };
  if (files.exists('/sys/module/kvm_pvm')) {
    return { usable: false, reason: '/dev/kvm is provided by kvm_pvm, which runs only PVM guest kernels' };
  }
  return { usable: false, reason: '/dev/kvm exists but neither kvm_intel nor kvm_amd is loaded' };
}

/** How to turn WHPX on (qemu.org/docs/master/system/whpx.html). */
export const WHPX_REMEDY =
  'enable Windows Hypervisor Platform (Settings → Optional features → More Windows features, or ' +
  '`DISM /Online /Enable-Feature /FeatureName:HypervisorPlatform /All` as administrator), then reboot';

/**
 * Whether Windows Hypervisor Platform is installed. QEMU's WHPX accelerator starts by loading WinHvPlatform.dll
 * (target/i386/whpx), which the optional feature installs, so a missing DLL means WHPX cannot start. A present DLL
 * does not prove the hypervisor runs (feature enabled but no reboot yet, virtualization off in firmware): QEMU then
 * fails with "WHPX: No accelerator found", which spawn reports with the same remedy.
 */
export function whpxUsable(env: NodeJS.ProcessEnv = process.env, files: HostFiles = realFiles): Availability {
  const systemRoot = env.SystemRoot ?? env.SYSTEMROOT ?? env.windir;
  if (!systemRoot) return { usable: false, reason: 'SystemRoot is not set, so WinHvPlatform.dll cannot be found' };
  const dll = path.win32.join(systemRoot, 'System32', 'WinHvPlatform.dll');
  if (files.exists(dll)) return { usable: true, reason: `Windows Hypervisor Platform is installed (${dll})` };
  return { usable: false, reason: `Windows Hypervisor Platform is not enabled (${dll} is missing): ${WHPX_REMEDY}` };
}

/** `sysctl -n <name>` on macOS, or undefined when it cannot be read. */
function sysctl(name: string): string | undefined {
  try {
    return execFileSync('/usr/sbin/sysctl', ['-n', name], { encoding: 'utf8', timeout: 5000, stdio: 'pipe' }).trim();
  } catch {
    return undefined;
  }
}

/** Whether Hypervisor.framework can run guests: Apple's documented check is the `kern.hv_support` sysctl. */
export function hvfUsable(readSysctl: (name: string) => string | undefined = sysctl): Availability {
  const support = readSysctl('kern.hv_support');
  if (support === '1') return { usable: true, reason: 'Hypervisor.framework is available (kern.hv_support=1)' };
  if (support === '0') {
    return {
      usable: false,
      reason:
        'this Mac offers no hardware virtualization (kern.hv_support=0; a macOS VM without nested virtualization says so too)',
    };
  }
  return {
    usable: false,
    reason: 'kern.hv_support could not be read, so Hypervisor.framework support is unknown (JITVM_ACCEL=hvf tries it)',
  };
}

/** What the choice depends on: the platform, the host CPU, JITVM_ACCEL and one check per hardware accelerator. */
export interface AcceleratorHost {
  readonly platform: NodeJS.Platform;
  /** The host CPU in jitvm's naming; undefined for one jitvm runs no guests on. */
  readonly cpu: Arch | undefined;
  readonly env: NodeJS.ProcessEnv;
  readonly kvm: () => Availability;
  readonly hvf: () => Availability;
  readonly whpx: () => Availability;
}

let hvfAnswer: Availability | undefined;

const thisHost: AcceleratorHost = {
  platform: process.platform,
  cpu: hostArch(),
  env: process.env,
  kvm: () => kvmUsable(),
  // Asked once per process: it runs a program, and the answer cannot change while we run.
  hvf: () => (hvfAnswer ??= hvfUsable()),
  whpx: () => whpxUsable(),
};

/** The hardware accelerator each platform has, and its check. */
const HARDWARE: Partial<
  Record<NodeJS.Platform, { accelerator: Accelerator; check(host: AcceleratorHost): Availability }>
> = {
  linux: { accelerator: 'kvm', check: (host) => host.kvm() },
  darwin: { accelerator: 'hvf', check: (host) => host.hvf() },
  win32: { accelerator: 'whpx', check: (host) => host.whpx() },
};

/**
 * Picks the fastest accelerator for `arch`: kvm on Linux, hvf on macOS, whpx on Windows when the guest matches the
 * host's architecture and the check passes, else tcg (software emulation) with the reason. `JITVM_ACCEL` overrides
 * the choice; a value that names no accelerator is refused.
 */
export function chooseAccelerator(arch: Arch, host: AcceleratorHost = thisHost): AcceleratorChoice {
  const forced = host.env.JITVM_ACCEL;
  if (forced !== undefined && forced !== '') {
    const accelerator = ACCELERATORS.find((name) => name === forced);
    if (!accelerator) throw new InvalidArgumentError(`JITVM_ACCEL=${forced} is not one of ${ACCELERATORS.join(', ')}`);
    return { accelerator, reason: `JITVM_ACCEL=${forced}` };
  }
  if (arch !== host.cpu) {
    return { accelerator: 'tcg', reason: `${arch} guests on ${host.cpu ?? 'this'} hosts need emulation` };
  }
  const hardware = HARDWARE[host.platform];
  if (!hardware) return { accelerator: 'tcg', reason: `jitvm knows no hardware accelerator on ${host.platform}` };
  const availability = hardware.check(host);
  if (availability.usable) return { accelerator: hardware.accelerator, reason: availability.reason };
  return { accelerator: 'tcg', reason: `${availability.reason}; software emulation (TCG) is much slower` };
}
