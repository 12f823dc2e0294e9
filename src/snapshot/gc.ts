/**
 * Garbage collection of the snapshot store: which snapshots go (by age, then by total size, oldest first), and the
 * staging and trash directories a crashed process left behind.
 */

import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { InvalidArgumentError } from '../core/errors.js';
import { STAGING_PREFIX, type SnapshotEntry, TRASH_PREFIX, oldestFirst } from './layout.js';

/** What `gc` keeps: snapshots at most `maxAgeMs` old, and at most `maxTotalBytes` of them (the newest). */
export interface GcOptions {
  readonly maxAgeMs?: number;
  readonly maxTotalBytes?: number;
}

/**
 * Staging and trash directories untouched for this long were left by a process that died while writing or removing
 * a snapshot; younger ones may belong to a process still at work.
 */
export const LEFTOVER_MAX_AGE_MS = 60 * 60 * 1000;

function checkLimit(value: number | undefined, what: string): void {
  if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) {
    throw new InvalidArgumentError(`${what} must be a whole number >= 0, got ${value}`);
  }
}

/**
 * The entries gc removes, oldest first: every one older than `maxAgeMs`, then the oldest of the rest until they
 * total at most `maxTotalBytes`. An unreadable snapshot is aged by its directory's mtime like any other. Pure.
 */
export function selectForGc(entries: readonly SnapshotEntry[], options: GcOptions, nowMs: number): SnapshotEntry[] {
  const { maxAgeMs, maxTotalBytes } = options;
  checkLimit(maxAgeMs, 'maxAgeMs');
  checkLimit(maxTotalBytes, 'maxTotalBytes');
  const sorted = [...entries].sort(oldestFirst);
  const doomed = new Set(
    maxAgeMs === undefined ? [] : sorted.filter((entry) => nowMs - Date.parse(entry.createdAt) > maxAgeMs),
  );
  if (maxTotalBytes !== undefined) {
    let total = sorted.filter((entry) => !doomed.has(entry)).reduce((sum, entry) => sum + entry.bytes, 0);
    for (const entry of sorted) {
      if (total <= maxTotalBytes) break;
      if (doomed.has(entry)) continue;
      doomed.add(entry);
      total -= entry.bytes;
    }
  }
  return sorted.filter((entry) => doomed.has(entry));
}

/**
 * Removes the staging and trash directories in `root` last changed more than LEFTOVER_MAX_AGE_MS before `nowMs`
 * (a rename changes a directory's ctime, so a snapshot moved to the trash just now is young). Returns their names.
 */
export async function removeLeftovers(root: string, nowMs: number): Promise<string[]> {
  const names = (await readdir(root)).filter(
    (name) => name.startsWith(STAGING_PREFIX) || name.startsWith(TRASH_PREFIX),
  );
  const stale = await Promise.all(
    names.map(async (name) => {
      const info = await stat(join(root, name)).catch(() => undefined);
      return info && nowMs - Math.max(info.mtimeMs, info.ctimeMs) > LEFTOVER_MAX_AGE_MS ? name : undefined;
    }),
  );
  const removed = stale.filter((name): name is string => name !== undefined);
  await Promise.all(removed.map((name) => rm(join(root, name), { recursive: true, force: true })));
  return removed;
}
