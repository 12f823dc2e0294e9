/** Command defaults: a rootfs image's sidecar env and working dir, then the network's env, under each call's own. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { parseVmConfig } from '../../src/core/config.js';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { type RootfsConfig, rootfsConfigPath } from '../../src/image/rootfs/image-config.js';
import type { ExecOptions } from '../../src/sandbox/command.js';
import { commandDefaults, withDefaults } from '../../src/sandbox/command-defaults.js';
import { tempDir } from '../helpers/temp.js';

const PROXY_ENV = { HTTP_PROXY: 'http://127.0.0.1:3128', HTTPS_PROXY: 'http://127.0.0.1:3128' };

const sidecar: RootfsConfig = {
  version: 1,
  source: { format: 'oci-layout', archive: '/images/app.tar', tags: ['app:latest'] },
  arch: 'x86_64',
  env: { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8', HTTP_PROXY: 'http://image-proxy:8080' },
  workingDir: '/app',
};

/** A VM config whose root drive is a rootfs image in a temp dir, with a sidecar holding `sidecarText` when given. */
function withRootfs(t: TestContext, sidecarText?: string) {
  const image = join(tempDir(t), 'app.ext4');
  writeFileSync(image, '');
  if (sidecarText !== undefined) writeFileSync(rootfsConfigPath(image), sidecarText);
  return { image, vm: parseVmConfig({ kernel: '/k', initrd: '/i', drives: [{ id: 'jitvm_root', path: image }] }) };
}

describe('command defaults', () => {
  it('without a rootfs: the network env only, no working dir', async () => {
    const vm = parseVmConfig({ kernel: '/k', initrd: '/i', drives: [{ id: 'data', path: '/d.img' }] });
    assert.deepEqual(await commandDefaults(vm, PROXY_ENV), { env: PROXY_ENV });
    assert.deepEqual(await commandDefaults(vm, {}), { env: {} });
  });

  it('a rootfs image without a sidecar (built from a directory) adds nothing', async (t) => {
    assert.deepEqual(await commandDefaults(withRootfs(t).vm, PROXY_ENV), { env: PROXY_ENV });
  });

  it("takes the image's env and working dir from its sidecar, the network's env winning", async (t) => {
    assert.deepEqual(await commandDefaults(withRootfs(t, JSON.stringify(sidecar)).vm, PROXY_ENV), {
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8', ...PROXY_ENV },
      cwd: '/app',
    });
    const noDir = JSON.stringify({ ...sidecar, workingDir: undefined });
    assert.deepEqual(await commandDefaults(withRootfs(t, noDir).vm, {}), { env: sidecar.env });
  });

  it('refuses a sidecar of another version, or not JSON, naming it and how to rebuild', async (t) => {
    for (const bad of [JSON.stringify({ ...sidecar, version: 2 }), JSON.stringify({ ...sidecar, extra: 1 }), '{']) {
      const { image, vm } = withRootfs(t, bad);
      await assert.rejects(
        commandDefaults(vm, {}),
        (error: unknown) =>
          error instanceof InvalidArgumentError &&
          error.message.startsWith(`${image}.json is not a jitvm rootfs config of version 1`) &&
          /rebuild the image with `jitvm image build --from-oci`/.test(error.message),
      );
    }
  });
});

describe('withDefaults', () => {
  const defaults = { env: { LANG: 'C.UTF-8', HTTP_PROXY: 'http://127.0.0.1:3128' }, cwd: '/app' };

  it("lays the call's env over the defaults, and keeps its other options", () => {
    const signal = new AbortController().signal;
    assert.deepEqual(withDefaults(defaults, { env: { LANG: 'en_US.UTF-8', DEBUG: '1' }, timeoutMs: 500, signal }), {
      env: { LANG: 'en_US.UTF-8', HTTP_PROXY: 'http://127.0.0.1:3128', DEBUG: '1' },
      cwd: '/app',
      timeoutMs: 500,
      signal,
    });
  });

  it('uses the default cwd unless the call gives one, and sets none when neither does', () => {
    const none: ExecOptions = {};
    assert.equal(withDefaults(defaults, none).cwd, '/app');
    assert.equal(withDefaults(defaults, { cwd: '/tmp' }).cwd, '/tmp');
    assert.deepEqual(withDefaults({ env: {} }, none), { env: {} });
    assert.equal('cwd' in withDefaults({ env: {} }, { env: { A: '1' } }), false);
  });

  it('leaves the defaults untouched', () => {
    withDefaults(defaults, { env: { LANG: 'x' } });
    assert.deepEqual(defaults.env, { LANG: 'C.UTF-8', HTTP_PROXY: 'http://127.0.0.1:3128' });
  });
});
