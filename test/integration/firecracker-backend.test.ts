/**
 * The Firecracker backend end to end against the contract fake (test/helpers/firecracker/): every request it sends is
 * validated against Firecracker's swagger and state rules, and the "guest" is the real agent in dev mode behind a
 * real hybrid-vsock socket. Dev mode runs commands on this host, so only harmless ones run here.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FirecrackerApiError } from '../../src/backends/firecracker/api-client.js';
import { requireNatHost, thisNatHost } from '../../src/backends/firecracker/host-nat.js';
import { FirecrackerHypervisor, type FirecrackerOptions } from '../../src/backends/firecracker/index.js';
import { natTableName, natTapName } from '../../src/backends/firecracker/nat-plan.js';
import { parseVmConfig } from '../../src/core/config.js';
import { InvalidArgumentError, JitvmError } from '../../src/core/errors.js';
import type { VmInstance } from '../../src/core/hypervisor.js';
import { vmsRoot } from '../../src/core/paths.js';
import { delay } from '../../src/core/process.js';
import { liveVmRecord, readVmRecord, removeHostLeftovers } from '../../src/core/vm-record.js';
import { AGENT_SOURCE_DIR, buildAgent } from '../../src/image/agent-build.js';
import { resolveImage } from '../../src/image/index.js';
import { connectAgentWithin } from '../../src/sandbox/boot.js';
import { runCommand } from '../../src/sandbox/command.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { installFakeFirecracker, readRecordedRequests } from '../helpers/firecracker/install.js';

const kvmCheck = (): { usable: boolean; reason: string } => ({
  usable: true,
  reason: 'KVM stubbed by the contract test',
});
const BOOT_TIMEOUT_MS = 20_000;

let dir: string;
let agent: string;
let kernel: string;
let initrd: string;
let counter = 0;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'jitvm-fc-'));
  agent = join(dir, 'agent');
  await buildAgent(AGENT_SOURCE_DIR, agent);
  const image = await resolveImage();
  kernel = image.kernel;
  initrd = image.initrd;
});

after(() => rmSync(dir, { recursive: true, force: true }));

/** A fresh fake install with its own request record. */
async function fake(options: { version?: string; ignoreCtrlAltDel?: boolean } = {}) {
  const home = join(dir, `fake-${++counter}`);
  mkdirSync(home);
  const record = join(home, 'requests.jsonl');
  const binaries = await installFakeFirecracker(home, { agent, record, ...options });
  return { home, record, ...binaries, requests: () => readRecordedRequests(record) };
}

function hypervisorFor(binary: string, extra: Partial<FirecrackerOptions> = {}): FirecrackerHypervisor {
  return new FirecrackerHypervisor({ binary, kvmCheck, ...extra });
}

/** Read through a function so the compiler does not narrow the state across awaits. */
function stateOf(instance: VmInstance): string {
  return instance.state.kind;
}

/** Runs a command on a fresh agent connection (retrying while a just-restored guest's agent is not listening yet). */
async function execOver(instance: VmInstance, command: string[]): Promise<string> {
  const connection = await connectAgentWithin(instance, BOOT_TIMEOUT_MS);
  try {
    return (await runCommand(connection, command)).stdout;
  } finally {
    connection.close();
  }
}

