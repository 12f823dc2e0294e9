/** Pure VmConfig → Firecracker request bodies. Paths are as Firecracker sees them (inside the jail when jailed). */
import { AGENT_CHANNEL_ARG } from '../../channel/protocol.js';
import { type Drive, type Network, type RateLimiter, type VmConfig, attachOrder } from '../../core/config.js';
import { JitvmError } from '../../core/errors.js';
import type {
  BootSourceBody,
  DriveBody,
  MachineConfigBody,
  NetworkInterfaceBody,
  RateLimiterBody,
  VsockBody,
} from './api-types.js';
import { type NatPlan, natBootArg } from './nat-plan.js';

/** The guest's vsock CID: any value ≥ 3 works, and each Firecracker process has its own vsock namespace. */
export const GUEST_CID = 3;

/** Where each file a boot needs is, in Firecracker's view. */
export interface VmmFiles {
  readonly kernel: string;
  readonly initrd: string;
  drivePath(drive: Drive): string;
  readonly vsockSocket: string;
}

export interface BootRequests {
  readonly bootSource: BootSourceBody;
  readonly machineConfig: MachineConfigBody;
  readonly drives: readonly DriveBody[];
  readonly networkInterfaces: readonly NetworkInterfaceBody[];
  readonly vsock: VsockBody;
}

/**
 * The guest kernel command line. `reboot=k` makes a guest reboot reset through the keyboard controller, which ends
 * Firecracker; the i8042 flags skip probing for a mouse and mux that Firecracker does not emulate (actions.md), but
 * not `i8042.nopnp`, which breaks SendCtrlAltDel on ACPI kernels (CHANGELOG #5074). A NAT'ed guest gets its address
 * from `jitvm.net`, before the caller's arguments.
 */
export function kernelBootArgs(config: VmConfig, nat?: NatPlan): string {
  const console = config.arch === 'x86_64' ? ['console=ttyS0', 'reboot=k'] : ['console=ttyS0'];
  const i8042 = config.arch === 'x86_64' ? ['i8042.noaux', 'i8042.nomux', 'i8042.dumbkbd'] : ([] as string[]);
  const net = nat ? [natBootArg(nat)] : [];
  return [...console, 'panic=1', 'quiet', ...i8042, AGENT_CHANNEL_ARG.VSOCK, ...net, ...config.kernelArgs].join(' ');
}

export function rateLimiterBody(limiter: RateLimiter): RateLimiterBody {
  const bucket = (b: NonNullable<RateLimiter['bandwidth']>) => ({
    size: b.size,
    refill_time: b.refillTimeMs,
    ...(b.oneTimeBurst === undefined ? {} : { one_time_burst: b.oneTimeBurst }),
  });
  return {
    ...(limiter.bandwidth ? { bandwidth: bucket(limiter.bandwidth) } : {}),
    ...(limiter.ops ? { ops: bucket(limiter.ops) } : {}),
  };
}

/** The NIC on a host TAP device: the caller's (`tap`) or the planned NAT's (`nat`); other modes have none. */
function networkInterfaces(network: Network, nat: NatPlan | undefined): NetworkInterfaceBody[] {
  if (network.mode === 'nat') {
    if (!nat) throw new JitvmError('internal', 'a nat VM reached its boot requests without a host NAT');
    return [{ iface_id: 'eth0', host_dev_name: nat.tap, guest_mac: nat.mac }];
  }
  if (network.mode !== 'tap') return [];
  return [
    {
      iface_id: 'eth0',
      host_dev_name: network.tap,
      ...(network.mac ? { guest_mac: network.mac } : {}),
      ...(network.rxRateLimiter ? { rx_rate_limiter: rateLimiterBody(network.rxRateLimiter) } : {}),
      ...(network.txRateLimiter ? { tx_rate_limiter: rateLimiterBody(network.txRateLimiter) } : {}),
    },
  ];
}

/** Every pre-boot request body; `nat` is the host NAT set up for a `nat` VM (required then). */
export function bootRequests(config: VmConfig, files: VmmFiles, nat?: NatPlan): BootRequests {
  return {
    bootSource: { kernel_image_path: files.kernel, initrd_path: files.initrd, boot_args: kernelBootArgs(config, nat) },
    // SMT off: one vCPU per host thread is what the vCPU count promises, and it allows odd counts.
    machineConfig: { vcpu_count: config.cpus, mem_size_mib: config.memoryMiB, smt: false },
    drives: attachOrder(config.drives).map((drive) => ({
      drive_id: drive.id,
      is_root_device: drive.root,
      is_read_only: drive.readOnly,
      path_on_host: files.drivePath(drive),
      ...(drive.rateLimiter ? { rate_limiter: rateLimiterBody(drive.rateLimiter) } : {}),
    })),
    networkInterfaces: networkInterfaces(config.network, nat),
    vsock: { guest_cid: GUEST_CID, uds_path: files.vsockSocket },
  };
}
