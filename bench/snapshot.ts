/** Snapshot rows: restoring a stored snapshot against a cold boot of the same image, measured in the same run. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QemuHypervisor } from '../src/backends/qemu/index.js';
import { Pool } from '../src/sandbox/pool.js';
import { Sandbox } from '../src/sandbox/sandbox.js';
import { coldCycle } from './cold.js';
import { timeEach } from './stats.js';

export interface SnapshotSamples {
  readonly cold: number[];
  readonly restore: number[];
  readonly snapshot: number[];
  /** Warm pool (from the snapshot): `acquire()` on a hit, and acquire to the first `exec true` answered. */
  readonly poolHit: number[];
  readonly poolFirstExec: number[];
}

/** `runs` acquires from a warm pool of 2 restored clones, each after the pool is full again. */
async function poolSamples(runs: number, snapshot: string): Promise<{ hit: number[]; firstExec: number[] }> {
  const pool = await Pool.start({ size: 2, fromSnapshot: snapshot });
  const samples = { hit: [] as number[], firstExec: [] as number[] };
  try {
    for (let i = 0; i < runs; i++) {
      await pool.warm();
      const started = performance.now();
      const sandbox = await pool.acquire();
      samples.hit.push(performance.now() - started);
      await sandbox.exec(['true']);
      samples.firstExec.push(performance.now() - started);
      await sandbox.destroy();
    }
  } finally {
    await pool.close();
  }
  return samples;
}

/**
 * Alternates a cold cycle (create + exec true + destroy) with a restore cycle (create from the snapshot + exec true
 * + destroy), `runs` times each after one warm-up, and times taking the snapshot itself. Undefined, with the reason
 * printed, where QEMU cannot snapshot.
 */
export async function snapshotSamples(runs: number, bootTimeoutMs: number): Promise<SnapshotSamples | undefined> {
  if (!new QemuHypervisor().capabilities.snapshot) {
    console.log(`snapshot restore: skipped (QEMU snapshots need Linux; this is ${process.platform})`);
    return undefined;
  }
  const store = mkdtempSync(join(tmpdir(), 'jitvm-bench-snapshots-'));
  const previous = process.env.JITVM_SNAPSHOT_DIR;
  process.env.JITVM_SNAPSHOT_DIR = store;
  try {
    const source = await Sandbox.create({ backend: 'qemu', bootTimeoutMs });
    const snapshot: number[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        snapshot.push(...(await timeEach(1, () => source.snapshot({ name: `bench-${i}` }))));
      }
    } finally {
      await source.destroy();
    }
    const cold = (): Promise<void> => coldCycle({ backend: 'qemu', bootTimeoutMs });
    const restore = (): Promise<void> => coldCycle({ fromSnapshot: 'bench-0', bootTimeoutMs });
    await cold();
    await restore();
    const samples = { cold: [] as number[], restore: [] as number[], snapshot };
    for (let i = 0; i < runs; i++) {
      samples.cold.push(...(await timeEach(1, cold)));
      samples.restore.push(...(await timeEach(1, restore)));
    }
    const pool = await poolSamples(runs, 'bench-0');
    return { ...samples, poolHit: pool.hit, poolFirstExec: pool.firstExec };
  } finally {
    if (previous === undefined) delete process.env.JITVM_SNAPSHOT_DIR;
    else process.env.JITVM_SNAPSHOT_DIR = previous;
    rmSync(store, { recursive: true, force: true });
  }
}
