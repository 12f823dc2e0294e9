/**
 * The fake Firecracker and jailer (test/helpers/firecracker/) against Firecracker's documented behaviour, over raw
 * HTTP on the API socket and raw CONNECT on the vsock socket, with the real agent (dev mode) as the guest.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, after, before, describe, it } from 'node:test';
import { AgentConnection } from '../../src/channel/client.js';
import { AGENT_SOURCE_DIR, buildAgent } from '../../src/image/agent-build.js';
import { runCommand } from '../../src/sandbox/command.js';
import { RUST_STRUCTS, emulatedOperations, loadSwagger } from '../helpers/firecracker/contract.js';
import {
  type FakeFirecrackerOptions,
  installFakeFirecracker,
  readRecordedRequests,
} from '../helpers/firecracker/install.js';
import { tempDir } from '../helpers/temp.js';
import { alive } from '../helpers/process.js';

const SERDE = 'An error occurred when deserializing the json body of a request:';
const PRE_BOOT = 'The requested operation is not supported before starting the microVM.';
const POST_BOOT = 'The requested operation is not supported after starting the microVM.';

let agentDir: string;
let agent: string;

before(async () => {
  agentDir = mkdtempSync(join(tmpdir(), 'jitvm-fc-agent-'));
  agent = join(agentDir, 'agent');
  await buildAgent(AGENT_SOURCE_DIR, agent);
});

after(() => rmSync(agentDir, { recursive: true, force: true }));

interface Reply {
  readonly status: number;
  readonly json: unknown;
  readonly fault: string | undefined;
}

/** One request on the API socket; `body` is sent as is when a string, as JSON otherwise. */
function api(socketPath: string, method: string, path: string, body?: unknown): Promise<Reply> {
  const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const json: unknown = raw === '' ? undefined : JSON.parse(raw);
        const fault = (json as { fault_message?: string } | undefined)?.fault_message;
        resolve({ status: res.statusCode ?? 0, json, fault });
      });
    });
    req.on('error', reject);
    if (text !== undefined) req.setHeader('Content-Type', 'application/json');
    req.end(text);
  });
}

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail(`not within 5 s: ${what}`);
}

/** Ends a process this test started, directly or through the jailer, and waits until it is gone. */
async function stop(pid: number, child?: ChildProcess): Promise<void> {
  if (child && (child.exitCode !== null || child.signalCode !== null)) return;
  const exited = child ? new Promise((resolve) => child.once('exit', resolve)) : undefined;
  if (alive(pid)) process.kill(pid, 'SIGTERM');
  await (exited ?? until(() => !alive(pid), `pid ${pid} gone`));
}

interface Fake {
  readonly dir: string;
  readonly sock: string;
  readonly record: string;
  readonly child: ChildProcess;
  readonly exit: Promise<{ code: number | null; signal: string | null }>;
  output(): string;
}

