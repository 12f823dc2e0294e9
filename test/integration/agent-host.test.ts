/**
 * The real C agent in dev mode (`--connect`), on this host without a VM: protocol conformance and hostile input at
 * the speed of a unit test. Only harmless commands run here, since dev mode executes them on the host.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readFile, writeFile } from '../../src/channel/files.js';
import { FrameDecoder, encodeFrame } from '../../src/channel/codec.js';
import { setIdentity } from '../../src/channel/identity.js';
import { Capability, ErrorCode, MsgType } from '../../src/channel/protocol.js';
import { PayloadReader, PayloadWriter } from '../../src/channel/wire.js';
import { type GuestError, type JitvmError, ProtocolError } from '../../src/core/errors.js';
import { runCommand } from '../../src/sandbox/command.js';
import { DevAgent } from '../helpers/dev-agent.js';
import { alive } from '../helpers/process.js';

let agent: DevAgent;

before(async () => {
  agent = await DevAgent.start();
});

after(() => agent?.stop());

describe('the C agent in dev mode', () => {
  it('runs commands with exit codes, separate streams and a flow-controlled flood', async () => {
    const { connection } = await agent.connect();
    try {
      const result = await runCommand(connection, 'echo out; echo err >&2; exit 3');
      assert.deepEqual([result.exitCode, result.stdout, result.stderr], [3, 'out\n', 'err\n']);
      const flood = await runCommand(connection, ['head', '-c', '9000000', '/dev/zero']);
      assert.equal(flood.stdoutBytes.length, 9_000_000);
    } finally {
      connection.close();
    }
  });

  it('kills the process group of a disconnected host and serves the next connection', async () => {
    const { connection: first } = await agent.connect();
    let printed = '';
    const running = runCommand(first, 'echo $$; exec sleep 100', { onStdout: (chunk) => (printed += chunk) });
    running.catch(() => undefined);
    await until(() => printed.endsWith('\n'));
    const pid = Number(printed.trim());
    assert.ok(alive(pid));
    first.close();
    const { connection: second } = await agent.connect();
    try {
      await until(() => !alive(pid));
      assert.equal((await runCommand(second, ['true'])).exitCode, 0);
    } finally {
      second.close();
    }
  });

  it('frees the slots of abandoned reads (CANCEL), so later requests still get through', async () => {
    const { connection } = await agent.connect();
    try {
      const path = join(agent.dir, 'big.bin');
      await writeFile(connection, path, [Buffer.alloc(4 * 1024 * 1024, 7)]);
      for (let i = 0; i < 70; i++) {
        const { content } = await readFile(connection, path);
        content.destroy();
      }
      assert.equal((await runCommand(connection, ['true'])).exitCode, 0);
    } finally {
      connection.close();
    }
  });

  it('refuses a version it does not speak, then still accepts a good HELLO', async () => {
    const socket = await agent.nextConnection();
    const decoder = new FrameDecoder();
    const replies: Array<{ type: number; payload: Buffer }> = [];
    socket.on('data', (data: Buffer) => replies.push(...decoder.push(data)));
    socket.write(encodeFrame(MsgType.HELLO, 0, new PayloadWriter().u32(90).u32(99).finish()));
    await until(() => replies.length === 1);
    const refusal = new PayloadReader(replies[0]!.payload, 'ERROR');
    assert.equal(replies[0]!.type, MsgType.ERROR);
    assert.equal(refusal.u32(), ErrorCode.UNSUPPORTED_VERSION);
    socket.write(encodeFrame(MsgType.HELLO, 0, new PayloadWriter().u32(1).u32(1).finish()));
    await until(() => replies.length === 2);
    assert.equal(replies[1]!.type, MsgType.HELLO_OK);
    socket.destroy();
  });

  it('never sets its identity in dev mode: no IDENTITY capability, and a SET_IDENTITY sent anyway is refused', async () => {
    const { connection } = await agent.connect();
    try {
      assert.equal(connection.info!.capabilities & Capability.IDENTITY, 0);
      await assert.rejects(setIdentity(connection), (error: unknown) => (error as JitvmError).code === 'unsupported');
      // Past the host's check, as an old or broken host would send it. The values are harmless should the guard
      // ever fail (this host's root could set its clock): an empty hostname keeps the host's, the time is now.
      const request = (hostname: string, entropyBytes: number) =>
        connection.request(
          MsgType.SET_IDENTITY,
          new PayloadWriter()
            .u64(BigInt(Date.now()) * 1_000_000n)
            .str(hostname)
            .bytes(randomBytes(entropyBytes))
            .finish(),
          MsgType.OK,
        );
      const refusedAs = (guestCode: string) => (error: unknown) => (error as GuestError).guestCode === guestCode;
      await assert.rejects(request('', 64), refusedAs('UNSUPPORTED'));
      // Values are checked before the PID-1 guard, so the agent's bounds are exercised here too.
      await assert.rejects(request('', 31), refusedAs('INVALID_ARGUMENT'));
      await assert.rejects(request('', 513), refusedAs('INVALID_ARGUMENT'));
      await assert.rejects(request('bad_name', 64), refusedAs('INVALID_ARGUMENT'));
      await assert.rejects(request('h'.repeat(65), 64), refusedAs('INVALID_ARGUMENT'));
      assert.equal((await runCommand(connection, ['true'])).exitCode, 0);
    } finally {
      connection.close();
    }
  });

  it('treats a truncated SET_IDENTITY as a protocol error', async () => {
    const { connection } = await agent.connect();
    const closed = new Promise<Error>((resolve) => connection.once('close', resolve));
    const truncated = new PayloadWriter().u64(1n).u32(100).finish();
    await assert.rejects(connection.request(MsgType.SET_IDENTITY, truncated, MsgType.OK), ProtocolError);
    assert.ok((await closed) instanceof ProtocolError);
  });

  it('answers an oversized frame with a connection-level protocol error and ends the connection', async () => {
    const { connection } = await agent.connect();
    const closed = new Promise<Error>((resolve) => connection.once('close', resolve));
    const evil = Buffer.alloc(12);
    evil.writeUInt32LE(0xffffffff, 0);
    evil.writeUInt8(MsgType.PING, 4);
    evil.writeUInt32LE(1, 8);
    // Reach past the client's own checks: this is what a broken or hostile host would send.
    (connection as unknown as { transport: Socket }).transport.write(evil);
    const error = await closed;
    assert.ok(error instanceof ProtocolError && /protocol error/.test(error.message), String(error));
  });
});

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(condition(), 'condition not reached within 2 s');
}
