import {
  type Accelerator,
  type Arch,
  type Drive,
  type Network,
  type RateLimiter,
  type TokenBucket,
  type VmConfig,
  attachOrder,
  hasNic,
} from '../../core/config.js';
import { driveFile } from '../scratch-disk.js';
import { AGENT_CHANNEL_ARG, AGENT_PORT_NAME, BOOT_ARG } from '../../channel/protocol.js';
import {
  type LocalEndpoint,
  type LocalTransport,
  localEndpoint,
  localTransport,
} from '../../channel/local-endpoint.js';
import { platformPath } from '../../core/paths.js';
import { optionValue, qmpArgs, serverChardev } from './chardev.js';
import { type GuestRam, RAM_MACHINE_OPTION, ramArgs } from './guest-ram.js';
import { type MachineProfile, machineProfile, virtioDevice } from './machine.js';
import { shareArgs } from './virtiofs.js';

/** The files and endpoints of one VM's runtime dir that appear on QEMU's command line. */
export interface QemuPaths {
  /** How QMP and the agent port are served: Unix sockets in the runtime dir, or named pipes on Windows. */
  readonly transport: LocalTransport;
  /** QMP's address: a socket path, or `\\.\pipe\jitvm-<id>-qmp` (what net.connect takes). */
  readonly qmpSocket: string;
  /** The agent port's address, likewise. */
  readonly agentSocket: string;
  readonly consoleLog: string;
  /** QEMU's own stderr (start-up errors); not on the command line but kept with the others. */
  readonly vmmLog: string;
  /** The runtime dir itself (virtiofsd's sockets live there). */
  readonly runtimeDir: string;
}

/**
 * The files and endpoints of the VM whose runtime dir is `runtimeDir`, on `platform`. The VM id (which names the
 * Windows pipes) is the runtime dir's name unless given.
 */
export function runtimePaths(
  runtimeDir: string,
  options: { readonly vmId?: string; readonly platform?: NodeJS.Platform } = {},
): QemuPaths {
  const platform = options.platform ?? process.platform;
  const paths = platformPath(platform);
  const vmId = options.vmId ?? paths.basename(runtimeDir);
  const endpoint = (role: string): string => localEndpoint({ runtimeDir, vmId, role }, platform).address;
  return {
    transport: localTransport(platform),
    qmpSocket: endpoint('qmp'),
    agentSocket: endpoint('agent'),
    consoleLog: paths.join(runtimeDir, 'console.log'),
    vmmLog: paths.join(runtimeDir, 'vmm.log'),
    runtimeDir,
  };
}

/** The QMP endpoint of a VM's paths. */
export function qmpEndpoint(paths: QemuPaths): LocalEndpoint {
  return { transport: paths.transport, address: paths.qmpSocket };
}

/** The agent port's endpoint of a VM's paths. */
export function agentEndpoint(paths: QemuPaths): LocalEndpoint {
  return { transport: paths.transport, address: paths.agentSocket };
}

export interface QemuLaunch {
  readonly config: VmConfig;
  readonly accelerator: Accelerator;
  readonly paths: QemuPaths;
  /** Whether this QEMU build has seccomp (`-sandbox`). */
  readonly seccomp: boolean;
  /** Process name shown in ps. */
  readonly name: string;
  /** Guest RAM in a file (snapshots need it); anonymous RAM when absent. */
  readonly ram?: GuestRam;
  /** Start paused, waiting for device state through QMP `migrate-incoming` (a restore). */
  readonly incoming?: boolean;
  /** qcow2 overlays standing in for writable drives, by drive id (a clone's own copy-on-write disk). */
  readonly overlays?: ReadonlyMap<string, string>;
}

/** The QEMU binary for a guest architecture. */
export function qemuBinary(arch: Arch): string {
  return arch === 'x86_64' ? 'qemu-system-x86_64' : 'qemu-system-aarch64';
}

/**
 * QEMU user-mode networking's fixed layout (its defaults, spelled out): the guest's address, the gateway that is
 * also the host's loopback, and the DNS forwarder. The agent configures the NIC from the `jitvm.net` argument.
 */
export const USER_NET = { guest: '10.0.2.15/24', gateway: '10.0.2.2', dns: '10.0.2.3', net: '10.0.2.0/24' } as const;

/** The guest kernel command line: console, reboot-means-exit, what the machine needs, then the caller's arguments. */
export function kernelCommandLine(config: VmConfig, accelerator: Accelerator): string {
  const profile = machineProfile(config.arch, accelerator);
  const args = [
    `console=${profile.console}`,
    'reboot=t',
    'panic=-1',
    'quiet',
    AGENT_CHANNEL_ARG.SERIAL,
    ...profile.kernelArgs,
    ...(config.network.mode === 'nat' ? [`${BOOT_ARG.NET}=${USER_NET.guest},${USER_NET.gateway},${USER_NET.dns}`] : []),
  ];
  return [...args, ...config.kernelArgs].join(' ');
}

