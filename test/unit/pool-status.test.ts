import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { PoolStatusFile, listPools } from '../../src/sandbox/pool-status.js';
import type { PoolStats } from '../../src/sandbox/pool-types.js';
import { tempDir, withEnv } from '../helpers/temp.js';

const stats = { size: 2, ready: 1, starting: 1, handedOut: 3, hits: 2, misses: 1, hitRatio: 2 / 3 } as PoolStats;

it('lists a running pool from its status file, and forgets it once closed', (t) => {
  withEnv(t, 'JITVM_RUNTIME_DIR', tempDir(t));
  const status = new PoolStatusFile('snapshot base', () => stats);
  const [listed, ...others] = listPools();
  assert.deepEqual(others, []);
  assert.equal(listed?.pid, process.pid);
  assert.equal(listed?.source, 'snapshot base');
  assert.equal(listed?.stats.handedOut, 3);
  status.close();
  assert.deepEqual(listPools(), []);
});

it('removes the status files of pools whose process is gone, and unreadable ones', (t) => {
  const root = withEnv(t, 'JITVM_RUNTIME_DIR', tempDir(t));
  const status = new PoolStatusFile('cold boot', () => stats);
  t.after(() => status.close());
  const gone = spawnSync(process.execPath, ['-e', '']).pid!;
  const dir = join(root, 'pools');
  const record = { id: `${gone}-1`, pid: gone, source: 'cold boot', startedAt: 'x', updatedAt: 'x', stats: {} };
  writeFileSync(join(dir, `${gone}-1.json`), JSON.stringify(record));
  writeFileSync(join(dir, 'garbage.json'), '{');
  assert.deepEqual(
    listPools().map((pool) => pool.pid),
    [process.pid],
  );
  assert.equal(existsSync(join(dir, `${gone}-1.json`)), false);
  assert.deepEqual(
    readdirSync(dir).filter((name) => name === 'garbage.json'),
    [],
  );
});
