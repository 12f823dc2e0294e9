import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type PathLookupHost, findOnPath, thisPathLookupHost } from '../../src/core/host-tools.js';
import { ensurePrivateDir, runtimeRoot, vmsRoot } from '../../src/core/paths.js';
import { findQemu, requireQemu } from '../../src/backends/qemu/binary.js';
import { HostToolMissingError, JitvmError } from '../../src/core/errors.js';
import { tempDir } from '../helpers/temp.js';

describe('runtime dir per platform', () => {
  it('is JITVM_RUNTIME_DIR when set, on every platform', () => {
    for (const platform of ['linux', 'darwin', 'win32'] as const) {
      assert.equal(runtimeRoot({ platform, env: { JITVM_RUNTIME_DIR: '/x', LOCALAPPDATA: 'C:\\L' } }), '/x');
    }
  });

  it('is %LOCALAPPDATA%\\jitvm on Windows, with Windows separators', () => {
    const host = { platform: 'win32', env: { LOCALAPPDATA: 'C:\\Users\\me\\AppData\\Local' } } as const;
    assert.equal(runtimeRoot(host), 'C:\\Users\\me\\AppData\\Local\\jitvm');
    assert.equal(vmsRoot(host), 'C:\\Users\\me\\AppData\\Local\\jitvm\\vms');
  });

  it('is $XDG_RUNTIME_DIR/jitvm where set, else a per-user dir under the temp dir', () => {
    assert.equal(
      runtimeRoot({ platform: 'linux', env: { XDG_RUNTIME_DIR: '/run/user/1000' } }),
      '/run/user/1000/jitvm',
    );
    assert.equal(runtimeRoot({ platform: 'darwin', env: {} }), join(tmpdir(), `jitvm-${process.getuid?.() ?? 'user'}`));
  });
});

describe('ensurePrivateDir', () => {
  it('refuses a group- or world-accessible dir on POSIX, and accepts it on Windows, where ACLs guard it', (t) => {
    const dir = join(tempDir(t), 'shared');
    mkdirSync(dir);
    chmodSync(dir, 0o755);
    assert.throws(() => ensurePrivateDir(dir, 'linux'), /owned by you with mode 0700/);
    assert.equal(ensurePrivateDir(dir, 'win32'), dir);
  });

  it('creates a missing dir private, and refuses a symlink everywhere', (t) => {
    const base = tempDir(t);
    assert.equal(ensurePrivateDir(join(base, 'a', 'b'), 'linux'), join(base, 'a', 'b'));
    const link = join(base, 'link');
    symlinkSync(join(base, 'a'), link);
    for (const platform of ['linux', 'win32'] as const) {
      assert.throws(() => ensurePrivateDir(link, platform), JitvmError);
    }
  });
});

/** A host whose only executables are `files` (Windows paths need not exist on this machine). */
function windowsHost(files: string[], env: NodeJS.ProcessEnv): PathLookupHost {
  return { platform: 'win32', env, isExecutable: (path) => files.includes(path) };
}

describe('PATH lookup', () => {
  it('finds an executable on a POSIX PATH and skips non-executable files', (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'tool'), '#!/bin/sh\n', { mode: 0o755 });
    writeFileSync(join(dir, 'data'), '', { mode: 0o644 });
    mkdirSync(join(dir, 'sub'), { mode: 0o755 });
    const host = { ...thisPathLookupHost, platform: 'linux', env: { PATH: `/nonexistent:${dir}` } } as const;
    assert.equal(findOnPath('tool', host), join(dir, 'tool'));
    assert.equal(findOnPath('data', host), undefined);
    assert.equal(findOnPath('sub', host), undefined, 'a directory is not a program');
  });

  it('honours PATHEXT and `Path` on Windows, and takes a name that already has an extension as is', () => {
    const exe = 'C:\\Program Files\\qemu\\qemu-system-x86_64.exe';
    const env = { Path: 'C:\\Windows;C:\\Program Files\\qemu', PATHEXT: '.COM;.EXE;.BAT' };
    assert.equal(findOnPath('qemu-system-x86_64', windowsHost([exe], env)), exe);
    assert.equal(findOnPath('qemu-system-x86_64.exe', windowsHost([exe], env)), exe);
    assert.equal(findOnPath('qemu-system-x86_64', windowsHost([exe], { ...env, PATHEXT: '.BAT' })), undefined);
  });

  it("falls back to QEMU's install dir on Windows and says how to install it when absent", () => {
    const exe = 'C:\\Program Files\\qemu\\qemu-system-x86_64.exe';
    const env = { Path: 'C:\\Windows', ProgramFiles: 'C:\\Program Files' };
    assert.equal(findQemu('x86_64', windowsHost([exe], env)), exe);
    assert.throws(
      () => requireQemu('x86_64', windowsHost([], env)),
      (error: unknown) => error instanceof HostToolMissingError && /winget install/.test(error.message),
    );
    const mac = { platform: 'darwin', env: { PATH: '/usr/bin' }, isExecutable: () => false } as const;
    assert.throws(() => requireQemu('aarch64', mac), /qemu-system-aarch64.*brew install qemu/);
  });
});
