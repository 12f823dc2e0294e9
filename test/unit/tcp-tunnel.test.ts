import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import type { AgentConnection } from '../../src/channel/client.js';
import { type Frame, encodeFrame } from '../../src/channel/codec.js';
import { encodeWindow } from '../../src/channel/credit.js';
import {
  Capability,
  DATA_CHUNK,
  ErrorCode,
  FLAG_FIN,
  INITIAL_WINDOW,
  MsgType,
  WindowChannel,
} from '../../src/channel/protocol.js';
import { type TcpTunnel, acceptTcp, openTcp } from '../../src/channel/tcp.js';
import { PayloadReader, PayloadWriter } from '../../src/channel/wire.js';
import { ChannelClosedError, GuestError, type JitvmError, ProtocolError } from '../../src/core/errors.js';
import { REQUIRED_CAPABILITIES, fakeAgent, handshaking } from '../helpers/fake-agent.js';

/** A fake agent that records every frame after HELLO and lets the test answer on the same socket. */
interface Agent {
  readonly connection: AgentConnection;
  readonly frames: Frame[];
  send(type: number, stream: number, payload?: Buffer, flags?: number): void;
  socket(): Socket;
}

async function agent(t: TestContext, capabilities = REQUIRED_CAPABILITIES | Capability.TCP): Promise<Agent> {
  const frames: Frame[] = [];
  let peer: Socket | undefined;
  const connection = await fakeAgent(
    t,
    handshaking((frame, _reply, socket) => {
      peer = socket;
      frames.push(frame);
    }, capabilities),
  );
  await connection.handshake();
  return {
    connection,
    frames,
    send: (type, stream, payload, flags) => peer!.write(encodeFrame(type, stream, payload, flags)),
    socket: () => peer!,
  };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(condition(), `not reached within 5 s: ${what}`);
}

const ofType = (frames: Frame[], type: number): Frame[] => frames.filter((frame) => frame.type === type);
const dataBytes = (frames: Frame[]): number =>
  ofType(frames, MsgType.TCP_DATA).reduce((sum, frame) => sum + frame.payload.length, 0);
const granted = (frames: Frame[]): number =>
  ofType(frames, MsgType.WINDOW).reduce((sum, frame) => sum + frame.payload.readUInt32LE(1), 0);
const error = (code: number, message: string): Buffer => new PayloadWriter().u32(code).str(message).finish();
const ok = (): Buffer => new PayloadWriter().u64(0n).finish();

/** openTcp against `fake`, answered with TCP_CONNECTED once the request arrives. */
async function connected(fake: Agent, port = 8080): Promise<{ tunnel: TcpTunnel; stream: number }> {
  const opening = openTcp(fake.connection, port);
  await until(() => fake.frames.length === 1, 'TCP_CONNECT');
  const stream = fake.frames[0]!.stream;
  fake.send(MsgType.TCP_CONNECTED, stream);
  return { tunnel: await opening, stream };
}

