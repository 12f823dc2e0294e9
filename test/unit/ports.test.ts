/**
 * Published ports: where the host listens and what it refuses. No connection is made, so no guest is needed; the
 * forwarding itself is tested against real guests in test/integration/network.test.ts.
 */
import assert from 'node:assert/strict';
import { type Server, createServer } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { PortForwards } from '../../src/sandbox/ports.js';

/** Port forwards that fail the test if anything asks for the agent connection. */
function forwards(t: TestContext): PortForwards {
  const ports = new PortForwards(() => assert.fail('nothing connects in these tests'));
  t.after(() => ports.close());
  return ports;
}

/** Listens on `host`:`port` and resolves with the server, or rejects with the listen error. */
async function listen(t: TestContext, host: string, port: number): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, resolve);
  });
  t.after(() => new Promise((done) => server.close(done)));
  return server;
}

const portOf = (server: Server): number => (server.address() as { port: number }).port;

describe('published ports', () => {
  it('publishes on a free port when asked for port 0 or none, and lists it', async (t) => {
    const ports = forwards(t);
    const first = await ports.publish({ guest: 80 });
    const second = await ports.publish({ guest: 443, host: 0 });
    assert.ok(first > 0 && second > 0 && first !== second);
    assert.equal(ports.hostPort(80), first);
    assert.equal(ports.hostPort(22), undefined);
    assert.deepEqual(ports.list(), [
      { guest: 80, host: first },
      { guest: 443, host: second },
    ]);
  });

  it('holds the port on 127.0.0.1 only', { skip: process.platform !== 'linux' && 'needs 127.0.0.2' }, async (t) => {
    const host = await forwards(t).publish({ guest: 80 });
    await assert.rejects(listen(t, '127.0.0.1', host), { code: 'EADDRINUSE' });
    // Bound to a wildcard address, the port would be taken on every loopback address too.
    await listen(t, '127.0.0.2', host);
  });

  it('publishes on the host port asked for', async (t) => {
    const probe = await listen(t, '127.0.0.1', 0);
    const wanted = portOf(probe);
    await new Promise((done) => probe.close(done));
    assert.equal(await forwards(t).publish({ guest: 8080, host: wanted }), wanted);
  });

  it('refuses a host port in use, saying how to get a free one, and keeps nothing of the attempt', async (t) => {
    const busy = portOf(await listen(t, '127.0.0.1', 0));
    const ports = forwards(t);
    await assert.rejects(
      ports.publish({ guest: 80, host: busy }),
      (error: unknown) =>
        error instanceof InvalidArgumentError &&
        error.message === `host port ${busy} is in use on 127.0.0.1; pass host: 0 for a free one`,
    );
    assert.deepEqual(ports.list(), []);
    assert.ok((await ports.publish({ guest: 80 })) > 0, 'the guest port can still be published');
  });

  it('refuses to publish one guest port twice', async (t) => {
    const ports = forwards(t);
    const host = await ports.publish({ guest: 80 });
    await assert.rejects(
      ports.publish({ guest: 80 }),
      (error: unknown) =>
        error instanceof InvalidArgumentError && error.message === 'guest port 80 is already published',
    );
    assert.deepEqual(ports.list(), [{ guest: 80, host }]);
  });

  it('close() stops listening and frees the ports', async (t) => {
    const ports = forwards(t);
    const hosts = [await ports.publish({ guest: 80 }), await ports.publish({ guest: 81 })];
    await ports.close();
    assert.deepEqual(ports.list(), []);
    assert.equal(ports.hostPort(80), undefined);
    for (const host of hosts) await listen(t, '127.0.0.1', host);
  });
});
