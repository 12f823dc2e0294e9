/**
 * The host side of Firecracker's hybrid vsock handshake, against real Unix-socket peers that behave as the muxer
 * does (docs/vsock.md): answer `OK <hostport>\n`, close without a reply when nothing listens, or misbehave.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';

import { connectHybridVsock, hybridVsockHandshake } from '../../src/channel/hybrid-vsock.js';
import {
  CancelledError,
  ChannelClosedError,
  InvalidArgumentError,
  JitvmError,
  ProtocolError,
} from '../../src/core/errors.js';
import { tempDir } from '../helpers/temp.js';

interface HostConnection {
  readonly socket: Socket;
  /** What the host sent up to and including the first newline. */
  readonly request: string;
}

interface Peer {
  readonly path: string;
  /** The next host connection whose request line has arrived. */
  nextConnection(): Promise<HostConnection>;
}

/** A Unix-socket server that reads each client's request line and hands it to `respond`. */
async function muxerPeer(t: TestContext, respond: (socket: Socket, request: string) => void): Promise<Peer> {
  const path = join(tempDir(t, 'jitvm-vsock-'), 'v.sock');
  const sockets = new Set<Socket>();
  const accepted: HostConnection[] = [];
  const waiting: Array<(connection: HostConnection) => void> = [];
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    let request = '';
    const onData = (data: Buffer): void => {
      request += data.toString('latin1');
      if (!request.includes('\n')) return;
      socket.off('data', onData);
      const entry = { socket, request };
      const waiter = waiting.shift();
      if (waiter) waiter(entry);
      else accepted.push(entry);
      respond(socket, request);
    };
    socket.on('data', onData);
  });
  server.listen(path);
  await once(server, 'listening');
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    server.close();
    await once(server, 'close');
  });
  const nextConnection = (): Promise<HostConnection> => {
    const ready = accepted.shift();
    return ready ? Promise.resolve(ready) : new Promise((resolve) => waiting.push(resolve));
  };
  return { path, nextConnection };
}

async function readBytes(stream: Duplex, count: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer);
    length += (chunk as Buffer).length;
    if (length >= count) break;
  }
  return Buffer.concat(chunks);
}

