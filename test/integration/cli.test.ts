import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { findOnPath } from '../../src/core/host-tools.js';
import { vmsRoot } from '../../src/core/paths.js';
import { resolveImage } from '../../src/image/index.js';
import { tempDir, withEnv } from '../helpers/temp.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function startCli(args: string[], input?: string): ChildProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (input !== undefined) child.stdin?.end(input);
  return child;
}

function finished(child: ChildProcess): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (data: Buffer) => (stdout += data.toString()));
  child.stderr?.on('data', (data: Buffer) => (stderr += data.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

const jitvm = (args: string[], input?: string): Promise<CliResult> => finished(startCli(args, input));

describe('jitvm CLI', { timeout: 600_000 }, () => {
  it("run: prints the guest's output and exits with its status", async () => {
    const result = await jitvm(['run', '--', 'sh', '-c', 'echo hi; echo oops >&2; exit 3']);
    assert.equal(result.stdout, 'hi\n');
    assert.match(result.stderr, /oops/);
    assert.equal(result.code, 3);
  });

  it('run: forwards piped stdin, env and cwd', async () => {
    const result = await jitvm(
      ['run', '--env', 'A=1', '--cwd', '/tmp', '--', 'sh', '-c', 'echo $A $(pwd); cat'],
      'from stdin',
    );
    assert.equal(result.stdout, '1 /tmp\nfrom stdin');
    assert.equal(result.code, 0);
  });

  it(
    'run: --arch boots the other architecture, --kernel/--initrd boot a given image',
    {
      skip:
        !findOnPath('qemu-system-aarch64') && 'qemu-system-aarch64 is not installed (apt-get install qemu-system-arm)',
    },
    async (t) => {
      const emulated = await jitvm(['run', '--arch', 'aarch64', '--', 'uname', '-m']);
      assert.equal(emulated.stdout, 'aarch64\n', emulated.stderr);
      const image = await resolveImage({ arch: 'aarch64' });
      const given = ['--kernel', image.kernel, '--initrd', image.initrd];
      const booted = await jitvm(['run', '--arch', 'aarch64', ...given, '--', 'uname', '-r']);
      assert.equal(booted.stdout, `${image.kernelVersion}\n`, booted.stderr);
      const bogus = await jitvm(['run', '--kernel', join(tempDir(t), 'none'), '--initrd', image.initrd, '--', 'true']);
      assert.notEqual(bogus.code, 0);
      assert.match(bogus.stderr, /kernel .*none does not exist/);
    },
  );

  it('run: a missing guest program exits 127 with a clear message', async () => {
    const result = await jitvm(['run', '--', 'no-such-program']);
    assert.equal(result.code, 127);
    assert.match(result.stderr, /command not found: no-such-program/);
  });

  it('run: Ctrl-C kills the guest command and tears the VM down', async () => {
    const child = startCli(['run', '--', 'sh', '-c', 'echo ready; exec sleep 1000']);
    const done = finished(child);
    await new Promise<void>((resolve) =>
      child.stdout?.on('data', (data: Buffer) => data.toString().includes('ready') && resolve()),
    );
    child.kill('SIGINT');
    const result = await done;
    assert.equal(result.code, 130);
  });

  it('bad flags get a usage error naming the flag, not a stack trace', async () => {
    const result = await jitvm(['run', '--cpus', 'lots', '--', 'true']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--cpus must be a positive integer/);
    assert.doesNotMatch(result.stderr, /at .*\.js:\d+/);
  });

  it('create, exec, cp both ways, ls, logs and rm manage a detached sandbox', async (t) => {
    const created = await jitvm(['create', '--memory', '192']);
    assert.equal(created.code, 0, created.stderr);
    const id = created.stdout.trim();
    assert.match(id, /^jv-[0-9a-f]+$/);
    try {
      const listed = await jitvm(['ls', '--json']);
      const entry = (JSON.parse(listed.stdout) as Array<{ id: string; memoryMiB: number }>).find(
        (row) => row.id === id,
      );
      assert.equal(entry?.memoryMiB, 192);

      const exec = await jitvm(['exec', id, '--', 'sh', '-c', 'echo in-vm; exit 5']);
      assert.deepEqual([exec.stdout, exec.code], ['in-vm\n', 5]);

      const dir = tempDir(t);
      const data = randomBytes(2 * 1024 * 1024);
      mkdirSync(join(dir, 'tree/sub'), { recursive: true });
      writeFileSync(join(dir, 'tree/sub/blob'), data);
      writeFileSync(join(dir, 'tree/note.txt'), 'note');
      assert.equal((await jitvm(['cp', join(dir, 'tree'), `${id}:/root/tree`])).code, 0);
      const sum = await jitvm(['exec', id, '--', 'cat', '/root/tree/note.txt']);
      assert.equal(sum.stdout, 'note');
      assert.equal((await jitvm(['cp', `${id}:/root/tree`, join(dir, 'back')])).code, 0);
      assert.ok(readFileSync(join(dir, 'back/sub/blob')).equals(data));

      const logs = await jitvm(['logs', id]);
      assert.equal(logs.code, 0, logs.stderr);
      assert.match(logs.stdout, /jitvm-agent: ready/, `logs printed ${JSON.stringify(logs)}`);
    } finally {
      const removed = await jitvm(['rm', id]);
      assert.equal(removed.code, 0, removed.stderr);
    }
    const gone = await jitvm(['exec', id, '--', 'true']);
    assert.equal(gone.code, 6);
    assert.match(gone.stderr, /no sandbox with id/);
  });

  it(
    'snapshot create, ls, run --from-snapshot and rm',
    { skip: process.platform !== 'linux' && 'QEMU snapshots need Linux' },
    async (t) => {
      withEnv(t, 'JITVM_SNAPSHOT_DIR', tempDir(t));
      const id = (await jitvm(['create'])).stdout.trim();
      try {
        assert.equal((await jitvm(['exec', id, '--', 'sh', '-c', 'echo kept > /root/kept'])).code, 0);
        const taken = await jitvm(['snapshot', 'create', id, 'cli-snap']);
        assert.deepEqual([taken.code, taken.stdout], [0, 'cli-snap\n'], taken.stderr);
        assert.equal((await jitvm(['exec', id, '--', 'true'])).code, 0, 'the sandbox runs on after its snapshot');
      } finally {
        await jitvm(['rm', id]);
      }
      const listed = JSON.parse((await jitvm(['snapshot', 'ls', '--json'])).stdout) as Array<{ name: string }>;
      assert.deepEqual(
        listed.map((entry) => entry.name),
        ['cli-snap'],
      );
      const restored = await jitvm(['run', '--from-snapshot', 'cli-snap', '--', 'cat', '/root/kept']);
      assert.deepEqual([restored.code, restored.stdout], [0, 'kept\n'], restored.stderr);
      const clash = await jitvm(['run', '--from-snapshot', 'cli-snap', '--memory', '512', '--', 'true']);
      assert.equal(clash.code, 2);
      assert.match(clash.stderr, /memoryMiB cannot be combined with fromSnapshot/);
      assert.equal((await jitvm(['snapshot', 'rm', 'cli-snap'])).code, 0);
      assert.equal((await jitvm(['snapshot', 'inspect', 'cli-snap'])).code, 6);
    },
  );

  it('doctor explains the backend choice; version prints versions', async () => {
    const doctor = await jitvm(['doctor']);
    assert.equal(doctor.code, 0);
    assert.match(doctor.stdout, /^ {2}x86_64: (kvm|tcg|hvf|whpx) — /m);
    assert.match(doctor.stdout, /^ {2}aarch64: (kvm|tcg|hvf|whpx) — /m);
    assert.match(
      doctor.stdout,
      /chosen backend \(x86_64 guests\): qemu — first available in the order firecracker > vz > qemu/,
    );
    assert.match(doctor.stdout, /chosen backend \(aarch64 guests\): qemu — /);
    assert.match(doctor.stdout, /vz: the vz backend needs macOS/);
    const version = await jitvm(['version']);
    assert.match(version.stdout, /^jitvm \d+\.\d+\.\d+ \(agent protocol 1/);
  });

  it('ls cleans up entries of VMs that died on their own', async () => {
    const created = await jitvm(['create']);
    const id = created.stdout.trim();
    const record = JSON.parse(readFileSync(join(vmsRoot(), id, 'state.json'), 'utf8')) as { pid: number };
    process.kill(record.pid, 'SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const listed = await jitvm(['ls']);
    assert.doesNotMatch(listed.stdout, new RegExp(id));
    assert.ok(!existsSync(join(vmsRoot(), id)));
  });
});
