import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { IMAGE_BUILDER_VERSION, pruneImages } from '../../src/image/cache.js';
import { tempDir } from '../helpers/temp.js';

it('pruneImages keeps the most recently built images and leaves staging dirs alone', async (t) => {
  const root = tempDir(t);
  const images = join(root, 'images');
  for (const [key, day] of [
    ['old', 1],
    ['newest', 4],
    ['middle', 2],
    ['newer', 3],
  ] as const) {
    mkdirSync(join(images, key), { recursive: true });
    const manifest = {
      builderVersion: IMAGE_BUILDER_VERSION,
      key,
      kernelVersion: 'k',
      kernelPackage: 'p',
      arch: 'x86_64',
      builtAt: `2026-01-0${day}T00:00:00.000Z`,
      modules: [],
    };
    writeFileSync(join(images, key, 'manifest.json'), JSON.stringify(manifest));
  }
  mkdirSync(join(images, '.tmp-building'));
  await pruneImages(root, 2);
  assert.deepEqual(readdirSync(images).sort(), ['.tmp-building', 'newer', 'newest']);
});
