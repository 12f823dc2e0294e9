import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { connectLocal, localEndpoint, localTransport, pipeName } from '../../src/channel/local-endpoint.js';
import { serverChardev, qmpArgs, servesOneClient } from '../../src/backends/qemu/chardev.js';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { tempDir } from '../helpers/temp.js';

const place = { runtimeDir: '/run/user/1000/jitvm/vms/jv-0a1b', vmId: 'jv-0a1b', role: 'agent' };

describe('local endpoints', () => {
  it('are Unix sockets in the runtime dir on Linux and macOS', () => {
    for (const platform of ['linux', 'darwin'] as const) {
      assert.equal(localTransport(platform), 'unix-socket');
      assert.deepEqual(localEndpoint(place, platform), {
        transport: 'unix-socket',
        address: '/run/user/1000/jitvm/vms/jv-0a1b/agent.sock',
      });
    }
  });

  it('are named pipes carrying the VM id and role on Windows, whatever the runtime dir', () => {
    const windowsPlace = { ...place, runtimeDir: 'C:\\Users\\me\\AppData\\Local\\jitvm\\vms\\jv-0a1b' };
    const endpoint = localEndpoint(windowsPlace, 'win32');
    assert.equal(localTransport('win32'), 'named-pipe');
    assert.deepEqual(endpoint, { transport: 'named-pipe', address: '\\\\.\\pipe\\jitvm-jv-0a1b-agent' });
    assert.equal(pipeName(endpoint), 'jitvm-jv-0a1b-agent');
  });

  it('refuses a socket path over the kernel limit (107 bytes on Linux, 103 on macOS), naming the fix', () => {
    const deep = { ...place, runtimeDir: `/${'d'.repeat(93)}` }; // + "/agent.sock" = 105 bytes
    assert.equal(localEndpoint(deep, 'linux').address.length, 105);
    assert.throws(() => localEndpoint(deep, 'darwin'), /105 bytes, over the 103-byte limit.*JITVM_RUNTIME_DIR/);
    const deeper = { ...place, runtimeDir: `/${'d'.repeat(96)}` };
    assert.throws(() => localEndpoint(deeper, 'linux'), InvalidArgumentError);
  });

  it('refuses roles and VM ids that cannot name a pipe or a file', () => {
    assert.throws(() => localEndpoint({ ...place, role: '../x' }, 'linux'), InvalidArgumentError);
    assert.throws(() => localEndpoint({ ...place, vmId: 'a\\b' }, 'win32'), InvalidArgumentError);
    assert.throws(() => pipeName({ transport: 'unix-socket', address: '/r/agent.sock' }), InvalidArgumentError);
  });

  it('connects to a live endpoint, fails with the system error on a missing one, and honours abort', async (t) => {
    const dir = tempDir(t);
    const address = join(dir, 'agent.sock');
    const server = createServer((socket) => socket.end('hi'));
    await new Promise<void>((resolve) => server.listen(address, resolve));
    t.after(() => server.close());
    const socket = await connectLocal(address);
    const received = await new Promise<string>((resolve) => socket.once('data', (data) => resolve(String(data))));
    assert.equal(received, 'hi');
    socket.destroy();
    await assert.rejects(connectLocal(join(dir, 'absent.sock')), { code: 'ENOENT' });
    await assert.rejects(connectLocal(address, AbortSignal.abort()), { name: 'AbortError' });
  });

  it('leaves a connected stream alone when the signal aborts afterwards (it guards the connect only)', async (t) => {
    const address = join(tempDir(t), 'agent.sock');
    const server = createServer((socket) => socket.once('data', (data) => socket.end(data)));
    await new Promise<void>((resolve) => server.listen(address, resolve));
    t.after(() => server.close());
    const controller = new AbortController();
    const socket = await connectLocal(address, controller.signal);
    controller.abort();
    const echoed = new Promise<string>((resolve) => socket.once('data', (data) => resolve(String(data))));
    socket.write('still here');
    assert.equal(await echoed, 'still here');
    socket.destroy();
  });
});

describe('QEMU chardevs for local endpoints', () => {
  const unix = { transport: 'unix-socket', address: '/r/a,b/agent.sock' } as const;
  const pipe = { transport: 'named-pipe', address: '\\\\.\\pipe\\jitvm-jv-1-agent' } as const;

  it('serves a Unix socket that listens again after each client (commas escaped)', () => {
    assert.equal(serverChardev('agent', unix), 'socket,id=agent,path=/r/a,,b/agent.sock,server=on,wait=off');
    assert.deepEqual(qmpArgs({ ...unix, address: '/r/qmp.sock' }), ['-qmp', 'unix:/r/qmp.sock,server=on,wait=off']);
    assert.equal(servesOneClient(unix.transport), false);
  });

  it("serves a named pipe by its bare name, QMP through -mon, to one client (QEMU's char-pipe.c)", () => {
    assert.equal(serverChardev('agent', pipe), 'pipe,id=agent,path=jitvm-jv-1-agent');
    assert.deepEqual(qmpArgs({ ...pipe, address: '\\\\.\\pipe\\jitvm-jv-1-qmp' }), [
      '-chardev',
      'pipe,id=qmp,path=jitvm-jv-1-qmp',
      '-mon',
      'chardev=qmp,mode=control',
    ]);
    assert.equal(servesOneClient(pipe.transport), true);
  });
});
