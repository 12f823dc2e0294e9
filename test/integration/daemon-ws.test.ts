import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setImmediate, setTimeout as delay } from 'node:timers/promises';
import WebSocket from 'ws';
import { ExecWsEvent, WS_STDIN_WINDOW } from '../../src/daemon/schemas-exec-ws.js';
import { type Served, client, liveIds, serveDaemon, tokenOf, validatorOf, execOutput } from '../helpers/daemon.js';
import type { OpenApiValidator } from '../helpers/openapi-validator.js';
import { BOOT_TIMEOUT_MS } from '../helpers/sandbox.js';

const MiB = 1024 * 1024;
/** Bounds for hangs only. */
const POLL_LIMIT_MS = 15_000;

/** An exec over the daemon's WebSocket, as a test sees it: every message kept, every text message checked. */
class ExecSocket {
  readonly events: ExecWsEvent[] = [];
  readonly output = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  /** The close code. */
  readonly closed: Promise<number>;
  private readonly watchers = new Set<() => void>();

  constructor(readonly socket: WebSocket) {
    socket.on('message', (data: Buffer, isBinary) => {
      if (isBinary) {
        const stream = data[0] === 1 ? 'stdout' : data[0] === 2 ? 'stderr' : assert.fail(`stream id ${data[0]}`);
        this.output[stream].push(data.subarray(1));
      } else {
        this.events.push(ExecWsEvent.parse(JSON.parse(data.toString())));
      }
      this.watchers.forEach((watch) => watch());
    });
    this.closed = new Promise((resolve) => socket.once('close', resolve));
  }

  text(stream: 'stdout' | 'stderr'): string {
    return Buffer.concat(this.output[stream]).toString();
  }

  /** Resolves once `ready()` holds after some message (rejects if the socket closes first). */
  until(ready: () => boolean, what: string): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const watch = (): void => {
        if (!ready()) return;
        this.watchers.delete(watch);
        resolve();
      };
      this.watchers.add(watch);
      void this.closed.then(() =>
        reject(new Error(`the socket closed before ${what}: ${JSON.stringify(this.events)}`)),
      );
    });
  }

  event<T extends ExecWsEvent['type']>(type: T): Promise<Extract<ExecWsEvent, { type: T }>> {
    const find = () => this.events.find((event) => event.type === type) as Extract<ExecWsEvent, { type: T }>;
    return this.until(() => find() !== undefined, `a ${type} message`).then(find);
  }

  /** Stdin bytes the daemon granted so far (`stdin_credit`). */
  granted(): number {
    return this.events.reduce((sum, event) => sum + (event.type === 'stdin_credit' ? event.bytes : 0), 0);
  }

  /** Sends stdin as the protocol asks: never past the credit granted, waiting for more when it runs out. */
  async sendStdin(data: Buffer): Promise<void> {
    for (let offset = 0; offset < data.length;) {
      await this.until(() => this.granted() > this.stdinSent, 'stdin credit');
      const slice = data.subarray(offset, offset + this.granted() - this.stdinSent);
      this.stdinSent += slice.length;
      offset += slice.length;
      await this.send(slice);
    }
  }

  private stdinSent = 0;

  send(data: Buffer | object): Promise<void> {
    const payload = Buffer.isBuffer(data) ? data : JSON.stringify(data);
    return new Promise((resolve, reject) =>
      this.socket.send(payload, { binary: Buffer.isBuffer(data) }, (error) => (error ? reject(error) : resolve())),
    );
  }
}

/** Polls `read` every 500 ms until two readings agree (something stopped moving); resolves with that reading. */
async function settled(read: () => number | Promise<number>, what: string): Promise<number> {
  const deadline = Date.now() + POLL_LIMIT_MS;
  let before = -1;
  let now = await read();
  while (now !== before) {
    assert.ok(Date.now() < deadline, `${what} (${now} after ${POLL_LIMIT_MS} ms)`);
    before = now;
    await delay(500);
    now = await read();
  }
  return now;
}

