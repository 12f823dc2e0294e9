import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { runtimeRoot } from '../../src/core/paths.js';
import { CLI, type Served, client, liveIds, serveDaemon, tokenOf, validatorOf, execOutput } from '../helpers/daemon.js';
import type { OpenApiValidator } from '../helpers/openapi-validator.js';
import { BOOT_TIMEOUT_MS } from '../helpers/sandbox.js';

const MiB = 1024 * 1024;

/** What the suite removes at its end: daemons still running, temp dirs. */
const cleanups: (() => void)[] = [];
after(() => cleanups.forEach((cleanup) => cleanup()));

function temp(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The daemon's resident set in bytes, from /proc. */
function rss(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

const serve = (args: string[], env: NodeJS.ProcessEnv): Promise<Served> =>
  serveDaemon(args, env, (kill) => cleanups.unshift(kill));

describe('jitvm serve', { timeout: 300_000 }, () => {
  let tcp: Served;
  let base: string;
  let token: string;
  let validator: OpenApiValidator;
  let id: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    env = { ...process.env, XDG_CONFIG_HOME: temp('jitvm-daemon-config-') };
    tcp = await serve(['--listen', '127.0.0.1:0'], env);
    base = tcp.address;
    token = tokenOf(env);
    validator = await validatorOf(base);
  });

  const call = client(
    () => base,
    () => token,
    () => validator,
  );

  it('refuses requests without the token or with a wrong one (401, WWW-Authenticate)', async () => {
    for (const headers of [{}, { authorization: 'Bearer not-the-token' }] as Record<string, string>[]) {
      const response = await fetch(`${base}/v1/sandboxes`, { headers });
      const text = await response.text();
      validator.check('GET', '/v1/sandboxes', response.status, response.headers.get('content-type')!, text);
      assert.equal(response.status, 401);
      assert.match(response.headers.get('www-authenticate')!, /^Bearer/);
    }
    assert.equal(statSync(join(env.XDG_CONFIG_HOME!, 'jitvm', 'token')).mode & 0o777, 0o600);
  });

  it('creates a sandbox, lists it, and answers problems for a bad body and an unknown id', async () => {
    const created = await call('POST', '/v1/sandboxes', { memoryMiB: 256, bootTimeoutMs: BOOT_TIMEOUT_MS });
    assert.equal(created.status, 201, created.bytes.toString());
    id = created.json().id;
    assert.deepEqual(
      (await call('GET', '/v1/sandboxes')).json().sandboxes.map((s: { id: string }) => s.id),
      [id],
    );
    const info = (await call('GET', `/v1/sandboxes/${id}`)).json();
    assert.equal(info.config.memoryMiB, 256);
    const idleIn = Date.parse(info.idleExpiresAt) - Date.now();
    assert.ok(idleIn > 4 * 60_000 && idleIn <= 5 * 60_000, `idle timeout defaults to 5 min: ${info.idleExpiresAt}`);
    assert.ok(Date.parse(info.expiresAt) - Date.parse(info.createdAt) === 3600_000, 'timeout defaults to 1 h');
    const bad = await call('POST', '/v1/sandboxes', { cpus: 0, detached: true });
    assert.deepEqual([bad.status, bad.json().code], [400, 'invalid_argument']);
    assert.match(bad.headers.get('content-type')!, /^application\/problem\+json/);
    const unknown = await call('POST', '/v1/sandboxes/no-such-sandbox/exec', { command: 'true' });
    assert.deepEqual([unknown.status, unknown.json().code], [404, 'not_found']);
  });

  /** Runs an exec and decodes its NDJSON (every line checked against the document). */
  async function exec(body: unknown) {
    const response = await call('POST', `/v1/sandboxes/${id}/exec`, body);
    assert.equal(response.status, 200, response.bytes.toString());
    const events = response.bytes
      .toString()
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line));
    const output = (type: string) =>
      Buffer.concat(events.filter((e) => e.type === type).map((e) => Buffer.from(e.data, 'base64'))).toString();
    return { stdout: output('stdout'), stderr: output('stderr'), exit: events.at(-1) };
  }

  it('exec streams NDJSON: output, stdin, and the exit last', async () => {
    const result = await exec({ command: 'echo hi; echo oops >&2; exit 3' });
    assert.deepEqual(result, {
      stdout: 'hi\n',
      stderr: 'oops\n',
      exit: { type: 'exit', exitCode: 3, signal: null, timedOut: false },
    });
    const piped = await exec({ command: ['cat'], stdin: { base64: Buffer.from('in\n').toString('base64') } });
    assert.equal(piped.stdout, 'in\n');
    const missing = await call('POST', `/v1/sandboxes/${id}/exec`, { command: ['no-such-program'] });
    assert.deepEqual([missing.status, missing.json().code], [404, 'not_found']);
  });

  /** Runs `head -c <bytes> /dev/zero` over HTTP, decoding lines as they come; returns the daemon's peak RSS growth. */
  async function streamZeros(size: number): Promise<number> {
    const pid = tcp.child.pid!;
    const before = rss(pid);
    let peak = before;
    const response = await fetch(`${base}/v1/sandboxes/${id}/exec`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ command: `head -c ${size} /dev/zero` }),
    });
    assert.equal(response.status, 200);
    let bytes = 0;
    let pending = '';
    let last: { type: string; exitCode?: number; data?: string } | undefined;
    for await (const chunk of response.body!) {
      peak = Math.max(peak, rss(pid));
      pending += Buffer.from(chunk).toString();
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        last = JSON.parse(line);
        if (last!.type === 'stdout') bytes += Buffer.from(last!.data!, 'base64').length;
      }
    }
    assert.equal(bytes, size);
    assert.deepEqual([last?.type, last?.exitCode], ['exit', 0]);
    return peak - before;
  }

  it("streams 10 MiB (then 40 MiB) of output without the daemon's memory growing with it", async () => {
    // The first large stream sizes V8's young generation once (about 18 MiB here, whatever the output's size);
    // after that a daemon holding the output would need 50+ MiB for 40 MiB of it, a streaming one next to nothing.
    await streamZeros(10 * MiB);
    const growth = await streamZeros(40 * MiB);
    assert.ok(growth < 8 * MiB, `daemon RSS grew by ${(growth / MiB).toFixed(1)} MiB while streaming 40 MiB`);
  });

  it('uploads a multi-MiB file and downloads it back unchanged', async () => {
    const content = randomBytes(3 * MiB + 123);
    const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
    const query = `path=${encodeURIComponent('/root/up/data.bin')}&mode=0600`;
    const put = await call('PUT', `/v1/sandboxes/${id}/files?${query}`, content, {
      'content-type': 'application/octet-stream',
    });
    assert.deepEqual(put.json(), { path: '/root/up/data.bin', bytes: content.length });
    const got = await call('GET', `/v1/sandboxes/${id}/files?path=/root/up/data.bin`);
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('content-length'), String(content.length));
    assert.equal(sha(got.bytes), sha(content));
    const stat = await call('GET', `/v1/sandboxes/${id}/files/stat?path=/root/up/data.bin`);
    assert.deepEqual([stat.json().type, stat.json().mode, stat.json().size], ['file', 0o600, content.length]);
  });

  it('makes, lists and removes directories', async () => {
    assert.equal((await call('POST', `/v1/sandboxes/${id}/files/mkdir`, { path: '/root/d/e' })).status, 204);
    const listed = await call('GET', `/v1/sandboxes/${id}/files/list?path=/root/d`);
    assert.deepEqual(
      listed.json().entries.map((e: { name: string; type: string }) => [e.name, e.type]),
      [['e', 'directory']],
    );
    const refused = await call('DELETE', `/v1/sandboxes/${id}/files?path=/root/d`);
    assert.ok(refused.status >= 400, 'a non-empty directory is not removed without recursive');
    assert.equal((await call('DELETE', `/v1/sandboxes/${id}/files?path=/root/d&recursive=true`)).status, 204);
    const gone = await call('GET', `/v1/sandboxes/${id}/files/stat?path=/root/d`);
    assert.deepEqual([gone.status, gone.json().code], [404, 'not_found']);
  });

  it('deletes the sandbox; SIGTERM then stops the daemon', async () => {
    assert.equal((await call('DELETE', `/v1/sandboxes/${id}`)).status, 204);
    assert.equal((await call('GET', `/v1/sandboxes/${id}`)).status, 404);
    assert.ok(!(await liveIds()).includes(id));
    assert.equal((await call('GET', '/v1/version')).json().apiVersion, '1');
    const metrics = (await call('GET', '/metrics')).bytes.toString();
    assert.match(metrics, /^jitvm_sandboxes_created_total\{backend="qemu",source="boot"\} [1-9]/m);
    assert.match(metrics, /^jitvm_sandboxes_destroyed_total\{backend="qemu"\} [1-9]/m);
    assert.match(metrics, /^jitvm_exec_seconds_count [1-9]/m);
    assert.match(metrics, /^jitvm_errors_total\{operation="exec",code="not_found"\} [1-9]/m);
    const created = tcp.logs.find((line) => line.msg === 'sandbox created');
    assert.equal(created?.sandboxId, id, 'a structured log line names the sandbox');
    assert.equal(typeof created?.reqId, 'string', '…and the request');
    assert.ok(tcp.logs.some((line) => line.msg === 'sandbox destroyed' && line.sandboxId === id));
    assert.ok(validator.checked > 20);
    tcp.child.kill('SIGTERM');
    assert.equal(await tcp.stopped, 0);
  });

  it('on a Unix socket: mode 0600, no token, and SIGTERM destroys its sandboxes and removes the socket', async () => {
    const socketPath = join(temp('jitvm-daemon-sock-'), 'd.sock');
    const unix = await serve(['--socket', socketPath], env);
    assert.equal(unix.address, `unix:${socketPath}`);
    assert.equal(statSync(socketPath).mode & 0o777, 0o600);
    const viaSocket = (method: string, path: string, body?: unknown) =>
      new Promise<{ status: number; json: Record<string, string> }>((resolve, reject) => {
        const req = request({ socketPath, method, path, headers: { 'content-type': 'application/json' } }, (res) => {
          let text = '';
          res.on('data', (data: Buffer) => (text += data.toString()));
          res.on('end', () => {
            validator.check(method, path, res.statusCode!, res.headers['content-type'], text);
            resolve({ status: res.statusCode!, json: JSON.parse(text) });
          });
        });
        req.once('error', reject);
        req.end(body === undefined ? undefined : JSON.stringify(body));
      });
    assert.deepEqual((await viaSocket('GET', '/v1/health')).json, { status: 'ok' });
    const created = await viaSocket('POST', '/v1/sandboxes', { bootTimeoutMs: BOOT_TIMEOUT_MS });
    assert.equal(created.status, 201);
    assert.ok((await liveIds()).includes(created.json.id!));
    unix.child.kill('SIGTERM');
    assert.equal(await unix.stopped, 0);
    assert.ok(!existsSync(socketPath), 'the socket is removed');
    assert.ok(!(await liveIds()).includes(created.json.id!), 'the sandbox was destroyed');
  });
});

