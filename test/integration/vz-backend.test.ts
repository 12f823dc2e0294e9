/**
 * The vz backend end to end against the fake vfkit (test/helpers/vfkit/): the command line is parsed as vfkit parses
 * it, the lifecycle goes through its REST state API, and the "guest" is the real jitvm agent in dev mode behind the
 * vsock socket vfkit creates in `connect` mode. The host is injected as a Mac of this machine's architecture; dev mode
 * runs commands on this host, so only harmless ones run here.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VfkitApiError } from '../../src/backends/vz/api-client.js';
import { buildVfkitArgs, vfkitRuntimePaths } from '../../src/backends/vz/args.js';
import { VfkitHypervisor } from '../../src/backends/vz/index.js';
import { parseVmConfig } from '../../src/core/config.js';
import { InvalidArgumentError, JitvmError } from '../../src/core/errors.js';
import type { VmInstance } from '../../src/core/hypervisor.js';
import { vmsRoot } from '../../src/core/paths.js';
import { VmRecordSchema } from '../../src/core/vm-record.js';
import { AGENT_SOURCE_DIR, buildAgent } from '../../src/image/agent-build.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { alive } from '../helpers/process.js';
import { fakeMac, installFakeVfkit, readVfkitRecord } from '../helpers/vfkit/install.js';

const BOOT_TIMEOUT_MS = 20_000;

let dir: string;
let agent: string;
let kernel: string;
let initrd: string;
let counter = 0;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'jitvm-vz-'));
  agent = join(dir, 'agent');
  await buildAgent(AGENT_SOURCE_DIR, agent);
  // The fake (as an Intel Mac) only checks that they exist, as VZ's boot loader does.
  kernel = join(dir, 'bzImage');
  initrd = join(dir, 'initrd.img');
  writeFileSync(kernel, 'kernel');
  writeFileSync(initrd, 'initrd');
});

after(() => rmSync(dir, { recursive: true, force: true }));

/** A fresh fake install with its own record. */
async function fake(options: { ignoreStop?: boolean; bootMs?: number } = {}) {
  const home = join(dir, `fake-${++counter}`);
  mkdirSync(home);
  const record = join(home, 'record.jsonl');
  const binary = await installFakeVfkit(home, { agent, record, ...options });
  const hypervisor = new VfkitHypervisor(fakeMac(binary));
  const requests = () =>
    readVfkitRecord(record).flatMap((r) => (r.kind === 'request' && r.method === 'POST' ? [r.body] : []));
  const argv = () => readVfkitRecord(record).flatMap((r) => (r.kind === 'argv' ? [r.argv] : []));
  return { home, hypervisor, requests, argv };
}

/** Read through a function so the compiler does not narrow the state across awaits. */
function stateOf(instance: VmInstance): string {
  return instance.state.kind;
}

/**
 * Everything a VM may leave: its runtime dir and its vfkit; after a clean stop also the fake guest's socket (a killed
 * fake leaves it for the next one to sweep, as a killed VM leaves nothing of its guest to clean).
 */
async function assertNothingLeft(instance: VmInstance, pid: number, stopped = true): Promise<void> {
  assert.equal(existsSync(instance.runtimeDir), false, 'the runtime dir (sockets, console, record) is removed');
  // A process just killed may stay a zombie for a moment until Node reaps it.
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(alive(pid), false, 'vfkit is gone');
  if (stopped) {
    assert.equal(existsSync(join(tmpdir(), `jitvm-fake-vfkit-${pid}.sock`)), false, "the guest's socket is gone");
  }
}

