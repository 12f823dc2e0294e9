/** Disk images attached as virtio block devices on a real QEMU guest: read-only stays read-only, writes reach the host. */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { withSandbox } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/temp.js';

it('attaches a read-only and a writable drive in that order, enforcing read-only in the guest', async (t) => {
  const dir = tempDir(t);
  const base = randomBytes(1024 * 1024);
  const scratch = Buffer.alloc(1024 * 1024);
  writeFileSync(join(dir, 'base.img'), base);
  writeFileSync(join(dir, 'scratch.img'), scratch);
  await withSandbox(
    async (sandbox) => {
      const read = await sandbox.exec(['sh', '-c', 'head -c 4096 /dev/vda | sha256sum']);
      const expected = createHash('sha256').update(base.subarray(0, 4096)).digest('hex');
      assert.equal(read.stdout.split(' ')[0], expected);
      const ro = await sandbox.exec(['sh', '-c', 'cat /sys/block/vda/ro /sys/block/vdb/ro']);
      assert.equal(ro.stdout, '1\n0\n');
      const refused = await sandbox.exec(['sh', '-c', 'echo x | dd of=/dev/vda conv=notrunc 2>&1']);
      assert.notEqual(refused.exitCode, 0, 'writing a read-only drive must fail');
      const wrote = await sandbox.exec([
        'sh',
        '-c',
        'printf jitvm-was-here | dd of=/dev/vdb conv=notrunc,fsync 2>/dev/null',
      ]);
      assert.equal(wrote.exitCode, 0);
    },
    {
      drives: [
        { id: 'scratch', path: join(dir, 'scratch.img'), readOnly: false },
        { id: 'base', path: join(dir, 'base.img'), root: true },
      ],
    },
  );
  assert.equal(readFileSync(join(dir, 'scratch.img')).subarray(0, 14).toString(), 'jitvm-was-here');
  assert.ok(readFileSync(join(dir, 'base.img')).equals(base), 'the read-only image is unchanged');
});
