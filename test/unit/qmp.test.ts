import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { QmpClient } from '../../src/backends/qemu/qmp.js';
import { ChannelClosedError, VmmError } from '../../src/core/errors.js';
import { tempDir } from '../helpers/temp.js';

type Reply = (command: { execute: string; arguments?: unknown; id?: number }, socket: Socket) => void;

/** A QMP server speaking QEMU's wire format: greeting, then one JSON object per line with ids echoed. */
async function fakeQmp(t: TestContext, reply: Reply): Promise<string> {
  const path = join(tempDir(t), 'qmp.sock');
  const server = createServer((socket) => {
    socket.write(
      JSON.stringify({
        QMP: { version: { qemu: { micro: 22, minor: 2, major: 7 }, package: '' }, capabilities: ['oob'] },
      }) + '\r\n',
    );
    let buffer = '';
    socket.on('data', (data) => {
      buffer += data.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        const command = JSON.parse(line) as { execute: string; id?: number };
        if (command.execute === 'qmp_capabilities')
          socket.write(JSON.stringify({ return: {}, id: command.id }) + '\r\n');
        else reply(command, socket);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(() => server.close());
  return path;
}

describe('QMP client', () => {
  it('negotiates, runs commands and matches replies by id, skipping events', async (t) => {
    const path = await fakeQmp(t, (command, socket) => {
      socket.write(
        JSON.stringify({ event: 'POWERDOWN', data: {}, timestamp: { seconds: 1, microseconds: 0 } }) + '\r\n',
      );
      socket.write(JSON.stringify({ return: { status: 'running', running: true }, id: command.id }) + '\r\n');
    });
    const client = await QmpClient.connect(path);
    t.after(() => client.close());
    assert.equal(client.version, '7.2.22');
    assert.equal(await client.status(), 'running');
  });

  it('turns a QMP error into VmmError with its class and description', async (t) => {
    const path = await fakeQmp(t, (command, socket) => {
      socket.write(
        JSON.stringify({
          error: { class: 'CommandNotFound', desc: 'The command nope has not been found' },
          id: command.id,
        }) + '\n',
      );
    });
    const client = await QmpClient.connect(path);
    t.after(() => client.close());
    await assert.rejects(
      client.execute('nope'),
      (error: unknown) => error instanceof VmmError && /CommandNotFound/.test(error.message),
    );
  });

  it('fails pending commands with ChannelClosedError when QEMU goes away, and quit() accepts that', async (t) => {
    const path = await fakeQmp(t, (command, socket) => {
      if (command.execute === 'quit') socket.destroy();
    });
    const client = await QmpClient.connect(path);
    const closed = new Promise((resolve) => client.once('close', resolve));
    await client.quit();
    await closed;
    assert.ok(client.isClosed);
    await assert.rejects(client.status(), ChannelClosedError);
  });

  it('refuses malformed JSON from the server', async (t) => {
    const path = await fakeQmp(t, (_command, socket) => socket.write('{not json}\n'));
    const client = await QmpClient.connect(path);
    await assert.rejects(client.status(), /malformed QMP message/);
  });
});
