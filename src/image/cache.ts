/**
 * The content-addressed image cache: `<root>/kernels/` holds extracted Debian kernels, `<root>/images/<key>/` holds
 * `vmlinuz`, `initramfs.cpio.gz` and `manifest.json` (written last). Directories are staged next to their final
 * place and renamed into it, so concurrent builders never see or leave a half-written image.
 */

import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';

import { z } from 'zod';

import { ARCHES, type Arch } from '../core/config.js';
import { type RuntimeHost, platformPath } from '../core/paths.js';
import { ImageBuildError } from './errors.js';
import { publishDir, readJsonFile, withTempDir } from './fs-util.js';

/** Bumped whenever the image layout changes, so old cache entries stop matching. */
export const IMAGE_BUILDER_VERSION = 3;

/** A bootable guest: kernel + initramfs on the host, ready for a VMM. */
export interface GuestImage {
  /** Cache key: hash of everything the image was built from. */
  key: string;
  /** Path of the kernel: a bzImage for x86_64, an uncompressed `Image` for aarch64. */
  kernel: string;
  /** Path of the gzip'd initramfs. */
  initrd: string;
  /** Kernel release, e.g. `6.1.0-56-cloud-amd64`. */
  kernelVersion: string;
  /** The guest architecture the kernel, agent and busybox are built for. */
  arch: Arch;
  /** ISO 8601 time the image was built. */
  builtAt: string;
}

const manifestSchema = z.object({
  builderVersion: z.literal(IMAGE_BUILDER_VERSION),
  key: z.string(),
  kernelVersion: z.string(),
  kernelPackage: z.string(),
  arch: z.enum(ARCHES),
  builtAt: z.string(),
  modules: z.array(z.string()),
});
/** What `manifest.json` records about an image. */
export type ImageManifest = z.infer<typeof manifestSchema>;

const KERNEL_FILE = 'vmlinuz';
const INITRD_FILE = 'initramfs.cpio.gz';
const MANIFEST_FILE = 'manifest.json';

/**
 * `$JITVM_CACHE_DIR`, else the platform's per-user cache: `${XDG_CACHE_HOME:-$HOME/.cache}/jitvm` on Linux,
 * `~/Library/Caches/jitvm` on macOS, `%LOCALAPPDATA%\jitvm\cache` on Windows.
 */
export function cacheRoot(host: RuntimeHost = { env: process.env, platform: process.platform }): string {
  const { env, platform } = host;
  if (env.JITVM_CACHE_DIR) return env.JITVM_CACHE_DIR;
  const paths = platformPath(platform);
  if (platform === 'win32' && env.LOCALAPPDATA) return paths.join(env.LOCALAPPDATA, 'jitvm', 'cache');
  if (platform === 'darwin') return paths.join(homedir(), 'Library', 'Caches', 'jitvm');
  return paths.join(env.XDG_CACHE_HOME || paths.join(homedir(), '.cache'), 'jitvm');
}

/** Where extracted kernels live. */
export function kernelsDir(root: string): string {
  return join(root, 'kernels');
}

/** Everything an image is built from. */
export interface ImageKeyInputs {
  arch: Arch;
  /** The extracted kernel (`<package>_<version>`). */
  kernelId: string;
  /** Paths of the agent's source files. */
  agentSources: readonly string[];
  busybox: { path: string; size: number; mtimeMs: number };
  modules: readonly string[];
}

/** The image key: sha256 over the builder version and every input, truncated to 32 hex digits. */
export async function imageKey(inputs: ImageKeyInputs): Promise<string> {
  const hash = createHash('sha256');
  const field = (value: string | Buffer): void => {
    const bytes = typeof value === 'string' ? Buffer.from(value) : value;
    hash.update(`${bytes.length}:`).update(bytes);
  };
  field(`jitvm-image/${IMAGE_BUILDER_VERSION}/${inputs.arch}`);
  field(inputs.kernelId);
  const sources = await Promise.all(inputs.agentSources.map((path) => readFile(path)));
  inputs.agentSources.forEach((path, i) => {
    field(basename(path));
    field(sources[i]!);
  });
  field(`${inputs.busybox.path}:${inputs.busybox.size}:${inputs.busybox.mtimeMs}`);
  field(inputs.modules.join(','));
  return hash.digest('hex').slice(0, 32);
}

/** The cached image with this key, or undefined when it has not been built. */
export async function readCachedImage(root: string, key: string): Promise<GuestImage | undefined> {
  const dir = join(root, 'images', key);
  const manifest = await readJsonFile(join(dir, MANIFEST_FILE), manifestSchema);
  if (!manifest || manifest.key !== key) return undefined;
  return {
    key,
    kernel: join(dir, KERNEL_FILE),
    initrd: join(dir, INITRD_FILE),
    kernelVersion: manifest.kernelVersion,
    arch: manifest.arch,
    builtAt: manifest.builtAt,
  };
}

