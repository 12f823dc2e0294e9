/**
 * QemuInstance against the lowest layers faked honestly: a QMP server speaking QEMU's wire format on a real socket,
 * and a VMM process that ends when QEMU would (quit, or the guest powering off).
 */
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { type QemuPaths, runtimePaths } from '../../src/backends/qemu/args.js';
import { HeldConnection } from '../../src/backends/qemu/held-connection.js';
import { QemuInstance } from '../../src/backends/qemu/instance.js';
import { connectLocal } from '../../src/channel/local-endpoint.js';
import { ChannelClosedError, JitvmError } from '../../src/core/errors.js';
import type { VmExit } from '../../src/core/hypervisor.js';
import type { VmmProcess } from '../../src/core/vmm-process.js';
import { type QmpCommand, fakeQmp, sendQmp } from '../helpers/fake-qmp.js';
import { tempDir } from '../helpers/temp.js';

/** A VMM process that exits when told to; it never runs anything, so nothing is ever signalled for real. */
function fakeVmm(): VmmProcess & { end(exit: VmExit): void } {
  let alive = true;
  let end: (exit: VmExit) => void = () => undefined;
  const exited = new Promise<VmExit>((resolve) => (end = resolve));
  return {
    pid: 999_999,
    child: true,
    exited,
    isAlive: () => alive,
    signal: (signal) => {
      alive = false;
      end({ code: undefined, signal });
    },
    release: () => undefined,
    end: (exit) => {
      alive = false;
      end(exit);
    },
  };
}

interface Booted {
  readonly instance: QemuInstance;
  readonly commands: string[];
  readonly vmm: ReturnType<typeof fakeVmm>;
}

/** Starts an instance on a fake QEMU whose guest powers off on system_powerdown only if `guestSeesButton`. */
async function boot(t: TestContext, powerButton: boolean, guestSeesButton: boolean): Promise<Booted> {
  const dir = tempDir(t);
  const paths = runtimePaths(dir, { vmId: 'jv-1', platform: 'linux' });
  const vmm = fakeVmm();
  const commands: string[] = [];
  await fakeQmp(
    t,
    (command: QmpCommand, socket: Socket) => {
      commands.push(command.execute);
      if (command.execute === 'query-status') sendQmp(socket, { return: { status: 'running' }, id: command.id });
      else sendQmp(socket, { return: {}, id: command.id });
      if (command.execute === 'quit') vmm.end({ code: 0, signal: undefined });
      if (command.execute === 'system_powerdown' && guestSeesButton) vmm.end({ code: 0, signal: undefined });
    },
    { path: paths.qmpSocket },
  );
  const instance = new QemuInstance('jv-1', dir, paths, vmm, { powerButton });
  await instance.attachControl(5000);
  return { instance, commands, vmm };
}

const NEVER_WAITED_FOR = 600_000;

describe('QemuInstance stop()', () => {
  it('goes straight to quit on a machine without a power button (virt), not waiting out the timeout', async (t) => {
    const { instance, commands } = await boot(t, false, false);
    const exit = await instance.stop({ timeoutMs: NEVER_WAITED_FOR });
    assert.deepEqual(exit, { code: 0, signal: undefined });
    assert.deepEqual(commands, ['query-status', 'quit']);
    assert.equal(instance.state.kind, 'exited');
  });

  it('presses the power button where the guest sees it, and needs no quit when the guest powers off', async (t) => {
    const { instance, commands } = await boot(t, true, true);
    await instance.stop({ timeoutMs: NEVER_WAITED_FOR });
    assert.deepEqual(commands, ['query-status', 'system_powerdown']);
  });

  it('quits after the timeout when the guest ignores the power button', async (t) => {
    const { instance, commands } = await boot(t, true, false);
    await instance.stop({ timeoutMs: 50 });
    assert.deepEqual(commands, ['query-status', 'system_powerdown', 'quit']);
  });

  it('sends a paused guest straight to quit', async (t) => {
    const { instance, commands } = await boot(t, true, true);
    await instance.pause();
    await instance.stop({ timeoutMs: NEVER_WAITED_FOR });
    assert.deepEqual(commands, ['query-status', 'stop', 'quit']);
  });
});

/**
 * An endpoint that accepts one client ever, like QEMU's Windows pipe chardev (chardev/char-pipe.c). Its transport
 * is a Unix socket on this host; the instance is told it is a named pipe, which is all it branches on.
 */
async function oneClientEndpoint(t: TestContext, path: string): Promise<{ accepted: Promise<Socket> }> {
  let accept: (socket: Socket) => void = () => undefined;
  const accepted = new Promise<Socket>((resolve) => (accept = resolve));
  const server = createServer((socket) => {
    server.close();
    accept(socket);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(() => server.close());
  return { accepted };
}

describe('QemuInstance on endpoints served to one client (Windows named pipes)', () => {
  it('opens the agent connection before QMP greets, hands it out once, and refuses reconnects and detach', async (t) => {
    const dir = tempDir(t);
    const paths: QemuPaths = {
      ...runtimePaths(dir, { vmId: 'jv-1', platform: 'linux' }),
      transport: 'named-pipe',
      agentSocket: join(dir, 'agent.pipe'),
    };
    const agent = await oneClientEndpoint(t, paths.agentSocket);
    // QEMU's start-up blocks on the agent pipe until a client connects; only then does the monitor greet.
    await fakeQmp(t, (command, socket) => sendQmp(socket, { return: { status: 'running' }, id: command.id }), {
      path: paths.qmpSocket,
      greetAfter: agent.accepted,
    });
    const vmm = fakeVmm();
    const instance = new QemuInstance('jv-1', dir, paths, vmm, { powerButton: true });
    await instance.attachControl(5000);

    const guestSide = await agent.accepted;
    const stream = await instance.connectAgent();
    guestSide.write('from the guest');
    const received = await new Promise<string>((resolve) => stream.once('data', (data) => resolve(String(data))));
    assert.equal(received, 'from the guest');

    const unsupported = (error: unknown): boolean => error instanceof JitvmError && error.code === 'unsupported';
    await assert.rejects(instance.connectAgent(), unsupported);
    assert.throws(() => instance.release(), unsupported);
    stream.destroy();
    vmm.end({ code: 0, signal: undefined });
    await instance.wait();
  });
});

describe('HeldConnection', () => {
  it('reports a stream that closed before it was taken, and refuses after close()', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'agent.sock');
    const server = createServer((socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(path, resolve));
    t.after(() => server.close());
    const closing = await connectLocal(path);
    const held = new HeldConnection(closing, 'the agent pipe of VM jv-1');
    await new Promise((resolve) => closing.once('close', resolve));
    await assert.rejects(held.take(), ChannelClosedError);

    const open = new HeldConnection(await connectLocal(path), 'the agent pipe of VM jv-2');
    open.close();
    await assert.rejects(held.take(), ChannelClosedError);
    await assert.rejects(open.take(), /VM is gone/);
  });
});
