import { Counter, Gauge, Histogram, Registry } from 'prom-client';

import { listVmIds, liveVmRecord } from '../core/vm-record.js';
import type { PoolStats } from '../sandbox/pool-types.js';

/**
 * jitvm's Prometheus metrics, updated by the SDK's own code paths (create, restore, exec, destroy, the pool, the
 * allowlist proxy) in whatever process runs them; the daemon serves them at /metrics. One registry per process.
 */
export const metricsRegistry = new Registry();

/** Latency buckets in seconds: from a warm-pool hit (sub-millisecond) to a slow cold boot under emulation. */
const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export const sandboxesCreated = new Counter({
  name: 'jitvm_sandboxes_created_total',
  help: 'Sandboxes started, by backend and how (boot, snapshot restore)',
  labelNames: ['backend', 'source'] as const,
  registers: [metricsRegistry],
});

export const sandboxesDestroyed = new Counter({
  name: 'jitvm_sandboxes_destroyed_total',
  help: 'Sandboxes destroyed, by backend',
  labelNames: ['backend'] as const,
  registers: [metricsRegistry],
});

export const sandboxesActive = new Gauge({
  name: 'jitvm_sandboxes_active',
  help: 'Sandboxes this process holds right now (each is one VMM process), by backend',
  labelNames: ['backend'] as const,
  registers: [metricsRegistry],
});

export const bootSeconds = new Histogram({
  name: 'jitvm_boot_seconds',
  help: 'Cold start: from Sandbox.create to the agent answering, by backend',
  labelNames: ['backend'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

export const restoreSeconds = new Histogram({
  name: 'jitvm_restore_seconds',
  help: 'Start from a snapshot: from the restore to the agent answering with its new identity, by backend',
  labelNames: ['backend'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

export const execSeconds = new Histogram({
  name: 'jitvm_exec_seconds',
  help: 'A command (sandbox.exec or sandbox.spawn): from the request to its exit status',
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

export const errorsTotal = new Counter({
  name: 'jitvm_errors_total',
  help: 'Errors the SDK returned to its callers, by operation and jitvm error code',
  labelNames: ['operation', 'code'] as const,
  registers: [metricsRegistry],
});

export const egressDecisions = new Counter({
  name: 'jitvm_egress_decisions_total',
  help: 'Verdicts of the allowlist proxy, by outcome and reason',
  labelNames: ['allowed', 'reason'] as const,
  registers: [metricsRegistry],
});

/** The pools of this process, read when metrics are collected. */
const pools = new Set<() => PoolStats>();

/** Counts a pool's statistics into the pool metrics until the returned function is called. */
export function trackPool(stats: () => PoolStats): () => void {
  pools.add(stats);
  return () => pools.delete(stats);
}

function poolGauge(name: string, help: string, read: (stats: PoolStats) => number): Gauge {
  return new Gauge({
    name,
    help,
    registers: [metricsRegistry],
    collect() {
      this.set([...pools].reduce((sum, stats) => sum + read(stats()), 0));
    },
  });
}

poolGauge('jitvm_pool_ready', 'Pooled sandboxes ready to hand out, over all pools of this process', (s) => s.ready);
poolGauge('jitvm_pool_starting', 'Pooled sandboxes starting, over all pools', (s) => s.starting);
poolGauge('jitvm_pool_handed_out', 'Sandboxes handed out by the pools since they started', (s) => s.handedOut);
poolGauge('jitvm_pool_hits', 'Acquires served at once from a ready sandbox, since the pools started', (s) => s.hits);
poolGauge('jitvm_pool_misses', 'Acquires that had to wait, since the pools started', (s) => s.misses);
poolGauge('jitvm_pool_refill_errors', 'Failed pool starts, since the pools started', (s) => s.refillErrors);

new Gauge({
  name: 'jitvm_vmm_processes',
  help: "VMM processes running on this host for this user's runtime dir (every process's sandboxes, detached too)",
  registers: [metricsRegistry],
  collect() {
    this.set(listVmIds().filter((id) => liveVmRecord(id) !== undefined).length);
  },
});
