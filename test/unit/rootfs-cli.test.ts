import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { tempDir } from '../helpers/temp.js';
import { dockerArchive, ext4Read, tarBytes } from '../helpers/rootfs-helpers.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Runs the built CLI with its cache in `cache`; resolves with its exit code and output, whatever the code. */
async function jitvm(cache: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, JITVM_CACHE_DIR: cache };
  return promisify(execFile)(process.execPath, [CLI, ...args], { env }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
}

it('jitvm image build --from-dir writes the image under the cache, or at --output, and prints it', async (t) => {
  const root = tempDir(t);
  const cache = join(root, 'cache');
  const tree = join(root, 'my tree');
  mkdirSync(join(tree, 'etc'), { recursive: true });
  writeFileSync(join(tree, 'etc', 'motd'), 'hello\n');

  const built = await jitvm(cache, 'image', 'build', '--from-dir', tree);
  assert.equal(built.code, 0, built.stderr);
  const path = join(cache, 'rootfs', 'my-tree.ext4');
  assert.match(built.stdout, new RegExp(`^image path ${path}\nsize 64 MiB \\([\\d.]+ MiB on disk\\)\ninodes \\d+\n$`));
  assert.match(built.stderr, /\[rootfs\] writing a 64 MiB ext4 image/);
  assert.equal(await ext4Read(path, '/etc/motd'), 'hello\n');

  const output = join(root, 'sized.ext4');
  const sized = await jitvm(cache, 'image', 'build', '--from-dir', tree, '--output', output, '--size', '80');
  assert.equal(sized.code, 0, sized.stderr);
  assert.equal(statSync(output).size, 80 * 1024 * 1024);

  const small = await jitvm(cache, 'image', 'build', '--from-dir', tree, '--output', output, '--size', '1');
  assert.equal(small.code, 2);
  assert.match(small.stderr, /too small .* it needs at least \d+ MiB/);
});

it(
  'jitvm image build --from-oci builds a docker save archive and prints its config path',
  { skip: process.getuid?.() !== 0 && 'needs root' },
  async (t) => {
    const root = tempDir(t);
    const tar = join(root, 'app.tar');
    const layer = tarBytes([{ path: 'srv/app.py', data: 'print(1)\n' }]);
    writeFileSync(tar, dockerArchive({ architecture: 'amd64', layers: [layer], runtime: { WorkingDir: '/srv' } }));
    const result = await jitvm(join(root, 'cache'), 'image', 'build', '--from-oci', tar, '--arch', 'x86_64');
    assert.equal(result.code, 0, result.stderr);
    const path = join(root, 'cache', 'rootfs', 'app.ext4');
    assert.match(result.stdout, new RegExp(`^image path ${path}\n.*\ninodes \\d+\nconfig path ${path}\\.json\n$`));
    assert.match(result.stderr, /\[rootfs\] applying layer 1\/1/);
    assert.equal(await ext4Read(path, '/srv/app.py'), 'print(1)\n');
  },
);

it('jitvm image build refuses rootfs flags that conflict, before building anything', async (t) => {
  const root = tempDir(t);
  const cache = join(root, 'cache');
  const tree = join(root, 'tree');
  mkdirSync(tree);
  for (const [args, message] of [
    [['--from-dir', tree, '--from-oci', 'x.tar'], /give one of them/],
    [['--from-dir', tree, '--force'], /--force and --refresh-kernel apply to the kernel/],
    [['--from-oci', 'x.tar', '--refresh-kernel'], /--force and --refresh-kernel apply to the kernel/],
    [['--output', join(root, 'x.ext4')], /apply to rootfs images: add --from-dir/],
    [['--size', '100'], /apply to rootfs images/],
    [['--from-dir', tree, '--arch', 'aarch64'], /--arch does not apply to --from-dir/],
    [['--from-dir', tree, '--size', 'lots'], /--size must be a positive integer/],
    [['--from-dir', tree, '--output', join(tree, 'in.ext4')], /would be written inside/],
  ] as const) {
    const result = await jitvm(cache, 'image', 'build', ...args);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, message);
  }
  assert.throws(() => statSync(cache), /ENOENT/, 'nothing was built');
});
