/**
 * The SDK's remote mode against a real `jitvm serve` (Unix socket and TCP with a token) and real VMs under QEMU TCG:
 * one scenario run on a local Sandbox and on a RemoteSandbox gives the same results; streaming stdin, signals,
 * timeouts, cancellation, ports, pause, snapshots and forks, detach/connect and errors work through the daemon; and
 * the CLI goes through the daemon when JITVM_DAEMON is set.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { JitvmError } from '../../src/core/errors.js';
import { vmsRoot } from '../../src/core/paths.js';
import { DaemonError } from '../../src/remote/daemon-client.js';
import { RemoteSandbox } from '../../src/remote/sandbox.js';
import type { SandboxApi } from '../../src/sandbox/api.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { CLI, type Served, serveDaemon, tokenOf } from '../helpers/daemon.js';
import { BOOT_TIMEOUT_MS } from '../helpers/sandbox.js';

const MiB = 1024 * 1024;
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** Reads `stream` until `pattern` appears in what it sent (the rest is drained unread); resolves with that text. */
function readUntil(stream: Readable, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString();
      if (!pattern.test(text)) return;
      stream.off('data', onData).off('end', onEnd).resume();
      resolve(text);
    };
    const onEnd = (): void => reject(new Error(`the stream ended without ${pattern}: ${JSON.stringify(text)}`));
    stream.on('data', onData).once('end', onEnd);
  });
}

/** What both kinds of sandbox must do alike; returns what they printed, for comparison. */
async function scenario(sandbox: SandboxApi): Promise<string[]> {
  const seen: string[] = [];
  const result = await sandbox.exec('echo out; echo err >&2; exit 3', {
    onStdout: (chunk) => seen.push(`cb:${chunk}`),
  });
  seen.push(`exit ${result.exitCode} ${JSON.stringify(result.stdout)} ${JSON.stringify(result.stderr)}`);
  const env = await sandbox.exec(['sh', '-c', 'echo $GREETING; pwd'], { env: { GREETING: 'hi' }, cwd: '/tmp' });
  seen.push(env.stdout);

  const input = randomBytes(MiB + 17);
  const piped = await sandbox.exec(['sha256sum'], {
    stdin: Readable.from([input.subarray(0, 1000), input.subarray(1000)]),
  });
  seen.push(`piped ${piped.stdout.split(' ')[0] === sha256(input)}`);
  const bigInput = randomBytes(2 * MiB);
  const bigPiped = await sandbox.exec(['sha256sum'], { stdin: bigInput });
  seen.push(`piped buffer ${bigPiped.stdout.split(' ')[0] === sha256(bigInput)}`);

  const file = randomBytes(3 * MiB);
  assert.equal(await sandbox.files.write('/tmp/data/blob', file, { mode: 0o640 }), file.length);
  seen.push(`file ${sha256(await sandbox.files.read('/tmp/data/blob')) === sha256(file)}`);
  const opened = await sandbox.files.readStream('/tmp/data/blob');
  const streamed: Buffer[] = [];
  for await (const chunk of opened.content) streamed.push(chunk as Buffer);
  seen.push(
    `stream ${opened.size} ${(opened.mode & 0o777).toString(8)} ${sha256(Buffer.concat(streamed)) === sha256(file)}`,
  );
  await sandbox.files.mkdir('/tmp/data/sub');
  seen.push(`list ${(await sandbox.files.list('/tmp/data')).map((entry) => `${entry.name}:${entry.type}`).sort()}`);
  seen.push(`stat ${(await sandbox.files.stat('/tmp/data/blob')).size}`);
  await sandbox.files.remove('/tmp/data', { recursive: true });
  const gone = await sandbox.files.stat('/tmp/data').catch((error: JitvmError) => error.code);
  seen.push(`removed ${gone}`);
  const noParent = await sandbox.files.write('/tmp/none/x', 'x', { mkdirs: false }).catch((e: JitvmError) => e.code);
  seen.push(`mkdirs:false ${noParent}`);

  const chat = sandbox.spawn(['sh', '-c', 'read line; echo got:$line; read again; echo then:$again']);
  assert.ok((await chat.pid) > 1);
  await chat.sendStdin('first\n');
  seen.push(await readUntil(chat.stdout, /got:first\n/));
  await chat.sendStdin('second\n');
  chat.closeStdin();
  const exit = await chat.wait();
  seen.push(`chat exit ${exit.exitCode}`);
  return seen;
}

