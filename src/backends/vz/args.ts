/**
 * Pure functions of the vz backend: a VmConfig to vfkit's command line, vfkit's `--version` and its VM states.
 * Every flag and device option is checked against crc-org/vfkit@b2bc27e5 (doc/usage.md, pkg/cmdline/cmdline.go,
 * pkg/config/{bootloader,virtio}.go): see docs/backends/vz.md.
 */
import { join } from 'node:path';
import { maxSocketPathBytes } from '../../channel/local-endpoint.js';
import { AGENT_CHANNEL_ARG, AGENT_VSOCK_PORT, BOOT_ARG } from '../../channel/protocol.js';
import { type Drive, type VmConfig, attachOrder } from '../../core/config.js';
import { driveFile } from '../scratch-disk.js';
import { InvalidArgumentError, JitvmError } from '../../core/errors.js';
import type { VmState } from '../../core/hypervisor.js';

/** The files of one VM's runtime dir that appear on vfkit's command line, plus its stderr. */
export interface VfkitPaths {
  /** The REST API (`--restful-uri unix://…`). */
  readonly restSocket: string;
  /** The agent's vsock port, exposed by vfkit as a Unix socket it listens on (`connect` mode). */
  readonly vsockSocket: string;
  /** The guest console (`virtio-serial,logFilePath=…`). */
  readonly consoleLog: string;
  /** vfkit's own stderr (its log and start-up errors); not on the command line. */
  readonly vmmLog: string;
}

export function vfkitRuntimePaths(runtimeDir: string): VfkitPaths {
  return {
    restSocket: join(runtimeDir, 'rest.sock'),
    vsockSocket: join(runtimeDir, 'vsock.sock'),
    consoleLog: join(runtimeDir, 'console.log'),
    vmmLog: join(runtimeDir, 'vmm.log'),
  };
}

/**
 * The guest kernel command line. vfkit's console is a virtio console, so the kernel logs to `hvc0` (there is no
 * UART). `panic=1` turns a panic into a reboot, which ends the VM (vfkit exits once the VM stops).
 */
export function kernelCommandLine(config: VmConfig): string {
  // VZ's NAT hands out addresses by DHCP (192.168.64.0/24 by default): the agent runs busybox udhcpc.
  const net = config.network.mode === 'nat' ? [`${BOOT_ARG.NET}=dhcp`] : [];
  return ['console=hvc0', 'panic=1', 'quiet', AGENT_CHANNEL_ARG.VSOCK, ...net, ...config.kernelArgs].join(' ');
}

/**
 * macOS limits a Unix socket path to 104 bytes with its NUL (sockaddr_un.sun_path); vfkit refuses a longer REST
 * socket path ("socket path length exceeds macOS limits", pkg/rest/rest.go) and the vsock one would fail to bind.
 */
const MAX_SOCKET_PATH = maxSocketPathBytes('darwin');

/**
 * vfkit splits `--device` values on every comma (pkg/config/virtio.go deviceFromCmdLine) with no quoting, and
 * `--bootloader` values on commas outside double quotes (pkg/cmdline/string_slice.go): a path holding either cannot
 * be passed.
 */
function optionValue(what: string, value: string): string {
  if (/[,"]/.test(value)) {
    throw new InvalidArgumentError(
      `${what} ${value} contains a comma or a double quote, which vfkit's option syntax cannot carry; move or link it`,
    );
  }
  return value;
}

/**
 * A socket path vfkit turns into a URL and back (`unix://:PATH` for vsock, `unix://PATH` for REST): characters
 * net/url would escape or decode would make vfkit listen somewhere else, so only these are allowed.
 */
function socketPath(what: string, path: string): string {
  if (!/^[A-Za-z0-9/._~+=@:-]+$/.test(path)) {
    throw new InvalidArgumentError(
      `the ${what} socket path ${path} has characters vfkit would URL-escape; set JITVM_RUNTIME_DIR to a plain path`,
    );
  }
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new InvalidArgumentError(
      `the ${what} socket path ${path} is longer than macOS allows (${MAX_SOCKET_PATH} bytes); ` +
        'set JITVM_RUNTIME_DIR to a shorter directory',
    );
  }
  return path;
}

/** `virtio-blk,path=…[,readonly]`; `readonly` is accepted by virtio-blk since vfkit 0.6.0 (commit 6c92cb58). */
function driveDevice(drive: Drive): string {
  if (drive.rateLimiter) {
    throw new JitvmError(
      'unsupported',
      `the vz backend cannot rate-limit drive ${drive.id}: vfkit has no disk throttling; use the qemu or firecracker backend`,
    );
  }
  return `virtio-blk,path=${optionValue(`drive ${drive.id}'s path`, driveFile(drive))}${drive.readOnly ? ',readonly' : ''}`;
}

/**
 * Each share as `virtio-fs,sharedDir=…,mountTag=…`. vfkit offers no read-only virtio-fs, so a read-only share is
 * refused rather than silently made writable.
 */
function shareDevices(config: VmConfig): string[] {
  return config.shares.flatMap((share) => {
    if (share.readOnly) {
      throw new JitvmError(
        'unsupported',
        `the vz backend cannot share ${share.path} read-only: vfkit's virtio-fs has no read-only mode; pass ` +
          'readOnly: false to share it writable, or attach an ext4 volume image',
      );
    }
    const dir = optionValue(`share ${share.tag}'s path`, share.path);
    return ['--device', `virtio-fs,sharedDir=${dir},mountTag=${share.tag}`];
  });
}

