/**
 * The real vz backend: vfkit on macOS (Apple Virtualization.framework) boots the jitvm guest image, runs commands,
 * moves files, pauses and resumes, stops. Runs where the vz probe passes (a Mac with vfkit 0.6.0+, or $JITVM_VFKIT)
 * and JITVM_TEST_KERNEL / JITVM_TEST_INITRD name an image built on Linux for this Mac's architecture; skipped with the
 * reason everywhere else (e.g. jitvm's Linux CI).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { it } from 'node:test';
import { VfkitHypervisor } from '../../src/backends/vz/index.js';
import { JitvmError } from '../../src/core/errors.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { copiedImageMissing } from '../helpers/qemu-real-host.js';

const hypervisor = new VfkitHypervisor();
const probe = await hypervisor.probe();
const skip = probe.available
  ? copiedImageMissing('macOS', process.arch === 'arm64' ? 'aarch64' : 'x86_64')
  : `vfkit is not usable here: ${probe.reason}`;

it('real vfkit: boots the jitvm image, runs commands, moves files, pauses, resumes and stops', async (t) => {
  if (skip) {
    t.skip(skip);
    return;
  }
  for (const warning of probe.warnings) t.diagnostic(`probe warning: ${warning}`);
  const sandbox = await Sandbox.create({
    hypervisor,
    cpus: 2,
    memoryMiB: 512,
    kernel: process.env.JITVM_TEST_KERNEL,
    initrd: process.env.JITVM_TEST_INITRD,
  });
  const { runtimeDir } = sandbox.instance;
  try {
    const result = await sandbox.exec(['sh', '-c', 'uname -m; nproc; ls /sys/bus/virtio/drivers/']);
    assert.equal(result.exitCode, 0, result.stderr);
    const [machine, cpus] = result.stdout.split('\n');
    assert.equal(machine, process.arch === 'arm64' ? 'aarch64' : 'x86_64');
    assert.equal(cpus, '2');
    assert.match(result.stdout, /vmw_vsock_virtio_transport/);

    await sandbox.files.write('/tmp/hello.txt', 'from the host');
    assert.equal((await sandbox.files.read('/tmp/hello.txt')).toString(), 'from the host');

    await sandbox.instance.pause();
    assert.equal(sandbox.instance.state.kind, 'paused');
    await sandbox.instance.resume();
    assert.equal(sandbox.instance.state.kind, 'running');
    assert.equal((await sandbox.exec(['echo', 'resumed'])).stdout, 'resumed\n');

    await assert.rejects(
      sandbox.instance.snapshot(`${runtimeDir}-snapshot`),
      (error: unknown) => error instanceof JitvmError && error.code === 'unsupported',
    );
  } finally {
    await sandbox.destroy({ graceful: true });
  }
  const exit = await sandbox.instance.wait();
  t.diagnostic(`vfkit exited with ${JSON.stringify(exit)}`);
  assert.equal(existsSync(runtimeDir), false, 'the runtime dir is removed');
});
