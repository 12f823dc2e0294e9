/**
 * TCP tunnels through the real C agent in dev mode (`--connect`): the agent connects and listens on this host's
 * 127.0.0.1, so every "guest" server and client here is a loopback socket the test itself opens.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { type AddressInfo, type Socket, connect, createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { AgentConnection } from '../../src/channel/client.js';
import { Capability, INITIAL_WINDOW, MsgType } from '../../src/channel/protocol.js';
import { type TcpTunnel, acceptTcp, openTcp } from '../../src/channel/tcp.js';
import { ChannelClosedError, GuestError, type JitvmError } from '../../src/core/errors.js';
import { DevAgent } from '../helpers/dev-agent.js';

const MiB = 1024 * 1024;
let agent: DevAgent;
const cleanups: Array<() => void> = [];

/**
 * A loopback server standing in for a guest program (half-open allowed, so it may write after the tunnel's FIN);
 * closed with its sockets after the test file.
 */
async function guestServer(onSocket: (socket: Socket) => void): Promise<number> {
  const server = createServer({ allowHalfOpen: true }, onSocket);
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

/** A port nothing listens on right now (the kernel picked it, then it was released). */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A loopback client standing in for a guest program; destroyed after the test file. */
async function guestClient(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  cleanups.push(() => socket.destroy());
  await once(socket, 'connect');
  return socket;
}

/** Frames travel in order: once PING is answered, the agent has handled every request sent before it. */
async function synced(connection: AgentConnection): Promise<void> {
  await connection.request(MsgType.PING, Buffer.from('sync'), MsgType.PONG);
}

/** Everything `stream` delivers until its end; unlike `for await`, leaves it open for writing afterwards. */
function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve, reject) => {
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

/** Waits for the tunnel's 'close' (reading it to the end may already have closed it) and checks it saw no error. */
async function closedCleanly(tunnel: TcpTunnel): Promise<void> {
  if (!tunnel.closed) await once(tunnel, 'close');
  assert.equal(tunnel.errored, null);
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

async function writeAll(stream: NodeJS.WritableStream, data: Buffer): Promise<void> {
  for (let offset = 0; offset < data.length; offset += 1_000_000) {
    if (!stream.write(data.subarray(offset, offset + 1_000_000))) await once(stream, 'drain');
  }
}

/** Samples `value` every 100 ms until it stops changing; the bound only catches a hang. */
async function settled(value: () => number): Promise<number> {
  let last = -1;
  for (let i = 0; i < 100; i++) {
    const now = value();
    if (now === last && now > 0) return now;
    last = now;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`still changing after 10 s: ${last}`);
}

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`not reached within 5 s: ${what}`);
}

async function bindable(port: number): Promise<boolean> {
  const server = createServer();
  const result = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (result) await new Promise((resolve) => server.close(resolve));
  return result;
}

before(async () => {
  agent = await DevAgent.start('jitvm-tcp-');
});

after(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup();
  await agent?.stop();
});

