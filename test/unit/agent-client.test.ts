import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { AgentConnection } from '../../src/channel/client.js';
import { FrameDecoder, encodeFrame, type Frame } from '../../src/channel/codec.js';
import { ExecProcess } from '../../src/channel/exec-process.js';
import { ErrorCode, MsgType, PROTOCOL_VERSION } from '../../src/channel/protocol.js';
import { PayloadWriter } from '../../src/channel/wire.js';
import { ChannelClosedError, GuestError, ProtocolError } from '../../src/core/errors.js';
import { tempDir } from '../helpers/temp.js';

type Script = (frame: Frame, reply: (bytes: Buffer) => void, socket: Socket) => void;

const helloOk = (version = PROTOCOL_VERSION): Buffer =>
  encodeFrame(
    MsgType.HELLO_OK,
    0,
    new PayloadWriter().u32(version).u32(15).u32(262144).u32(1048576).str('fake').finish(),
  );

/** A fake agent speaking the real codec, answering each frame with `script`. */
async function fakeAgent(t: TestContext, script: Script): Promise<AgentConnection> {
  const path = join(tempDir(t), 'agent.sock');
  const server = createServer((socket) => {
    const decoder = new FrameDecoder();
    socket.on('data', (data) => {
      for (const frame of decoder.push(data)) script(frame, (bytes) => socket.write(bytes), socket);
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(() => server.close());
  const socket = connect(path);
  await new Promise((resolve) => socket.once('connect', resolve));
  const connection = new AgentConnection(socket);
  t.after(() => connection.close());
  return connection;
}

const handshaking =
  (next: Script = () => undefined): Script =>
  (frame, reply, socket) =>
    frame.type === MsgType.HELLO ? reply(helloOk()) : next(frame, reply, socket);

describe('agent connection against a fake agent', () => {
  it('completes the handshake and reads the agent info', async (t) => {
    const connection = await fakeAgent(t, handshaking());
    const info = await connection.handshake();
    assert.equal(info.version, PROTOCOL_VERSION);
    assert.equal(info.agentVersion, 'fake');
  });

  it('refuses an agent that picks a version it was not offered', async (t) => {
    const connection = await fakeAgent(t, (_frame, reply) => reply(helloOk(99)));
    await assert.rejects(connection.handshake(), /protocol version 99/);
    assert.ok(connection.closed);
  });

  it('reports the agent refusing our versions as a GuestError', async (t) => {
    const refusal = new PayloadWriter().u32(ErrorCode.UNSUPPORTED_VERSION).str('agent speaks 7 only').finish();
    const connection = await fakeAgent(t, (_frame, reply) => reply(encodeFrame(MsgType.ERROR, 0, refusal)));
    await assert.rejects(
      connection.handshake(),
      (error: unknown) => error instanceof GuestError && error.guestCode === 'UNSUPPORTED_VERSION',
    );
  });

  it('closes the connection and fails open requests on an oversized frame header', async (t) => {
    const connection = await fakeAgent(
      t,
      handshaking((_frame, reply) => {
        const evil = Buffer.alloc(12);
        evil.writeUInt32LE(0xfffffff0, 0);
        reply(evil);
      }),
    );
    await connection.handshake();
    const exec = new ExecProcess(connection, { argv: ['true'] });
    await assert.rejects(
      exec.exit,
      (error: unknown) => error instanceof ProtocolError && /exceeds the maximum/.test(error.message),
    );
    assert.ok(connection.closed);
  });

  it('treats a malformed EXIT payload as a protocol error, not a crash', async (t) => {
    const connection = await fakeAgent(
      t,
      handshaking((frame, reply) => {
        reply(encodeFrame(MsgType.STDOUT, frame.stream, Buffer.alloc(0), 1));
        reply(encodeFrame(MsgType.STDERR, frame.stream, Buffer.alloc(0), 1));
        reply(encodeFrame(MsgType.EXIT, frame.stream, Buffer.from([0, 1])));
      }),
    );
    await connection.handshake();
    const exec = new ExecProcess(connection, { argv: ['true'] });
    exec.stdout.resume();
    exec.stderr.resume();
    await assert.rejects(exec.exit, /EXIT: truncated payload/);
  });

  it('fails every open request with ChannelClosedError when the agent disconnects', async (t) => {
    const connection = await fakeAgent(
      t,
      handshaking((_frame, _reply, socket) => socket.destroy()),
    );
    await connection.handshake();
    await assert.rejects(connection.request(MsgType.PING, Buffer.from('x')), ChannelClosedError);
  });

  it('never lets the guest send more stdout than the window allows', async (t) => {
    const connection = await fakeAgent(
      t,
      handshaking((frame, reply) => {
        if (frame.type !== MsgType.EXEC) return;
        for (let i = 0; i < 17; i++) reply(encodeFrame(MsgType.STDOUT, frame.stream, Buffer.alloc(65536)));
      }),
    );
    await connection.handshake();
    const exec = new ExecProcess(connection, { argv: ['yes'] });
    // Nobody reads stdout: the host may buffer, but must not grant beyond what was consumed.
    const granted: number[] = [];
    const send = connection.send.bind(connection);
    connection.send = (type, stream, payload, flags) => {
      if (type === MsgType.WINDOW) granted.push(payload?.readUInt32LE(1) ?? 0);
      send(type, stream, payload, flags);
    };
    await new Promise((resolve) => setTimeout(resolve, 200));
    const total = granted.reduce((a, b) => a + b, 0);
    assert.ok(total <= exec.stdout.readableHighWaterMark + 65536, `granted ${total} bytes with no reader`);
    exec.kill();
  });
});
