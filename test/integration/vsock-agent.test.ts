/**
 * The agent's AF_VSOCK transport (what Firecracker uses) in a real guest, reached the way a Firecracker host
 * reaches it: hybridVsockHandshake, then the real AgentConnection. These hosts have no vhost-vsock, so it all
 * happens inside one QEMU guest on its loopback vsock (CID 1, module vsock_loopback): a second agent listens with
 * `--vsock-listen`, and test/guest/vsock-mux.c plays Firecracker's muxer on the stdin/stdout of a command that the
 * host runs through the sandbox's own (virtio-serial) agent.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { AgentConnection } from '../../src/channel/client.js';
import { hybridVsockHandshake } from '../../src/channel/hybrid-vsock.js';
import { AGENT_VSOCK_PORT } from '../../src/channel/protocol.js';
import { ChannelClosedError, SandboxBootError } from '../../src/core/errors.js';
import { cacheRoot, kernelsDir } from '../../src/image/cache.js';
import { findExtractedKernel } from '../../src/image/debian-kernel.js';
import { runHostCommand } from '../../src/image/host-command.js';
import { indexModules } from '../../src/image/modules.js';
import { type CommandHandle, runCommand } from '../../src/sandbox/command.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { explained, sharedSandbox, withSandbox } from '../helpers/sandbox.js';

const MUX_SOURCE = fileURLToPath(new URL('../../../test/guest/vsock-mux.c', import.meta.url));
const GUEST_MUX = '/tmp/vsock-mux';
const GUEST_LOOPBACK_MODULE = '/tmp/vsock_loopback.ko';
/** Generous: under TCG every byte crosses the slow guest twice. */
const HANDSHAKE_TIMEOUT_MS = 30_000;

/** Compiles the mux on the host, static like the agent, and returns the executable. */
async function buildMux(): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'jitvm-vsock-mux-'));
  try {
    const out = join(dir, 'vsock-mux');
    const flags = ['-static', '-Os', '-std=gnu11', '-Wall', '-Wextra', '-Werror'];
    await runHostCommand('gcc', [...flags, '-o', out, MUX_SOURCE], { install: 'apt-get install gcc libc6-dev' });
    return await readFile(out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** vsock_loopback.ko of the kernel the sandbox booted, from the host's kernel cache. */
async function loopbackModule(sb: Sandbox): Promise<Buffer> {
  const release = (await sb.exec(['uname', '-r'])).stdout.trim();
  const kernel = await findExtractedKernel(kernelsDir(cacheRoot()), 'x86_64');
  assert.ok(kernel && kernel.version === release, `the cached kernel ${kernel?.version} is not the guest's ${release}`);
  const path = (await indexModules(kernel.modulesDir)).files.get('vsock_loopback');
  assert.ok(path, `vsock_loopback is not among the modules in ${kernel.modulesDir}`);
  return readFile(path);
}

/** Starts `/init --vsock-listen <port>` in the guest; resolves once it logged "ready", by when it listens. */
async function startVsockAgent(sb: Sandbox): Promise<CommandHandle> {
  const agent = sb.spawn(['/init', '--vsock-listen', String(AGENT_VSOCK_PORT)]);
  let log = '';
  await new Promise<void>((resolve, reject) => {
    agent.stderr.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('jitvm-agent: ready')) resolve();
    });
    agent.wait().then((exit) => reject(new Error(`the vsock agent exited (${exit.exitCode}): ${log}`)), reject);
  });
  return agent;
}

/** One hybrid-vsock "socket": the mux's stdin/stdout as a Duplex, and the mux itself. */
interface MuxConnection {
  readonly stream: Duplex;
  readonly mux: CommandHandle;
  /** Everything the mux wrote to stderr, once it ended. */
  readonly stderr: Promise<string>;
}

/**
 * Runs the mux in the guest. Like a Unix socket to Firecracker, the stream closes when the mux's stdout ends, and
 * closing the stream ends the mux's stdin (which the mux passes on to the guest side as end of input).
 */
