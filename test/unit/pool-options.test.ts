/**
 * What `Pool.start` and `Sandbox.create({ pool })` refuse before any VM starts: a wrong option would otherwise fail
 * every refill of the pool, forever.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { CancelledError, InvalidArgumentError, JitvmError } from '../../src/core/errors.js';
import { Pool } from '../../src/sandbox/pool.js';
import type { PoolOptions } from '../../src/sandbox/pool-options.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { tempDir, withEnv } from '../helpers/temp.js';

const refusedWith = (pattern: RegExp) => (error: Error) =>
  error instanceof InvalidArgumentError && pattern.test(error.message);

it('Pool.start refuses invalid options, naming the field, before anything starts', async () => {
  const cases: [unknown, RegExp][] = [
    [{}, /size/],
    [{ size: 2, maxConcurrentStarts: 17 }, /maxConcurrentStarts/],
    [{ size: 2, fromSnapshot: '' }, /fromSnapshot/],
    [{ size: 2, warmUp: 'yes' }, /warmUp/],
    [{ size: 2, sandbox: 'qemu' }, /sandbox/],
    [{ size: 2, sandbox: { cpus: 0 } }, /sandbox: cpus/],
    [{ size: 2, sandbox: { memoryMB: 512 } }, /sandbox.*memoryMB/],
    [{ size: 2, sandbox: { signal: new AbortController().signal } }, /sandbox.signal.*acquire/],
    [{ size: 2, sandbox: { detached: true } }, /sandbox.detached/],
    [{ size: 2, sandbox: { fromSnapshot: 'base' } }, /sandbox.fromSnapshot.*pool's own fromSnapshot/],
    [
      { size: 2, fromSnapshot: 'base', sandbox: { memoryMiB: 512, cpus: 2 } },
      /sandbox.cpus, sandbox.memoryMiB.*snapshot/,
    ],
  ];
  for (const [options, field] of cases) {
    await assert.rejects(Pool.start(options as PoolOptions), refusedWith(field), JSON.stringify(options));
  }
});

it('Pool.start refuses a snapshot that is not in the store', async (t) => {
  withEnv(t, 'JITVM_SNAPSHOT_DIR', tempDir(t));
  await assert.rejects(
    Pool.start({ size: 1, fromSnapshot: 'missing' }),
    (error: JitvmError) => error.code === 'not_found' && /missing/.test(error.message),
  );
});

it('Sandbox.create({ pool }) takes from the pool, and refuses any VM option beside it', async () => {
  const pool = Pool.withStarter<Sandbox>({ size: 1, retry: { initialMs: 1000, maxMs: 1000 } }, async () => {
    throw new JitvmError('unsupported', 'this unit test starts no VM');
  });
  try {
    await assert.rejects(Sandbox.create({ pool, memoryMiB: 512, backend: 'qemu' }), refusedWith(/memoryMiB, backend/));
    await assert.rejects(Sandbox.create({ pool, fromSnapshot: 'base' }), refusedWith(/fromSnapshot/));
    const signal = AbortSignal.timeout(20);
    await assert.rejects(Sandbox.create({ pool, signal }), CancelledError);
    assert.equal(pool.stats().misses, 1, 'the sandbox was asked of the pool');
    assert.equal(pool.stats().refillErrors, 1);
  } finally {
    await pool.close();
  }
});