describe('Firecracker backend against the API contract', () => {
  it('configures and boots a VM with exactly the documented requests, runs a command, stops with SendCtrlAltDel', async () => {
    const fc = await fake();
    const disk = join(fc.home, 'data.img');
    writeFileSync(disk, Buffer.alloc(1 << 20));
    const sandbox = await Sandbox.create({
      hypervisor: hypervisorFor(fc.firecracker),
      kernel,
      initrd,
      cpus: 2,
      memoryMiB: 256,
      kernelArgs: ['jitvm.test=1'],
      drives: [{ id: 'data', path: disk, rateLimiter: { bandwidth: { size: 1 << 20, refillTimeMs: 1000 } } }],
      bootTimeoutMs: BOOT_TIMEOUT_MS,
    });
    const runtimeDir = sandbox.instance.runtimeDir;
    try {
      assert.equal((await sandbox.exec(['echo', 'over hybrid vsock'])).stdout, 'over hybrid vsock\n');
      const sent = fc.requests().filter((r) => r.method !== 'GET');
      assert.deepEqual(
        sent.map((r) => `${r.method} ${r.path} ${r.status}`),
        [
          'PUT /logger 204',
          'PUT /metrics 204',
          'PUT /boot-source 204',
          'PUT /machine-config 204',
          'PUT /drives/data 204',
          'PUT /vsock 204',
          'PUT /actions 204',
        ],
      );
      const body = (path: string): unknown => sent.find((r) => r.path === path)?.body;
      const boot = body('/boot-source') as { kernel_image_path: string; initrd_path: string; boot_args: string };
      assert.equal(readFileSync(boot.kernel_image_path).subarray(0, 4).toString('latin1'), '\x7fELF');
      assert.notEqual(boot.kernel_image_path, kernel, 'the bzImage is replaced by its extracted vmlinux');
      assert.equal(boot.initrd_path, initrd);
      assert.match(boot.boot_args, /^console=ttyS0 reboot=k panic=1 .* jitvm\.test=1$/);
      assert.deepEqual(body('/machine-config'), { vcpu_count: 2, mem_size_mib: 256, smt: false });
      assert.deepEqual(body('/drives/data'), {
        drive_id: 'data',
        is_root_device: false,
        is_read_only: true,
        path_on_host: disk,
        rate_limiter: { bandwidth: { size: 1 << 20, refill_time: 1000 } },
      });
      assert.deepEqual(body('/vsock'), { guest_cid: 3, uds_path: join(runtimeDir, 'vsock.sock') });
      assert.deepEqual(body('/actions'), { action_type: 'InstanceStart' });
      assert.deepEqual(body('/logger'), {
        log_path: join(runtimeDir, 'firecracker.log'),
        level: 'Info',
        show_level: true,
      });
      assert.ok(statSync(join(runtimeDir, 'firecracker.log')).size > 0, 'Firecracker logs into the runtime dir');
      assert.match(sandbox.instance.consoleTail(), /\S/, 'the guest console (Firecracker stdout) is captured');
      const exit = await sandbox.instance.stop();
      assert.equal(exit.signal, undefined, 'the guest rebooted on Ctrl-Alt-Del and Firecracker exited by itself');
    } finally {
      await sandbox.destroy();
    }
    assert.deepEqual(fc.requests().at(-1)?.body, { action_type: 'SendCtrlAltDel' });
    assert.ok(!existsSync(runtimeDir), 'the runtime dir is removed');
  });

  it('pauses and resumes, snapshots, and restores independent clones with their own vsock sockets', async () => {
    const fc = await fake();
    const hypervisor = hypervisorFor(fc.firecracker);
    const source = await Sandbox.create({ hypervisor, kernel, initrd, memoryMiB: 128, bootTimeoutMs: BOOT_TIMEOUT_MS });
    try {
      await source.instance.pause();
      assert.equal(stateOf(source.instance), 'paused');
      await source.instance.resume();
      assert.equal(stateOf(source.instance), 'running');
      assert.equal((await source.exec(['echo', 'resumed'])).stdout, 'resumed\n');

      const snapshotDir = join(fc.home, 'snap');
      const snapshot = await source.instance.snapshot(snapshotDir);
      assert.equal(stateOf(source.instance), 'paused', 'a snapshot leaves the VM paused');
      assert.equal(statSync(join(snapshotDir, snapshot.files.memory)).size, 128 * 1024 * 1024);
      assert.ok(statSync(join(snapshotDir, snapshot.files.state)).size > 0);
      assert.equal(snapshot.backend, 'firecracker');
      for (const name of Object.values(snapshot.files)) {
        assert.equal(statSync(join(snapshotDir, name)).mode & 0o777, 0o400, `${name} is sealed read-only`);
      }
      assert.equal(snapshot.config.memoryMiB, 128);
      await assert.rejects(source.instance.snapshot(snapshotDir), InvalidArgumentError, 'an existing dir is refused');

      const clones = await Promise.all([hypervisor.restore(snapshot), hypervisor.restore(snapshot)]);
      try {
        for (const clone of clones) assert.equal(await execOver(clone, ['echo', 'clone']), 'clone\n');
        const loads = fc.requests().filter((r) => r.path === '/snapshot/load');
        assert.equal(loads.length, 2);
        const sockets = loads.map((r) => (r.body as { vsock_override: { uds_path: string } }).vsock_override.uds_path);
        assert.deepEqual(sockets.sort(), clones.map((c) => join(c.runtimeDir, 'vsock.sock')).sort());
        assert.deepEqual((loads[0]?.body as { mem_backend: unknown }).mem_backend, {
          backend_type: 'File',
          backend_path: join(snapshotDir, 'memory'),
        });
      } finally {
        await Promise.all(clones.map((clone) => clone.kill()));
      }
      await source.instance.resume();
      // Firecracker resets every vsock connection when it snapshots; the agent's listener survives.
      assert.equal(await execOver(source.instance, ['echo', 'source lives on']), 'source lives on\n');
    } finally {
      await source.destroy();
    }
  });

  it('refuses snapshots from another Firecracker version, and unjailed restores before 1.16', async () => {
    const fc = await fake({ version: '1.12.0' });
    const hypervisor = hypervisorFor(fc.firecracker);
    const source = await Sandbox.create({ hypervisor, kernel, initrd, memoryMiB: 64, bootTimeoutMs: BOOT_TIMEOUT_MS });
    try {
      const snapshot = await source.instance.snapshot(join(fc.home, 'snap'));
      await assert.rejects(hypervisor.restore(snapshot), /restoring without the jailer needs Firecracker 1\.16\+/);
      await assert.rejects(
        hypervisor.restore({ ...snapshot, vmmVersion: '1.11.0' }),
        /written by Firecracker 1\.11\.0, this host runs 1\.12\.0/,
      );
    } finally {
      await source.destroy();
    }
  });

  it('refuses a bare pause on Firecracker 1.16.0/1.16.1 (vsock bug #6100) but still snapshots', async () => {
    const fc = await fake({ version: '1.16.1' });
    const hypervisor = hypervisorFor(fc.firecracker);
    const source = await Sandbox.create({ hypervisor, kernel, initrd, memoryMiB: 64, bootTimeoutMs: BOOT_TIMEOUT_MS });
    try {
      await assert.rejects(source.instance.pause(), /Firecracker 1\.16\.1 loses the agent channel after pause\/resume/);
      const snapshot = await source.instance.snapshot(join(fc.home, 'snap'));
      const clone = await hypervisor.restore(snapshot);
      assert.equal(await execOver(clone, ['echo', 'restored']), 'restored\n');
      await clone.kill();
    } finally {
      await source.destroy();
    }
  });

  it('refuses to restore a snapshot whose VM had a writable drive (clones would share it)', async () => {
    const fc = await fake();
    const disk = join(fc.home, 'rw.img');
    writeFileSync(disk, Buffer.alloc(1 << 20));
    const hypervisor = hypervisorFor(fc.firecracker);
    const source = await Sandbox.create({
      hypervisor,
      kernel,
      initrd,
      memoryMiB: 64,
      drives: [{ id: 'rw', path: disk, readOnly: false }],
      bootTimeoutMs: BOOT_TIMEOUT_MS,
    });
    try {
      const snapshot = await source.instance.snapshot(join(fc.home, 'snap'));
      await assert.rejects(hypervisor.restore(snapshot), /has writable drives \(rw\)/);
    } finally {
      await source.destroy();
    }
  });

  it("surfaces Firecracker's fault_message and leaves nothing behind when a request is refused", async () => {
    const fc = await fake();
    const before = new Set(existsSync(vmsRoot()) ? readdirSync(vmsRoot()) : []);
    await assert.rejects(
      Sandbox.create({
        hypervisor: hypervisorFor(fc.firecracker),
        kernel,
        initrd,
        drives: [{ id: 'gone', path: join(fc.home, 'no-such-disk.img') }],
        bootTimeoutMs: BOOT_TIMEOUT_MS,
      }),
      (error: unknown) =>
        error instanceof FirecrackerApiError &&
        error.path === '/drives/gone' &&
        error.status === 400 &&
        /no-such-disk\.img/.test(error.faultMessage),
    );
    const leftover = readdirSync(vmsRoot()).filter((id) => !before.has(id));
    assert.deepEqual(leftover, [], 'no runtime dir is left');
  });

  it('refuses configs Firecracker cannot run before starting anything', async () => {
    const fc = await fake();
    const hypervisor = hypervisorFor(fc.firecracker);
    await assert.rejects(
      Sandbox.create({ hypervisor, backend: 'qemu', kernel, initrd }),
      /backend "qemu" conflicts with the firecracker hypervisor given/,
    );
    await assert.rejects(
      Sandbox.create({ hypervisor, kernel, initrd, cpus: 33 }),
      /Firecracker supports at most 32 vCPUs/,
    );
    await assert.rejects(
      Sandbox.create({ hypervisor, kernel: join(dir, 'no-such-kernel'), initrd }),
      (error: unknown) => error instanceof JitvmError,
    );
    assert.deepEqual(fc.requests(), [], 'no Firecracker was started');
  });

  it('kills a guest that ignores Ctrl-Alt-Del once the stop deadline passes', async () => {
    const fc = await fake({ ignoreCtrlAltDel: true });
    const sandbox = await Sandbox.create({
      hypervisor: hypervisorFor(fc.firecracker),
      kernel,
      initrd,
      bootTimeoutMs: BOOT_TIMEOUT_MS,
    });
    const exit = await sandbox.instance.stop({ timeoutMs: 300 });
    assert.equal(exit.signal, 'SIGKILL');
    await sandbox.destroy();
  });

  it('re-attaches to a detached VM from its state record and tears it down', async () => {
    const fc = await fake();
    const sandbox = await Sandbox.create({
      hypervisor: hypervisorFor(fc.firecracker),
      kernel,
      initrd,
      detached: true,
      bootTimeoutMs: BOOT_TIMEOUT_MS,
    });
    const id = sandbox.id;
    sandbox.detach();
    const again = await Sandbox.connect(id);
    try {
      assert.equal(again.instance.backend, 'firecracker');
      assert.equal((await again.exec(['echo', 'attached'])).stdout, 'attached\n');
    } finally {
      await again.destroy();
    }
    assert.ok(!existsSync(join(vmsRoot(), id)));
  });
});

