import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';

import type { Share } from '../../core/config.js';
import { HostToolMissingError, JitvmError } from '../../core/errors.js';
import { findOnPath } from '../../core/host-tools.js';
import { delay } from '../../core/process.js';
import { optionValue } from './chardev.js';
import type { VirtioBus } from './machine.js';

/** Where Debian's qemu-system-common puts QEMU's own virtiofsd. */
const DEBIAN_VIRTIOFSD = '/usr/lib/qemu/virtiofsd';
const SOCKET_WAIT_MS = 5000;

/** virtiofsd's vhost-user socket for share `tag` in a VM's runtime dir. */
export function virtiofsSocket(runtimeDir: string, tag: string): string {
  return join(runtimeDir, `fs-${tag}.sock`);
}

/**
 * QEMU's side of each share: a vhost-user-fs device on virtiofsd's socket. vhost-user needs the guest RAM in a shared
 * file (QEMU's `memory-backend-file,share=on`), which the caller checks, and modern virtio: libvhost-user refuses
 * the legacy virtio-mmio that microvm defaults to, so such VMs use virtio-mmio version 2 for every device.
 */
export function shareArgs(shares: readonly Share[], runtimeDir: string, bus: VirtioBus): string[] {
  if (shares.length === 0) return [];
  const modern = bus === 'mmio' ? ['-global', 'virtio-mmio.force-legacy=false'] : [];
  return [
    ...modern,
    ...shares.flatMap((share) => [
      '-chardev',
      `socket,id=fs-${share.tag},path=${optionValue(virtiofsSocket(runtimeDir, share.tag))}`,
      '-device',
      `vhost-user-fs-${bus === 'mmio' ? 'device' : 'pci'},chardev=fs-${share.tag},tag=${share.tag}`,
    ]),
  ];
}

/** virtiofsd: `$JITVM_VIRTIOFSD`, QEMU's own in /usr/lib/qemu (Debian), or one on PATH; undefined when none. */
export function findVirtiofsd(): string | undefined {
  return process.env.JITVM_VIRTIOFSD ?? (existsSync(DEBIAN_VIRTIOFSD) ? DEBIAN_VIRTIOFSD : findOnPath('virtiofsd'));
}

function virtiofsdBinary(): string {
  const found = findVirtiofsd();
  if (!found)
    throw new HostToolMissingError('virtiofsd', 'apt-get install qemu-system-common (or set JITVM_VIRTIOFSD)');
  return found;
}

/**
 * The command serving one share. A read-only share runs virtiofsd in a private mount namespace where the directory is
 * bind-mounted read-only over itself, so the kernel refuses writes whatever the guest asks (virtiofsd has no
 * read-only switch of its own); as non-root that namespace needs a user namespace (`unshare --map-root-user`).
 */
export function virtiofsdCommand(share: Share, socket: string, binary: string): [string, string[]] {
  const daemon = [binary, `--socket-path=${socket}`, '-o', `source=${share.path}`, '-o', 'cache=auto'];
  if (!share.readOnly) return [daemon[0]!, daemon.slice(1)];
  const unshare = findOnPath('unshare');
  if (!unshare) throw new HostToolMissingError('unshare', 'apt-get install util-linux');
  const asRoot = process.getuid?.() === 0 ? [] : ['--map-root-user'];
  const bindReadOnly = 'mount --bind -o ro "$0" "$0" && exec "$@"';
  return [
    unshare,
    [...asRoot, '--mount', '--propagation', 'private', '--', 'sh', '-c', bindReadOnly, share.path, ...daemon],
  ];
}

/**
 * Starts virtiofsd for each share and resolves once every socket exists (QEMU connects at start and fails without
 * it). Each daemon ends by itself when QEMU disconnects; on failure the ones started are killed.
 */
export async function startVirtiofsd(
  shares: readonly Share[],
  runtimeDir: string,
  detached: boolean,
): Promise<ChildProcess[]> {
  if (shares.length === 0) return [];
  const binary = virtiofsdBinary();
  const started: ChildProcess[] = [];
  try {
    for (const share of shares) {
      if (!existsSync(share.path))
        throw new JitvmError('invalid_argument', `share ${share.tag}: ${share.path} does not exist`);
      const socket = virtiofsSocket(runtimeDir, share.tag);
      const [command, args] = virtiofsdCommand(share, socket, binary);
      const log = openSync(join(runtimeDir, `virtiofsd-${share.tag}.log`), 'w', 0o600);
      try {
        const child = spawn(command, args, { stdio: ['ignore', log, log], detached, cwd: runtimeDir });
        started.push(child);
        await waitForSocket(child, socket, share.tag);
        if (detached) child.unref();
      } finally {
        closeSync(log);
      }
    }
    return started;
  } catch (error) {
    for (const child of started) child.kill('SIGKILL');
    throw error;
  }
}

async function waitForSocket(child: ChildProcess, socket: string, tag: string): Promise<void> {
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = `exit code ${code ?? 'none'}, signal ${signal ?? 'none'}`));
  child.once('error', (error) => (exited = error.message));
  for (let waited = 0; waited < SOCKET_WAIT_MS; waited += 10) {
    if (exited)
      throw new JitvmError(
        'vmm_failed',
        `virtiofsd for share ${tag} ended at start (${exited}); see virtiofsd-${tag}.log in the VM's runtime dir`,
      );
    if (existsSync(socket)) return;
    await delay(10);
  }
  throw new JitvmError('vmm_failed', `virtiofsd for share ${tag} did not open ${socket} within ${SOCKET_WAIT_MS} ms`);
}