/**
 * The network device, when the config asks for one vfkit can give: NAT (`virtio-net,nat`, Virtualization.framework's
 * VZNATNetworkDeviceAttachment). A host TAP device, which macOS does not have, is refused, never dropped; allowlist
 * mode needs no NIC.
 */
function networkDevices(config: VmConfig): string[] {
  const network = config.network;
  if (network.mode === 'nat') return ['--device', `virtio-net,nat${network.mac ? `,mac=${network.mac}` : ''}`];
  if (network.mode !== 'tap') return [];
  throw new JitvmError(
    'unsupported',
    `the vz backend cannot attach TAP device ${network.tap}: macOS has no TAP devices; use network mode "nat" ` +
      '(virtio-net,nat) or "allowlist" here, or the qemu/firecracker backend on Linux',
  );
}

/**
 * vfkit's argv for `config`: resources, the Linux bootloader, drives (root first), the agent's vsock port in
 * `connect` mode (the guest listens, the host connects through a Unix socket vfkit creates), the console log and
 * the REST API on a Unix socket.
 */
export function buildVfkitArgs(config: VmConfig, paths: VfkitPaths): string[] {
  const cmdline = kernelCommandLine(config);
  const bootloader = [
    'linux',
    `kernel=${optionValue('kernel', config.kernel)}`,
    `initrd=${optionValue('initrd', config.initrd)}`,
    // Quoted: the command line has spaces and `=`; vfkit strips the quotes (util.TrimQuotes).
    `cmdline="${cmdline}"`,
  ].join(',');
  const vsock = socketPath('vsock', paths.vsockSocket);
  const rest = socketPath('REST', paths.restSocket);
  return [
    '--cpus',
    String(config.cpus),
    '--memory',
    String(config.memoryMiB),
    '--bootloader',
    bootloader,
    ...attachOrder(config.drives).flatMap((drive) => ['--device', driveDevice(drive)]),
    ...shareDevices(config),
    ...networkDevices(config),
    '--device',
    `virtio-vsock,port=${AGENT_VSOCK_PORT},socketURL=${vsock},connect`,
    '--device',
    `virtio-serial,logFilePath=${optionValue('console log', paths.consoleLog)}`,
    '--restful-uri',
    `unix://${rest}`,
  ];
}

/** A vfkit release, from `vfkit --version`. `semver` is undefined for a build that does not know its version. */
export interface VfkitVersion {
  /** What vfkit printed after "version: " (e.g. `v0.6.1`, `0.6.1`, `v0.6.1-5-gabcdef0`, `unknown`). */
  readonly text: string;
  readonly semver: readonly [number, number, number] | undefined;
}

/**
 * `vfkit version: v0.6.1` → {text: 'v0.6.1', semver: [0, 6, 1]} (cmd/vfkit/root.go's version template; the version is
 * `git describe` output, or "unknown" / "" for a build without one). Undefined when the output is not vfkit's.
 */
export function parseVfkitVersion(output: string | undefined): VfkitVersion | undefined {
  const match = /^vfkit version: ?(\S*)/.exec(output?.trim() ?? '');
  if (!match) return undefined;
  const text = match[1] ?? '';
  const numbers = /^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$/.exec(text);
  return {
    text,
    semver: numbers ? [Number(numbers[1]), Number(numbers[2]), Number(numbers[3])] : undefined,
  };
}

/** vfkit's `state` strings: Code-Hex/vz's VirtualMachineState names (virtualmachinestate_string.go). */
export const VFKIT_STATES = [
  'VirtualMachineStateStopped',
  'VirtualMachineStateRunning',
  'VirtualMachineStatePaused',
  'VirtualMachineStateError',
  'VirtualMachineStateStarting',
  'VirtualMachineStatePausing',
  'VirtualMachineStateResuming',
  'VirtualMachineStateStopping',
  'VirtualMachineStateSaving',
  'VirtualMachineStateRestoring',
] as const;
export type VfkitState = (typeof VFKIT_STATES)[number];

/**
 * jitvm's state for a vfkit state. A transition in progress maps to where the vCPUs are now (Pausing still runs,
 * Resuming is still frozen, Saving runs from Paused back to Paused). `Stopped` is also VZ's state before `start()`,
 * for the moment between vfkit opening its API and starting the VM: `started` tells the two apart. After a stop or
 * an Error, vfkit exits.
 */
export function vmStateKind(state: VfkitState, started: boolean): VmState['kind'] {
  switch (state) {
    case 'VirtualMachineStateStarting':
    case 'VirtualMachineStateRestoring':
      return 'starting';
    case 'VirtualMachineStateRunning':
    case 'VirtualMachineStatePausing':
      return 'running';
    case 'VirtualMachineStatePaused':
    case 'VirtualMachineStateResuming':
    case 'VirtualMachineStateSaving':
      return 'paused';
    case 'VirtualMachineStateStopping':
      return 'stopping';
    case 'VirtualMachineStateStopped':
      return started ? 'exited' : 'starting';
    case 'VirtualMachineStateError':
      return 'exited';
  }
}

/** Whether `buf` (a kernel's first 2 KiB) is an uncompressed arm64 `Image`: "ARMd" at 0x38, as vfkit checks. */
export function isUncompressedArm64Image(buf: Buffer): boolean {
  return buf.length >= 0x3c && buf.subarray(0x38, 0x3c).toString('latin1') === 'ARMd';
}