describe(
  'Firecracker backend under the jailer (contract fake)',
  { skip: process.getuid?.() === 0 ? false : 'the jailer needs root' },
  () => {
    const modes = [
      { name: 'exec', options: {} },
      { name: '--new-pid-ns', options: { newPidNs: true } },
      { name: '--daemonize', options: { daemonize: true } },
    ];
    for (const mode of modes) {
      it(`links inputs into the chroot, passes chroot paths, tracks the pid (${mode.name}), removes the jail`, async () => {
        const fc = await fake();
        const base = join(fc.home, 'jails');
        const hypervisor = hypervisorFor(fc.firecracker, {
          jailer: { binary: fc.jailer, uid: 123, gid: 100, chrootBaseDir: base, ...mode.options },
        });
        const sandbox = await Sandbox.create({ hypervisor, kernel, initrd, bootTimeoutMs: BOOT_TIMEOUT_MS });
        const jail = join(base, 'firecracker', sandbox.id);
        try {
          assert.equal((await sandbox.exec(['echo', 'jailed'])).stdout, 'jailed\n');
          const boot = fc.requests().find((r) => r.path === '/boot-source')?.body;
          assert.deepEqual(
            {
              kernel: (boot as { kernel_image_path: string }).kernel_image_path,
              initrd: (boot as { initrd_path: string }).initrd_path,
            },
            { kernel: '/vmlinux', initrd: '/initrd' },
          );
          assert.deepEqual(fc.requests().find((r) => r.path === '/vsock')?.body, {
            guest_cid: 3,
            uds_path: '/vsock.sock',
          });
          assert.equal(statSync(join(jail, 'root', 'initrd')).ino, statSync(initrd).ino, 'hard-linked, not copied');
          const pidFile = Number(readFileSync(join(jail, 'root', 'firecracker.pid'), 'utf8'));
          assert.equal(sandbox.instance.pid, pidFile, 'the pid the jailer wrote is the VMM');
        } finally {
          await sandbox.destroy();
        }
        assert.ok(!existsSync(jail), 'the jail is removed with the VM');
      });
    }
  },
);