describe('SDK remote mode (Sandbox.create({ daemon }))', { timeout: 600_000 }, () => {
  const cleanups: (() => void)[] = [];
  const temp = (prefix: string): string => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  };
  let env: NodeJS.ProcessEnv;
  let unixServed: Served;
  let tcpServed: Served;
  let daemon: string;
  let token: string;
  let remote: RemoteSandbox | undefined;

  before(async () => {
    env = {
      ...process.env,
      XDG_CONFIG_HOME: temp('jitvm-remote-config-'),
      JITVM_SNAPSHOT_DIR: temp('jitvm-remote-snapshots-'),
    };
    // A space in the socket's path: it must not be percent-encoded on the way to the exec WebSocket.
    const socketPath = join(temp('jitvm remote sock-'), 'jitvm.sock');
    const onCleanup = (kill: () => void): number => cleanups.unshift(kill);
    unixServed = await serveDaemon(['--socket', socketPath, '--log-level', 'warn'], env, onCleanup);
    tcpServed = await serveDaemon(['--listen', '127.0.0.1:0', '--log-level', 'warn'], env, onCleanup);
    daemon = `unix://${socketPath}`;
    token = tokenOf(env);
    remote = await Sandbox.create({ daemon, bootTimeoutMs: BOOT_TIMEOUT_MS, memoryMiB: 256 });
  });

  after(async () => {
    await remote?.destroy().catch(() => undefined);
    for (const served of [unixServed, tcpServed]) {
      if (served?.child.exitCode === null) {
        served.child.kill('SIGTERM');
        await served.stopped;
      }
    }
    cleanups.forEach((cleanup) => cleanup());
  });

  const sandbox = (): RemoteSandbox => remote ?? assert.fail('the remote sandbox did not boot');

  it('gives the same results as a local Sandbox for one scenario written against SandboxApi', async () => {
    assert.ok(sandbox() instanceof RemoteSandbox);
    const local = await Sandbox.create({ bootTimeoutMs: BOOT_TIMEOUT_MS, memoryMiB: 256 });
    let expected: string[];
    try {
      expected = await scenario(local);
    } finally {
      await local.destroy();
    }
    assert.deepEqual(await scenario(sandbox()), expected);
    assert.deepEqual(expected.slice(0, 2), ['cb:out\n', 'exit 3 "out\\n" "err\\n"']);
    for (const line of ['piped true', 'piped buffer true', 'file true', 'chat exit 0'])
      assert.ok(expected.includes(line));
  });

  it('streams a large output through both exec paths without losing a byte', async () => {
    const spawned = sandbox().spawn(['head', '-c', String(12 * MiB), '/dev/urandom']);
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of spawned.stdout) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    assert.equal((await spawned.wait()).exitCode, 0);
    assert.equal(bytes, 12 * MiB);
    const result = await sandbox().exec(['head', '-c', String(6 * MiB), '/dev/zero']);
    assert.equal(result.stdoutBytes.length, 6 * MiB);
    assert.ok(result.stdoutBytes.every((byte) => byte === 0));
  });

  it('lets a command finish ahead of its reader, and one unread stream not stall the other, as locally', async () => {
    const subject = sandbox();
    const ahead = subject.spawn(['head', '-c', '200000', '/dev/zero']);
    assert.equal((await ahead.wait()).exitCode, 0, 'wait() resolves before the output is read');
    let bytes = 0;
    for await (const chunk of ahead.stdout) bytes += (chunk as Buffer).length;
    assert.equal(bytes, 200_000);

    const mixed = subject.spawn('head -c 40000 /dev/zero >&2; head -c 3000000 /dev/zero');
    let stdout = 0;
    for await (const chunk of mixed.stdout) stdout += (chunk as Buffer).length;
    assert.equal(stdout, 3_000_000, 'stdout reads through while 40 kB of stderr wait unread');
    assert.equal((await mixed.wait()).exitCode, 0);

    const unawaited = subject.spawn(['cat']);
    void unawaited.sendStdin('written, then closed at once');
    unawaited.closeStdin();
    void unawaited.sendStdin('after the close: dropped');
    const echoed: Buffer[] = [];
    for await (const chunk of unawaited.stdout) echoed.push(chunk as Buffer);
    assert.equal(Buffer.concat(echoed).toString(), 'written, then closed at once');
    assert.equal((await unawaited.wait()).exitCode, 0);
  });

  it('reports timeouts, cancellation, signals and programs that cannot start as the local SDK does', async () => {
    const timedOut = await sandbox()
      .exec('echo before; sleep 30', { timeoutMs: 1500 })
      .catch((error: unknown) => error);
    assert.equal((timedOut as JitvmError).code, 'timeout');
    assert.equal((timedOut as { stdout: Buffer }).stdout.toString(), 'before\n');

    const abort = new AbortController();
    const cancelled = sandbox().exec('sleep 30', { signal: abort.signal });
    setTimeout(() => abort.abort(), 500);
    await assert.rejects(cancelled, (error: JitvmError) => error.code === 'cancelled');
    const streamedAbort = new AbortController();
    const streamed = sandbox().exec(['cat'], { stdin: Readable.from(['x']), signal: streamedAbort.signal });
    setTimeout(() => streamedAbort.abort(), 500);
    // `cat` got its stdin closed and exits at once, or is killed first: either way nothing hangs.
    await streamed.then(
      (result) => assert.equal(result.stdout, 'x'),
      (error: JitvmError) => assert.equal(error.code, 'cancelled'),
    );

    const sleeper = sandbox().spawn(['sleep', '60']);
    await sleeper.pid;
    sleeper.kill('SIGTERM');
    const exit = await sleeper.wait();
    assert.deepEqual([exit.reason, exit.signal, exit.exitCode], ['signaled', 'SIGTERM', 143]);

    const missing = sandbox().spawn(['/no/such/program']);
    await assert.rejects(
      missing.pid,
      (error: DaemonError) => error instanceof DaemonError && error.code === 'not_found',
    );
    await assert.rejects(sandbox().exec(['/no/such/program']), (error: JitvmError) => error.code === 'not_found');
    assert.throws(
      () => sandbox().spawn(['true'], { timeoutMs: -1 }),
      (error: JitvmError) => error.code === 'invalid_argument',
    );
    const leftovers = await sandbox().exec('ps -o comm | grep -c "^sleep" || true');
    assert.equal(leftovers.stdout.trim(), '0', 'no command outlives its cancelled or killed exec');
  });

  it('publishes a guest port, pings, pauses and resumes through the daemon', async () => {
    const web = sandbox().spawn('echo guest-web > /tmp/index.html && exec httpd -f -p 127.0.0.1:8080 -h /tmp');
    await web.pid;
    const hostPort = await sandbox().publishPort({ guest: 8080 });
    assert.equal(sandbox().getHost(8080), `127.0.0.1:${hostPort}`);
    assert.deepEqual(sandbox().ports, [{ guest: 8080, host: hostPort }]);
    assert.deepEqual((await sandbox().refresh()).ports, [{ guest: 8080, host: hostPort }]);
    let page: string | undefined;
    const deadline = Date.now() + 30_000;
    while (page === undefined && Date.now() < deadline) {
      page = await fetch(`http://${sandbox().getHost(8080)}/index.html`).then(
        (response) => response.text(),
        () => undefined,
      );
    }
    assert.equal(page, 'guest-web\n');
    web.kill();
    await web.wait();
    assert.throws(
      () => sandbox().getHost(9999),
      (error: JitvmError) => error.code === 'invalid_argument',
    );

    assert.ok((await sandbox().ping()) > 0);
    await sandbox().pause();
    const during = sandbox().exec('echo resumed');
    await sandbox().resume();
    assert.equal((await during).stdout, 'resumed\n');
  });

  it('snapshots a sandbox and forks it through the daemon', async () => {
    const source = await Sandbox.create({ daemon, bootTimeoutMs: BOOT_TIMEOUT_MS, memoryMiB: 256 });
    await source.files.write('/root/marker', 'from the snapshot');
    const taken = await source.snapshot({ name: 'remote-fork', then: 'destroy' });
    assert.equal(taken.name, 'remote-fork');
    assert.ok(taken.bytes > 0);
    await assert.rejects(source.exec('true'), (error: JitvmError) => error.code === 'invalid_state');
    const clones = await Sandbox.fork('remote-fork', { count: 2, daemon });
    try {
      assert.equal(new Set(clones.map((clone) => clone.id)).size, 2);
      for (const clone of clones) {
        assert.equal((await clone.files.read('/root/marker')).toString(), 'from the snapshot');
      }
    } finally {
      await Promise.all(clones.map((clone) => clone.destroy()));
    }
    await assert.rejects(
      Sandbox.fork('no-such-snapshot', { count: 2, daemon }),
      (error: JitvmError) => error.code === 'not_found',
    );
    const listed = await RemoteSandbox.list({ daemon });
    assert.deepEqual(
      listed.map((info) => info.id),
      [sandbox().id],
      'the destroyed source and the clones are gone from the daemon',
    );
  });

  it('detaches, connects again, extends the timeout, and destroys once', async () => {
    const other = await Sandbox.create({ daemon, bootTimeoutMs: BOOT_TIMEOUT_MS, idleTimeoutMs: 60_000 });
    other.detach();
    assert.throws(
      () => other.spawn('true'),
      (error: JitvmError) => error.code === 'invalid_state',
    );
    const again = await Sandbox.connect(other.id, { daemon });
    const before = Date.parse(again.info.expiresAt);
    const extended = await again.setTimeout(2 * 3600_000);
    assert.ok(Date.parse(extended.expiresAt) > before);
    assert.equal((await again.exec('echo still-here')).stdout, 'still-here\n');
    await Promise.all([again.destroy(), again.destroy()]);
    await assert.rejects(again.exec('true'), (error: JitvmError) => error.code === 'invalid_state');
    await assert.rejects(Sandbox.connect(other.id, { daemon }), (error: JitvmError) => error.code === 'not_found');
  });

  it('uses the bearer token on TCP and refuses a wrong one, over HTTP and over the exec WebSocket', async () => {
    const tcp = tcpServed.address;
    await assert.rejects(
      Sandbox.connect(sandbox().id, { daemon: tcp, token }),
      (error: JitvmError) => error.code === 'not_found',
      "the TCP daemon's sandboxes are its own",
    );
    const own = await Sandbox.create({ daemon: tcp, token, bootTimeoutMs: BOOT_TIMEOUT_MS });
    try {
      assert.equal((await own.exec('echo over-tcp')).stdout, 'over-tcp\n');
      const echoed = await own.exec(['cat'], { stdin: Readable.from([Buffer.from('ws-stdin')]) });
      assert.equal(echoed.stdout, 'ws-stdin');
      await assert.rejects(
        Sandbox.connect(own.id, { daemon: tcp, token: 'wrong-token' }),
        (error: DaemonError) => error instanceof DaemonError && error.status === 401,
      );
    } finally {
      await own.destroy();
    }
  });

  it('cancels a create whose caller gives up: the daemon destroys the sandbox it was booting', async () => {
    const existing = new Set(readdirSync(vmsRoot()));
    const abort = new AbortController();
    const creating = Sandbox.create({ daemon, bootTimeoutMs: BOOT_TIMEOUT_MS, signal: abort.signal });
    const deadline = Date.now() + 30_000;
    const started = () => readdirSync(vmsRoot()).filter((id) => !existing.has(id));
    while (started().length === 0) {
      assert.ok(Date.now() < deadline, 'the daemon started no VM');
      await delay(20);
    }
    abort.abort();
    await assert.rejects(creating, (error: JitvmError) => error.code === 'cancelled');
    while (started().length > 0) {
      assert.ok(Date.now() < deadline, `the cancelled VM is still there: ${started()}`);
      await delay(50);
    }
    assert.deepEqual(
      (await RemoteSandbox.list({ daemon })).map((info) => info.id),
      [sandbox().id],
    );
  });

  it('refuses local-only options, bad addresses, and a daemon that is not there with clear errors', async () => {
    await assert.rejects(
      Sandbox.create({ daemon, detached: true } as never),
      (error: JitvmError) =>
        error.code === 'invalid_argument' && /detached cannot be combined with daemon/.test(error.message),
    );
    await assert.rejects(
      Sandbox.create({ daemon: 'ftp://x' }),
      (error: JitvmError) => error.code === 'invalid_argument',
    );
    await assert.rejects(
      Sandbox.create({ daemon: `unix://${join(tmpdir(), 'jitvm-no-daemon.sock')}` }),
      (error: JitvmError) => error.code === 'not_found' && /jitvm serve/.test(error.message),
    );
  });

  it('keeps the sandboxes of `jitvm mcp` in the daemon when JITVM_DAEMON is set', async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, 'mcp'],
      env: { ...(env as Record<string, string>), JITVM_DAEMON: daemon },
      stderr: 'inherit',
    });
    const client = new Client({ name: 'jitvm-remote-test', version: '0' });
    await client.connect(transport);
    let id: string;
    try {
      const created = (await client.callTool({ name: 'create_sandbox', arguments: {} })) as CallToolResult;
      assert.ok(!created.isError, JSON.stringify(created.content));
      id = (created.structuredContent as { sandboxId: string }).sandboxId;
      assert.ok(
        (await RemoteSandbox.list({ daemon })).some((info) => info.id === id),
        'the daemon holds it',
      );
      const ran = (await client.callTool({
        name: 'run_command',
        arguments: { sandboxId: id, command: 'echo from-mcp' },
      })) as CallToolResult;
      assert.equal((ran.structuredContent as { stdout: string }).stdout, 'from-mcp\n');
    } finally {
      await client.close();
    }
    const deadline = Date.now() + 30_000;
    while ((await RemoteSandbox.list({ daemon })).some((info) => info.id === id)) {
      assert.ok(Date.now() < deadline, 'the session end destroys its sandbox in the daemon');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  it('runs the CLI through the daemon when JITVM_DAEMON is set', () => {
    const cli = (args: string[], input?: string) =>
      spawnSync(process.execPath, [CLI, ...args], {
        env: { ...env, JITVM_DAEMON: daemon },
        input,
        encoding: 'utf8',
        timeout: 180_000,
      });
    const run = cli(['run', '--', 'sh', '-c', 'echo via-daemon; exit 5']);
    assert.equal(run.status, 5, run.stderr);
    assert.equal(run.stdout, 'via-daemon\n');

    const created = cli(['create']);
    assert.equal(created.status, 0, created.stderr);
    const id = created.stdout.trim();
    const listed = JSON.parse(cli(['ls', '--json']).stdout) as { id: string; expiresAt: string }[];
    assert.ok(
      listed.some((info) => info.id === id && info.expiresAt),
      'ls lists the daemon sandbox with its deadline',
    );
    const echoed = cli(['exec', id, '--', 'cat'], 'piped through the daemon');
    assert.equal(echoed.stdout, 'piped through the daemon', echoed.stderr);
    const dir = temp('jitvm-remote-cp-');
    writeFileSync(join(dir, 'up.txt'), 'copied');
    assert.equal(cli(['cp', join(dir, 'up.txt'), `${id}:/root/up.txt`]).status, 0);
    assert.equal(cli(['cp', `${id}:/root/up.txt`, join(dir, 'down.txt')]).status, 0);
    assert.equal(readFileSync(join(dir, 'down.txt'), 'utf8'), 'copied');
    assert.equal(cli(['rm', id]).status, 0);
    const after = JSON.parse(cli(['ls', '--json']).stdout) as { id: string }[];
    assert.ok(!after.some((info) => info.id === id));
    const missing = cli(['exec', id, '--', 'true']);
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /no sandbox/);
  });
});
