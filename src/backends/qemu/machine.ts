/**
 * The QEMU machine each (guest arch, accelerator) pair boots on, as data. The host platform enters through the
 * accelerator (kvm: Linux, hvf: macOS, whpx: Windows; tcg: anywhere) and through the transport (args.ts).
 * Sources for each choice are in docs/backends/qemu.md.
 */
import type { Accelerator, Arch } from '../../core/config.js';

/** How virtio devices attach: virtio-mmio (`virtio-*-device`) or PCI (`virtio-*-pci`). */
export type VirtioBus = 'mmio' | 'pci';

/** Everything about one machine type that changes the command line or the lifecycle. */
export interface MachineProfile {
  /** The `-M` value. */
  readonly machine: 'microvm' | 'pc' | 'q35' | 'virt';
  /** The `-cpu` value; undefined keeps QEMU's default model for the machine. */
  readonly cpu: string | undefined;
  readonly virtioBus: VirtioBus;
  /** The guest's serial console device. */
  readonly console: 'ttyS0' | 'ttyAMA0';
  /**
   * Whether QMP `system_powerdown` reaches the guest: ACPI (microvm's GED, pc/q35's PM device) does. `virt` with
   * direct kernel boot has no ACPI; its power button is a gpio-keys node that Debian's cloud-arm64 kernel cannot
   * see (`# CONFIG_KEYBOARD_GPIO is not set`), so stop() must not wait for a power-off that will never come.
   */
  readonly powerButton: boolean;
  /** Kernel arguments this machine needs besides the console. */
  readonly kernelArgs: readonly string[];
}

/** Under TCG the guest's TSC calibration against the PIT hangs about one boot in four; a fixed TSC rate avoids it. */
const TCG_TSC_KHZ = 2_000_000;

/** microvm has no PCI bus: `pci=off` skips probing for one (and its "no config space access" console error). */
const MICROVM = { machine: 'microvm', virtioBus: 'mmio', console: 'ttyS0', powerButton: true } as const;
/** pc/q35: virtio over PCI (the initramfs loads virtio_pci), ACPI power button. */
const X86_PCI = { virtioBus: 'pci', console: 'ttyS0', powerButton: true, kernelArgs: [] } as const;
const VIRT = { machine: 'virt', virtioBus: 'mmio', console: 'ttyAMA0', powerButton: false, kernelArgs: [] } as const;

/**
 * The machine for a guest of `arch` under `accelerator`:
 * - x86_64 on kvm or tcg: `microvm` with virtio-mmio (`-cpu host` under kvm; TCG keeps the default model).
 * - x86_64 on whpx: `pc`, as QEMU's WHPX docs do; WHPX refuses microvm's split irqchip and `-cpu host`
 *   ("requires KVM or HVF"), so the default CPU model.
 * - x86_64 on hvf (Intel Macs): `q35` with `-cpu host`; microvm under HVF is documented nowhere.
 * - aarch64: `virt`, `-cpu host` on a hardware accelerator; `cortex-a57` under TCG, because
 *   pointer-authentication emulation makes `-cpu max` several times slower to boot.
 */
export function machineProfile(arch: Arch, accelerator: Accelerator): MachineProfile {
  if (arch === 'aarch64') return { ...VIRT, cpu: accelerator === 'tcg' ? 'cortex-a57' : 'host' };
  switch (accelerator) {
    case 'kvm':
      return { ...MICROVM, cpu: 'host', kernelArgs: ['pci=off'] };
    case 'tcg':
      return { ...MICROVM, cpu: undefined, kernelArgs: ['pci=off', `tsc_early_khz=${TCG_TSC_KHZ}`] };
    case 'whpx':
      return { ...X86_PCI, machine: 'pc', cpu: undefined };
    case 'hvf':
      return { ...X86_PCI, machine: 'q35', cpu: 'host' };
  }
}

/** The virtio device type for `kind` (`serial`, `blk`, `net`) on `bus`. */
export function virtioDevice(kind: 'serial' | 'blk' | 'net', bus: VirtioBus): string {
  return `virtio-${kind}-${bus === 'mmio' ? 'device' : 'pci'}`;
}
