import { join } from 'node:path';
import type { Accelerator, Arch, Drive, Network, RateLimiter, TokenBucket, VmConfig } from '../../core/config.js';
import { AGENT_PORT_NAME } from '../../channel/protocol.js';

/** The files of one VM's runtime dir that appear on QEMU's command line. */
export interface QemuPaths {
  readonly qmpSocket: string;
  readonly agentSocket: string;
  readonly consoleLog: string;
  /** QEMU's own stderr (start-up errors); not on the command line but kept with the others. */
  readonly vmmLog: string;
}

/** The files of a VM's runtime dir. */
export function runtimePaths(runtimeDir: string): QemuPaths {
  return {
    qmpSocket: join(runtimeDir, 'qmp.sock'),
    agentSocket: join(runtimeDir, 'agent.sock'),
    consoleLog: join(runtimeDir, 'console.log'),
    vmmLog: join(runtimeDir, 'vmm.log'),
  };
}

export interface QemuLaunch {
  readonly config: VmConfig;
  readonly accelerator: Accelerator;
  readonly paths: QemuPaths;
  /** Whether this QEMU build has seccomp (`-sandbox`). */
  readonly seccomp: boolean;
  /** Process name shown in ps. */
  readonly name: string;
}

/** The QEMU binary for a guest architecture. */
export function qemuBinary(arch: Arch): string {
  return arch === 'x86_64' ? 'qemu-system-x86_64' : 'qemu-system-aarch64';
}

/** Under TCG the guest's TSC calibration against the PIT hangs about one boot in four; a fixed TSC rate avoids it. */
const TCG_TSC_KHZ = 2_000_000;

/** The guest kernel command line: console, reboot-means-exit, plus the caller's extra arguments. */
export function kernelCommandLine(config: VmConfig, accelerator: Accelerator): string {
  const console = config.arch === 'x86_64' ? 'ttyS0' : 'ttyAMA0';
  const args = [`console=${console}`, 'reboot=t', 'panic=-1', 'quiet'];
  // microvm has no PCI bus: skip probing for one (and the "no config space access" console error).
  if (config.arch === 'x86_64') args.push('pci=off');
  if (config.arch === 'x86_64' && accelerator === 'tcg') args.push(`tsc_early_khz=${TCG_TSC_KHZ}`);
  return [...args, ...config.kernelArgs].join(' ');
}

function machineArgs(arch: Arch, accelerator: Accelerator): string[] {
  if (arch === 'x86_64') {
    return ['-M', 'microvm', '-accel', accelerator, ...(accelerator === 'tcg' ? [] : ['-cpu', 'host'])];
  }
  // Pointer-authentication emulation makes `-cpu max` several times slower to boot under TCG.
  return ['-M', 'virt', '-accel', accelerator, '-cpu', accelerator === 'tcg' ? 'cortex-a57' : 'host'];
}

/** QEMU option values are comma-separated: a literal comma is written twice. */
function optionValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/** A token bucket's steady rate per second (QEMU throttles by rate; Firecracker's burst has no exact twin). */
function perSecond(bucket: TokenBucket): number {
  return Math.max(1, Math.floor((bucket.size * 1000) / bucket.refillTimeMs));
}

function throttling(limiter: RateLimiter | undefined): string[] {
  if (!limiter) return [];
  return [
    ...(limiter.bandwidth ? [`throttling.bps-total=${perSecond(limiter.bandwidth)}`] : []),
    ...(limiter.ops ? [`throttling.iops-total=${perSecond(limiter.ops)}`] : []),
  ];
}

/** Each drive as a raw-format virtio-blk device; the root drive first so the guest sees it as /dev/vda. */
function driveArgs(drives: readonly Drive[]): string[] {
  const ordered = [...drives].sort((a, b) => Number(b.root) - Number(a.root));
  return ordered.flatMap((drive) => {
    const options = [
      `id=drive-${drive.id}`,
      `file=${optionValue(drive.path)}`,
      'format=raw',
      'if=none',
      `readonly=${drive.readOnly ? 'on' : 'off'}`,
      ...throttling(drive.rateLimiter),
    ];
    return ['-drive', options.join(','), '-device', `virtio-blk-device,drive=drive-${drive.id}`];
  });
}

/** A virtio-net NIC on the host TAP device (QEMU's netdev throttling has no rx/tx split: not supported). */
function networkArgs(network: Network): string[] {
  if (network.mode === 'none') return [];
  const device = ['virtio-net-device', 'netdev=net0', ...(network.mac ? [`mac=${network.mac}`] : [])];
  return ['-netdev', `tap,id=net0,ifname=${network.tap},script=no,downscript=no`, '-device', device.join(',')];
}

/**
 * Pure config → argv for QEMU: direct kernel boot, no default devices, serial console to a file, QMP and the agent's
 * virtio-serial port on Unix sockets, and `-no-reboot` so a guest reboot or panic ends the process.
 */
export function buildQemuArgs(launch: QemuLaunch): string[] {
  const { config, accelerator, paths } = launch;
  // prettier-ignore
  return [
    '-name', launch.name,
    ...machineArgs(config.arch, accelerator),
    '-smp', String(config.cpus),
    '-m', `${config.memoryMiB}M`,
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-kernel', config.kernel,
    '-initrd', config.initrd,
    '-append', kernelCommandLine(config, accelerator),
    '-chardev', `file,id=console,path=${paths.consoleLog}`,
    '-serial', 'chardev:console',
    '-qmp', `unix:${paths.qmpSocket},server=on,wait=off`,
    '-device', 'virtio-serial-device',
    '-chardev', `socket,id=agent,path=${paths.agentSocket},server=on,wait=off`,
    '-device', `virtserialport,chardev=agent,name=${AGENT_PORT_NAME}`,
    ...driveArgs(config.drives),
    ...networkArgs(config.network),
    ...(launch.seccomp
      ? ['-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny']
      : []),
  ];
}
