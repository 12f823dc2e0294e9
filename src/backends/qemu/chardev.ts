/**
 * The QEMU side of jitvm's local endpoints (src/channel/local-endpoint.ts): the chardev that serves QMP or the agent
 * port on a Unix socket, or on a Windows named pipe.
 *
 * What QEMU's Windows pipe chardev does (chardev/char-pipe.c, `win_chr_pipe_init`): `path=NAME` creates
 * `\\.\pipe\NAME` with a single instance (MAXCONNECT 1), then waits in `ConnectNamedPipe` + a blocking
 * `GetOverlappedResult` until a client connects: QEMU's start-up stops there until jitvm connects. After that client
 * goes, nothing calls `DisconnectNamedPipe`/`ConnectNamedPipe` again, so the pipe never serves a second client.
 * The Unix socket chardev with `server=on,wait=off` listens again after every disconnect.
 */
import { type LocalEndpoint, type LocalTransport, pipeName } from '../../channel/local-endpoint.js';

/** QEMU option values are comma-separated: a literal comma is written twice. */
export function optionValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/**
 * Whether QEMU serves endpoints of this transport to one client for its whole life (the Windows pipe chardev): that
 * connection must be opened while QEMU starts, kept by the process that started it, and cannot be made again.
 */
export function servesOneClient(transport: LocalTransport): boolean {
  return transport === 'named-pipe';
}

/** The `-chardev` value for a chardev `id` that QEMU serves on `endpoint`. */
export function serverChardev(id: string, endpoint: LocalEndpoint): string {
  if (endpoint.transport === 'named-pipe') return `pipe,id=${id},path=${optionValue(pipeName(endpoint))}`;
  return `socket,id=${id},path=${optionValue(endpoint.address)},server=on,wait=off`;
}

/** The arguments that put a QMP monitor on `endpoint`. */
export function qmpArgs(endpoint: LocalEndpoint): string[] {
  if (endpoint.transport === 'named-pipe') {
    return ['-chardev', serverChardev('qmp', endpoint), '-mon', 'chardev=qmp,mode=control'];
  }
  return ['-qmp', `unix:${optionValue(endpoint.address)},server=on,wait=off`];
}