/** Installs and starts the fake firecracker in a temp dir; it is stopped when the test ends. */
async function startFake(t: TestContext, options: FakeFirecrackerOptions = {}): Promise<Fake> {
  const dir = tempDir(t, 'jitvm-fc-');
  const record = join(dir, 'requests.jsonl');
  const { firecracker } = await installFakeFirecracker(dir, { record, ...options });
  const sock = join(dir, 'api.sock');
  const child = spawn(firecracker, ['--api-sock', sock, '--id', 'test-vm'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (data: Buffer) => (output += data.toString()));
  child.stderr!.on('data', (data: Buffer) => (output += data.toString()));
  const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  t.after(() => stop(child.pid!, child));
  await until(
    () =>
      api(sock, 'GET', '/').then(
        (r) => r.status === 200,
        () => false,
      ),
    'the API answers',
  );
  return { dir, sock, record, child, exit, output: () => output };
}

/** PUT /boot-source with a kernel file made for it, and PUT /vsock on `<dir>/v.sock`. */
async function configureBoot(fake: Fake, bootArgs = 'console=ttyS0 reboot=k panic=1'): Promise<string> {
  const kernel = join(fake.dir, 'vmlinux');
  writeFileSync(kernel, 'not really a kernel');
  const vsock = join(fake.dir, 'v.sock');
  assert.equal(
    (await api(fake.sock, 'PUT', '/boot-source', { kernel_image_path: kernel, boot_args: bootArgs })).status,
    204,
  );
  assert.equal((await api(fake.sock, 'PUT', '/vsock', { guest_cid: 3, uds_path: vsock })).status, 204);
  return vsock;
}

/** A host connection over hybrid vsock: the reply line, and the socket when the reply was OK. */
function vsockConnect(path: string, request = 'CONNECT 1024\n'): Promise<{ reply: string; socket?: Socket }> {
  return new Promise((resolve) => {
    const socket = connect(path, () => socket.write(request));
    let reply = '';
    const onData = (data: Buffer): void => {
      reply += data.toString('latin1');
      if (!reply.includes('\n')) return;
      socket.off('data', onData);
      socket.pause();
      resolve({ reply, socket });
    };
    socket.on('data', onData);
    socket.on('error', () => undefined);
    socket.on('close', () => resolve({ reply }));
  });
}

/** Retries CONNECT 1024 until the agent listens (it connects to the fake shortly after boot). */
async function connectAgent(path: string): Promise<{ reply: string; connection: AgentConnection }> {
  for (let i = 0; i < 200; i++) {
    const { reply, socket } = await vsockConnect(path);
    if (socket) {
      const connection = new AgentConnection(socket);
      socket.resume();
      await connection.handshake();
      return { reply, connection };
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.fail('the agent never listened on vsock port 1024');
}

/** The agent process: the fake's only child (setpriv execs it). */
function agentPid(fakePid: number): number {
  const children = readFileSync(`/proc/${fakePid}/task/${fakePid}/children`, 'utf8').trim().split(/\s+/);
  assert.equal(children.length, 1, `children of the fake: ${children.join(', ')}`);
  return Number(children[0]);
}

function processState(pid: number): string {
  return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0]!;
}

describe('fake firecracker: contract', () => {
  it('knows a Rust struct for every body it decodes, matching the vendored swagger field for field', () => {
    const swagger = loadSwagger();
    for (const operation of emulatedOperations(swagger)) {
      if (operation.definition) assert.ok(RUST_STRUCTS[operation.definition], operation.definition);
    }
    const enumOf = (ref: string | undefined): readonly string[] | undefined =>
      ref ? swagger.definitions[ref.replace('#/definitions/', '')]?.enum : undefined;
    for (const [name, rust] of Object.entries(RUST_STRUCTS)) {
      const properties = swagger.definitions[name]?.properties ?? {};
      assert.deepEqual([...rust.fields].sort(), Object.keys(properties).sort(), name);
      for (const [field, property] of Object.entries(properties)) {
        if (property.type === 'integer') assert.ok(rust.scalars?.[field], `${name}.${field} needs its integer width`);
        const swaggerEnum = property.enum ?? enumOf(property.$ref);
        for (const variant of rust.variants?.[field] ?? [])
          assert.ok(swaggerEnum?.includes(variant), `${name}.${field}`);
      }
    }
  });
});

describe('fake firecracker: command line', () => {
  it('prints its version like the real binary, and fails on unknown flags and an existing socket path', async (t) => {
    const dir = tempDir(t, 'jitvm-fc-');
    const { firecracker } = await installFakeFirecracker(dir, { version: '1.12.0' });
    const version = spawnSync(firecracker, ['--version'], { encoding: 'utf8' });
    assert.deepEqual([version.status, version.stdout], [0, 'Firecracker v1.12.0\n\n']);
    const bad = spawnSync(firecracker, ['--api-sock', join(dir, 'a.sock'), '--bogus'], { encoding: 'utf8' });
    assert.equal(bad.status, 153);
    assert.equal(bad.stderr, 'Error: ParseArguments(UnexpectedArgument("bogus"))\n');
    assert.match(bad.stdout, /\[anonymous-instance:main\] Arguments parsing error: Found argument 'bogus'/);
    writeFileSync(join(dir, 'taken.sock'), '');
    const taken = spawnSync(firecracker, ['--api-sock', join(dir, 'taken.sock')], { encoding: 'utf8' });
    assert.equal(taken.status, 1);
    assert.equal(taken.stderr, `Error: RunWithApi(FailedToBindSocket("${join(dir, 'taken.sock')}"))\n`);
  });
});

describe('fake firecracker: API', () => {
  it('accepts a full pre-boot configuration, starts, and records, logs and counts every request', async (t) => {
    const fake = await startFake(t);
    const rootfs = join(fake.dir, 'rootfs.ext4');
    writeFileSync(rootfs, Buffer.alloc(4096));
    const [log, metricsFile] = [join(fake.dir, 'fc.log'), join(fake.dir, 'metrics.json')];
    const sent: [string, string, unknown][] = [
      ['PUT', '/logger', { log_path: log, level: 'Info', show_level: true }],
      ['PUT', '/metrics', { metrics_path: metricsFile }],
      ['PUT', '/machine-config', { vcpu_count: 2, mem_size_mib: 256, smt: false }],
      [
        'PUT',
        '/drives/rootfs',
        { drive_id: 'rootfs', is_root_device: true, is_read_only: false, path_on_host: rootfs },
      ],
    ];
    for (const [method, path, body] of sent) assert.equal((await api(fake.sock, method, path, body)).status, 204);
    const vsock = await configureBoot(fake);
    // Again on the same path: the old socket file is removed and the path bound anew (VsockBuilder::insert).
    assert.equal((await api(fake.sock, 'PUT', '/vsock', { guest_cid: 3, uds_path: vsock })).status, 204);
    assert.ok(statSync(vsock).isSocket());
    assert.equal((await api(fake.sock, 'PUT', '/actions', { action_type: 'InstanceStart' })).status, 204);

    const info = await api(fake.sock, 'GET', '/');
    assert.deepEqual(info.json, {
      id: 'test-vm',
      state: 'Running',
      vmm_version: '1.17.0-dev',
      app_name: 'Firecracker',
    });
    const config = (await api(fake.sock, 'GET', '/vm/config')).json as Record<string, unknown>;
    assert.deepEqual(config['machine-config'], {
      vcpu_count: 2,
      mem_size_mib: 256,
      smt: false,
      track_dirty_pages: false,
      huge_pages: 'None',
    });
    assert.deepEqual(config.vsock, { guest_cid: 3, uds_path: vsock });
    assert.equal((config.drives as { path_on_host: string }[])[0]!.path_on_host, rootfs);
    assert.deepEqual((await api(fake.sock, 'GET', '/version')).json, { firecracker_version: '1.17.0-dev' });

    assert.equal((await api(fake.sock, 'PUT', '/actions', { action_type: 'FlushMetrics' })).status, 204);
    const line = JSON.parse(readFileSync(metricsFile, 'utf8').trim()) as Record<string, Record<string, number>>;
    assert.equal(typeof line.utc_timestamp_ms, 'number');
    assert.equal(line.put_api_requests!.drive_count, 1);
    assert.equal(line.put_api_requests!.actions_count, 2);
    assert.equal(line.get_api_requests!.instance_info_count, 2); // the readiness poll and the one above
    assert.ok('api_server' in line && 'vmm' in line && 'signals' in line);

    assert.match(
      readFileSync(log, 'utf8'),
      /\[test-vm:fc_api:INFO\] The API server received a Put request on "\/actions"/,
    );
    await until(
      () => fake.output().includes('Command line: console=ttyS0 reboot=k panic=1 root=/dev/vda rw'),
      'boot log',
    );
    const recorded = readRecordedRequests(fake.record).filter((r) => r.method !== 'GET');
    assert.deepEqual(
      recorded.slice(0, 4).map((r) => [r.method, r.path, r.body]),
      sent,
    );
    assert.deepEqual(
      recorded.map((r) => r.status),
      recorded.map(() => 204),
    );
  });

  it("refuses malformed bodies with serde_json's messages and positions, changing nothing", async (t) => {
    const fake = await startFake(t);
    const rootfs = join(fake.dir, 'rootfs.ext4');
    writeFileSync(rootfs, '');
    const missing = join(fake.dir, 'missing.ext4');
    const cases: [string, string, unknown, string][] = [
      [
        'PUT',
        '/boot-source',
        '{"kernel_image_path":"/k","x":1}',
        `${SERDE} unknown field \`x\`, expected one of \`kernel_image_path\`, \`initrd_path\`, \`boot_args\` at line 1 column 29.`,
      ],
      ['PUT', '/machine-config', '{"mem_size_mib":128}', `${SERDE} missing field \`vcpu_count\` at line 1 column 20.`],
      [
        'PUT',
        '/machine-config',
        '{"vcpu_count":"2","mem_size_mib":128}',
        `${SERDE} invalid type: string "2", expected u8 at line 1 column 17.`,
      ],
      [
        'PUT',
        '/machine-config',
        { vcpu_count: 64, mem_size_mib: 128 },
        'Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.',
      ],
      [
        'PUT',
        '/machine-config',
        '{"vcpu_count":300,"mem_size_mib":128}',
        `${SERDE} invalid value: integer \`300\`, expected u8 at line 1 column 17.`,
      ],
      [
        'PUT',
        '/drives/rootfs',
        { drive_id: 'other', is_root_device: true, path_on_host: rootfs },
        'The id from the path does not match the id from the body!',
      ],
      [
        'PUT',
        '/drives/root-fs',
        { drive_id: 'root-fs', is_root_device: true, path_on_host: rootfs },
        'API Resource IDs can only contain alphanumeric characters and underscores.',
      ],
      [
        'PUT',
        '/drives/rootfs',
        { drive_id: 'rootfs', is_root_device: true, path_on_host: missing },
        `Drive config error: Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: No such file or directory (os error 2) ${missing}`,
      ],
      [
        'PUT',
        '/network-interfaces/eth0',
        { iface_id: 'eth1', host_dev_name: 'lo' },
        'The id from the path [eth0] does not match the id from the body [eth1]!',
      ],
      [
        'PUT',
        '/network-interfaces/eth0',
        { iface_id: 'eth0', host_dev_name: 'lo' },
        'Network config error: Could not create the network device: Open tap device failed: Error while creating ifreq structure: Invalid argument (os error 22). Invalid TUN/TAP Backend provided by lo. Check our documentation on setting up the network devices.',
      ],
      [
        'PUT',
        '/actions',
        '{"action_type":"Reboot"}',
        `${SERDE} unknown variant \`Reboot\`, expected one of \`FlushMetrics\`, \`InstanceStart\`, \`SendCtrlAltDel\` at line 1 column 23.`,
      ],
      [
        'PATCH',
        '/vm',
        '{"state":"Running"}',
        `${SERDE} unknown variant \`Running\`, expected \`Paused\` or \`Resumed\` at line 1 column 18.`,
      ],
      ['PUT', '/vsock', '{"guest_cid":3,"uds_path":"/x"} x', `${SERDE} trailing characters at line 1 column 33.`],
      [
        'PUT',
        '/vsock',
        { guest_cid: 2, uds_path: join(fake.dir, 'v.sock') },
        'fake firecracker: the request breaks the API contract (test/fixtures/firecracker-swagger.yaml): Vsock.guest_cid is 2, below the minimum 3',
      ],
      [
        'PUT',
        '/boot-source',
        { kernel_image_path: missing },
        'Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)',
      ],
      [
        'PUT',
        '/snapshot/load',
        { snapshot_path: '/s', mem_file_path: '/m', mem_backend: { backend_path: '/m', backend_type: 'File' } },
        `${SERDE} too many fields: either \`mem_backend\` or \`mem_file_path\` exclusively is required.`,
      ],
      [
        'PUT',
        '/snapshot/load',
        { snapshot_path: '/s' },
        `${SERDE} missing field: either \`mem_backend\` or \`mem_file_path\` is required.`,
      ],
      [
        'PUT',
        '/metrics',
        { metrics_path: join(fake.dir, 'metrics'), extra: 1 },
        'fake firecracker: the request breaks the API contract (test/fixtures/firecracker-swagger.yaml): Metrics.extra is not in the swagger definition Metrics',
      ],
      ['PUT', '/boot-source', undefined, 'Empty PUT request.'],
      ['GET', '/nope', undefined, 'Invalid request method and/or path: GET nope.'],
    ];
    for (const [method, path, body, fault] of cases) {
      const reply = await api(fake.sock, method, path, body);
      assert.deepEqual([reply.status, reply.fault], [400, fault], `${method} ${path} ${JSON.stringify(body)}`);
    }
    const config = (await api(fake.sock, 'GET', '/vm/config')).json as Record<string, unknown>;
    assert.deepEqual([config.drives, config['network-interfaces'], config.vsock], [[], [], null]);
    const faults = readRecordedRequests(fake.record)
      .filter((r) => r.status === 400)
      .map((r) => r.fault_message);
    assert.deepEqual(
      faults,
      cases.map((c) => c[3]),
    );
  });

  it('allows each request only in the states Firecracker allows it', async (t) => {
    const fake = await startFake(t);
    const refused = async (method: string, path: string, body: unknown, fault: string): Promise<void> => {
      const reply = await api(fake.sock, method, path, body);
      assert.deepEqual([reply.status, reply.fault], [400, fault], `${method} ${path}`);
    };
    await refused('PATCH', '/vm', { state: 'Paused' }, PRE_BOOT);
    await refused('PUT', '/actions', { action_type: 'FlushMetrics' }, PRE_BOOT);
    await refused('PUT', '/actions', { action_type: 'SendCtrlAltDel' }, PRE_BOOT);
    const noKernel = 'Start microvm error: Cannot start microvm without kernel configuration.';
    await refused('PUT', '/actions', { action_type: 'InstanceStart' }, noKernel);
    await configureBoot(fake);
    assert.equal((await api(fake.sock, 'PUT', '/actions', { action_type: 'InstanceStart' })).status, 204);
    await refused('PUT', '/actions', { action_type: 'InstanceStart' }, POST_BOOT);
    await refused('PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 128 }, POST_BOOT);
    await refused('PUT', '/boot-source', { kernel_image_path: join(fake.dir, 'vmlinux') }, POST_BOOT);
    await refused('PUT', '/logger', { level: 'Debug' }, POST_BOOT);
    await refused(
      'PUT',
      '/drives/extra',
      { drive_id: 'extra', is_root_device: false, path_on_host: '/x' },
      'PCI is not enabled',
    );
    const running =
      'Create snapshot error: Cannot save the microVM state: Operation not allowed: save/restore unavailable while running';
    await refused('PUT', '/snapshot/create', { snapshot_path: '/s', mem_file_path: '/m' }, running);
    for (const state of ['Paused', 'Resumed'] as const) {
      assert.equal((await api(fake.sock, 'PATCH', '/vm', { state })).status, 204);
      const info = (await api(fake.sock, 'GET', '/')).json as { state: string };
      assert.equal(info.state, state === 'Paused' ? 'Paused' : 'Running');
    }
  });
});

describe('fake firecracker: guest and vsock', () => {
  it('answers CONNECT 1024 with OK <host port> and splices the agent; other ports are closed; a paused VM is silent', async (t) => {
    const fake = await startFake(t, { agent });
    const vsock = await configureBoot(fake, 'console=ttyS0 reboot=k panic=1 quiet');
    assert.equal((await api(fake.sock, 'PUT', '/actions', { action_type: 'InstanceStart' })).status, 204);
    const first = await connectAgent(vsock);
    assert.equal(first.reply, 'OK 1073741824\n');
    assert.equal((await runCommand(first.connection, 'echo hello')).stdout, 'hello\n');
    assert.deepEqual(await vsockConnect(vsock, 'CONNECT 52\n'), { reply: '' });
    assert.deepEqual(await vsockConnect(vsock, 'HELLO 1024\n'), { reply: '' });

    assert.equal((await api(fake.sock, 'PATCH', '/vm', { state: 'Paused' })).status, 204);
    const pid = agentPid(fake.child.pid!);
    await until(() => processState(pid) === 'T', 'the agent stopped');
    let done = false;
    const pending = runCommand(first.connection, 'echo later').then((result) => {
      done = true;
      return result;
    });
    assert.equal((await api(fake.sock, 'GET', '/')).status, 200); // the API still answers
    assert.equal(done, false);
    assert.equal((await api(fake.sock, 'PATCH', '/vm', { state: 'Resumed' })).status, 204);
    assert.equal((await pending).stdout, 'later\n');
    first.connection.close();
    const second = await connectAgent(vsock);
    assert.equal(second.reply, 'OK 1073741825\n');
    second.connection.close();
    assert.match(fake.output(), /jitvm-agent: ready/); // the guest's console
  });

  it('SendCtrlAltDel: the agent shuts down, the guest reboots and Firecracker exits 0', async (t) => {
    const fake = await startFake(t, { agent });
    const vsock = await configureBoot(fake);
    assert.equal((await api(fake.sock, 'PUT', '/actions', { action_type: 'InstanceStart' })).status, 204);
    (await connectAgent(vsock)).connection.close(); // the agent is up and handles SIGINT
    assert.equal((await api(fake.sock, 'PUT', '/actions', { action_type: 'SendCtrlAltDel' })).status, 204);
    assert.deepEqual(await fake.exit, { code: 0, signal: null });
    assert.match(fake.output(), /reboot: Restarting system\n.*Firecracker exiting successfully\. exit_code=0/s);
  });

  it('a guest that ignores Ctrl-Alt-Del keeps running until killed', async (t) => {
    const fake = await startFake(t, { agent, ignoreCtrlAltDel: true });
    await configureBoot(fake);
    assert.equal((await api(fake.sock, 'PUT', '/actions', { action_type: 'InstanceStart' })).status, 204);
    assert.equal((await api(fake.sock, 'PUT', '/actions', { action_type: 'SendCtrlAltDel' })).status, 204);
    assert.deepEqual((await api(fake.sock, 'GET', '/')).json, {
      id: 'test-vm',
      state: 'Running',
      vmm_version: '1.17.0-dev',
      app_name: 'Firecracker',
    });
    fake.child.kill('SIGKILL');
    assert.deepEqual(await fake.exit, { code: null, signal: 'SIGKILL' });
  });
});

describe('fake firecracker: snapshots', () => {
  it('snapshots a paused VM and restores it in a fresh process; a damaged file ends that process', async (t) => {
    const source = await startFake(t, { agent });
    await configureBoot(source);
    assert.equal((await api(source.sock, 'PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 64 })).status, 204);
    assert.equal((await api(source.sock, 'PUT', '/actions', { action_type: 'InstanceStart' })).status, 204);
    const before = await connectAgent(join(source.dir, 'v.sock'));
    const closed = new Promise((resolve) => before.connection.once('close', resolve));
    assert.equal((await api(source.sock, 'PATCH', '/vm', { state: 'Paused' })).status, 204);
    const [state, memory] = [join(source.dir, 'vmstate'), join(source.dir, 'memory')];
    const create = { snapshot_path: state, mem_file_path: memory, snapshot_type: 'Full' };
    assert.equal((await api(source.sock, 'PUT', '/snapshot/create', create)).status, 204);
    assert.equal(statSync(memory).size, 64 * 1024 * 1024);
    assert.ok(statSync(memory).blocks * 512 < 1024 * 1024, 'the memory file is sparse');
    assert.equal((await api(source.sock, 'PATCH', '/vm', { state: 'Resumed' })).status, 204);
    await closed; // VIRTIO_VSOCK_EVENT_TRANSPORT_RESET: the guest drops its connections on resume

    const clone = await startFake(t, { agent });
    assert.equal((await api(clone.sock, 'PUT', '/logger', { level: 'Info' })).status, 204); // allowed before a load
    const cloneVsock = join(clone.dir, 'v.sock');
    const load = { snapshot_path: state, mem_backend: { backend_path: memory, backend_type: 'File' } };
    const loaded = await api(clone.sock, 'PUT', '/snapshot/load', {
      ...load,
      vsock_override: { uds_path: cloneVsock },
    });
    assert.equal(loaded.status, 204);
    assert.equal(((await api(clone.sock, 'GET', '/')).json as { state: string }).state, 'Paused');
    const config = (await api(clone.sock, 'GET', '/vm/config')).json as Record<string, { mem_size_mib?: number }>;
    assert.deepEqual(
      [config.vsock, config['machine-config']!.mem_size_mib],
      [{ guest_cid: 3, uds_path: cloneVsock }, 64],
    );
    assert.equal((await api(clone.sock, 'PATCH', '/vm', { state: 'Resumed' })).status, 204);
    const restored = await connectAgent(cloneVsock);
    assert.equal(restored.reply, 'OK 1073741824\n'); // a new muxer counts from the start
    assert.equal((await runCommand(restored.connection, ['true'])).exitCode, 0);
    restored.connection.close();

    const configured = await startFake(t);
    await configureBoot(configured);
    const notAllowed = await api(configured.sock, 'PUT', '/snapshot/load', load);
    const boot =
      'Load snapshot error: Loading a microVM snapshot not allowed after configuring boot-specific resources.';
    assert.deepEqual([notAllowed.status, notAllowed.fault], [400, boot]);

    const damaged = join(configured.dir, 'damaged');
    const bytes = readFileSync(state);
    bytes[bytes.indexOf('"mem_size_mib":64') + 15] = '9'.charCodeAt(0);
    writeFileSync(damaged, bytes);
    const broken = await startFake(t);
    const reply = await api(broken.sock, 'PUT', '/snapshot/load', { ...load, snapshot_path: damaged });
    const crc =
      'Load snapshot error: Failed to restore from snapshot: Failed to get snapshot state from file: Failed to load snapshot state from file: CRC64 validation failed';
    assert.deepEqual([reply.status, reply.fault], [400, crc]);
    assert.deepEqual(await broken.exit, { code: 1, signal: null });
    assert.match(broken.output(), /Error: RunWithApi\(BuildMicroVmError\(Restore\)\)/);
  });
});

describe('fake jailer', () => {
  it('builds <base>/<exec>/<id>/root, execs the fake in it, and refuses what the real one refuses', async (t) => {
    const dir = tempDir(t, 'jitvm-jail-');
    const { firecracker, jailer } = await installFakeFirecracker(dir);
    const base = join(dir, 'srv');
    writeFileSync(join(dir, 'vmlinux'), 'kernel');
    const jail = (id: string, ...extra: string[]): string[] => [
      ...['--id', id, '--exec-file', firecracker, '--uid', '123', '--gid', '456'],
      ...['--chroot-base-dir', base, '--cgroup-version', '2', ...extra, '--', '--api-sock', '/api.sock'],
    ];
    const noBase = spawnSync(jailer, jail('vm1'), { encoding: 'utf8' });
    assert.equal(noBase.status, 1);
    assert.equal(
      noBase.stderr.split('\n')[0],
      `Failed to canonicalize path ${base}: No such file or directory (os error 2)`,
    );
    mkdirSync(base);

    const child = spawn(jailer, jail('vm1'), { stdio: 'ignore' });
    t.after(() => stop(child.pid!, child));
    const root = join(base, 'firecracker', 'vm1', 'root');
    const sock = join(root, 'api.sock');
    await until(
      () =>
        api(sock, 'GET', '/').then(
          (r) => r.status === 200,
          () => false,
        ),
      'the jailed API answers',
    );
    assert.equal(readFileSync(join(root, 'firecracker.pid'), 'utf8'), String(child.pid)); // exec: the same process
    assert.equal(readFileSync(join(root, 'firecracker'), 'utf8'), readFileSync(firecracker, 'utf8'));
    assert.equal(statSync(join(root, 'firecracker')).nlink, 1); // a copy, never a hard link
    for (const node of ['dev/kvm', 'dev/net/tun', 'run']) assert.ok(existsSync(join(root, node)), node);
    assert.equal(((await api(sock, 'GET', '/')).json as { id: string }).id, 'vm1');
    // Paths resolve inside the jail: only what was put there exists.
    const outside = await api(sock, 'PUT', '/boot-source', { kernel_image_path: join(dir, 'vmlinux') });
    assert.equal(
      outside.fault,
      'Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)',
    );
    copyFileSync(join(dir, 'vmlinux'), join(root, 'vmlinux'));
    assert.equal((await api(sock, 'PUT', '/boot-source', { kernel_image_path: '/vmlinux' })).status, 204);

    const again = spawnSync(jailer, jail('vm1'), { encoding: 'utf8' });
    assert.equal(again.status, 1);
    assert.match(
      again.stderr,
      /^Failed to create \/dev\/net\/tun via mknod inside the jail: File exists \(os error 17\)\n/,
    );
    const badId = spawnSync(jailer, jail('vm_1'), { encoding: 'utf8' });
    assert.deepEqual(
      [badId.status, badId.stderr],
      [1, "Invalid instance ID: Invalid char (_) at position 2\nError: InvalidInstanceId(InvalidChar('_', 2))\n"],
    );
    const badUid = spawnSync(
      jailer,
      jail('vm2').map((a) => (a === '123' ? 'root' : a)),
      { encoding: 'utf8' },
    );
    assert.deepEqual([badUid.status, badUid.stderr], [1, 'Invalid uid: root\nError: Uid("root")\n']);
  });

  it('--new-pid-ns: the jailer exits 0 and the pid file names Firecracker; --daemonize detaches it', async (t) => {
    const dir = tempDir(t, 'jitvm-jail-');
    const { firecracker, jailer } = await installFakeFirecracker(dir);
    const base = join(dir, 'srv');
    mkdirSync(base);
    for (const [id, flag] of [
      ['ns', '--new-pid-ns'],
      ['daemon', '--daemonize'],
    ] as const) {
      const args = [
        '--id',
        id,
        '--exec-file',
        firecracker,
        '--uid',
        '0',
        '--gid',
        '0',
        '--chroot-base-dir',
        base,
        flag,
      ];
      // Firecracker inherits the jailer's stdio (without --daemonize): wait for the jailer's exit, not for EOF.
      const jailerRun = spawn(jailer, [...args, '--', '--api-sock', '/api.sock'], { stdio: 'ignore' });
      assert.equal(await new Promise((resolve) => jailerRun.once('exit', resolve)), 0);
      const root = join(base, 'firecracker', id, 'root');
      await until(() => existsSync(join(root, 'firecracker.pid')), 'the pid file');
      const pid = Number(readFileSync(join(root, 'firecracker.pid'), 'utf8'));
      t.after(() => stop(pid));
      assert.notEqual(pid, jailerRun.pid);
      await until(
        () =>
          api(join(root, 'api.sock'), 'GET', '/').then(
            (r) => r.status === 200,
            () => false,
          ),
        `${id} API`,
      );
      assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), new RegExp(`--id\0${id}\0--start-time-us\0\\d+\0`));
      if (flag === '--daemonize') {
        assert.equal(readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[5], String(pid)); // its own session
        assert.equal(readlinkSync(`/proc/${pid}/fd/1`), '/dev/null');
      }
    }
  });
});
