/** The Prometheus metrics move with what the SDK really does: a real sandbox's boot, execs, errors, proxy, destroy. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { metricsRegistry } from '../../src/metrics/registry.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { startOrigin } from '../helpers/origin.js';
import { BOOT_TIMEOUT_MS } from '../helpers/sandbox.js';

/**
 * The value of a metric series, summed over the series whose labels include `labels`; `name` may be a histogram's
 * `_count` or `_sum` series.
 */
async function value(name: string, labels: Record<string, string> = {}): Promise<number> {
  const series = (await metricsRegistry.getMetricsAsJSON()).flatMap((metric) =>
    metric.values.filter((v) => ((v as { metricName?: string }).metricName ?? metric.name) === name),
  );
  const matching = series.filter((v) =>
    Object.entries(labels).every(([key, wanted]) => String((v.labels as Record<string, unknown>)[key]) === wanted),
  );
  return matching.reduce((sum, v) => sum + v.value, 0);
}

it('counts a sandbox from boot to destroy: created, active, boot latency, execs, errors, proxy verdicts', async (t) => {
  const origin = await startOrigin(t, 'metrics');
  const before = {
    created: await value('jitvm_sandboxes_created_total', { source: 'boot' }),
    destroyed: await value('jitvm_sandboxes_destroyed_total'),
    boots: await value('jitvm_boot_seconds_count'),
    execs: await value('jitvm_exec_seconds_count'),
    notFound: await value('jitvm_errors_total', { operation: 'exec', code: 'not_found' }),
    denied: await value('jitvm_egress_decisions_total', { allowed: 'false' }),
  };
  const sandbox = await Sandbox.create({
    bootTimeoutMs: BOOT_TIMEOUT_MS,
    network: { mode: 'allowlist', allow: ['allowed.test'], hosts: { 'allowed.test': '127.0.0.1' } },
  });
  try {
    assert.equal(await value('jitvm_sandboxes_created_total', { source: 'boot' }), before.created + 1);
    assert.equal(await value('jitvm_sandboxes_active', { backend: sandbox.instance.backend }), 1);
    assert.ok((await value('jitvm_vmm_processes')) >= 1, 'its VMM runs');
    assert.equal(await value('jitvm_boot_seconds_count'), before.boots + 1);
    assert.ok((await value('jitvm_boot_seconds_sum')) > 0);
    await sandbox.exec(['true']);
    await sandbox.exec(['wget', '-q', '-O', '-', `http://denied.test:${origin.port}/`]);
    assert.equal(await value('jitvm_exec_seconds_count'), before.execs + 2);
    await assert.rejects(sandbox.exec(['no-such-program']));
    assert.equal(await value('jitvm_errors_total', { operation: 'exec', code: 'not_found' }), before.notFound + 1);
    assert.equal(await value('jitvm_egress_decisions_total', { allowed: 'false' }), before.denied + 1);
  } finally {
    await sandbox.destroy();
  }
  assert.equal(await value('jitvm_sandboxes_active'), 0);
  assert.equal(await value('jitvm_sandboxes_destroyed_total'), before.destroyed + 1);
  const text = await metricsRegistry.metrics();
  assert.match(text, /^# TYPE jitvm_boot_seconds histogram$/m);
});
