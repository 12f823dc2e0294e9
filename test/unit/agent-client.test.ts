import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeFrame } from '../../src/channel/codec.js';
import { ExecProcess } from '../../src/channel/exec-process.js';
import { ErrorCode, MsgType, PROTOCOL_VERSION } from '../../src/channel/protocol.js';
import { PayloadWriter } from '../../src/channel/wire.js';
import { ChannelClosedError, GuestError, InvalidArgumentError, ProtocolError } from '../../src/core/errors.js';
import { readFile, writeFile } from '../../src/channel/files.js';
import { fakeAgent, handshaking, helloOk } from '../helpers/fake-agent.js';

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
    await assert.rejects(connection.request(MsgType.PING, Buffer.from('x'), MsgType.PONG), ChannelClosedError);
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

  it('treats output after its end as a protocol error instead of crashing', async (t) => {
    const connection = await fakeAgent(
      t,
      handshaking((frame, reply) => {
        if (frame.type !== MsgType.EXEC) return;
        reply(encodeFrame(MsgType.STDOUT, frame.stream, Buffer.from('a'), 1));
        reply(encodeFrame(MsgType.STDOUT, frame.stream, Buffer.from('late')));
      }),
    );
    await connection.handshake();
    const exec = new ExecProcess(connection, { argv: ['x'] });
    exec.stdout.resume();
    await assert.rejects(exec.exit, /stdout: data after its end/);
    assert.ok(connection.closed);
  });

  it('holds the agent to the window: output beyond it closes the connection', async (t) => {
    const connection = await fakeAgent(
      t,
      handshaking((frame, reply) => {
        if (frame.type !== MsgType.EXEC) return;
        for (let i = 0; i < 5; i++) reply(encodeFrame(MsgType.STDERR, frame.stream, Buffer.alloc(262144)));
      }),
    );
    await connection.handshake();
    const exec = new ExecProcess(connection, { argv: ['x'] });
    await assert.rejects(exec.exit, /stderr: the peer sent beyond its window/);
  });

  it('refuses NUL bytes as invalid input without using up stream slots', async (t) => {
    const connection = await fakeAgent(
      t,
      handshaking((frame, reply) => reply(encodeFrame(MsgType.PONG, frame.stream, frame.payload))),
    );
    await connection.handshake();
    for (let i = 0; i < 70; i++)
      assert.throws(() => new ExecProcess(connection, { argv: ['a\0b'] }), InvalidArgumentError);
    await assert.rejects(readFile(connection, 'x\0'), InvalidArgumentError);
    assert.deepEqual(
      (await connection.request(MsgType.PING, Buffer.from('ok'), MsgType.PONG)).payload,
      Buffer.from('ok'),
    );
  });

  it('cancels an upload whose source fails, and reports the source error', async (t) => {
    const seen: number[] = [];
    const connection = await fakeAgent(
      t,
      handshaking((frame) => seen.push(frame.type)),
    );
    await connection.handshake();
    async function* failing(): AsyncIterable<Buffer> {
      yield Buffer.from('part');
      throw new Error('disk gone');
    }
    await assert.rejects(writeFile(connection, '/f', failing()), /disk gone/);
    await until(() => seen.includes(MsgType.CANCEL));
    assert.deepEqual(seen, [MsgType.FILE_WRITE, MsgType.FILE_DATA, MsgType.CANCEL]);
  });

  it('cancels a read whose consumer goes away', async (t) => {
    const seen: number[] = [];
    const connection = await fakeAgent(
      t,
      handshaking((frame, reply) => {
        seen.push(frame.type);
        if (frame.type === MsgType.FILE_READ) {
          reply(encodeFrame(MsgType.FILE_READ_OK, frame.stream, new PayloadWriter().u64(10n).u32(0o644).finish()));
          reply(encodeFrame(MsgType.FILE_DATA, frame.stream, Buffer.from('01234')));
        }
      }),
    );
    await connection.handshake();
    const { content } = await readFile(connection, '/f');
    content.destroy();
    await until(() => seen.includes(MsgType.CANCEL));
  });
});

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(condition(), 'condition not reached within 2 s');
}