describe('vz backend against the fake vfkit', () => {
  it('boots with the generated command line, runs a command, moves a file, stops with a stop request', async () => {
    // The guest takes a while to start its agent: the first connections are refused by vfkit and retried.
    const vf = await fake({ bootMs: 300 });
    const disk = join(vf.home, 'data.img');
    writeFileSync(disk, Buffer.alloc(1 << 20));
    const sandbox = await Sandbox.create({
      hypervisor: vf.hypervisor,
      kernel,
      initrd,
      cpus: 2,
      memoryMiB: 256,
      kernelArgs: ['jitvm.test=1'],
      drives: [{ id: 'data', path: disk }],
      bootTimeoutMs: BOOT_TIMEOUT_MS,
    });
    const { instance } = sandbox;
    const pid = instance.pid!;
    try {
      assert.equal(instance.backend, 'vz');
      assert.equal(stateOf(instance), 'running');
      assert.equal((await sandbox.exec(['echo', 'over vfkit vsock'])).stdout, 'over vfkit vsock\n');
      const file = join(vf.home, 'round-trip.txt');
      await sandbox.files.write(file, 'from the host');
      assert.equal((await sandbox.files.read(file)).toString(), 'from the host');

      const config = parseVmConfig({
        kernel,
        initrd,
        cpus: 2,
        memoryMiB: 256,
        kernelArgs: ['jitvm.test=1'],
        drives: [{ id: 'data', path: disk }],
      });
      assert.deepEqual(vf.argv(), [buildVfkitArgs(config, vfkitRuntimePaths(instance.runtimeDir))]);
      const record = VmRecordSchema.parse(JSON.parse(readFileSync(join(instance.runtimeDir, 'state.json'), 'utf8')));
      assert.equal(record.backend, 'vz');
      assert.equal(record.accelerator, 'hvf');
      assert.equal(record.vmmVersion, 'v0.6.1');
      assert.equal(record.controlSocket, instance.controlSocket);
      assert.match(readFileSync(instance.consoleLogPath, 'utf8'), /jitvm-agent: ready/, 'the console log is kept');
      const vmmLog = readFileSync(join(instance.runtimeDir, 'vmm.log'), 'utf8');
      assert.match(vmmLog, /error dialing "vsock:1024"/, 'a dial before the agent listened was refused');

      const exit = await instance.stop();
      assert.deepEqual(exit, { code: 0, signal: undefined }, 'the guest powered off and vfkit exited by itself');
      assert.deepEqual(vf.requests(), ['{"state":"Stop"}']);
    } finally {
      await sandbox.destroy();
    }
    await assertNothingLeft(instance, pid);
  });

  it('pauses and resumes through the REST API; snapshots and restores are refused as unsupported', async () => {
    const vf = await fake();
    const sandbox = await Sandbox.create({ hypervisor: vf.hypervisor, kernel, initrd, bootTimeoutMs: BOOT_TIMEOUT_MS });
    const { instance } = sandbox;
    const pid = instance.pid!;
    try {
      await instance.pause();
      assert.equal(stateOf(instance), 'paused');
      await assert.rejects(
        instance.pause(),
        (error: unknown) => error instanceof VfkitApiError && error.status === 500,
      );
      assert.equal(stateOf(instance), 'paused');
      await instance.resume();
      assert.equal(stateOf(instance), 'running');
      assert.equal((await sandbox.exec(['echo', 'resumed'])).stdout, 'resumed\n');
      assert.deepEqual(vf.requests(), ['{"state":"Pause"}', '{"state":"Pause"}', '{"state":"Resume"}']);

      assert.equal(vf.hypervisor.capabilities.snapshot, false);
      await assert.rejects(
        instance.snapshot(join(vf.home, 'snap')),
        (error: unknown) =>
          error instanceof JitvmError && error.code === 'unsupported' && /crc-org\/vfkit#449/.test(error.message),
      );
      assert.equal(existsSync(join(vf.home, 'snap')), false, 'nothing is written');
      await assert.rejects(
        vf.hypervisor.restore(),
        (error: unknown) => error instanceof JitvmError && error.code === 'unsupported',
      );
      const exit = await instance.kill();
      assert.equal(exit.signal, 'SIGKILL');
    } finally {
      await sandbox.destroy();
    }
    await assertNothingLeft(instance, pid, false);
  });

  it('forces a guest that ignores the stop request down with HardStop once the deadline passes', async () => {
    const vf = await fake({ ignoreStop: true });
    const sandbox = await Sandbox.create({ hypervisor: vf.hypervisor, kernel, initrd, bootTimeoutMs: BOOT_TIMEOUT_MS });
    const pid = sandbox.instance.pid!;
    const started = Date.now();
    const exit = await sandbox.instance.stop({ timeoutMs: 300 });
    assert.ok(Date.now() - started >= 300, 'the guest got its time');
    assert.deepEqual(exit, { code: 0, signal: undefined }, 'vfkit exits by itself once VZ stopped the VM');
    assert.deepEqual(vf.requests(), ['{"state":"Stop"}', '{"state":"HardStop"}']);
    await sandbox.destroy();
    await assertNothingLeft(sandbox.instance, pid);
  });

  it('stops a paused VM with HardStop straight away (a paused guest cannot be asked)', async () => {
    const vf = await fake();
    const sandbox = await Sandbox.create({ hypervisor: vf.hypervisor, kernel, initrd, bootTimeoutMs: BOOT_TIMEOUT_MS });
    await sandbox.instance.pause();
    const exit = await sandbox.instance.stop({ timeoutMs: 10_000 });
    assert.equal(exit.code, 0);
    assert.deepEqual(vf.requests(), ['{"state":"Pause"}', '{"state":"HardStop"}']);
    await sandbox.destroy();
  });

  it("surfaces vfkit's start-up error and leaves nothing behind", async () => {
    const vf = await fake();
    const before = new Set(existsSync(vmsRoot()) ? readdirSync(vmsRoot()) : []);
    await assert.rejects(
      Sandbox.create({
        hypervisor: vf.hypervisor,
        kernel,
        initrd,
        drives: [{ id: 'gone', path: join(vf.home, 'no-such-disk.img') }],
        bootTimeoutMs: BOOT_TIMEOUT_MS,
      }),
      (error: unknown) =>
        error instanceof JitvmError &&
        error.code === 'vmm_failed' &&
        /failed to open file .*no-such-disk\.img: open .*: no such file or directory/.test(error.message),
    );
    assert.deepEqual(
      readdirSync(vmsRoot()).filter((id) => !before.has(id)),
      [],
      'no runtime dir is left',
    );
  });

  it('refuses configs vfkit cannot run before starting anything', async () => {
    const vf = await fake();
    const { hypervisor } = vf;
    const other = process.arch === 'arm64' ? 'x86_64' : 'aarch64';
    await assert.rejects(Sandbox.create({ hypervisor, kernel, initrd, arch: other }), InvalidArgumentError);
    await assert.rejects(
      Sandbox.create({ hypervisor, kernel, initrd, network: { mode: 'tap', tap: 'jv0' } }),
      (error: unknown) => error instanceof JitvmError && error.code === 'unsupported' && /TAP/.test(error.message),
    );
    const comma = join(vf.home, 'a,b.img');
    writeFileSync(comma, Buffer.alloc(512));
    await assert.rejects(
      Sandbox.create({ hypervisor, kernel, initrd, drives: [{ id: 'c', path: comma }] }),
      /contains a comma or a double quote/,
    );
    await assert.rejects(Sandbox.create({ hypervisor, kernel: join(dir, 'no-kernel'), initrd }), /does not exist/);
    await assert.rejects(Sandbox.create({ hypervisor, backend: 'qemu', kernel, initrd }), /conflicts with the vz/);
    assert.deepEqual(vf.argv(), [], 'vfkit was never started');
  });

  it('refuses a compressed kernel on Apple silicon before vfkit does', async (t) => {
    const home = join(dir, `fake-${++counter}`);
    mkdirSync(home);
    const binary = await installFakeVfkit(home, { agent, goarch: 'arm64' });
    const hypervisor = new VfkitHypervisor(fakeMac(binary, 'arm64'));
    const gz = join(home, 'vmlinuz');
    writeFileSync(gz, Buffer.from([0x1f, 0x8b, 0x08, 0x00, ...Buffer.alloc(100)]));
    await assert.rejects(
      Sandbox.create({ hypervisor, kernel: gz, initrd, arch: 'aarch64' }),
      /not an uncompressed arm64 Image/,
    );
    t.diagnostic('an Image with the ARMd magic passes the same check and boots under the fake');
    const image = join(home, 'Image');
    const head = Buffer.alloc(4096);
    head.write('ARMd', 0x38, 'latin1');
    writeFileSync(image, head);
    const sandbox = await Sandbox.create({
      hypervisor,
      kernel: image,
      initrd,
      arch: 'aarch64',
      bootTimeoutMs: BOOT_TIMEOUT_MS,
    });
    try {
      assert.equal((await sandbox.exec(['echo', 'arm64 mac'])).stdout, 'arm64 mac\n');
    } finally {
      await sandbox.destroy();
    }
  });

  it('re-attaches to a detached VM from its record (with the default-constructed backend) and tears it down', async () => {
    const vf = await fake();
    const sandbox = await Sandbox.create({
      hypervisor: vf.hypervisor,
      kernel,
      initrd,
      detached: true,
      bootTimeoutMs: BOOT_TIMEOUT_MS,
    });
    const id = sandbox.id;
    const pid = sandbox.instance.pid!;
    sandbox.detach();
    const again = await Sandbox.connect(id);
    try {
      assert.equal(again.instance.backend, 'vz');
      assert.equal(again.instance.state.kind, 'running');
      assert.equal(again.instance.pid, pid);
      assert.equal((await again.exec(['echo', 'attached'])).stdout, 'attached\n');
    } finally {
      await again.destroy();
    }
    await assertNothingLeft(again.instance, pid, false);
  });
});
