import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseVmConfig } from '../../src/core/config.js';
import { SnapshotStore } from '../../src/snapshot/store.js';
import { tempDir } from '../helpers/temp.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Runs the built CLI against the store in `root`; resolves with its exit code and output, whatever the code. */
async function jitvm(root: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, JITVM_SNAPSHOT_DIR: root };
  return promisify(execFile)(process.execPath, [CLI, ...args], { env }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
}

it('jitvm snapshot ls, inspect, rm and gc work on the store in JITVM_SNAPSHOT_DIR', async (t) => {
  const root = join(tempDir(t), 'store');
  const store = new SnapshotStore(root);
  const config = parseVmConfig({ kernel: '/k', initrd: '/i', arch: 'aarch64', cpus: 2 });
  for (const name of ['first', 'second']) {
    await store.create(name, async (dir) => {
      mkdirSync(dir);
      writeFileSync(join(dir, 'state'), `state of ${name}`);
      writeFileSync(join(dir, 'ram'), Buffer.alloc(2048, name));
      return { dir, backend: 'firecracker', vmmVersion: '1.10.1', config, files: { state: 'state', memory: 'ram' } };
    });
  }

  const ls = await jitvm(root, 'snapshot', 'ls', '--json');
  assert.equal(ls.code, 0, ls.stderr);
  const listed = JSON.parse(ls.stdout) as { name: string; bytes: number; manifest: { backend: string } }[];
  assert.deepEqual(
    listed.map((entry) => [entry.name, entry.manifest.backend]),
    [
      ['first', 'firecracker'],
      ['second', 'firecracker'],
    ],
  );
  const table = await jitvm(root, 'snapshot', 'ls');
  assert.match(
    table.stdout,
    /^NAME +BACKEND +ARCH +CPUS +MEMORY +SIZE +CREATED\nfirst +firecracker 1\.10\.1 +aarch64 +2 +256M +2\.\d KiB/,
  );

  const inspect = await jitvm(root, 'snapshot', 'inspect', 'second', '--verify', '--json');
  assert.equal(inspect.code, 0, inspect.stderr);
  const inspected = JSON.parse(inspect.stdout) as { verified: string; files: object; manifest: { files: unknown[] } };
  assert.equal(inspected.verified, 'sizes and sha256s');
  assert.deepEqual(inspected.files, { state: 'state', memory: 'ram' });
  assert.match(
    (await jitvm(root, 'snapshot', 'inspect', 'second')).stdout,
    /memory +ram +2\.0 KiB +sha256:[0-9a-f]{64}/,
  );

  const missing = await jitvm(root, 'snapshot', 'rm', 'nope');
  assert.deepEqual(
    [missing.code, missing.stderr],
    [6, `jitvm: no snapshot named "nope" in ${root}: \`jitvm snapshot ls\` lists them\n`],
  );
  assert.equal((await jitvm(root, 'snapshot', 'inspect', '../etc')).code, 2);
  assert.equal((await jitvm(root, 'snapshot', 'gc')).code, 2, 'gc without a limit is refused');
  assert.match((await jitvm(root, 'snapshot', 'gc', '--max-age', '30')).stderr, /--max-age expects a duration/);

  const gc = await jitvm(root, 'snapshot', 'gc', '--max-size', `${listed[1]!.bytes}`);
  assert.equal(gc.code, 0, gc.stderr);
  assert.match(gc.stdout, /^first\t2\.\d KiB\n$/, 'the oldest goes until the rest fit');
  const rm = await jitvm(root, 'snapshot', 'rm', 'second');
  assert.deepEqual([rm.code, rm.stdout], [0, 'second\n']);
  assert.deepEqual(JSON.parse((await jitvm(root, 'snapshot', 'ls', '--json')).stdout), []);
});