function startMux(sb: Sandbox): MuxConnection {
  const stdin = new PassThrough();
  const mux = sb.spawn([GUEST_MUX], { stdin });
  const endStdin = (): void => {
    if (!stdin.writableEnded) stdin.end();
  };
  const stream = new Duplex({
    allowHalfOpen: false,
    read: () => mux.stdout.resume(),
    write: (chunk: Buffer, _encoding, callback) => stdin.write(chunk, callback),
    final: (callback) => {
      endStdin();
      callback();
    },
    destroy: (error, callback) => {
      endStdin();
      mux.stdout.resume();
      callback(error);
    },
  });
  mux.stdout.on('data', (chunk: Buffer) => {
    if (!stream.destroyed && !stream.push(chunk)) mux.stdout.pause();
  });
  mux.stdout.on('end', () => stream.push(null));
  let stderr = '';
  mux.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return { stream, mux, stderr: once(mux.stderr, 'end').then(() => stderr) };
}

/** `promise`, or a failure naming `what` did not happen after `ms`. */
async function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** The hybrid-vsock handshake through a new mux, then the agent's HELLO over the same stream. */
async function connectOverVsock(sb: Sandbox): Promise<{ connection: AgentConnection; mux: CommandHandle }> {
  const { stream, mux } = startMux(sb);
  const hostPort = await hybridVsockHandshake(stream, AGENT_VSOCK_PORT, { timeoutMs: HANDSHAKE_TIMEOUT_MS });
  // The muxer's own (ephemeral) port, as Firecracker's OK carries: above the reserved range, not the agent's.
  assert.ok(hostPort > AGENT_VSOCK_PORT, `OK carried port ${hostPort}`);
  const connection = new AgentConnection(stream);
  await within(HANDSHAKE_TIMEOUT_MS, connection.handshake(), 'the agent did not answer HELLO');
  return { connection, mux };
}

const sandbox = sharedSandbox();

