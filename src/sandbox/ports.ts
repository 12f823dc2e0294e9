import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { pipeline } from 'node:stream';
import { z } from 'zod';

import { openTcp } from '../channel/tcp.js';
import type { AgentConnection } from '../channel/client.js';
import { parseWith } from '../core/config.js';
import { InvalidArgumentError } from '../core/errors.js';

const Port = z.number().int().min(1).max(65535);

/** A guest TCP port published on the host's 127.0.0.1, at `host` (0 or absent: any free port). */
export const PortForwardSchema = z
  .object({ guest: Port, host: z.number().int().min(0).max(65535).default(0) })
  .strict();
export type PortForwardInput = z.input<typeof PortForwardSchema>;

/** A published port: where the host listens for the guest port. */
export interface PublishedPort {
  readonly guest: number;
  readonly host: number;
}

/**
 * Guest ports published on the host's loopback only. Each accepted connection opens a TCP stream over the agent
 * channel to the guest's 127.0.0.1:<guest port>, so forwarding needs no NIC and works in every network mode; a
 * guest port with nothing listening closes the host connection at once.
 */
export class PortForwards {
  /** By guest port; `host` is undefined while the listener is still being opened. */
  private readonly servers = new Map<number, { server: Server; host: number | undefined }>();
  private readonly sockets = new Set<Socket>();

  constructor(private readonly connection: () => AgentConnection) {}

  /** Publishes `guest` on 127.0.0.1:`host` (0: a free port) and resolves with the port the host listens on. */
  async publish(forward: PortForwardInput): Promise<number> {
    const { guest, host } = parseWith(PortForwardSchema, forward, 'invalid port forward');
    if (this.servers.has(guest)) throw new InvalidArgumentError(`guest port ${guest} is already published`);
    const server = createServer((socket) => this.forward(socket, guest));
    // Reserved before listening, so a second publish of the same port refuses instead of racing this one.
    this.servers.set(guest, { server, host: undefined });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', (error: NodeJS.ErrnoException) =>
          reject(
            error.code === 'EADDRINUSE'
              ? new InvalidArgumentError(`host port ${host} is in use on 127.0.0.1; pass host: 0 for a free one`)
              : error,
          ),
        );
        server.listen({ host: '127.0.0.1', port: host, exclusive: true }, resolve);
      });
    } catch (error) {
      this.servers.delete(guest);
      throw error;
    }
    const bound = (server.address() as AddressInfo).port;
    this.servers.set(guest, { server, host: bound });
    return bound;
  }

  /** The host port for a published guest port, or undefined. */
  hostPort(guest: number): number | undefined {
    return this.servers.get(guest)?.host;
  }

  /** Every published port. */
  list(): PublishedPort[] {
    return [...this.servers].flatMap(([guest, { host }]) => (host === undefined ? [] : [{ guest, host }]));
  }

  /** Stops listening and drops every forwarded connection. */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await Promise.all([...this.servers.values()].map(({ server }) => new Promise((done) => server.close(done))));
    this.servers.clear();
  }

  private forward(socket: Socket, guest: number): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.pause();
    openTcp(this.connection(), guest).then(
      (stream) => {
        pipeline(socket, stream, socket, () => undefined);
        socket.resume();
      },
      () => socket.destroy(),
    );
  }
}
