/**
 * Debian's cloud kernel for each guest architecture, fetched without installing it (see debian-package.ts).
 * Each kernel lives in `<kernelsDir>/<package>_<packageVersion>/` with a `kernel.json` written last.
 */

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

import { z } from 'zod';

import { ARCHES, type Arch } from '../core/config.js';
import { APT_UPDATE_REMEDY, aptCache, candidateVersion, compareNatural, fetchPackage } from './debian-package.js';
import { ImageBuildError } from './errors.js';
import { pathExists, readJsonFile } from './fs-util.js';
import { guestArchFacts, qualifiedPackage } from './guest-arch.js';

/** A kernel extracted in the cache. */
export interface KernelInfo {
  /** Directory name in the cache, `<package>_<packageVersion>`: identifies the exact kernel build. */
  id: string;
  /** The kernel release, e.g. `6.1.0-56-cloud-amd64`. */
  version: string;
  arch: Arch;
  /** Path of the kernel: a bzImage on x86_64, an uncompressed `Image` on aarch64. */
  vmlinuz: string;
  /** Path of `lib/modules/<version>`. */
  modulesDir: string;
}

/** The Debian meta package that always depends on the current cloud kernel for `arch`. */
export function kernelMetaPackage(arch: Arch): string {
  return `linux-image-cloud-${guestArchFacts(arch).debianArch}`;
}

const KERNEL_MARKER = 'kernel.json';
const markerSchema = z.object({
  package: z.string(),
  packageVersion: z.string(),
  version: z.string(),
  /** Absent in kernels cached before aarch64 support: those are all x86_64. */
  arch: z.enum(ARCHES).default('x86_64'),
  /** Paths inside the extracted tree. */
  vmlinuz: z.string(),
  modulesDir: z.string(),
});
type KernelMarker = z.output<typeof markerSchema>;

/** The newest `arch` kernel already extracted in `kernelsDir`, found without calling apt; undefined if none. */
export async function findExtractedKernel(kernelsDir: string, arch: Arch): Promise<KernelInfo | undefined> {
  const names = await readdir(kernelsDir).catch(() => []);
  const candidates = names.filter((name) => !name.startsWith('.')).sort((a, b) => compareNatural(b, a));
  for (const name of candidates) {
    const marker = await readJsonFile(join(kernelsDir, name, KERNEL_MARKER), markerSchema);
    if (marker?.arch === arch) return kernelInfo(kernelsDir, marker);
  }
  return undefined;
}

/**
 * Resolves the package behind `linux-image-cloud-<arch>` with apt, then downloads and extracts it into `kernelsDir`
 * unless that exact package version is already there.
 */
export async function fetchDebianKernel(kernelsDir: string, arch: Arch, signal?: AbortSignal): Promise<KernelInfo> {
  const pkg = await resolveKernelPackage(arch, signal);
  const packageVersion = await candidateVersion(pkg, arch, signal);
  const version = pkg.replace(/^linux-image-/, '');
  const { marker } = await fetchPackage({
    dir: kernelsDir,
    entry: `${pkg}_${packageVersion}`,
    name: pkg,
    version: packageVersion,
    arch,
    markerFile: KERNEL_MARKER,
    markerSchema,
    signal,
    describe: async (tree): Promise<KernelMarker> => ({
      package: pkg,
      packageVersion,
      version,
      arch,
      vmlinuz: await findInTree(tree, [`boot/vmlinuz-${version}`], pkg),
      modulesDir: await findInTree(tree, [`lib/modules/${version}`, `usr/lib/modules/${version}`], pkg),
    }),
  });
  return kernelInfo(kernelsDir, marker);
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

/** `apt-cache depends linux-image-cloud-arm64:arm64` → `linux-image-6.1.0-NN-cloud-arm64`. */
async function resolveKernelPackage(arch: Arch, signal: AbortSignal | undefined): Promise<string> {
  const meta = kernelMetaPackage(arch);
  const stdout = await aptCache(['depends', qualifiedPackage(meta, arch)], arch, signal);
  const match = /^\s*\|?Depends:\s*(linux-image-[^\s<>:]+)(?::\S+)?\s*$/m.exec(stdout);
  if (!match) throw new ImageBuildError(`apt does not know which kernel ${meta} stands for`, APT_UPDATE_REMEDY);
  return match[1]!;
}

function kernelInfo(kernelsDir: string, marker: KernelMarker): KernelInfo {
  const id = `${marker.package}_${marker.packageVersion}`;
  const root = join(kernelsDir, id);
  return {
    id,
    version: marker.version,
    arch: marker.arch,
    vmlinuz: join(root, marker.vmlinuz),
    modulesDir: join(root, marker.modulesDir),
  };
}