describe('the agent over AF_VSOCK, through a hybrid-vsock muxer', { timeout: 600_000 }, () => {
  let agent: CommandHandle;

  before(async () => {
    const sb = sandbox();
    const [mux, module] = await Promise.all([buildMux(), loopbackModule(sb)]);
    await sb.files.write(GUEST_LOOPBACK_MODULE, module);
    const insmod = await sb.exec(['insmod', GUEST_LOOPBACK_MODULE]);
    assert.equal(insmod.exitCode, 0, `insmod vsock_loopback: ${insmod.stderr}`);
    await sb.files.write(GUEST_MUX, mux, { mode: 0o755 });
    agent = await startVsockAgent(sb);
  });

  after(async () => {
    agent?.kill('SIGTERM');
    await agent?.wait().catch(() => undefined);
  });

  it(
    'runs commands for the real client: the kernel release, and a payload round-tripped through cat',
    explained(sandbox, async (sb) => {
      const { connection, mux } = await connectOverVsock(sb);
      try {
        const parent = await runCommand(connection, 'echo $PPID');
        assert.equal(Number(parent.stdout), await agent.pid, 'served by the --vsock-listen agent, not PID 1');
        const uname = await runCommand(connection, ['uname', '-r']);
        assert.equal(uname.stdout, (await sb.exec(['uname', '-r'])).stdout);
        const payload = randomBytes(1536 * 1024); // beyond the vsock buffer and the protocol's 1 MiB window
        const echoed = await runCommand(connection, ['cat'], { stdin: payload });
        assert.equal(echoed.stdoutBytes.length, payload.length);
        assert.ok(echoed.stdoutBytes.equals(payload), 'cat returned other bytes');
      } finally {
        connection.close();
      }
      const exit = await mux.wait();
      assert.equal(exit.exitCode, 0, 'the agent closed its side when the host went away');
    }),
  );

  it(
    'serves one host at a time: a host that connects meanwhile is answered once the first is gone',
    explained(sandbox, async (sb) => {
      const first = await connectOverVsock(sb);
      const waiting = startMux(sb);
      // The guest kernel completes the connection into the listen backlog, so the muxer answers OK at once...
      await hybridVsockHandshake(waiting.stream, AGENT_VSOCK_PORT, { timeoutMs: HANDSHAKE_TIMEOUT_MS });
      const second = new AgentConnection(waiting.stream);
      let answered = false;
      const hello = second.handshake().then(() => {
        answered = true;
      });
      // ...but the agent reads its HELLO only after the host it serves has gone.
      assert.equal((await runCommand(first.connection, ['echo', 'still first'])).stdout, 'still first\n');
      assert.equal(answered, false, 'the second host is not served while the first is');
      first.connection.close();
      assert.equal((await first.mux.wait()).exitCode, 0);
      try {
        await within(HANDSHAKE_TIMEOUT_MS, hello, 'the waiting host was not served after the first left');
        assert.equal((await runCommand(second, ['echo', 'second'])).stdout, 'second\n');
      } finally {
        second.close();
      }
      assert.equal((await waiting.mux.wait()).exitCode, 0);
    }),
  );

  it(
    'is closed without OK when nothing listens on the port',
    explained(sandbox, async (sb) => {
      const port = AGENT_VSOCK_PORT + 1;
      const { stream, mux, stderr } = startMux(sb);
      try {
        await assert.rejects(
          hybridVsockHandshake(stream, port, { timeoutMs: HANDSHAKE_TIMEOUT_MS }),
          (error: unknown) =>
            error instanceof ChannelClosedError &&
            error.message.startsWith(`nothing listens on vsock port ${port} in the guest: the vsock muxer closed`),
        );
      } finally {
        stream.destroy();
      }
      assert.equal((await mux.wait()).exitCode, 1);
      assert.match(await stderr, new RegExp(`connect to vsock port ${port}: `));
    }),
  );
});

describe('the agent as PID 1 on Ctrl-Alt-Del (Firecracker SendCtrlAltDel)', { timeout: 300_000 }, () => {
  it('has the kernel send it SIGINT rather than reboot at once, and shuts down in order', async () => {
    await withSandbox(async (sb) => {
      assert.equal((await sb.exec(['cat', '/proc/sys/kernel/ctrl-alt-del'])).stdout, '0\n');
      // The channel goes down with the guest, so this exec's own reply may never come.
      sb.exec(['kill', '-INT', '1']).catch(() => undefined);
      const exit = await within(60_000, sb.instance.wait(), 'the guest did not power off on SIGINT');
      assert.equal(exit.signal, undefined, 'QEMU exited on its own after the guest rebooted');
      assert.match(sb.instance.consoleTail(), /jitvm-agent: shutting down/);
    });
  });
});

describe('the agent as PID 1 choosing its transport', { timeout: 300_000 }, () => {
  it('waits for vsock when the kernel command line says jitvm.channel=vsock, even with its serial port present', async () => {
    // vfkit's console is a virtio console device too: only the host's word tells the agent to use vsock there.
    // This QEMU guest has the agent's serial port and no vsock device, so the agent must keep waiting for vsock.
    await assert.rejects(
      Sandbox.create({ backend: 'qemu', kernelArgs: ['jitvm.channel=vsock'], bootTimeoutMs: 15_000 }),
      (error: unknown) =>
        error instanceof SandboxBootError &&
        /the guest agent did not answer/.test(error.message) &&
        /no vsock device found yet \(jitvm\.channel=vsock\)/.test(error.consoleTail),
    );
  });

  it('serves the serial port when the kernel command line says jitvm.channel=serial', async () => {
    await withSandbox(async (sb) => assert.equal((await sb.exec(['true'])).exitCode, 0), {
      kernelArgs: ['jitvm.channel=serial'],
    });
  });
});
