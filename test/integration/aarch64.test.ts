/**
 * The arm64 guest image (Debian's cloud-arm64 kernel, the cross-built agent, arm64 busybox and modules) booted for
 * real under qemu-system-aarch64, passing the same exec and file suites as x86_64 guests: this is the image macOS
 * users boot under vfkit or QEMU-HVF.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findOnPath } from '../../src/core/host-tools.js';
import { resolveImage } from '../../src/image/index.js';
import { withSandbox } from '../helpers/sandbox.js';
import { execSuite } from '../suites/exec.js';
import { filesSuite } from '../suites/files.js';

const options = { arch: 'aarch64', backend: 'qemu' } as const;
const skip = findOnPath('qemu-system-aarch64')
  ? undefined
  : 'qemu-system-aarch64 is not installed (apt-get install qemu-system-arm; `npm run setup` does it)';

describe('aarch64 guest image', { timeout: 300_000, skip }, () => {
  it('is an arm64 kernel with an arm64 agent and busybox, selected by the guest architecture', async () => {
    const image = await resolveImage({ arch: 'aarch64' });
    assert.equal(image.arch, 'aarch64');
    assert.match(image.kernelVersion, /-arm64$/);
    await withSandbox(async (sandbox) => {
      const result = await sandbox.exec('uname -m; uname -r; od -An -tx1 -j18 -N1 /init');
      const [machine, release, elfMachine] = result.stdout.split('\n');
      assert.equal(machine, 'aarch64');
      assert.equal(release, image.kernelVersion);
      // ELF e_machine at offset 18: 0xb7 = EM_AARCH64 (the agent running as /init was cross-built).
      assert.equal(elfMachine?.trim(), 'b7');
    }, options);
  });

  it('powers off through the agent on a graceful destroy (no power button under `virt`)', async () => {
    await withSandbox(async (sandbox) => {
      await sandbox.destroy({ graceful: true });
      assert.equal(sandbox.instance.state.kind, 'exited');
      // The kernel's own last words (printed even with `quiet`): the agent's orderly shutdown ended in the reboot that
      // makes QEMU (-no-reboot) exit, before jitvm would have stopped QEMU.
      assert.match(sandbox.instance.consoleTail(), /jitvm-agent: shutting down[\s\S]*reboot: Restarting system/);
    }, options);
  });
});

execSuite('exec in a real aarch64 VM', options, skip);
filesSuite('files in a real aarch64 VM', options, skip);
