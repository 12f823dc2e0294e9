import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { LEFTOVER_MAX_AGE_MS, removeLeftovers, selectForGc } from '../../src/snapshot/gc.js';
import type { SnapshotEntry } from '../../src/snapshot/layout.js';
import { tempDir } from '../helpers/temp.js';

const HOUR = 3_600_000;
const NOW = Date.parse('2026-03-01T12:00:00.000Z');

/** A listed snapshot `hoursOld` hours before NOW, of `bytes` bytes (gc reads nothing else). */
function entry(name: string, hoursOld: number, bytes: number): SnapshotEntry {
  const createdAt = new Date(NOW - hoursOld * HOUR).toISOString();
  return { name, dir: `/store/${name}`, bytes, createdAt, manifest: undefined, problem: undefined };
}

const entries = [entry('mid', 5, 300), entry('new', 1, 200), entry('old', 10, 100), entry('newest', 0, 400)];
const names = (selected: readonly SnapshotEntry[]): string[] => selected.map((selectedEntry) => selectedEntry.name);

it('gc by age takes every snapshot older than maxAgeMs, oldest first', () => {
  assert.deepEqual(names(selectForGc(entries, { maxAgeMs: 2 * HOUR }, NOW)), ['old', 'mid']);
  assert.deepEqual(names(selectForGc(entries, { maxAgeMs: 5 * HOUR }, NOW)), ['old'], 'exactly maxAgeMs old is kept');
  assert.deepEqual(names(selectForGc(entries, { maxAgeMs: 0 }, NOW)), ['old', 'mid', 'new']);
  assert.deepEqual(names(selectForGc(entries, {}, NOW)), []);
});

it('gc by size takes the oldest until the rest fit in maxTotalBytes', () => {
  assert.deepEqual(names(selectForGc(entries, { maxTotalBytes: 1000 }, NOW)), []);
  assert.deepEqual(names(selectForGc(entries, { maxTotalBytes: 999 }, NOW)), ['old']);
  assert.deepEqual(names(selectForGc(entries, { maxTotalBytes: 600 }, NOW)), ['old', 'mid']);
  assert.deepEqual(names(selectForGc(entries, { maxTotalBytes: 0 }, NOW)), ['old', 'mid', 'new', 'newest']);
});

it('gc by age and size: age first, then size over what is left', () => {
  const selected = selectForGc(entries, { maxAgeMs: 8 * HOUR, maxTotalBytes: 500 }, NOW);
  assert.deepEqual(names(selected), ['old', 'mid', 'new']);
});

it('gc refuses a negative or fractional limit', () => {
  assert.throws(() => selectForGc(entries, { maxAgeMs: -1 }, NOW), InvalidArgumentError);
  assert.throws(() => selectForGc(entries, { maxTotalBytes: 1.5 }, NOW), /maxTotalBytes must be a whole number/);
});

it('removeLeftovers removes staging and trash dirs idle past LEFTOVER_MAX_AGE_MS, and nothing else', async (t) => {
  const root = tempDir(t);
  for (const name of ['.staging-abc', '.trash-def', 'base']) {
    mkdirSync(join(root, name));
    writeFileSync(join(root, name, 'memory'), 'x');
  }
  assert.deepEqual(await removeLeftovers(root, Date.now()), [], 'fresh ones may belong to a live process');
  const later = Date.now() + LEFTOVER_MAX_AGE_MS + 60_000;
  assert.deepEqual((await removeLeftovers(root, later)).sort(), ['.staging-abc', '.trash-def']);
  assert.deepEqual(readdirSync(root), ['base']);
});
