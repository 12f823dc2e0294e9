/**
 * The real Firecracker: boot, exec, files, graceful stop, pause, snapshot and restore. Runs where `firecracker` (or
 * $JITVM_FIRECRACKER) and a usable KVM exist; skipped with the reason printed everywhere else (e.g. jitvm's CI).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FirecrackerHypervisor } from '../../src/backends/firecracker/index.js';
import { AgentConnection } from '../../src/channel/client.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { runCommand } from '../../src/sandbox/command.js';
import { tempDir } from '../helpers/temp.js';

const hypervisor = new FirecrackerHypervisor();
const probe = await hypervisor.probe();
const skip = probe.available ? false : `Firecracker is not usable here: ${probe.reason}`;

describe('real Firecracker', { skip }, () => {
  it('boots the jitvm image, runs commands, moves files and stops gracefully', async () => {
    const sandbox = await Sandbox.create({ hypervisor, cpus: 2, memoryMiB: 256 });
    try {
      const result = await sandbox.exec(['sh', '-c', 'uname -m; nproc; ls /sys/bus/virtio/drivers/']);
      assert.equal(result.exitCode, 0);
      const [machine, cpus] = result.stdout.split('\n');
      assert.equal(machine, process.arch === 'x64' ? 'x86_64' : 'aarch64');
      assert.equal(cpus, '2');
      assert.match(result.stdout, /vmw_vsock_virtio_transport/);
      await sandbox.files.write('/tmp/hello.txt', 'from the host');
      assert.equal((await sandbox.files.read('/tmp/hello.txt')).toString(), 'from the host');
    } finally {
      await sandbox.destroy({ graceful: true });
    }
    const exit = await sandbox.instance.wait();
    assert.equal(exit.signal, undefined, 'SendCtrlAltDel ends Firecracker without a kill');
  });

  it('pauses, snapshots and restores two independent clones', async (t) => {
    const dir = tempDir(t);
    const source = await Sandbox.create({ hypervisor });
    try {
      await source.exec(['sh', '-c', 'echo before-snapshot > /tmp/state']);
      const snapshot = await source.instance.snapshot(join(dir, 'snap'));
      assert.equal(source.instance.state.kind, 'paused');
      const clones = await Promise.all([hypervisor.restore(snapshot), hypervisor.restore(snapshot)]);
      try {
        for (const [index, clone] of clones.entries()) {
          const connection = new AgentConnection(await clone.connectAgent());
          await connection.handshake();
          const read = await runCommand(connection, ['cat', '/tmp/state']);
          assert.equal(read.stdout, 'before-snapshot\n');
          await runCommand(connection, ['sh', '-c', `echo clone-${index} > /tmp/state`]);
          assert.equal((await runCommand(connection, ['cat', '/tmp/state'])).stdout, `clone-${index}\n`);
          connection.close();
        }
      } finally {
        await Promise.all(clones.map((clone) => clone.kill()));
      }
      await source.instance.resume();
      assert.equal((await source.exec(['cat', '/tmp/state'])).stdout, 'before-snapshot\n');
    } finally {
      await source.destroy();
    }
  });
});
