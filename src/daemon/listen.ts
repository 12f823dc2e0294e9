import { connect } from 'node:net';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { ensurePrivateDir, runtimeRoot } from '../core/paths.js';
import { InvalidArgumentError, JitvmError } from '../core/errors.js';
import { parseIpAddress } from '../network/ip-address.js';

/** Where the daemon listens: a Unix socket (access by file mode, no token) or a TCP address (token required). */
export type ListenTarget =
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number; readonly loopback: boolean };

/** `<runtime dir>/jitvm.sock`: the default socket (its directory is created private, 0700). */
export function defaultSocketPath(): string {
  return path.join(ensurePrivateDir(runtimeRoot()), 'jitvm.sock');
}

/**
 * Parses `--listen HOST:PORT` (`[::1]:PORT` for IPv6). Only IP literals are taken — a name would need a DNS lookup
 * and could point anywhere.
 */
export function parseListen(text: string): ListenTarget & { kind: 'tcp' } {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(text);
  const address = match ? parseIpAddress(match[1]!) : undefined;
  const port = Number(match?.[2]);
  if (!address || port > 65535) {
    throw new InvalidArgumentError(`--listen expects IP:PORT, like 127.0.0.1:8080 or [::1]:8080; got "${text}"`);
  }
  const { family, bytes, text: host } = address;
  const loopback = family === 'ipv4' ? bytes[0] === 127 : bytes.every((byte, i) => byte === (i === 15 ? 1 : 0));
  return { kind: 'tcp', host, port, loopback };
}

const REMOTE_WARNING =
  'listening on a non-loopback address: anyone who can reach this port and holds the token can run code on this ' +
  'host (sandbox options name host files: kernels, disk images, shared directories). Put it behind TLS and a firewall.';

/**
 * `--listen`'s address for `what` (the daemon, the MCP server): a non-loopback one is refused without
 * `allowRemote`, and warned about with it.
 */
export function parseTcpListen(text: string, allowRemote: boolean, what: string): ListenTarget & { kind: 'tcp' } {
  const tcp = parseListen(text);
  if (!tcp.loopback && !allowRemote) {
    throw new InvalidArgumentError(
      `${tcp.host} is not a loopback address; add --allow-remote to expose ${what} beyond this host`,
    );
  }
  if (!tcp.loopback) process.emitWarning(REMOTE_WARNING);
  return tcp;
}

/**
 * Removes a socket file left by a daemon that died, and refuses (invalid_state) when a live daemon still answers on
 * it.
 */
export async function claimSocketPath(socketPath: string): Promise<void> {
  const live = await new Promise<boolean>((resolve) => {
    const socket = connect(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
  if (live) {
    throw new JitvmError(
      'invalid_state',
      `a daemon already serves ${socketPath}; stop it first or pass another --socket`,
    );
  }
  rmSync(socketPath, { force: true });
}
