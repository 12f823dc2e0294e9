/** The network and storage flags of `run` and `create`, parsed by commander as the CLI does, into SDK options. */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { type SandboxFlags, addSandboxFlags, sandboxFlagOptions } from '../../src/cli/sandbox-flags.js';
import { InvalidArgumentError } from '../../src/core/errors.js';
import type { SandboxOptions } from '../../src/sandbox/options.js';
import { tempDir } from '../helpers/temp.js';

function options(argv: string[]): SandboxOptions {
  const command = addSandboxFlags(new Command(), { publish: true })
    .exitOverride()
    .configureOutput({ writeErr: () => undefined });
  command.parse(argv, { from: 'user' });
  return sandboxFlagOptions(command.opts<SandboxFlags>());
}

function refused(argv: string[], message: RegExp): void {
  assert.throws(
    () => options(argv),
    (error: unknown) => error instanceof InvalidArgumentError && message.test(error.message),
    argv.join(' '),
  );
}

describe('network flags', () => {
  it('asks for nothing without flags', () => {
    assert.deepEqual(options([]), { network: undefined, rootfs: undefined, volumes: undefined, ports: undefined });
  });

  it('--network none and nat', () => {
    assert.deepEqual(options(['--network', 'none']).network, { mode: 'none' });
    assert.deepEqual(options(['--network', 'nat']).network, { mode: 'nat', hosts: undefined });
  });

  it('--allow implies allowlist mode and collects every entry', () => {
    const expected = { mode: 'allowlist', allow: ['allowed.test', '*.other.test'], hosts: undefined };
    assert.deepEqual(options(['--allow', 'allowed.test', '--allow', '*.other.test']).network, expected);
    assert.deepEqual(
      options(['--network', 'allowlist', '--allow', 'allowed.test', '--allow', '*.other.test']).network,
      expected,
    );
  });

  it('refuses --allow with another mode, and allowlist mode without --allow', () => {
    refused(['--network', 'nat', '--allow', 'allowed.test'], /^--allow needs --network allowlist$/);
    refused(['--network', 'none', '--allow', 'allowed.test'], /^--allow needs --network allowlist$/);
    refused(['--network', 'allowlist'], /^--network allowlist needs at least one --allow$/);
  });

  it('refuses a mode the CLI does not offer', () => {
    assert.throws(() => options(['--network', 'tap']), /argument 'tap' is invalid/);
  });

  it('--add-host maps names for nat and allowlist modes, the last mapping of a name winning', () => {
    assert.deepEqual(
      options(['--network', 'nat', '--add-host', 'a.test=127.0.0.1', '--add-host', 'b.test=::1']).network,
      { mode: 'nat', hosts: { 'a.test': '127.0.0.1', 'b.test': '::1' } },
    );
    assert.deepEqual(
      options(['--allow', 'a.test', '--add-host', 'a.test=10.0.0.1', '--add-host', 'a.test=127.0.0.1']).network,
      { mode: 'allowlist', allow: ['a.test'], hosts: { 'a.test': '127.0.0.1' } },
    );
  });

  it('refuses --add-host without a mode that uses it, and without NAME=', () => {
    refused(['--add-host', 'a.test=127.0.0.1'], /^--add-host needs --network nat or allowlist$/);
    refused(['--network', 'none', '--add-host', 'a.test=127.0.0.1'], /^--add-host needs --network nat or allowlist$/);
    refused(['--network', 'nat', '--add-host', 'a.test'], /^--add-host expects NAME=IP, got "a\.test"$/);
    refused(['--network', 'nat', '--add-host', '=127.0.0.1'], /^--add-host expects NAME=IP/);
  });
});

describe('storage flags', () => {
  it('--rootfs with the default RAM overlay, or the --overlay asked for', () => {
    assert.deepEqual(options(['--rootfs', 'root.ext4']).rootfs, { image: 'root.ext4', overlay: { type: 'tmpfs' } });
    const overlay = (spec: string) => options(['--rootfs', 'root.ext4', '--overlay', spec]).rootfs?.overlay;
    assert.deepEqual(overlay('tmpfs'), { type: 'tmpfs' });
    assert.deepEqual(overlay('tmpfs:64'), { type: 'tmpfs', sizeMiB: 64 });
    assert.deepEqual(overlay('disk:512'), { type: 'disk', sizeMiB: 512 });
  });

  it('refuses a malformed --overlay, and --overlay without --rootfs', () => {
    for (const spec of ['disk', 'zram:64', 'tmpfs:', 'disk:1.5', 'disk:-8', 'tmpfs:64k', ' tmpfs']) {
      refused(
        ['--rootfs', 'root.ext4', '--overlay', spec],
        new RegExp(`^--overlay expects tmpfs, tmpfs:MiB or disk:MiB, got "${spec}"$`),
      );
    }
    refused(['--overlay', 'tmpfs'], /^--overlay needs --rootfs$/);
  });

  it('--volume shares a directory and mounts anything else as an image, read-only unless :rw', (t) => {
    const dir = tempDir(t);
    const [shared, image] = [join(dir, 'src'), join(dir, 'data.ext4')];
    mkdirSync(shared);
    writeFileSync(image, '');
    assert.deepEqual(
      options(['-v', `${shared}:/src`, '-v', `${shared}:/out:rw`, '--volume', `${image}:/data:ro`]).volumes,
      [
        { hostDir: shared, path: '/src', readOnly: true },
        { hostDir: shared, path: '/out', readOnly: false },
        { image, path: '/data', readOnly: true },
      ],
    );
    // A source that does not exist is taken as an image, which the SDK then refuses by name.
    assert.deepEqual(options(['-v', `${join(dir, 'gone')}:/g:rw`]).volumes, [
      { image: join(dir, 'gone'), path: '/g', readOnly: false },
    ]);
  });

  it('takes a source path with colons in it', (t) => {
    const dir = join(tempDir(t), 'a:b');
    mkdirSync(dir);
    assert.deepEqual(options(['-v', `${dir}:/mnt`]).volumes, [{ hostDir: dir, path: '/mnt', readOnly: true }]);
  });

  it('refuses a --volume without an absolute guest path or with an unknown mode', () => {
    for (const spec of ['data.ext4', 'data.ext4:data', ':/data', 'data.ext4:/data:rx', 'data.ext4:/data:']) {
      refused(['-v', spec], new RegExp(`^--volume expects SRC:/guest/path\\[:rw\\], got "${spec}"$`));
    }
  });
});

describe('publish flag', () => {
  it('takes GUEST (any host port) or HOST:GUEST', () => {
    assert.deepEqual(options(['-p', '8080', '--publish', '9000:80', '-p', '0:22']).ports, [
      { guest: 8080 },
      { guest: 80, host: 9000 },
      { guest: 22, host: 0 },
    ]);
  });

  it('refuses anything else', () => {
    for (const spec of ['http', '1:2:3', ':80', '80:', '127.0.0.1:80:80', '-1']) {
      refused(['-p', spec], new RegExp(`^--publish expects GUEST or HOST:GUEST ports, got "${spec}"$`));
    }
  });

  it('exists only where the command asks for it', () => {
    const command = addSandboxFlags(new Command(), { publish: false })
      .exitOverride()
      .configureOutput({ writeErr: () => undefined });
    assert.throws(() => command.parse(['-p', '80'], { from: 'user' }), /unknown option '-p'/);
  });
});
