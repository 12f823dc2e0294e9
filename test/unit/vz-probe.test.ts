/**
 * What `jitvm doctor` says about the vz backend: the platform, the macOS version, the CPU, the vfkit binary and its
 * version are checked in that order, each refusal names what is missing. The host is injected (platform, Darwin
 * release, CPU) so this runs on Linux; without injection, this Linux host is refused whatever vfkit it finds.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { allBackends } from '../../src/backends/index.js';
import { MIN_VFKIT_VERSION, VfkitHypervisor, macosVersionOf } from '../../src/backends/vz/index.js';
import { HostToolMissingError, JitvmError } from '../../src/core/errors.js';
import { parseVmConfig } from '../../src/core/config.js';
import { installFakeVfkit } from '../helpers/vfkit/install.js';
import { tempDir, withEnv } from '../helpers/temp.js';

function versionScript(dir: string, line: string): string {
  const path = join(dir, `vfkit-${Math.random().toString(36).slice(2)}`);
  writeFileSync(path, `#!/bin/sh\n[ "$1" = --version ] && printf '%s\\n' '${line}'\n`);
  chmodSync(path, 0o755);
  return path;
}

const mac = { platform: 'darwin', osRelease: '24.6.0', arch: 'arm64' } as const;
const vm = parseVmConfig({ kernel: '/k', initrd: '/i', arch: 'aarch64' });

describe('vz probe', () => {
  it('refuses every host but macOS, even with a vfkit at hand (the fake is usable only through injection)', async (t) => {
    const fake = await installFakeVfkit(tempDir(t));
    withEnv(t, 'JITVM_VFKIT', fake);
    const here = new VfkitHypervisor();
    const probe = await here.probe();
    assert.equal(probe.available, false);
    assert.match(probe.reason, new RegExp(`needs macOS .*this host runs ${process.platform}`));
    await assert.rejects(here.spawn(vm), (error: unknown) => {
      return error instanceof JitvmError && error.code === 'unsupported' && /needs macOS/.test(error.message);
    });
    const windows = await new VfkitHypervisor({ ...mac, platform: 'win32', binary: fake }).probe();
    assert.match(windows.reason, /this host runs win32/);
  });

  it('reports a usable vfkit on a supported Mac', async (t) => {
    const binary = versionScript(tempDir(t), 'vfkit version: v0.6.1');
    const hypervisor = new VfkitHypervisor({ ...mac, binary });
    const probe = await hypervisor.probe();
    assert.equal(probe.available, true, probe.reason);
    assert.equal(probe.version, 'v0.6.1');
    assert.equal(probe.accelerator, 'hvf');
    assert.equal(probe.binary, binary);
    assert.match(probe.reason, /vfkit v0\.6\.1\); macOS 15 on aarch64/);
    assert.deepEqual(probe.warnings, []);
    assert.deepEqual(hypervisor.capabilities, {
      arches: ['aarch64'],
      gracefulStop: true,
      pause: true,
      snapshot: false,
      detach: true,
      agentTransport: 'vsock',
    });
    assert.deepEqual(new VfkitHypervisor({ ...mac, arch: 'x64', binary }).capabilities.arches, ['x86_64']);
  });

  it('checks the macOS version: 12 is the floor, 12 and 13 work with a warning', async (t) => {
    const binary = versionScript(tempDir(t), 'vfkit version: v0.6.1');
    const bigSur = await new VfkitHypervisor({ ...mac, osRelease: '20.6.0', binary }).probe();
    assert.equal(bigSur.available, false);
    assert.match(bigSur.reason, /needs macOS 12 or newer .*this is macOS 11 \(Darwin 20\.6\.0\)/);
    const ventura = await new VfkitHypervisor({ ...mac, osRelease: '22.6.0', binary }).probe();
    assert.equal(ventura.available, true);
    assert.deepEqual(ventura.warnings, ['vfkit supports macOS 14 and newer; macOS 13 is untested']);
    assert.deepEqual([20, 21, 22, 23, 24, 25].map(macosVersionOf), [11, 12, 13, 14, 15, 26]);
  });

  it('checks the CPU', async (t) => {
    const binary = versionScript(tempDir(t), 'vfkit version: v0.6.1');
    const probe = await new VfkitHypervisor({ ...mac, arch: 'ppc64', binary }).probe();
    assert.equal(probe.available, false);
    assert.match(probe.reason, /arm64 or x86_64 guests; this Mac's CPU is ppc64/);
  });

  it('names a missing vfkit with the install command, and spawn throws HostToolMissingError', async (t) => {
    const empty = tempDir(t);
    mkdirSync(join(empty, 'bin'));
    withEnv(t, 'PATH', join(empty, 'bin'));
    const saved = process.env.JITVM_VFKIT;
    delete process.env.JITVM_VFKIT;
    t.after(() => {
      if (saved !== undefined) process.env.JITVM_VFKIT = saved;
    });
    const missing = new VfkitHypervisor(mac);
    const probe = await missing.probe();
    assert.equal(probe.available, false);
    assert.match(probe.reason, /vfkit is not on PATH; install it with: brew install vfkit/);
    await assert.rejects(missing.spawn(vm), HostToolMissingError);
    const wrongPath = await new VfkitHypervisor({ ...mac, binary: join(empty, 'nope') }).probe();
    assert.match(wrongPath.reason, /vfkit \(.*nope\) does not exist; install it with: brew install vfkit/);
  });

  it('checks the version: too old, unknown, not vfkit at all', async (t) => {
    const dir = tempDir(t);
    const old = await new VfkitHypervisor({ ...mac, binary: versionScript(dir, 'vfkit version: v0.5.1') }).probe();
    assert.equal(old.available, false);
    assert.match(
      old.reason,
      new RegExp(`v0\\.5\\.1 is too old; jitvm needs ${MIN_VFKIT_VERSION.join('\\.')} or newer`),
    );
    const dev = await new VfkitHypervisor({ ...mac, binary: versionScript(dir, 'vfkit version: unknown') }).probe();
    assert.equal(dev.available, true);
    assert.match(dev.warnings[0] ?? '', /reports version "unknown"; jitvm cannot check that it is 0\.6\.0 or newer/);
    const other = await new VfkitHypervisor({ ...mac, binary: versionScript(dir, 'QEMU emulator 8.2') }).probe();
    assert.equal(other.available, false);
    assert.match(other.reason, /did not print "vfkit version: …"/);
  });

  it('the fake vfkit passes the probe as the Mac it pretends to be', async (t) => {
    const binary = await installFakeVfkit(tempDir(t), { version: 'v0.6.4' });
    const probe = await new VfkitHypervisor({ ...mac, binary }).probe();
    assert.equal(probe.available, true, probe.reason);
    assert.equal(probe.version, 'v0.6.4');
  });

  it('restore is refused as unsupported; vz sits between firecracker and qemu in the preference order', async () => {
    await assert.rejects(
      new VfkitHypervisor(mac).restore(),
      (error: unknown) =>
        error instanceof JitvmError && error.code === 'unsupported' && /vfkit#449/.test(error.message),
    );
    assert.deepEqual(
      allBackends().map((backend) => backend.name),
      ['firecracker', 'vz', 'qemu'],
    );
  });
});