describe('connectHybridVsock', { timeout: 10_000 }, () => {
  it('sends CONNECT <port>, and keeps the payload sent in the same write as OK for the caller', async (t) => {
    const payload = Buffer.from('first guest bytes \x00\x01\x02');
    const peer = await muxerPeer(t, (socket) => socket.write(Buffer.concat([Buffer.from('OK 1073741824\n'), payload])));
    const stream = await connectHybridVsock(peer.path, 1024);
    t.after(() => stream.destroy());
    const host = await peer.nextConnection();
    assert.equal(host.request, 'CONNECT 1024\n');
    // Read the way AgentConnection does: a 'data' listener attached after the handshake.
    const received = await new Promise<Buffer>((resolve) => {
      let bytes = Buffer.alloc(0);
      stream.on('data', (chunk: Buffer) => {
        bytes = Buffer.concat([bytes, chunk]);
        if (bytes.length >= payload.length) resolve(bytes);
      });
    });
    assert.deepEqual(received, payload);
    // Host to guest after the handshake is raw too.
    stream.write('to the guest');
    const echoed = await once(host.socket, 'data');
    assert.equal((echoed[0] as Buffer).toString(), 'to the guest');
  });

  it('reports a peer that closes without OK as nothing listening on the port', async (t) => {
    const peer = await muxerPeer(t, (socket) => socket.end());
    await assert.rejects(
      connectHybridVsock(peer.path, 1025),
      (error: unknown) =>
        error instanceof ChannelClosedError &&
        error.message.includes(
          `nothing listens on vsock port 1025 in the guest: the vsock socket ${peer.path} closed the connection ` +
            'without answering CONNECT 1025',
        ),
    );
  });

  it('refuses a reply that is not OK <n>, quoting it', async (t) => {
    const peer = await muxerPeer(t, (socket) => socket.write('HTTP/1.1 400 Bad Request\r\n\r\n'));
    await assert.rejects(
      connectHybridVsock(peer.path, 1024),
      (error: unknown) =>
        error instanceof ProtocolError &&
        error.message.includes('answered with "HTTP/1.1 400 Bad Request\\r" in reply to CONNECT 1024') &&
        error.message.includes('not a Firecracker hybrid vsock socket'),
    );
  });

  it('refuses an OK whose port is out of range', async (t) => {
    const peer = await muxerPeer(t, (socket) => socket.write('OK 4294967296\n'));
    await assert.rejects(connectHybridVsock(peer.path, 1024), (error: unknown) => {
      return error instanceof ProtocolError && error.message.includes('answered with "OK 4294967296"');
    });
  });

  it('gives up on an overlong line after 32 bytes, quoting only those', async (t) => {
    const peer = await muxerPeer(t, (socket) => socket.write(Buffer.alloc(256 * 1024, 'A')));
    await assert.rejects(connectHybridVsock(peer.path, 1024), (error: unknown) => {
      assert.ok(error instanceof ProtocolError);
      assert.match(error.message, new RegExp(`sent "${'A'.repeat(32)}"… with no newline in reply to CONNECT 1024`));
      assert.ok(!error.message.includes('A'.repeat(33)));
      return true;
    });
  });

  it('times out on a peer that never answers, and closes its socket', async (t) => {
    const peer = await muxerPeer(t, () => undefined);
    const attempt = connectHybridVsock(peer.path, 1024, { timeoutMs: 300 });
    const hostClosed = once((await peer.nextConnection()).socket, 'close');
    await assert.rejects(
      attempt,
      (error: unknown) =>
        error instanceof JitvmError &&
        error.code === 'timeout' &&
        error.message.startsWith(
          `connecting to guest vsock port 1024 through ${peer.path} got no answer within 300 ms`,
        ),
    );
    await hostClosed;
  });

  it('is cancelled by its signal, before and during the handshake, and closes its socket', async (t) => {
    const peer = await muxerPeer(t, () => undefined);
    await assert.rejects(connectHybridVsock(peer.path, 1024, { signal: AbortSignal.abort() }), CancelledError);
    const controller = new AbortController();
    const attempt = connectHybridVsock(peer.path, 1024, { signal: controller.signal });
    const hostClosed = once((await peer.nextConnection()).socket, 'close');
    controller.abort();
    await assert.rejects(
      attempt,
      (error: unknown) =>
        error instanceof CancelledError &&
        error.message === `connecting to guest vsock port 1024 through ${peer.path} was cancelled`,
    );
    await hostClosed;
  });

  it('names a socket path that does not exist', async (t) => {
    const path = join(tempDir(t), 'missing.sock');
    await assert.rejects(
      connectHybridVsock(path, 1024),
      (error: unknown) =>
        error instanceof ChannelClosedError &&
        error.message.startsWith(`the vsock socket ${path} does not exist: the VM is not running`),
    );
  });

  it('validates the port and the timeout', async () => {
    for (const port of [-1, 1.5, 2 ** 32, Number.NaN]) {
      await assert.rejects(connectHybridVsock('/nonexistent', port), InvalidArgumentError);
    }
    await assert.rejects(connectHybridVsock('/nonexistent', 1024, { timeoutMs: 0 }), InvalidArgumentError);
  });
});

describe('hybridVsockHandshake', { timeout: 10_000 }, () => {
  it('returns the host port from OK on an already open socket', async (t) => {
    const peer = await muxerPeer(t, (socket) => socket.write('OK 1073741825\n'));
    const socket = connect(peer.path);
    t.after(() => socket.destroy());
    await once(socket, 'connect');
    assert.equal(await hybridVsockHandshake(socket, 52), 1073741825);
    assert.equal((await peer.nextConnection()).request, 'CONNECT 52\n');
  });

  it('assembles a reply split across chunks and puts back what follows its newline', async () => {
    const written: string[] = [];
    const stream = new Duplex({
      read: () => undefined,
      write: (chunk: Buffer, _encoding, callback) => {
        written.push(chunk.toString());
        callback();
      },
    });
    const handshake = hybridVsockHandshake(stream, 7);
    for (const piece of ['O', 'K 10737', '41826\nguest', ' bytes']) {
      stream.push(Buffer.from(piece));
      await new Promise(setImmediate); // lets the handshake take each piece as its own chunk
    }
    stream.push(null);
    assert.equal(await handshake, 1073741826);
    assert.deepEqual(written, ['CONNECT 7\n']);
    assert.equal((await readBytes(stream, 11)).toString(), 'guest bytes');
  });

  it('reports a partial reply cut off by the peer', async () => {
    const stream = new Duplex({ read: () => undefined, write: (_chunk, _encoding, callback) => callback() });
    const handshake = hybridVsockHandshake(stream, 7);
    stream.push(Buffer.from('OK 12'));
    stream.push(null);
    await assert.rejects(
      handshake,
      (error: unknown) =>
        error instanceof ChannelClosedError &&
        error.message.includes('the vsock muxer closed the connection after a partial reply "OK 12" without'),
    );
  });
});
