import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { IMAGE_BUILDER_VERSION, cacheRoot, newestCachedImage, pruneImages } from '../../src/image/cache.js';
import { tempDir } from '../helpers/temp.js';

function writeImage(images: string, key: string, arch: string, day: number, builderVersion = IMAGE_BUILDER_VERSION) {
  mkdirSync(join(images, key), { recursive: true });
  const manifest = {
    builderVersion,
    key,
    kernelVersion: 'k',
    kernelPackage: 'p',
    arch,
    builtAt: `2026-01-0${day}T00:00:00.000Z`,
    modules: [],
  };
  writeFileSync(join(images, key, 'manifest.json'), JSON.stringify(manifest));
}

it('pruneImages keeps the most recently built images of each architecture and leaves staging dirs alone', async (t) => {
  const images = join(tempDir(t), 'images');
  writeImage(images, 'old', 'x86_64', 1);
  writeImage(images, 'newest', 'x86_64', 4);
  writeImage(images, 'middle', 'x86_64', 2);
  writeImage(images, 'newer', 'x86_64', 3);
  writeImage(images, 'arm-old', 'aarch64', 1);
  writeImage(images, 'arm-new', 'aarch64', 2);
  mkdirSync(join(images, '.tmp-building'));
  await pruneImages(join(images, '..'), 2);
  assert.deepEqual(readdirSync(images).sort(), ['.tmp-building', 'arm-new', 'arm-old', 'newer', 'newest']);
});

it('pruneImages removes images of another image builder once untouched for a week', async (t) => {
  const images = join(tempDir(t), 'images');
  writeImage(images, 'current', 'x86_64', 1);
  writeImage(images, 'other-recent', 'x86_64', 2, IMAGE_BUILDER_VERSION - 1);
  writeImage(images, 'other-stale', 'x86_64', 2, IMAGE_BUILDER_VERSION - 1);
  const eightDaysAgo = new Date(Date.now() - 8 * 24 * 3600 * 1000);
  utimesSync(join(images, 'other-stale'), eightDaysAgo, eightDaysAgo);
  await pruneImages(join(images, '..'), 3);
  assert.deepEqual(readdirSync(images).sort(), ['current', 'other-recent']);
});

it('puts the image cache in each platform’s per-user cache dir, or JITVM_CACHE_DIR', () => {
  assert.equal(cacheRoot({ platform: 'linux', env: { JITVM_CACHE_DIR: '/c' } }), '/c');
  assert.equal(cacheRoot({ platform: 'linux', env: { XDG_CACHE_HOME: '/home/me/.cache' } }), '/home/me/.cache/jitvm');
  assert.equal(cacheRoot({ platform: 'linux', env: {} }), join(homedir(), '.cache', 'jitvm'));
  assert.equal(cacheRoot({ platform: 'darwin', env: {} }), join(homedir(), 'Library', 'Caches', 'jitvm'));
  assert.equal(
    cacheRoot({ platform: 'win32', env: { LOCALAPPDATA: 'C:\\Users\\me\\AppData\\Local' } }),
    'C:\\Users\\me\\AppData\\Local\\jitvm\\cache',
  );
});

it('newestCachedImage finds the newest image of an architecture by its manifest (how macOS and Windows resolve)', async (t) => {
  const root = tempDir(t);
  const images = join(root, 'images');
  writeImage(images, 'x86-new', 'x86_64', 3);
  writeImage(images, 'arm-old', 'aarch64', 1);
  writeImage(images, 'arm-new', 'aarch64', 2);
  writeImage(images, 'arm-outdated', 'aarch64', 4, IMAGE_BUILDER_VERSION - 1);
  assert.equal((await newestCachedImage(root, 'aarch64'))?.key, 'arm-new');
  assert.equal((await newestCachedImage(root, 'x86_64'))?.kernel, join(images, 'x86-new', 'vmlinuz'));
  assert.equal(await newestCachedImage(tempDir(t), 'aarch64'), undefined);
});