/** Why this host cannot set up a NAT (not root, no `ip` or `nft`), or false when it can. */
function natSkipReason(): string | false {
  try {
    requireNatHost(thisNatHost());
    return false;
  } catch (error) {
    return (error as Error).message;
  }
}

/** Whether `ip link show <tap>` and `nft list table ip <table>` find VM `id`'s NAT (only reads the host). */
function natOnHost(id: string): { tap: boolean; table: boolean } {
  const found = (program: string, args: string[]) => spawnSync(program, args, { stdio: 'ignore' }).status === 0;
  return {
    tap: found('ip', ['link', 'show', natTapName(id)]),
    table: found('nft', ['list', 'table', 'ip', natTableName(id)]),
  };
}

/** A `nat` sandbox on the fake Firecracker at `binary`. */
function natSandbox(binary: string, extra: { detached?: boolean } = {}): Promise<Sandbox> {
  const options = { kernel, initrd, network: { mode: 'nat' }, bootTimeoutMs: BOOT_TIMEOUT_MS } as const;
  return Sandbox.create({ hypervisor: hypervisorFor(binary), ...options, ...extra });
}

// The fake's guest never uses the NIC, and creating a TAP and firewall rules sends no packet anywhere.
describe('Firecracker nat mode on the host (contract fake)', { skip: natSkipReason() }, () => {
  it('creates the TAP and nftables table before boot, puts the NIC on it, and removes both on destroy', async () => {
    const fc = await fake();
    const sandbox = await natSandbox(fc.firecracker);
    const { id } = sandbox;
    const tap = natTapName(id);
    try {
      assert.deepEqual(natOnHost(id), { tap: true, table: true });
      const addresses = JSON.parse(spawnSync('ip', ['-j', 'addr', 'show', 'dev', tap], { encoding: 'utf8' }).stdout);
      const [host] = addresses[0].addr_info.filter((a: { family: string }) => a.family === 'inet');
      assert.match(`${host.local}/${host.prefixlen}`, /^172\.30\.\d+\.\d+\/30$/);
      assert.equal(readFileSync(`/sys/class/net/${tap}/owner`, 'utf8').trim(), String(process.geteuid?.()));
      assert.equal(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(), '1');
      const sent = fc.requests().filter((r) => r.method !== 'GET');
      const nic = sent.find((r) => r.path === '/network-interfaces/eth0');
      assert.equal(nic?.status, 204);
      const { guest_mac: mac, ...body } = nic?.body as { guest_mac: string };
      assert.deepEqual(body, { iface_id: 'eth0', host_dev_name: tap });
      assert.match(mac, /^06:00(:[0-9a-f]{2}){4}$/);
      const boot = sent.find((r) => r.path === '/boot-source')?.body as { boot_args: string };
      const gateway = host.local as string;
      const guest = gateway.replace(/\d+$/, (last) => String(Number(last) + 1));
      assert.match(boot.boot_args, new RegExp(` jitvm\\.net=${guest}/30,${gateway},[0-9.]+( |$)`));
      assert.deepEqual(readVmRecord(id).cleanup, { dirs: [], tap, nftTable: natTableName(id) });
      assert.equal((await sandbox.exec(['echo', 'nat'])).stdout, 'nat\n');
    } finally {
      await sandbox.destroy();
    }
    assert.deepEqual(natOnHost(id), { tap: false, table: false });
    assert.doesNotThrow(() => removeHostLeftovers({ dirs: [], tap, nftTable: natTableName(id) }), 'gone stays gone');
  });

  it('removes the NAT when Firecracker refuses the configuration', async () => {
    const fc = await fake();
    const id = `jv-natfail${counter}`;
    const config = parseVmConfig({
      kernel,
      initrd,
      network: { mode: 'nat' },
      drives: [{ id: 'gone', path: join(fc.home, 'no-such-disk.img') }],
    });
    await assert.rejects(hypervisorFor(fc.firecracker).spawn(config, { id }), FirecrackerApiError);
    assert.ok(
      fc.requests().some((r) => r.path === '/drives/gone'),
      'Firecracker was started with the NAT in place',
    );
    assert.deepEqual(natOnHost(id), { tap: false, table: false });
  });

  it("leaves the NAT in a detached VM's record, so whoever finds the VM dead removes it", async () => {
    const fc = await fake();
    const sandbox = await natSandbox(fc.firecracker, { detached: true });
    const { id } = sandbox;
    sandbox.detach();
    try {
      process.kill(readVmRecord(id).pid, 'SIGKILL');
      assert.deepEqual(natOnHost(id), { tap: true, table: true }, 'released: this process removes nothing itself');
      const deadline = Date.now() + BOOT_TIMEOUT_MS;
      while (liveVmRecord(id) && Date.now() < deadline) await delay(20);
      assert.deepEqual(natOnHost(id), { tap: false, table: false });
    } finally {
      removeHostLeftovers({ dirs: [join(vmsRoot(), id)], tap: natTapName(id), nftTable: natTableName(id) });
    }
  });
});
