/** Lays out the guest's root filesystem (agent as /init, busybox, kernel modules) as a gzip'd newc initramfs. */

import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';

import type { Busybox } from './busybox.js';
import { CpioWriter } from './cpio.js';
import type { ResolvedModule } from './modules.js';

/**
 * Kernel modules the guest needs on x86_64 QEMU microvm / Firecracker with Debian's cloud kernel
 * (their dependencies are added automatically): virtio transports, console, disk, network, vsock, overlayfs,
 * virtio-fs shares, and the ACPI power button with evdev (the agent reads KEY_POWER from /dev/input/event*).
 */
export const GUEST_MODULES: readonly string[] = [
  'virtio_mmio',
  'virtio_pci',
  'virtio_console',
  'virtio_blk',
  'virtio_net',
  'vmw_vsock_virtio_transport',
  'overlay',
  'virtiofs',
  'button',
  'evdev',
];

/** In-guest file listing the modules the agent loads at boot: absolute paths, one per line, in load order. */
export const GUEST_MODULE_LIST = '/etc/jitvm/modules';

/** Where module `name` lives in the guest. */
export function guestModulePath(name: string): string {
  return `/lib/modules/${name}.ko`;
}

/** What goes into the initramfs. */
export interface InitramfsInputs {
  /** Host path of the static agent binary; becomes /init. */
  agent: string;
  busybox: Busybox;
  /** Modules in load order. */
  modules: readonly ResolvedModule[];
}

/** Where the agent's DHCP client hook lives in the guest (guest/netcfg.c runs `udhcpc -s` with it). */
export const GUEST_DHCP_SCRIPT = '/etc/jitvm/udhcpc.script';

/**
 * busybox udhcpc calls this with the lease in its environment: it applies the address and the default route, and
 * stages the DNS servers where the agent copies them into the final root's /etc/resolv.conf.
 */
const DHCP_SCRIPT = [
  '#!/bin/sh',
  'case "$1" in',
  'bound|renew)',
  '  ifconfig "$interface" "$ip" netmask "$subnet" up || exit 1',
  '  for gw in $router; do route add default gw "$gw" dev "$interface"; break; done',
  '  mkdir -p /run/jitvm && : > /run/jitvm/resolv.conf',
  '  for ns in $dns; do echo "nameserver $ns" >> /run/jitvm/resolv.conf; done',
  '  ;;',
  'esac',
];

/** Applet names never linked into /bin: they would shadow /init's role or busybox itself. */
const RESERVED_APPLETS = new Set(['init', 'linuxrc', 'busybox']);
const EMPTY_DIRS = ['proc', 'sys', 'dev', 'run', 'var', 'mnt', 'usr/bin', 'sbin', 'usr/sbin'];

/** Builds the gzip-compressed initramfs. The result is byte-for-byte reproducible for the same inputs. */
export async function buildInitramfs(inputs: InitramfsInputs): Promise<Buffer> {
  const cpio = new CpioWriter();
  cpio.addFile('init', await readFile(inputs.agent), 0o755);

  cpio.addFile('bin/busybox', await readFile(inputs.busybox.path), 0o755);
  for (const applet of new Set(inputs.busybox.applets)) {
    if (!RESERVED_APPLETS.has(applet)) cpio.addSymlink(`bin/${applet}`, 'busybox');
  }
  for (const dir of EMPTY_DIRS) cpio.addDirectory(dir);
  cpio.addDirectory('tmp', 0o1777);
  cpio.addDirectory('root', 0o700);

  for (const module of inputs.modules) cpio.addFile(guestModulePath(module.name), await readFile(module.path), 0o644);
  cpio.addFile(GUEST_MODULE_LIST, textFile(inputs.modules.map((m) => guestModulePath(m.name))), 0o644);

  cpio.addFile(GUEST_DHCP_SCRIPT, textFile(DHCP_SCRIPT), 0o755);
  cpio.addFile('etc/hostname', textFile(['jitvm']));
  cpio.addFile('etc/passwd', textFile(['root:x:0:0:root:/root:/bin/sh']));
  cpio.addFile('etc/group', textFile(['root:x:0:']));

  return promisify(gzip)(cpio.finish(), { level: 9 });
}

function textFile(lines: readonly string[]): Buffer {
  return Buffer.from(lines.map((line) => `${line}\n`).join(''), 'utf8');
}
