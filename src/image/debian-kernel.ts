/**
 * Debian's cloud kernel, fetched without installing it: `apt-get download` + `dpkg-deb -x` into the cache.
 * Each kernel lives in `<kernelsDir>/<package>_<packageVersion>/` with a `kernel.json` written last.
 */

import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { z } from 'zod';

import { ImageBuildError } from './errors.js';
import { pathExists, publishDir, readJsonFile, withTempDir } from './fs-util.js';
import { runHostCommand } from './host-command.js';

/** A kernel extracted in the cache. */
export interface KernelInfo {
  /** Directory name in the cache, `<package>_<packageVersion>`: identifies the exact kernel build. */
  id: string;
  /** The kernel release, e.g. `6.1.0-56-cloud-amd64`. */
  version: string;
  /** Path of the bzImage. */
  vmlinuz: string;
  /** Path of `lib/modules/<version>`. */
  modulesDir: string;
}

/** The Debian meta package that always depends on the current cloud kernel. */
export const KERNEL_META_PACKAGE = 'linux-image-cloud-amd64';

const KERNEL_MARKER = 'kernel.json';
const markerSchema = z.object({
  package: z.string(),
  packageVersion: z.string(),
  version: z.string(),
  /** Paths inside the extracted tree. */
  vmlinuz: z.string(),
  modulesDir: z.string(),
});
type KernelMarker = z.infer<typeof markerSchema>;

const APT_INSTALL = 'apt-get install apt (jitvm needs a Debian or Ubuntu host to fetch the guest kernel)';
const APT_UPDATE_REMEDY = 'Refresh the package lists with `sudo apt-get update`, then try again.';

/** The newest kernel already extracted in `kernelsDir`, found without calling apt; undefined when there is none. */
export async function findExtractedKernel(kernelsDir: string): Promise<KernelInfo | undefined> {
  const names = await readdir(kernelsDir).catch(() => []);
  const candidates = names.filter((name) => !name.startsWith('.')).sort((a, b) => compareNatural(b, a));
  for (const name of candidates) {
    const marker = await readJsonFile(join(kernelsDir, name, KERNEL_MARKER), markerSchema);
    if (marker) return kernelInfo(kernelsDir, marker);
  }
  return undefined;
}

/**
 * Resolves the package behind linux-image-cloud-amd64 with apt, then downloads and extracts it into `kernelsDir`
 * unless that exact package version is already there.
 */
export async function fetchDebianKernel(kernelsDir: string, signal?: AbortSignal): Promise<KernelInfo> {
  const pkg = await resolveKernelPackage(signal);
  const packageVersion = await candidateVersion(pkg, signal);
  const target = join(kernelsDir, `${pkg}_${packageVersion}`);
  const existing = await readJsonFile(join(target, KERNEL_MARKER), markerSchema);
  if (existing) return kernelInfo(kernelsDir, existing);

  await mkdir(kernelsDir, { recursive: true });
  return withTempDir(kernelsDir, async (tmp) => {
    const download = join(tmp, 'download');
    const tree = join(tmp, 'tree');
    await mkdir(download);
    await runHostCommand('apt-get', ['download', `${pkg}=${packageVersion}`], {
      cwd: download,
      signal,
      install: APT_INSTALL,
    });
    const debs = (await readdir(download)).filter((f) => f.endsWith('.deb'));
    if (debs.length !== 1) {
      throw new ImageBuildError(`apt-get download ${pkg} produced ${debs.length} .deb files`, APT_UPDATE_REMEDY);
    }
    await runHostCommand('dpkg-deb', ['-x', join(download, debs[0]!), tree], {
      signal,
      install: 'apt-get install dpkg',
    });
    const version = pkg.replace(/^linux-image-/, '');
    const marker: KernelMarker = {
      package: pkg,
      packageVersion,
      version,
      vmlinuz: await findInTree(tree, [`boot/vmlinuz-${version}`], pkg),
      modulesDir: await findInTree(tree, [`lib/modules/${version}`, `usr/lib/modules/${version}`], pkg),
    };
    await writeFile(join(tree, KERNEL_MARKER), JSON.stringify(marker, null, 2) + '\n');
    await publishDir(
      tree,
      target,
      async (dir) => (await readJsonFile(join(dir, KERNEL_MARKER), markerSchema)) !== undefined,
    );
    return kernelInfo(kernelsDir, marker);
  });
}

/** The first of `candidates` (paths relative to `tree`) that exists. */
async function findInTree(tree: string, candidates: string[], pkg: string): Promise<string> {
  for (const candidate of candidates) {
    if (await pathExists(join(tree, candidate))) return candidate;
  }
  throw new ImageBuildError(
    `${pkg} has none of ${candidates.join(', ')}`,
    'This kernel package has an unexpected layout.',
  );
}

/** `apt-cache depends linux-image-cloud-amd64` → `linux-image-6.1.0-NN-cloud-amd64`. */
async function resolveKernelPackage(signal: AbortSignal | undefined): Promise<string> {
  const { stdout } = await aptCache(['depends', KERNEL_META_PACKAGE], signal);
  const match = /^\s*\|?Depends:\s*(linux-image-[^\s<>]+)\s*$/m.exec(stdout);
  if (!match) {
    throw new ImageBuildError(`apt does not know which kernel ${KERNEL_META_PACKAGE} stands for`, APT_UPDATE_REMEDY);
  }
  return match[1]!;
}

/** The version `apt-get download` will fetch. */
async function candidateVersion(pkg: string, signal: AbortSignal | undefined): Promise<string> {
  const { stdout } = await aptCache(['show', '--no-all-versions', pkg], signal);
  const match = /^Version:\s*(\S+)\s*$/m.exec(stdout);
  if (!match) throw new ImageBuildError(`apt shows no version of ${pkg}`, APT_UPDATE_REMEDY);
  return match[1]!;
}

async function aptCache(args: string[], signal: AbortSignal | undefined): Promise<{ stdout: string }> {
  try {
    return await runHostCommand('apt-cache', args, { signal, install: APT_INSTALL });
  } catch (error) {
    if (error instanceof ImageBuildError && /No packages found|Unable to locate/.test(error.message)) {
      throw new ImageBuildError(`apt has no package lists for ${KERNEL_META_PACKAGE}`, APT_UPDATE_REMEDY, {
        cause: error,
      });
    }
    throw error;
  }
}

/** Compares strings with digit runs as numbers ("…-56…" after "…-9…"); Intl.Collator costs ~9 ms to create. */
function compareNatural(a: string, b: string): number {
  const pa = a.split(/(\d+)/);
  const pb = b.split(/(\d+)/);
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i]!;
    const y = pb[i]!;
    const diff = i % 2 === 1 ? Number(x) - Number(y) : x < y ? -1 : x > y ? 1 : 0;
    if (diff !== 0) return diff;
  }
  return pa.length - pb.length;
}

function kernelInfo(kernelsDir: string, marker: KernelMarker): KernelInfo {
  const id = `${marker.package}_${marker.packageVersion}`;
  const root = join(kernelsDir, id);
  return {
    id,
    version: marker.version,
    vmlinuz: join(root, marker.vmlinuz),
    modulesDir: join(root, marker.modulesDir),
  };
}
