import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QmpClient } from '../../src/backends/qemu/qmp.js';
import { ChannelClosedError, VmmError } from '../../src/core/errors.js';
import { fakeQmp } from '../helpers/fake-qmp.js';

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