/** The most recently built cached image for `arch` guests, found by manifest alone; undefined when there is none. */
export async function newestCachedImage(root: string, arch: Arch): Promise<GuestImage | undefined> {
  const imagesDir = join(root, 'images');
  const names = await readdir(imagesDir).catch(() => [] as string[]);
  const images = await Promise.all(
    names.filter((name) => !name.startsWith('.')).map((key) => readCachedImage(root, key)),
  );
  const ofArch = images.filter((image): image is GuestImage => image?.arch === arch);
  return ofArch.sort((a, b) => b.builtAt.localeCompare(a.builtAt))[0];
}

/** How long an image of another builder version is kept after it was last written. */
const FOREIGN_IMAGE_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

async function filterAsync<T>(items: readonly T[], keep: (item: T) => Promise<boolean>): Promise<T[]> {
  const verdicts = await Promise.all(items.map(keep));
  return items.filter((_, i) => verdicts[i]);
}

/**
 * Removes all but the `keep` most recently built images of each guest architecture, and week-old images of other
 * builder versions, so each agent or kernel change does not leave ~16 MB behind. Safe for running VMs: a VMM has read its kernel and initrd by the time it runs.
 */
export async function pruneImages(root: string, keep: number): Promise<void> {
  const imagesDir = join(root, 'images');
  const entries = await readdir(imagesDir, { withFileTypes: true });
  const images = await Promise.all(
    entries
      .filter((entry) => entry.isDirectory() && !entry.name.startsWith('.'))
      .map(async (entry) => ({
        name: entry.name,
        manifest: await readJsonFile(join(imagesDir, entry.name, MANIFEST_FILE), manifestSchema),
      })),
  );
  const built = images.filter((image) => image.manifest !== undefined);
  built.sort((a, b) => (b.manifest?.builtAt ?? '').localeCompare(a.manifest?.builtAt ?? ''));
  // Published images always have a manifest, so one that does not parse is from another builder version: another
  // jitvm may share this cache and still use it, so it goes only once it has not been touched for a week.
  const outdated = await filterAsync(
    images.filter((image) => image.manifest === undefined),
    async (image) => Date.now() - (await stat(join(imagesDir, image.name))).mtimeMs > FOREIGN_IMAGE_MAX_AGE_MS,
  );
  const stale = ARCHES.flatMap((arch) => built.filter((image) => image.manifest?.arch === arch).slice(keep));
  stale.push(...outdated);
  await Promise.all(stale.map((image) => rm(join(imagesDir, image.name), { recursive: true, force: true })));
}

/** The files of an image being built, written by a `fill` callback of storeImage. */
export interface StagedImage {
  /** Where to write the kernel. */
  kernel: string;
  /** Where to write the initramfs. */
  initrd: string;
  /** A scratch directory for intermediate files; removed afterwards. */
  scratch: string;
}

/**
 * Builds an image with `fill` in a staging directory and moves it to `images/<key>`. When another process
 * published the same key first, its image is used. `replace` swaps out an existing image (forced rebuild).
 * Staging and scratch directories are removed on success and failure alike.
 */
export async function storeImage(
  root: string,
  key: string,
  fill: (staged: StagedImage) => Promise<Omit<ImageManifest, 'builderVersion' | 'key' | 'builtAt'>>,
  replace: boolean,
): Promise<GuestImage> {
  const imagesDir = join(root, 'images');
  await mkdir(imagesDir, { recursive: true });
  return withTempDir(imagesDir, async (tmp) => {
    const staged = join(tmp, 'image');
    const scratch = join(tmp, 'scratch');
    await Promise.all([mkdir(staged), mkdir(scratch)]);
    const facts = await fill({ kernel: join(staged, KERNEL_FILE), initrd: join(staged, INITRD_FILE), scratch });
    const manifest: ImageManifest = {
      builderVersion: IMAGE_BUILDER_VERSION,
      key,
      builtAt: new Date().toISOString(),
      ...facts,
    };
    await writeFile(join(staged, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');

    const target = join(imagesDir, key);
    if (replace) await moveAside(target, join(tmp, 'replaced'));
    await publishDir(
      staged,
      target,
      async (dir) => (await readJsonFile(join(dir, MANIFEST_FILE), manifestSchema)) !== undefined,
    );
    const image = await readCachedImage(root, key);
    if (!image) throw new ImageBuildError(`the image ${key} vanished from ${imagesDir}`, 'Build it again.');
    return image;
  });
}

async function moveAside(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