function machineArgs(profile: MachineProfile, accelerator: Accelerator, ram: GuestRam | undefined): string[] {
  const machine = ram ? `${profile.machine},${RAM_MACHINE_OPTION}` : profile.machine;
  return ['-M', machine, '-accel', accelerator, ...(profile.cpu ? ['-cpu', profile.cpu] : [])];
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

/** virtio-blk's serial holds 20 bytes (VIRTIO_BLK_ID_BYTES); longer ids are found by attach order instead. */
const MAX_SERIAL = 20;

/**
 * Each drive as a virtio-blk device, the root drive first so the guest sees it as /dev/vda: the raw image, or the
 * qcow2 overlay a clone writes to instead. The drive id is the disk's serial, so the agent finds it by id.
 */
function driveArgs(
  drives: readonly Drive[],
  profile: MachineProfile,
  overlays: ReadonlyMap<string, string> = new Map(),
): string[] {
  return attachOrder(drives).flatMap((drive) => {
    const overlay = overlays.get(drive.id);
    const file = overlay ?? driveFile(drive);
    const options = [
      `id=drive-${drive.id}`,
      `file=${optionValue(file)}`,
      `format=${overlay ? 'qcow2' : 'raw'}`,
      'if=none',
      `readonly=${drive.readOnly ? 'on' : 'off'}`,
      ...throttling(drive.rateLimiter),
    ];
    const serial = drive.id.length <= MAX_SERIAL ? `,serial=${drive.id}` : '';
    return [
      '-drive',
      options.join(','),
      '-device',
      `${virtioDevice('blk', profile.virtioBus)},drive=drive-${drive.id}${serial}`,
    ];
  });
}

/** The NIC's backend: user-mode NAT (IPv4 only: the agent configures no IPv6), or the host TAP device. */
function netdev(network: Extract<Network, { mode: 'nat' | 'tap' }>): string {
  if (network.mode === 'nat') {
    return `user,id=net0,net=${USER_NET.net},host=${USER_NET.gateway},dns=${USER_NET.dns},ipv6=off`;
  }
  return `tap,id=net0,ifname=${network.tap},script=no,downscript=no`;
}

/**
 * A virtio-net NIC for `nat` and `tap` modes; none otherwise (allowlist mode's proxy rides the agent channel).
 * QEMU's netdev throttling has no rx/tx split: TAP rate limits are refused before this.
 */
function networkArgs(network: Network, profile: MachineProfile): string[] {
  if (!hasNic(network)) return [];
  const device = [
    virtioDevice('net', profile.virtioBus),
    'netdev=net0',
    ...(network.mac ? [`mac=${network.mac}`] : []),
  ];
  return ['-netdev', netdev(network), '-device', device.join(',')];
}

/**
 * Pure config → argv for QEMU: direct kernel boot on the machine `machineProfile` picks, no default devices, serial
 * console to a file, QMP and the agent's virtio-serial port on local endpoints (Unix sockets, or named pipes on
 * Windows), and `-no-reboot` so a guest reboot or panic ends the process.
 */
export function buildQemuArgs(launch: QemuLaunch): string[] {
  const { config, accelerator, paths } = launch;
  const profile = machineProfile(config.arch, accelerator);
  // prettier-ignore
  return [
    '-name', launch.name,
    ...machineArgs(profile, accelerator, launch.ram),
    '-smp', String(config.cpus),
    '-m', `${config.memoryMiB}M`,
    ...(launch.ram ? ramArgs(launch.ram, config.memoryMiB) : []),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-kernel', config.kernel,
    '-initrd', config.initrd,
    '-append', kernelCommandLine(config, accelerator),
    '-chardev', `file,id=console,path=${optionValue(paths.consoleLog)}`,
    '-serial', 'chardev:console',
    ...qmpArgs(qmpEndpoint(paths)),
    '-device', virtioDevice('serial', profile.virtioBus),
    '-chardev', serverChardev('agent', agentEndpoint(paths)),
    '-device', `virtserialport,chardev=agent,name=${AGENT_PORT_NAME}`,
    ...driveArgs(config.drives, profile, launch.overlays),
    ...networkArgs(config.network, profile),
    ...shareArgs(config.shares, paths.runtimeDir, profile.virtioBus),
    ...(launch.incoming ? ['-S', '-incoming', 'defer'] : []),
    ...(launch.seccomp
      ? ['-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny']
      : []),
  ];
}
