/**
 * The vfkit REST client against the fake vfkit (test/helpers/vfkit/), which serves vfkit's state API with its states,
 * transitions and error answers; and against small hostile servers for what vfkit itself never sends (oversized or
 * malformed replies).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { type Server, createServer, request } from 'node:http';
import { join } from 'node:path';
import { type TestContext, describe, it } from 'node:test';
import { MAX_RESPONSE_BYTES, VfkitApi, VfkitApiError } from '../../src/backends/vz/api-client.js';
import { buildVfkitArgs, vfkitRuntimePaths } from '../../src/backends/vz/args.js';
import { parseVmConfig } from '../../src/core/config.js';
import { JitvmError, VmmError } from '../../src/core/errors.js';
import { alive } from '../helpers/process.js';
import { tempDir } from '../helpers/temp.js';
import { installFakeVfkit, readVfkitRecord } from '../helpers/vfkit/install.js';

interface Fake {
  readonly child: ChildProcess;
  readonly api: VfkitApi;
  readonly restSocket: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly stderr: () => string;
  readonly record: string;
}

/** Starts the fake vfkit (no agent: the guest runs no init) with the argv jitvm would build. */
async function startFake(t: TestContext): Promise<Fake> {
  const dir = tempDir(t, 'jitvm-vz-api-');
  const record = join(dir, 'record.jsonl');
  const binary = await installFakeVfkit(dir, { record, goarch: 'amd64' });
  writeFileSync(join(dir, 'kernel'), 'not really a kernel');
  writeFileSync(join(dir, 'initrd'), 'not really an initrd');
  const config = parseVmConfig({ kernel: join(dir, 'kernel'), initrd: join(dir, 'initrd'), arch: 'x86_64', cpus: 2 });
  const paths = vfkitRuntimePaths(dir);
  const child = spawn(binary, buildVfkitArgs(config, paths), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (data: Buffer) => (stderr += data.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return {
    child,
    api: new VfkitApi(paths.restSocket),
    restSocket: paths.restSocket,
    exited,
    stderr: () => stderr,
    record,
  };
}

/** A raw request, to send what the typed client never would. */
function raw(
  socketPath: string,
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A one-route server on a Unix socket that answers every request with `status` and `body`. */
async function hostile(t: TestContext, status: number, body: string | Buffer): Promise<string> {
  const socketPath = join(tempDir(t, 'jitvm-vz-hostile-'), 'api.sock');
  const server: Server = createServer((_req, res) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return socketPath;
}

describe('vfkit REST client against the fake vfkit', () => {
  it('waits for the VM to run, reads its state and configuration', async (t) => {
    const fake = await startFake(t);
    const state = await fake.api.waitUntilRunning(10_000, () => alive(fake.child.pid!));
    assert.deepEqual(state, {
      state: 'VirtualMachineStateRunning',
      canStart: false,
      canPause: true,
      canResume: false,
      canStop: true,
      canHardStop: true,
    });
    const inspect = await fake.api.inspect();
    assert.equal(inspect.vcpus, 2);
    assert.equal(inspect.memoryBytes, 256 * 1024 * 1024);
    assert.equal(inspect.bootloader.kind, 'linuxBootloader');
    assert.deepEqual(
      inspect.devices?.map((device) => device.kind),
      ['virtiosock', 'virtioserial'],
    );
    assert.match(fake.stderr(), /level=info msg="virtual machine is running"/);
    assert.match(fake.stderr(), /Exposing vsock port 1024 on .*vsock\.sock/);
  });

  it('pauses and resumes, and refuses transitions VZ refuses with its error', async (t) => {
    const fake = await startFake(t);
    await fake.api.waitUntilRunning(10_000, () => alive(fake.child.pid!));
    await fake.api.setState('Pause');
    assert.deepEqual(await fake.api.getState(), {
      state: 'VirtualMachineStatePaused',
      canStart: false,
      canPause: false,
      canResume: true,
      canStop: false,
      canHardStop: true,
    });
    await assert.rejects(
      fake.api.setState('Pause'),
      (error: unknown) =>
        error instanceof VfkitApiError &&
        error instanceof JitvmError &&
        error.code === 'vmm_failed' &&
        error.method === 'POST' &&
        error.path === '/vm/state' &&
        error.status === 500 &&
        /Invalid virtual machine state transition\. Transition from state \\?"paused\\?" to state \\?"pausing\\?"/.test(
          error.body,
        ),
    );
    await assert.rejects(fake.api.setState('Stop'), /Invalid virtual machine state/);
    await fake.api.setState('Resume');
    assert.equal((await fake.api.getState()).state, 'VirtualMachineStateRunning');
    await assert.rejects(fake.api.setState('Resume'), /to state \\?"resuming\\?" is invalid/);
    const requests = readVfkitRecord(fake.record).filter((r) => r.kind === 'request' && r.method === 'POST');
    assert.deepEqual(
      requests.map((r) => (r.kind === 'request' ? [r.body, r.status] : [])),
      [
        ['{"state":"Pause"}', 202],
        ['{"state":"Pause"}', 500],
        ['{"state":"Stop"}', 500],
        ['{"state":"Resume"}', 202],
        ['{"state":"Resume"}', 500],
      ],
    );
  });

  it("answers gin's errors: 400 for an unbindable body, 500 for an unknown state, a text 404 elsewhere", async (t) => {
    const fake = await startFake(t);
    await fake.api.waitUntilRunning(10_000, () => alive(fake.child.pid!));
    assert.deepEqual(await raw(fake.restSocket, 'POST', '/vm/state'), { status: 400, text: '{"error":"EOF"}' });
    assert.deepEqual(await raw(fake.restSocket, 'POST', '/vm/state', '{"state":5}'), {
      status: 400,
      text: '{"error":"json: cannot unmarshal number into Go struct field VMState.state of type string"}',
    });
    assert.deepEqual(await raw(fake.restSocket, 'POST', '/vm/state', '{"state":"Reboot"}'), {
      status: 500,
      text: '{"error":"invalid new VMState: Reboot"}',
    });
    assert.deepEqual(await raw(fake.restSocket, 'PUT', '/vm/state', '{}'), { status: 404, text: '404 page not found' });
    assert.deepEqual(await raw(fake.restSocket, 'GET', '/vm/snapshot'), { status: 404, text: '404 page not found' });
  });

  it('a stop request powers the guest off and vfkit exits 0, removing its sockets; HardStop works when paused', async (t) => {
    const fake = await startFake(t);
    await fake.api.waitUntilRunning(10_000, () => alive(fake.child.pid!));
    await fake.api.setState('Stop');
    assert.deepEqual(await fake.exited, { code: 0, signal: null });
    assert.equal(existsSync(fake.restSocket), false, 'the REST socket is removed');

    const paused = await startFake(t);
    await paused.api.waitUntilRunning(10_000, () => alive(paused.child.pid!));
    await paused.api.setState('Pause');
    await paused.api.setState('HardStop').catch(() => undefined); // vfkit may exit before the answer goes out
    assert.deepEqual(await paused.exited, { code: 0, signal: null });
  });

  it('stops waiting as soon as vfkit dies, and reports its start-up error', async (t) => {
    const fake = await startFake(t);
    fake.child.kill('SIGKILL');
    await fake.exited;
    await assert.rejects(
      fake.api.waitUntilRunning(60_000, () => false),
      (error: unknown) => error instanceof VmmError && /exited/.test(error.message),
    );
  });
});

describe('vfkit REST client against answers vfkit never gives', () => {
  it('refuses an oversized answer', async (t) => {
    const socket = await hostile(t, 200, Buffer.alloc(MAX_RESPONSE_BYTES + 1, 0x20));
    await assert.rejects(
      new VfkitApi(socket).inspect(),
      (error: unknown) =>
        error instanceof VmmError && /vfkit's answer to GET \/vm\/inspect exceeds 65536 bytes/.test(error.message),
    );
  });

  it('refuses a state it does not know, and a body that is not JSON', async (t) => {
    const bogus = await hostile(t, 200, JSON.stringify({ state: 'VirtualMachineStateHibernating' }));
    await assert.rejects(
      new VfkitApi(bogus).getState(),
      (error: unknown) => error instanceof VfkitApiError && error.status === 200 && /unexpected body/.test(error.body),
    );
    const text = await hostile(t, 404, '404 page not found');
    await assert.rejects(
      new VfkitApi(text).getState(),
      (error: unknown) => error instanceof VfkitApiError && error.status === 404 && error.body === '404 page not found',
    );
  });

  it('times out waiting for a VM that never runs, naming its state', async (t) => {
    const starting = await hostile(
      t,
      200,
      JSON.stringify({
        state: 'VirtualMachineStateStarting',
        canStart: false,
        canPause: false,
        canResume: false,
        canStop: false,
        canHardStop: false,
      }),
    );
    await assert.rejects(
      new VfkitApi(starting).waitUntilRunning(200, () => true),
      (error: unknown) =>
        error instanceof JitvmError && error.code === 'timeout' && /VirtualMachineStateStarting/.test(error.message),
    );
  });

  it('keeps polling while the socket is missing, until the deadline', async (t) => {
    const missing = join(tempDir(t), 'nobody.sock');
    const started = Date.now();
    await assert.rejects(
      new VfkitApi(missing).waitUntilRunning(150, () => true),
      /did not report the VM running/,
    );
    assert.ok(Date.now() - started >= 150);
  });
});
