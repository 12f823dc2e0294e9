import assert from 'node:assert/strict';
import { it } from 'node:test';
import { QemuHypervisor } from '../../src/backends/qemu/index.js';
import type { JitvmError } from '../../src/core/errors.js';
import { runsDetached } from '../../src/daemon/detach.js';
import { tempDir, withEnv } from '../helpers/temp.js';

it("follows the chosen backend's detach capability: QEMU detaches except on Windows", async () => {
  assert.equal(await runsDetached({ backend: 'qemu' }), new QemuHypervisor().capabilities.detach);
  assert.equal(new QemuHypervisor().capabilities.detach, process.platform !== 'win32');
});

it("asks a snapshot's manifest which backend restores it, unless a backend is named", async (t) => {
  withEnv(t, 'JITVM_SNAPSHOT_DIR', tempDir(t));
  await assert.rejects(runsDetached({ fromSnapshot: 'missing' }), (error: JitvmError) => error.code === 'not_found');
  assert.equal(await runsDetached({ fromSnapshot: 'missing', backend: 'firecracker' }), true);
});
