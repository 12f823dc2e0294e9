/**
 * The host end of vfkit's `connect`-mode vsock socket: vfkit accepts every connection and closes it without a byte
 * when the guest port has no listener yet (tcpproxy's failed dial). The stream retries those, replaying what the host
 * wrote, and is a plain byte stream once the guest answered.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type Server, type Socket, createServer } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { type TestContext, it } from 'node:test';
import { connectVfkitVsock } from '../../src/backends/vz/vsock-stream.js';
import { CancelledError, ChannelClosedError } from '../../src/core/errors.js';
import { tempDir } from '../helpers/temp.js';

/** A vfkit stand-in: the first `refusals` connections are closed unread; later ones go to `guest`. */
async function proxy(
  t: TestContext,
  refusals: number,
  guest: (socket: Socket) => void,
): Promise<{ path: string; connections: () => number; server: Server }> {
  const path = join(tempDir(t, 'jitvm-vz-vsock-'), 'vsock.sock');
  let count = 0;
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    if (++count <= refusals) socket.destroy();
    else guest(socket);
  });
  server.listen(path);
  await once(server, 'listening');
  t.after(() => server.close());
  return { path, connections: () => count, server };
}

function readAll(stream: Duplex, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= bytes) resolve(Buffer.concat(chunks));
    });
    stream.on('error', reject);
  });
}

it('retries refused dials, replaying what was written, until the guest answers', async (t) => {
  const vfkit = await proxy(t, 3, (socket) => {
    socket.once('data', (data: Buffer) => socket.write(Buffer.concat([Buffer.from('HELLO_OK:'), data])));
  });
  const stream = await connectVfkitVsock(vfkit.path, { retry: () => true });
  stream.write('HELLO');
  assert.equal((await readAll(stream, 14)).toString(), 'HELLO_OK:HELLO');
  assert.equal(vfkit.connections(), 4, 'three refused dials, then the guest');
  stream.destroy();
});

it('is a plain stream once the guest spoke: large transfers, then an end from the guest closes it', async (t) => {
  const size = 4 << 20;
  const vfkit = await proxy(t, 1, (socket) => {
    let received = 0;
    socket.write('!');
    socket.on('data', (data: Buffer) => {
      received += data.length;
      if (received >= size) socket.end(`got ${received}`);
    });
  });
  const stream = await connectVfkitVsock(vfkit.path, { retry: () => true });
  stream.write('x');
  const first = await readAll(stream, 1);
  assert.equal(first.toString(), '!');
  stream.removeAllListeners('data');
  const rest: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => rest.push(chunk));
  stream.write(Buffer.alloc(size - 1, 7));
  await once(stream, 'close');
  assert.equal(Buffer.concat(rest).toString(), `got ${size}`);
});

it('a missing socket is ChannelClosedError at once (the VM is not running yet)', async (t) => {
  await assert.rejects(
    connectVfkitVsock(join(tempDir(t), 'none.sock'), { retry: () => true }),
    (error: unknown) => error instanceof ChannelClosedError && /does not exist yet/.test(error.message),
  );
});

it('gives up with ChannelClosedError once the VM is gone, and on abort with CancelledError', async (t) => {
  const vfkit = await proxy(t, Infinity, () => undefined);
  const gone = await connectVfkitVsock(vfkit.path, { retry: () => false });
  gone.write('HELLO');
  const [error] = (await once(gone, 'error')) as [Error];
  assert.ok(error instanceof ChannelClosedError);
  assert.match(error.message, /VM stopped before its agent listened/);

  const controller = new AbortController();
  const waiting = await connectVfkitVsock(vfkit.path, { retry: () => true, signal: controller.signal });
  waiting.write('HELLO');
  setTimeout(() => controller.abort(), 100);
  const [cancelled] = (await once(waiting, 'error')) as [Error];
  assert.ok(cancelled instanceof CancelledError);
  assert.ok(vfkit.connections() > 2, 'it kept retrying until cancelled');
});
