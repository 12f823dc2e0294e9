/**
 * The real-host check of the QEMU backend on a hardware accelerator jitvm's CI does not have (WHPX on Windows, HVF on
 * macOS): boot the guest image, run a command, move a file, destroy, and nothing is left. Skipped with the reason
 * printed on every other host, and written to pass there without edits.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { findQemu } from '../../src/backends/qemu/binary.js';
import { chooseAccelerator } from '../../src/core/accelerator.js';
import { type Accelerator, hostArch } from '../../src/core/config.js';
import { readVmRecord } from '../../src/core/vm-record.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { alive } from './process.js';
import { BOOT_TIMEOUT_MS } from './sandbox.js';

/** Where a hardware accelerator lives: its platform, and how that platform is named in skip reasons. */
export interface AcceleratedHost {
  readonly platform: NodeJS.Platform;
  readonly platformName: string;
  readonly accelerator: Accelerator;
}

/** Why the suite cannot run here, or undefined when it can. */
function whyNot(host: AcceleratedHost): string | undefined {
  if (process.platform !== host.platform) return `needs ${host.platformName}; this host is ${process.platform}`;
  const arch = hostArch();
  if (!arch) return `jitvm runs no guests on a ${process.arch} host`;
  if (!findQemu(arch)) return `QEMU for ${arch} is not installed here`;
  const choice = chooseAccelerator(arch);
  if (choice.accelerator !== host.accelerator) return `${host.accelerator} is not usable: ${choice.reason}`;
  return copiedImageMissing(host.platformName, arch);
}

/**
 * Why the guest image a macOS or Windows test boots is missing, or undefined when JITVM_TEST_KERNEL and
 * JITVM_TEST_INITRD name it: the image builder needs Debian's apt, so the image is built on Linux and copied over.
 */
export function copiedImageMissing(platformName: string, arch: string): string | undefined {
  if (process.env.JITVM_TEST_KERNEL && process.env.JITVM_TEST_INITRD) return undefined;
  return (
    `the guest image cannot be built on ${platformName} (its builder needs Debian's apt): build it on Linux ` +
    `with \`jitvm image build --arch ${arch}\`, copy the kernel and initrd here and set JITVM_TEST_KERNEL and ` +
    'JITVM_TEST_INITRD to them'
  );
}

/** Registers the suite for `host`; it skips with the reason wherever it cannot run. */
export function qemuRealHostSuite(host: AcceleratedHost): void {
  const skip = whyNot(host);
  describe(`real QEMU on ${host.accelerator} (${host.platformName})`, { skip: skip ?? false, timeout: 600_000 }, () => {
    it('boots the image, runs uname, round-trips a file, and destroy leaves no process or runtime dir', async () => {
      const arch = hostArch();
      const sandbox = await Sandbox.create({
        backend: 'qemu',
        arch,
        kernel: process.env.JITVM_TEST_KERNEL,
        initrd: process.env.JITVM_TEST_INITRD,
        bootTimeoutMs: BOOT_TIMEOUT_MS,
      });
      const { pid, runtimeDir } = sandbox.instance;
      try {
        assert.equal(readVmRecord(sandbox.id).accelerator, host.accelerator, 'the VM runs on the hardware accelerator');
        const uname = await sandbox.exec(['uname', '-a']);
        assert.equal(uname.exitCode, 0, uname.stderr);
        assert.match(uname.stdout, new RegExp(`^Linux .* ${arch}`));
        const data = randomBytes(256 * 1024);
        await sandbox.files.write('/tmp/round-trip.bin', data);
        assert.ok((await sandbox.files.read('/tmp/round-trip.bin')).equals(data), 'the file came back changed');
      } catch (error) {
        console.error(`sandbox ${sandbox.id}, console:\n${sandbox.instance.consoleTail()}`);
        throw error;
      } finally {
        await sandbox.destroy({ graceful: true });
      }
      assert.ok(pid !== undefined && !alive(pid), `QEMU (pid ${pid}) is still running after destroy`);
      assert.ok(!existsSync(runtimeDir), `${runtimeDir} is still there after destroy`);
    });
  });
}
