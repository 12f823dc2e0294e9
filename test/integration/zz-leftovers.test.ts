import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { it } from 'node:test';
import { runtimeRoot, vmsRoot } from '../../src/core/paths.js';

/** Runs last (files run in name order): everything the suite booted must be gone. */
it('leaves no VMM process (QEMU, or the Firecracker contract fake) and no VM runtime dir behind', () => {
  const root = runtimeRoot();
  const ours = readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        return (cmdline.includes('qemu-system') && cmdline.includes(root)) || cmdline.includes('fake-firecracker');
      } catch {
        return false;
      }
    });
  assert.deepEqual(ours, [], `VMM processes left running: ${ours.join(', ')}`);
  let dirs: string[] = [];
  try {
    dirs = readdirSync(vmsRoot());
  } catch {
    // no VM was ever started under this root
  }
  assert.deepEqual(dirs, [], `runtime dirs left in ${vmsRoot()}`);
});
