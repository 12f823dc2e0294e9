/** The pool gauges read every live pool of the process, and stop counting a pool once it is closed. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { metricsRegistry } from '../../src/metrics/registry.js';
import { Pool } from '../../src/sandbox/pool.js';

async function gauge(name: string): Promise<number> {
  const metric = (await metricsRegistry.getMetricsAsJSON()).find((m) => m.name === name);
  return (metric?.values ?? []).reduce((sum, v) => sum + v.value, 0);
}

let next = 0;
const fakeVm = async () => ({ id: `vm-${next++}`, instance: { state: { kind: 'running' } }, destroy: async () => {} });

it('reports ready sandboxes, hits and misses of live pools, and forgets a closed pool', async () => {
  const pool = Pool.withStarter({ size: 2 }, fakeVm);
  await pool.warm({ timeoutMs: 5000 });
  assert.equal(await gauge('jitvm_pool_ready'), 2);
  await pool.acquire();
  assert.equal(await gauge('jitvm_pool_hits'), 1);
  assert.equal(await gauge('jitvm_pool_handed_out'), 1);
  await pool.close();
  assert.equal(await gauge('jitvm_pool_ready'), 0);
  assert.equal(await gauge('jitvm_pool_hits'), 0);
});