describe('TCP tunnels through the C agent in dev mode', () => {
  it('offers the TCP capability and round-trips bytes to an echo server', async () => {
    const { connection } = await agent.connect();
    const port = await guestServer((socket) => socket.pipe(socket));
    assert.ok(connection.hasCapability(Capability.TCP));
    const tunnel = await openTcp(connection, port);
    assert.deepEqual([tunnel.guestPort, tunnel.peerPort], [port, undefined]);
    tunnel.end('hello through the channel');
    assert.equal((await readAll(tunnel)).toString(), 'hello through the channel');
    await closedCleanly(tunnel);
    connection.close();
  });

  it('carries 8 MiB each way, the host half-closing first', async () => {
    const { connection } = await agent.connect();
    const toGuest = randomBytes(8 * MiB);
    const fromGuest = randomBytes(8 * MiB);
    const port = await guestServer((socket) => {
      void readAll(socket).then((received) => {
        socket.write(createHash('sha256').update(received).digest());
        socket.end(fromGuest);
      });
    });
    const tunnel = await openTcp(connection, port);
    const reply = readAll(tunnel);
    await writeAll(tunnel, toGuest);
    tunnel.end();
    const received = await reply;
    assert.equal(received.subarray(0, 32).toString('hex'), sha256(toGuest));
    assert.equal(received.length, 32 + fromGuest.length);
    assert.equal(sha256(received.subarray(32)), sha256(fromGuest));
    connection.close();
  });

  it('carries 8 MiB each way at once, the guest half-closing first', async () => {
    const { connection } = await agent.connect();
    const toGuest = randomBytes(8 * MiB);
    const fromGuest = randomBytes(8 * MiB);
    let guestReceived: Promise<Buffer> | undefined;
    const port = await guestServer((socket) => {
      guestReceived = readAll(socket);
      socket.end(fromGuest);
    });
    const tunnel = await openTcp(connection, port);
    const reply = readAll(tunnel);
    const sent = writeAll(tunnel, toGuest);
    assert.equal(sha256(await reply), sha256(fromGuest));
    await sent;
    tunnel.end();
    await until(() => guestReceived !== undefined, 'the guest connection');
    assert.equal(sha256(await guestReceived!), sha256(toGuest));
    await closedCleanly(tunnel);
    connection.close();
  });

  it('says clearly when nothing listens on the port', async () => {
    const { connection } = await agent.connect();
    const port = await freePort();
    await assert.rejects(
      openTcp(connection, port),
      (error: unknown) =>
        error instanceof GuestError &&
        error.code === 'not_found' &&
        error.message.includes(`nothing listens on guest port ${port}`),
    );
    connection.close();
  });

  it('accepts a guest client, which gets the reply, and refuses a port a guest program holds', async () => {
    const { connection } = await agent.connect();
    const port = await freePort();
    const accepting = acceptTcp(connection, port);
    await synced(connection);
    const client = await guestClient(port);
    client.write('ping');
    const tunnel = await accepting;
    assert.deepEqual([tunnel.guestPort, tunnel.peerPort], [port, client.localPort]);
    const [request] = (await once(tunnel, 'data')) as [Buffer];
    assert.equal(request.toString(), 'ping');
    tunnel.end('pong');
    client.end();
    assert.equal((await readAll(client)).toString(), 'pong');
    await closedCleanly(tunnel);

    const taken = await guestServer(() => undefined);
    await assert.rejects(
      acceptTcp(connection, taken),
      (error: unknown) => error instanceof GuestError && error.guestCode === 'ALREADY_EXISTS',
    );
    connection.close();
  });

  it('serves two concurrent accepts on one port, one client each', async () => {
    const { connection } = await agent.connect();
    const port = await freePort();
    const accepts = [acceptTcp(connection, port), acceptTcp(connection, port)];
    await synced(connection);
    const clients = [await guestClient(port), await guestClient(port)];
    const tunnels = await Promise.all(accepts);
    const byPort = (a: number, b: number): number => a - b;
    assert.deepEqual(
      tunnels.map((tunnel) => tunnel.peerPort!).sort(byPort),
      clients.map((client) => client.localPort!).sort(byPort),
    );
    for (const tunnel of tunnels) {
      tunnel.pipe(tunnel);
    }
    const replies = clients.map((client, i) => {
      client.end(`client ${i}`);
      return readAll(client);
    });
    assert.deepEqual((await Promise.all(replies)).map(String), ['client 0', 'client 1']);
    connection.close();
  });

  it('cancels a pending accept, and closes the listening socket after its grace', async () => {
    const { connection } = await agent.connect();
    const port = await freePort();
    const controller = new AbortController();
    const waiting = acceptTcp(connection, port, { signal: controller.signal });
    await synced(connection);
    assert.equal(await bindable(port), false, 'the agent listens');
    controller.abort();
    await assert.rejects(waiting, (error: unknown) => (error as JitvmError).code === 'cancelled');
    // The port stays open for the host's next accept a moment longer; then it is free again.
    const accepting = acceptTcp(connection, port);
    await synced(connection);
    const client = await guestClient(port);
    const tunnel = await accepting;
    assert.equal(tunnel.peerPort, client.localPort);
    tunnel.destroy();
    await assert.rejects(readAll(client), (error: NodeJS.ErrnoException) => error.code === 'ECONNRESET');
    await until(() => bindable(port), 'the listening socket closed after the grace');
    connection.close();
  });

  it('stops the guest sender at the window while the host does not read, and the reverse', async () => {
    const { connection, transport } = await agent.connect();
    const flood = randomBytes(32 * MiB);
    let guestSocket: Socket | undefined;
    const port = await guestServer((socket) => {
      guestSocket = socket;
      socket.pause();
      socket.end(flood);
    });
    let arrived = 0;
    transport.on('data', (data: Buffer) => (arrived += data.length));
    const tunnel = await openTcp(connection, port);
    const stalled = await settled(() => arrived);
    assert.ok(stalled <= INITIAL_WINDOW + 64 * 1024, `${stalled} bytes arrived while nobody read`);
    assert.ok(stalled >= INITIAL_WINDOW / 2, `only ${stalled} bytes arrived`);

    // The other way the agent also fills the guest socket's kernel buffers (several MiB on loopback), so the host's
    // bound is looser; the agent itself holds at most the window.
    const sentBefore = transport.bytesWritten;
    let acknowledged = false;
    tunnel.write(flood, () => (acknowledged = true));
    const sent = (await settled(() => transport.bytesWritten)) - sentBefore;
    assert.ok(sent < flood.length / 2, `${sent} bytes sent while the guest did not read`);
    assert.equal(acknowledged, false);
    const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${agent.child.pid}/status`, 'utf8'))![1]);
    assert.ok(rssKiB < 16 * 1024, `the agent holds ${rssKiB} KiB`);

    const received = readAll(tunnel);
    const guestReceived = readAll(guestSocket!);
    guestSocket!.resume();
    await until(() => acknowledged, 'the host write drained');
    tunnel.end();
    assert.equal(sha256(await received), sha256(flood));
    assert.equal(sha256(await guestReceived), sha256(flood));
    connection.close();
  });

  it('resets guest connections and closes listeners when the host disconnects', async () => {
    const { connection } = await agent.connect();
    let guestSocket: Socket | undefined;
    const port = await guestServer((socket) => (guestSocket = socket));
    const tunnel = await openTcp(connection, port);
    tunnel.on('error', () => undefined);
    const listening = await freePort();
    acceptTcp(connection, listening).catch(() => undefined);
    await synced(connection);
    await until(() => guestSocket !== undefined, 'the guest connection');
    const reset = once(guestSocket!, 'error');
    connection.close();
    const [error] = (await reset) as [NodeJS.ErrnoException];
    assert.equal(error.code, 'ECONNRESET');
    await until(() => bindable(listening), 'the listener closed at once');
  });

  it('destroys an open tunnel with ChannelClosedError when the agent goes away', async () => {
    const { connection } = await agent.connect();
    const port = await guestServer(() => undefined);
    const tunnel: TcpTunnel = await openTcp(connection, port);
    const failed = once(tunnel, 'error');
    const exited = once(agent.child, 'exit');
    agent.child.kill('SIGKILL');
    const [error] = (await failed) as [Error];
    assert.ok(error instanceof ChannelClosedError, String(error));
    await exited;
  });
});
