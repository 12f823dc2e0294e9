/**
 * Where warm pools show themselves to `jitvm pool`: each pool started with `Pool.start` keeps a small status file,
 * `<runtime dir>/pools/<pid>-<n>.json`, rewritten while it runs and removed when it closes. A file whose process is
 * gone is removed by the next listing.
 */
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { parseJsonOrUndefined } from '../core/json.js';
import { runtimeRoot } from '../core/paths.js';
import type { PoolStats } from './pool-types.js';

/** How often a running pool rewrites its status file. */
const PUBLISH_EVERY_MS = 500;

const PoolStatusSchema = z.object({
  id: z.string(),
  pid: z.number().int().positive(),
  source: z.string(),
  startedAt: z.string(),
  updatedAt: z.string(),
  stats: z.record(z.string(), z.number().optional()),
});
/** One pool as `jitvm pool` lists it. */
export type PoolStatus = z.infer<typeof PoolStatusSchema>;

function poolsDir(): string {
  return join(runtimeRoot(), 'pools');
}

let published = 0;

/** A running pool's status file: written at once, then every 500 ms by an unref'd timer; `close()` removes it. */
export class PoolStatusFile {
  private readonly path: string;
  private readonly timer: NodeJS.Timeout;
  private readonly base: Omit<PoolStatus, 'updatedAt' | 'stats'>;

  constructor(
    source: string,
    private readonly stats: () => PoolStats,
  ) {
    const id = `${process.pid}-${++published}`;
    this.base = { id, pid: process.pid, source, startedAt: new Date().toISOString() };
    mkdirSync(poolsDir(), { recursive: true, mode: 0o700 });
    this.path = join(poolsDir(), `${id}.json`);
    this.write();
    this.timer = setInterval(() => this.write(), PUBLISH_EVERY_MS).unref();
  }

  close(): void {
    clearInterval(this.timer);
    rmSync(this.path, { force: true });
  }

  private write(): void {
    const status: PoolStatus = { ...this.base, updatedAt: new Date().toISOString(), stats: { ...this.stats() } };
    try {
      writeFileSync(`${this.path}.tmp`, JSON.stringify(status), { mode: 0o600 });
      renameSync(`${this.path}.tmp`, this.path);
    } catch (error) {
      // A status file is a courtesy to `jitvm pool`: never let it break the pool.
      process.emitWarning(`could not write the pool status ${this.path}: ${(error as Error).message}`, {
        code: 'JITVM_POOL_STATUS',
      });
    }
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A file's text, or '' when it vanished meanwhile (its pool just closed). */
function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** The pools running on this host for this user; status files of processes that are gone are removed. */
export function listPools(): PoolStatus[] {
  const names = (() => {
    try {
      return readdirSync(poolsDir()).filter((name) => name.endsWith('.json'));
    } catch {
      return [];
    }
  })();
  const pools: PoolStatus[] = [];
  for (const name of names) {
    const path = join(poolsDir(), name);
    const parsed = PoolStatusSchema.safeParse(parseJsonOrUndefined(readText(path)));
    if (parsed.success && processAlive(parsed.data.pid)) pools.push(parsed.data);
    else rmSync(path, { force: true });
  }
  return pools.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}
