/**
 * Host-local byte-stream endpoints a VMM serves and jitvm connects to: a Unix socket in the VM's runtime dir on Linux
 * and macOS, a named pipe (`\\.\pipe\jitvm-<vm id>-<role>`) on Windows, where Node cannot reach AF_UNIX sockets
 * (node:net speaks named pipes there). This is the one place that looks at the platform; callers branch on the
 * transport, never on the OS.
 */
import { connect, type Socket } from 'node:net';
import { InvalidArgumentError } from '../core/errors.js';
import { platformPath } from '../core/paths.js';

/** How this host serves a local byte stream. */
export type LocalTransport = 'unix-socket' | 'named-pipe';

/** One endpoint: its transport, and the address `net.connect({ path })` takes. */
export interface LocalEndpoint {
  readonly transport: LocalTransport;
  readonly address: string;
}

/** What follows this in a named pipe's address is the pipe's name. */
const PIPE_PREFIX = '\\\\.\\pipe\\';
/** `sun_path` holds 108 bytes on Linux and 104 on macOS and the BSDs, the terminating NUL included. */
const MAX_SOCKET_PATH_BYTES: Partial<Record<NodeJS.Platform, number>> = { linux: 107 };
const MAX_SOCKET_PATH_BYTES_ELSEWHERE = 103;
const ROLE = /^[a-z][a-z0-9-]{0,31}$/;
const VM_ID = /^[A-Za-z0-9_.-]{1,64}$/;

/** The longest Unix socket path `platform` binds, in bytes (without the NUL). */
export function maxSocketPathBytes(platform: NodeJS.Platform = process.platform): number {
  return MAX_SOCKET_PATH_BYTES[platform] ?? MAX_SOCKET_PATH_BYTES_ELSEWHERE;
}

/** The transport local endpoints use on `platform`. */
export function localTransport(platform: NodeJS.Platform = process.platform): LocalTransport {
  return platform === 'win32' ? 'named-pipe' : 'unix-socket';
}

/** Where one VM serves one role (`qmp`, `agent`…). */
export interface EndpointPlace {
  /** The VM's runtime dir: Unix sockets live in it. */
  readonly runtimeDir: string;
  /** The VM's id: named pipes share one machine-wide namespace, so their names carry it. */
  readonly vmId: string;
  readonly role: string;
}

/**
 * The endpoint for `place` on `platform`. Refuses a Unix socket path longer than the kernel accepts (a long
 * runtime dir), naming the fix, rather than letting the VMM fail to bind it.
 */
export function localEndpoint(place: EndpointPlace, platform: NodeJS.Platform = process.platform): LocalEndpoint {
  if (!ROLE.test(place.role)) throw new InvalidArgumentError(`endpoint role "${place.role}" must match ${ROLE}`);
  if (!VM_ID.test(place.vmId)) throw new InvalidArgumentError(`VM id "${place.vmId}" must match ${VM_ID}`);
  const transport = localTransport(platform);
  if (transport === 'named-pipe') {
    return { transport, address: `${PIPE_PREFIX}jitvm-${place.vmId}-${place.role}` };
  }
  const address = platformPath(platform).join(place.runtimeDir, `${place.role}.sock`);
  const limit = maxSocketPathBytes(platform);
  const length = Buffer.byteLength(address);
  if (length > limit) {
    throw new InvalidArgumentError(
      `the socket path ${address} is ${length} bytes, over the ${limit}-byte limit for Unix sockets on ${platform}; ` +
        'set JITVM_RUNTIME_DIR to a shorter directory',
    );
  }
  return { transport, address };
}

/** The name of a named pipe (what follows `\\.\pipe\`), as a server such as QEMU's pipe chardev is given it. */
export function pipeName(endpoint: LocalEndpoint): string {
  if (endpoint.transport !== 'named-pipe' || !endpoint.address.startsWith(PIPE_PREFIX)) {
    throw new InvalidArgumentError(`${endpoint.address} is not a named pipe address (\\\\.\\pipe\\<name>)`);
  }
  return endpoint.address.slice(PIPE_PREFIX.length);
}

/**
 * Connects to a local endpoint by its address and resolves once connected. Rejects with the system error when
 * nothing serves it yet (ENOENT, ECONNREFUSED), and with an AbortError when `signal` aborts first. The signal only
 * guards the connect: aborting it later leaves the connected stream alone.
 */
export function connectLocal(address: string, signal?: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const socket = connect({ path: address });
    const onAbort = (): void => {
      socket.destroy();
      reject(abortError(signal));
    };
    const settle = (): void => {
      socket.removeListener('error', onError);
      signal?.removeEventListener('abort', onAbort);
    };
    const onError = (error: Error): void => {
      settle();
      reject(error);
    };
    socket.once('connect', () => {
      settle();
      resolve(socket);
    });
    socket.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortError(signal: AbortSignal | undefined): Error {
  return new DOMException(`connecting was aborted: ${String(signal?.reason)}`, 'AbortError');
}