describe('jitvm serve: exec over a WebSocket, and the VM routes', { timeout: 300_000 }, () => {
  const cleanups: (() => void)[] = [];
  after(() => cleanups.forEach((cleanup) => cleanup()));
  const configDir = mkdtempSync(join(tmpdir(), 'jitvm-daemon-ws-config-'));
  cleanups.push(() => rmSync(configDir, { recursive: true, force: true }));
  const env = { ...process.env, XDG_CONFIG_HOME: configDir };
  let daemon: Served;
  let validator: OpenApiValidator;
  let id: string;
  const call = client(
    () => daemon.address,
    () => tokenOf(env),
    () => validator,
  );

  before(async () => {
    daemon = await serveDaemon(['--listen', '127.0.0.1:0'], env, (kill) => cleanups.unshift(kill));
    validator = await validatorOf(daemon.address);
    const created = await call('POST', '/v1/sandboxes', { bootTimeoutMs: BOOT_TIMEOUT_MS });
    assert.equal(created.status, 201, created.bytes.toString());
    id = created.json().id;
  });

  const url = (sandbox = id) => `${daemon.address.replace(/^http/, 'ws')}/v1/sandboxes/${sandbox}/exec/ws`;

  /** Opens the exec socket and sends `start`. */
  async function openExec(start: object): Promise<ExecSocket> {
    const socket = new WebSocket(url(), { headers: { authorization: `Bearer ${tokenOf(env)}` } });
    const exec = new ExecSocket(socket);
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    await exec.send({ type: 'start', ...start });
    return exec;
  }

  const execOut = (command: string | string[]) => execOutput(call, id, command);

  /** Resolves once no guest process matches `command` (the guest's busybox has no pgrep). */
  async function gone(command: string): Promise<void> {
    const deadline = Date.now() + POLL_LIMIT_MS;
    const pattern = `[${command[0]}]${command.slice(1)}`;
    while ((await execOut(`ps | grep -q '${pattern}'`)).exitCode === 0) {
      assert.ok(Date.now() < deadline, `${command} is still running in the guest`);
      await delay(100);
    }
  }

  it('cat echoes 3 MiB of stdin sent in chunks while its output streams back; stdin_end ends it', async () => {
    const input = randomBytes(3 * MiB);
    const exec = await openExec({ command: ['cat'] });
    assert.equal(typeof (await exec.event('started')).pid, 'number');
    for (let offset = 0; offset < input.length; offset += 100_000) {
      await exec.sendStdin(input.subarray(offset, offset + 100_000));
    }
    await exec.send({ type: 'stdin_end' });
    assert.deepEqual(await exec.event('exit'), { type: 'exit', exitCode: 0, signal: null, timedOut: false });
    const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
    assert.equal(sha(Buffer.concat(exec.output.stdout)), sha(input));
    assert.equal(await exec.closed, 1000);
    assert.equal(exec.events.at(-1)?.type, 'exit', 'exit is the last message');
  });

  it('holds the guest back while the client does not read: output waits in the guest, not in the daemon', async () => {
    const size = 32 * MiB;
    const exec = await openExec({ command: ['head', '-c', String(size), '/dev/zero'] });
    const { pid } = await exec.event('started');
    exec.socket.pause();
    /** What the guest's `head` wrote so far (all of it once it has exited). */
    const written = async () => {
      const { stdout } = await execOut(`cat /proc/${pid}/io 2>/dev/null || echo wchar: ${size}`);
      return Number(/^wchar: (\d+)$/m.exec(stdout)![1]);
    };
    const stalledAt = await settled(written, 'the guest kept writing');
    assert.ok(stalledAt < size / 2, `the guest wrote ${stalledAt} of ${size} bytes to a client that reads nothing`);
    exec.socket.resume();
    assert.equal((await exec.event('exit')).exitCode, 0);
    assert.equal(
      exec.output.stdout.reduce((sum, chunk) => sum + chunk.length, 0),
      size,
    );
  });

  it('grants stdin only as the guest takes it, and a signal still arrives while stdin waits', async () => {
    const exec = await openExec({ command: ['sleep', '124'] });
    await exec.event('started');
    await exec.until(() => exec.granted() > 0, 'the first stdin grant');
    assert.equal(exec.granted(), WS_STDIN_WINDOW, 'the first grant is one window');
    // Send whatever is granted until no more comes: the guest's pipe is full, and so is the agent's window.
    const sending = exec.sendStdin(Buffer.alloc(64 * MiB)).catch(() => undefined);
    const granted = await settled(() => exec.granted(), 'the daemon kept granting stdin');
    assert.ok(granted < 8 * MiB, `the daemon granted ${granted} bytes to a command that reads none`);
    await exec.send({ type: 'signal', signal: 'SIGTERM' });
    const exit = await exec.event('exit');
    assert.deepEqual([exit.signal, exit.exitCode], ['SIGTERM', 143]);
    await sending;
    await gone('sleep 124');
  });

  it('refuses stdin sent past the credit with an error, and kills the command', async () => {
    const exec = await openExec({ command: ['sleep', '125'] });
    await exec.event('started');
    await exec.send(Buffer.alloc(WS_STDIN_WINDOW + 1));
    assert.equal((await exec.event('error')).problem.code, 'invalid_argument');
    assert.equal(await exec.closed, 1000);
    await gone('sleep 125');
  });

  it('takes stdin while the command runs: an answer comes back before stdin is closed', async () => {
    const exec = await openExec({ command: 'read line; echo got:$line; read rest; echo bye >&2' });
    await exec.sendStdin(Buffer.from('hello\n'));
    await exec.until(() => exec.text('stdout') === 'got:hello\n', 'the answer');
    assert.deepEqual(
      exec.events.filter((event) => event.type !== 'stdin_credit').map((event) => event.type),
      ['started'],
      'still running: no exit yet',
    );
    await exec.send({ type: 'stdin_end' });
    assert.equal((await exec.event('exit')).exitCode, 0);
    assert.equal(exec.text('stderr'), 'bye\n');
    assert.equal(await exec.closed, 1000);
  });

  it('signal SIGTERM ends the command, reported in its exit', async () => {
    const exec = await openExec({ command: ['sleep', '60'] });
    await exec.event('started');
    await exec.send({ type: 'signal', signal: 'SIGTERM' });
    assert.deepEqual(await exec.event('exit'), { type: 'exit', exitCode: 143, signal: 'SIGTERM', timedOut: false });
    assert.equal(await exec.closed, 1000);
  });

  it('answers a program that cannot start, a bad first message and a bad control message with one error', async () => {
    const cases: [object | Buffer, string][] = [
      [{ type: 'start', command: ['no-such-program'] }, 'not_found'],
      [Buffer.from('stdin before start'), 'invalid_argument'],
      [{ type: 'start', command: [] }, 'invalid_argument'],
    ];
    for (const [first, code] of cases) {
      const socket = new WebSocket(url(), { headers: { authorization: `Bearer ${tokenOf(env)}` } });
      const exec = new ExecSocket(socket);
      await new Promise((resolve) => socket.once('open', resolve));
      await exec.send(first);
      assert.equal(await exec.closed, 1000);
      assert.deepEqual(
        exec.events.map((event) => event.type === 'error' && event.problem.code),
        [code],
      );
    }
    const running = await openExec({ command: ['cat'] });
    await running.event('started');
    await running.send({ type: 'signal', signal: 'SIGNOPE' });
    assert.equal(await running.closed, 1000);
    const last = running.events.at(-1);
    assert.equal(last?.type === 'error' && last.problem.code, 'invalid_argument');
    const unknownSandbox = new ExecSocket(
      new WebSocket(url('no-such-sandbox'), { headers: { authorization: `Bearer ${tokenOf(env)}` } }),
    );
    await new Promise((resolve) => unknownSandbox.socket.once('open', resolve));
    await unknownSandbox.send({ type: 'start', command: ['true'] });
    assert.equal(await unknownSandbox.closed, 1000);
    assert.equal(unknownSandbox.events[0]?.type === 'error' && unknownSandbox.events[0].problem.code, 'not_found');
  });

  it('refuses an upgrade without the token with a 401 problem, and no socket', async () => {
    const socket = new WebSocket(url());
    socket.once('error', () => undefined);
    const response = await new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
      socket.once('open', () => reject(new Error('upgraded without a token')));
      socket.once('unexpected-response', (_request, res) => {
        let body = '';
        res.on('data', (data: Buffer) => (body += data.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type']!, body }));
      });
    });
    socket.terminate();
    assert.equal(response.status, 401);
    validator.check('GET', `/v1/sandboxes/${id}/exec/ws`, response.status, response.type, response.body);
    const plain = await call('GET', `/v1/sandboxes/${id}/exec/ws`);
    assert.equal(plain.status, 426, 'a GET without the upgrade is told to upgrade');
    const document = (await (await fetch(`${daemon.address}/v1/openapi.json`)).json()) as {
      paths: Record<
        string,
        { get: { responses: Record<string, { description: string }>; 'x-websocket-messages': object } }
      >;
    };
    const operation = document.paths['/v1/sandboxes/{id}/exec/ws']!.get;
    assert.match(operation.responses['101']!.description, /docs\/api\.md/);
    assert.deepEqual(Object.keys(operation['x-websocket-messages']), ['client', 'server']);
  });

  it('keeps the sandbox busy while the socket is open; closing it early kills the command', async () => {
    const exec = await openExec({ command: ['sleep', '123'] });
    await exec.event('started');
    const startedAt = Date.now();
    while (Date.now() <= startedAt) await setImmediate();
    const idleExpiry = async () => {
      const listed = (await call('GET', '/v1/sandboxes')).json().sandboxes as { id: string; idleExpiresAt: string }[];
      return Date.parse(listed.find((sandbox) => sandbox.id === id)!.idleExpiresAt);
    };
    const idleTimeoutMs = 5 * 60_000;
    const before = Date.now();
    assert.ok((await idleExpiry()) >= before + idleTimeoutMs, 'an open socket holds the idle clock');

    exec.socket.close();
    await exec.closed;
    const deadline = Date.now() + POLL_LIMIT_MS;
    let asked = Date.now();
    while ((await idleExpiry()) >= asked + idleTimeoutMs) {
      assert.ok(Date.now() < deadline, 'the idle clock runs again once the socket closed');
      await delay(50);
      asked = Date.now();
    }
    await gone('sleep 123');
  });

  it('publishes a guest port, pauses, resumes and pings the sandbox', async () => {
    const server = await openExec({
      command: 'echo guest-web > /tmp/index.html && exec httpd -f -p 127.0.0.1:8080 -h /tmp',
    });
    await server.event('started');
    const published = await call('POST', `/v1/sandboxes/${id}/ports`, { guest: 8080 });
    assert.equal(published.status, 200, published.bytes.toString());
    const { guest, host } = published.json();
    assert.equal(guest, 8080);
    assert.deepEqual((await call('GET', `/v1/sandboxes/${id}`)).json().ports, [{ guest, host }]);
    const deadline = Date.now() + POLL_LIMIT_MS;
    let page: string | undefined;
    while (page === undefined) {
      page = await fetch(`http://127.0.0.1:${host}/index.html`).then(
        (response) => response.text(),
        () => undefined,
      );
      if (page === undefined) assert.ok(Date.now() < deadline, 'httpd answers through the published port');
    }
    assert.equal(page, 'guest-web\n');
    const again = await call('POST', `/v1/sandboxes/${id}/ports`, { guest: 8080 });
    assert.deepEqual([again.status, again.json().code], [400, 'invalid_argument']);
    await server.send({ type: 'signal', signal: 'SIGKILL' });
    await server.closed;

    assert.equal((await call('POST', `/v1/sandboxes/${id}/pause`)).status, 204);
    const pinged = call('POST', `/v1/sandboxes/${id}/ping`);
    assert.equal(await Promise.race([pinged.then(() => 'answered'), delay(500, 'waiting')]), 'waiting');
    assert.equal((await call('POST', `/v1/sandboxes/${id}/resume`)).status, 204);
    assert.equal((await pinged).status, 200);
    const ping = await call('POST', `/v1/sandboxes/${id}/ping`);
    assert.ok(ping.json().agentMs >= 0);
  });

  it('destroys the sandbox gracefully; SIGTERM then stops the daemon', async () => {
    const bad = await call('DELETE', `/v1/sandboxes/${id}?graceful=maybe`);
    assert.deepEqual([bad.status, bad.json().code], [400, 'invalid_argument']);
    assert.equal((await call('DELETE', `/v1/sandboxes/${id}?graceful=true`)).status, 204);
    assert.equal((await call('GET', `/v1/sandboxes/${id}`)).status, 404);
    assert.ok(!(await liveIds()).includes(id));
    daemon.child.kill('SIGTERM');
    assert.equal(await daemon.stopped, 0);
  });
});