describe('jitvm serve: timeouts, limits and re-adoption after kill -9', { timeout: 300_000 }, () => {
  const env = { ...process.env, XDG_CONFIG_HOME: temp('jitvm-daemon-life-config-') };
  const stateDir = join(runtimeRoot(), 'daemon');
  let daemon: Served;
  let validator: OpenApiValidator;
  const call = client(
    () => daemon.address,
    () => tokenOf(env),
    () => validator,
  );
  /** Sandboxes this suite created: any still running at its end is removed with `jitvm rm`. */
  const created: string[] = [];
  cleanups.push(() => {
    const left = created.filter((id) => existsSync(join(runtimeRoot(), 'vms', id)));
    if (left.length > 0) spawnSync(process.execPath, [CLI, 'rm', ...left], { stdio: 'inherit' });
  });

  async function start(args: string[] = []): Promise<void> {
    daemon = await serve(['--listen', '127.0.0.1:0', ...args], env);
    validator = await validatorOf(daemon.address);
  }

  async function create(body: Record<string, unknown>): Promise<string> {
    const response = await call('POST', '/v1/sandboxes', { bootTimeoutMs: BOOT_TIMEOUT_MS, ...body });
    assert.equal(response.status, 201, response.bytes.toString());
    created.push(response.json().id);
    return response.json().id;
  }

  async function listed(): Promise<string[]> {
    return (await call('GET', '/v1/sandboxes')).json().sandboxes.map((s: { id: string }) => s.id);
  }

  const execOut = (id: string, command: string) => execOutput(call, id, command);

  let kept: string;

  it('refuses creates past --max-memory-mib (507) and --max-sandboxes (429) before booting', async () => {
    await start(['--max-sandboxes', '1', '--max-memory-mib', '300']);
    const memory = await call('POST', '/v1/sandboxes', { memoryMiB: 512 });
    assert.deepEqual([memory.status, memory.json().status, memory.json().code], [507, 507, 'resource_exhausted']);
    assert.match(memory.headers.get('content-type')!, /^application\/problem\+json/);
    assert.match(memory.json().detail, /300 MiB.*--max-memory-mib/s);
    const idle = await create({ memoryMiB: 256, idleTimeoutMs: 3000 });
    const count = await call('POST', '/v1/sandboxes', { memoryMiB: 64 });
    assert.deepEqual([count.status, count.json().status, count.json().code], [429, 429, 'resource_exhausted']);
    assert.match(count.json().detail, /1 of its 1 sandboxes.*--max-sandboxes/s);

    // A command running longer than the idle timeout keeps the sandbox alive: an open exec is activity.
    assert.deepEqual(await execOut(idle, 'sleep 4; echo done'), { stdout: 'done\n', exitCode: 0 });
    assert.deepEqual(await listed(), [idle]);
  });

  it('reaps a sandbox idle past its idle timeout, logs it and kills its VM', async () => {
    const idle = created[0]!;
    const deadline = Date.now() + 30_000;
    // Only the list is polled: it does not count as activity on the sandbox.
    while ((await listed()).includes(idle) && Date.now() < deadline) await delay(500);
    assert.deepEqual(await listed(), []);
    assert.ok(daemon.logs.some((l) => l.msg === 'sandbox expired' && l.sandboxId === idle && l.reason === 'idle'));
    assert.ok(!(await liveIds()).includes(idle), 'its VM is gone');
  });

  it('extends the absolute timeout with POST …/timeout', async () => {
    kept = await create({ memoryMiB: 256 });
    const before = Date.now();
    const extended = await call('POST', `/v1/sandboxes/${kept}/timeout`, { timeoutMs: 2 * 3600_000 });
    assert.equal(extended.status, 200);
    const expiresIn = Date.parse(extended.json().expiresAt) - before;
    assert.ok(expiresIn >= 2 * 3600_000 && expiresIn < 2 * 3600_000 + 60_000, extended.json().expiresAt);
    const tooLong = await call('POST', `/v1/sandboxes/${kept}/timeout`, { timeoutMs: 25 * 3600_000 });
    assert.deepEqual([tooLong.status, tooLong.json().code], [400, 'invalid_argument']);
    assert.equal((await call('GET', `/v1/sandboxes/${kept}`)).json().expiresAt, extended.json().expiresAt);
  });

  it('a daemon started after kill -9 re-adopts its sandbox and its ports; SIGTERM then leaves nothing', async () => {
    // A guest web server, published on the host: the daemon that re-adopts the sandbox publishes it again.
    const serving = await execOut(
      kept,
      'echo kept-web > /tmp/index.html && (httpd -p 127.0.0.1:8080 -h /tmp &) && sleep 0.2 && echo started',
    );
    assert.equal(serving.stdout, 'started\n');
    const published = await call('POST', `/v1/sandboxes/${kept}/ports`, { guest: 8080 });
    assert.equal(published.status, 200, published.bytes.toString());
    const { host } = published.json() as { host: number };
    assert.equal(await (await fetch(`http://127.0.0.1:${host}/index.html`)).text(), 'kept-web\n');
    const { expiresAt } = (await call('GET', `/v1/sandboxes/${kept}`)).json();
    const killed = daemon.child.pid!;
    const stateFile = join(stateDir, `${killed}.json`);
    assert.equal(statSync(stateFile).mode & 0o777, 0o600);
    daemon.child.kill('SIGKILL');
    await daemon.stopped;
    assert.ok((await liveIds()).includes(kept), 'the detached VM outlives the daemon');

    await start();
    assert.deepEqual(await listed(), [kept]);
    assert.equal((await call('GET', `/v1/sandboxes/${kept}`)).json().expiresAt, expiresAt, 'deadline kept');
    assert.deepEqual(await execOut(kept, 'echo back'), { stdout: 'back\n', exitCode: 0 });
    assert.deepEqual((await call('GET', `/v1/sandboxes/${kept}`)).json().ports, [{ guest: 8080, host }]);
    assert.equal(await (await fetch(`http://127.0.0.1:${host}/index.html`)).text(), 'kept-web\n', 'same host port');
    assert.ok(daemon.logs.some((l) => l.msg === 'sandbox re-adopted' && l.sandboxId === kept));
    assert.ok(!existsSync(stateFile), "the dead daemon's file was taken over");
    assert.ok(existsSync(join(stateDir, `${daemon.child.pid}.json`)));

    daemon.child.kill('SIGTERM');
    assert.equal(await daemon.stopped, 0);
    assert.ok(!(await liveIds()).includes(kept), 'SIGTERM destroyed it');
    assert.ok(!existsSync(join(stateDir, `${daemon.child.pid}.json`)), 'and removed its state file');
  });
});