describe('TCP tunnels against a fake agent', () => {
  it('refuses without the TCP capability or with a bad port, sending nothing', async (t) => {
    const old = await agent(t, REQUIRED_CAPABILITIES);
    await assert.rejects(openTcp(old.connection, 80), (e: unknown) => (e as JitvmError).code === 'unsupported');
    await assert.rejects(acceptTcp(old.connection, 80), (e: unknown) => (e as JitvmError).code === 'unsupported');
    const fake = await agent(t);
    for (const port of [0, 65536, 1.5, -1, Number.NaN]) {
      await assert.rejects(
        openTcp(fake.connection, port),
        (e: unknown) => (e as JitvmError).code === 'invalid_argument',
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual([old.frames.length, fake.frames.length], [0, 0]);
  });

  it('sends TCP_CONNECT with flags 0 and the port, and rejects with the guest error', async (t) => {
    const fake = await agent(t);
    const opening = openTcp(fake.connection, 0x1f90);
    await until(() => fake.frames.length === 1, 'TCP_CONNECT');
    const request = fake.frames[0]!;
    assert.equal(request.type, MsgType.TCP_CONNECT);
    assert.deepEqual([...request.payload], [0, 0, 0, 0, 0x90, 0x1f]);
    fake.send(MsgType.ERROR, request.stream, error(ErrorCode.NOT_FOUND, 'nothing listens on guest port 8080'));
    await assert.rejects(
      opening,
      (e: unknown) => e instanceof GuestError && e.code === 'not_found' && /nothing listens/.test(e.message),
    );
  });

  it('writes only within the credit, waits for WINDOW, and sends FIN after the data on end()', async (t) => {
    const fake = await agent(t);
    const { tunnel } = await connected(fake);
    const payload = Buffer.alloc(INITIAL_WINDOW * 2 + 12345, 1);
    let written = false;
    tunnel.write(payload, () => (written = true));
    await until(() => dataBytes(fake.frames) === INITIAL_WINDOW, 'a full window of data');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(dataBytes(fake.frames), INITIAL_WINDOW, 'nothing beyond the window');
    assert.equal(written, false);
    assert.ok(ofType(fake.frames, MsgType.TCP_DATA).every((frame) => frame.payload.length <= DATA_CHUNK));
    fake.send(MsgType.WINDOW, fake.frames[0]!.stream, encodeWindow(WindowChannel.TCP, INITIAL_WINDOW * 2));
    tunnel.end();
    await until(() => ofType(fake.frames, MsgType.TCP_DATA).some((frame) => frame.flags & FLAG_FIN), 'FIN');
    assert.equal(written, true);
    assert.equal(dataBytes(fake.frames), payload.length);
    const last = fake.frames.at(-1)!;
    assert.deepEqual([last.type, last.flags, last.payload.length], [MsgType.TCP_DATA, FLAG_FIN, 0]);
    tunnel.destroy();
  });

  it('grants WINDOW only as the consumer reads, and closes without a reset once both sides ended', async (t) => {
    const fake = await agent(t);
    const { tunnel, stream } = await connected(fake);
    const chunk = Buffer.alloc(DATA_CHUNK, 2);
    for (let i = 0; i < INITIAL_WINDOW / DATA_CHUNK; i++) fake.send(MsgType.TCP_DATA, stream, chunk);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const before = granted(fake.frames);
    assert.ok(before < INITIAL_WINDOW, `granted ${before} bytes nobody read`);
    let received = 0;
    tunnel.on('data', (data: Buffer) => (received += data.length));
    await until(() => received === INITIAL_WINDOW, 'the window read');
    await until(() => granted(fake.frames) === INITIAL_WINDOW, 'the window granted back');
    fake.send(MsgType.TCP_DATA, stream, Buffer.from('tail'), FLAG_FIN);
    await once(tunnel, 'end');
    const closed = once(tunnel, 'close');
    tunnel.end();
    await closed;
    fake.send(MsgType.OK, stream, ok());
    await until(() => ofType(fake.frames, MsgType.TCP_DATA).length === 1, 'our FIN');
    assert.equal(received, INITIAL_WINDOW + 4);
    assert.equal(ofType(fake.frames, MsgType.CANCEL).length, 0, 'a clean end is not reset');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(fake.connection.closed, false, 'the late OK is taken as the end of the stream');
  });

  it('treats data beyond the window as a protocol error that ends the connection', async (t) => {
    const fake = await agent(t);
    const { tunnel, stream } = await connected(fake);
    const failed = once(tunnel, 'error');
    for (let i = 0; i <= INITIAL_WINDOW / DATA_CHUNK; i++)
      fake.send(MsgType.TCP_DATA, stream, Buffer.alloc(DATA_CHUNK));
    const [failure] = (await failed) as [Error];
    assert.ok(failure instanceof ProtocolError && /beyond its window/.test(failure.message), String(failure));
    assert.ok(fake.connection.closed);
  });

  it('ends its own side when the guest ends with allowHalfOpen false', async (t) => {
    const fake = await agent(t);
    const opening = openTcp(fake.connection, 8080, { allowHalfOpen: false });
    await until(() => fake.frames.length === 1, 'TCP_CONNECT');
    fake.send(MsgType.TCP_CONNECTED, fake.frames[0]!.stream);
    const tunnel = await opening;
    tunnel.resume();
    fake.send(MsgType.TCP_DATA, fake.frames[0]!.stream, undefined, FLAG_FIN);
    await until(() => ofType(fake.frames, MsgType.TCP_DATA).length === 1, 'our FIN');
    tunnel.destroy();
  });

  it('sends CANCEL when destroyed, and is destroyed with a GuestError by an ERROR mid-stream', async (t) => {
    const fake = await agent(t);
    const first = await connected(fake);
    first.tunnel.destroy();
    await until(() => ofType(fake.frames, MsgType.CANCEL).length === 1, 'CANCEL');
    assert.equal(ofType(fake.frames, MsgType.CANCEL)[0]!.stream, first.stream);

    fake.frames.length = 0;
    const second = await connected(fake);
    const failed = once(second.tunnel, 'error');
    fake.send(MsgType.ERROR, second.stream, error(ErrorCode.IO, 'guest port 8080: Connection reset by peer'));
    const [failure] = (await failed) as [Error];
    assert.ok(failure instanceof GuestError && failure.guestCode === 'IO' && /reset/.test(failure.message));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(ofType(fake.frames, MsgType.CANCEL).length, 0, 'no CANCEL for a stream the agent ended');
  });

  it('is destroyed with ChannelClosedError when the channel drops mid-stream', async (t) => {
    const fake = await agent(t);
    const { tunnel } = await connected(fake);
    const failed = once(tunnel, 'error');
    fake.socket().destroy();
    const [failure] = (await failed) as [Error];
    assert.ok(failure instanceof ChannelClosedError);
  });

  it('accepts with the peer port, and a signal withdraws a pending accept with CANCEL', async (t) => {
    const fake = await agent(t);
    const accepting = acceptTcp(fake.connection, 3128);
    await until(() => fake.frames.length === 1, 'TCP_ACCEPT');
    const request = fake.frames[0]!;
    assert.equal(request.type, MsgType.TCP_ACCEPT);
    const reader = new PayloadReader(request.payload, 'TCP_ACCEPT');
    assert.deepEqual([reader.u32(), reader.u8() | (reader.u8() << 8)], [0, 3128]);
    fake.send(MsgType.TCP_ACCEPTED, request.stream, Buffer.from([0x40, 0x9c]));
    const tunnel = await accepting;
    assert.deepEqual([tunnel.guestPort, tunnel.peerPort], [3128, 40000]);

    const controller = new AbortController();
    const waiting = acceptTcp(fake.connection, 3128, { signal: controller.signal });
    await until(() => fake.frames.length === 2, 'second TCP_ACCEPT');
    controller.abort();
    await assert.rejects(waiting, (e: unknown) => (e as JitvmError).code === 'cancelled');
    await until(() => ofType(fake.frames, MsgType.CANCEL).length === 1, 'CANCEL');
    assert.equal(ofType(fake.frames, MsgType.CANCEL)[0]!.stream, fake.frames[1]!.stream);
    await assert.rejects(
      acceptTcp(fake.connection, 3128, { signal: AbortSignal.abort() }),
      (e: unknown) => (e as JitvmError).code === 'cancelled',
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(fake.frames.length, 3, 'nothing sent for an accept aborted before it started');
    tunnel.destroy();
  });

  it('treats an unexpected reply as a protocol error', async (t) => {
    const fake = await agent(t);
    const opening = openTcp(fake.connection, 8080);
    await until(() => fake.frames.length === 1, 'TCP_CONNECT');
    fake.send(MsgType.TCP_ACCEPTED, fake.frames[0]!.stream, Buffer.from([1, 0]));
    await assert.rejects(opening, ProtocolError);
  });
});
