/**
 * Debian packages fetched without installing them: `apt-get download` + `dpkg-deb -x` into a cache directory,
 * `<dir>/<id>/` with a marker file written last, so a half-extracted package is never taken for a finished one.
 * Packages of another architecture are asked for as `name:arch`.
 */

import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { z } from 'zod';

import type { Arch } from '../core/config.js';
import { ImageBuildError } from './errors.js';
import { publishDir, readJsonFile, withTempDir } from './fs-util.js';
import { foreignArchRemedy, isHostArch, qualifiedPackage } from './guest-arch.js';
import { runHostCommand } from './host-command.js';

const APT_INSTALL = 'apt-get install apt (jitvm fetches guest packages from the Debian archive with apt)';
/** What to do when apt's package lists are missing or stale. */
export const APT_UPDATE_REMEDY = 'Refresh the package lists with `sudo apt-get update`, then try again.';

/** `apt-cache args…`; "no such package" becomes an ImageBuildError saying how to let apt know the package. */
export async function aptCache(args: string[], arch: Arch, signal: AbortSignal | undefined): Promise<string> {
  try {
    return (await runHostCommand('apt-cache', args, { signal, install: APT_INSTALL })).stdout;
  } catch (error) {
    if (error instanceof ImageBuildError && /No packages found|Unable to locate/.test(error.message)) {
      const remedy = isHostArch(arch) ? APT_UPDATE_REMEDY : foreignArchRemedy(arch);
      throw new ImageBuildError(`apt has no package lists for ${args.at(-1)}`, remedy, { cause: error });
    }
    throw error;
  }
}

/** The version `apt-get download name:arch` would fetch. */
export async function candidateVersion(name: string, arch: Arch, signal: AbortSignal | undefined): Promise<string> {
  const stdout = await aptCache(['show', '--no-all-versions', qualifiedPackage(name, arch)], arch, signal);
  const match = /^Version:\s*(\S+)\s*$/m.exec(stdout);
  if (!match) throw new ImageBuildError(`apt shows no version of ${name}`, APT_UPDATE_REMEDY);
  return match[1]!;
}

/** A package to fetch into the cache, and how to describe what it holds once extracted. */
export interface PackageFetch<M> {
  /** Parent directory of the cache entry. */
  readonly dir: string;
  /** The entry's directory name inside `dir`; it must tell versions and architectures apart. */
  readonly entry: string;
  readonly name: string;
  readonly version: string;
  readonly arch: Arch;
  /** File name of the marker, e.g. `kernel.json`. */
  readonly markerFile: string;
  readonly markerSchema: z.ZodType<M>;
  /** Inspects the extracted tree and returns the marker to write (throw to reject the package). */
  readonly describe: (tree: string) => Promise<M>;
  readonly signal: AbortSignal | undefined;
}

/**
 * Downloads and extracts `name:arch` at `version` unless it is already in the cache; returns its directory and
 * marker. Concurrent fetches of the same package are safe: the first to publish wins and the others use its copy.
 */
export async function fetchPackage<M>(fetch: PackageFetch<M>): Promise<{ root: string; marker: M }> {
  const target = join(fetch.dir, fetch.entry);
  const existing = await readJsonFile(join(target, fetch.markerFile), fetch.markerSchema);
  if (existing) return { root: target, marker: existing };
  await mkdir(fetch.dir, { recursive: true });
  return withTempDir(fetch.dir, async (tmp) => {
    const tree = join(tmp, 'tree');
    await downloadAndExtract(fetch.name, fetch.version, fetch.arch, tmp, tree, fetch.signal);
    const marker = await fetch.describe(tree);
    await writeFile(join(tree, fetch.markerFile), JSON.stringify(marker, null, 2) + '\n');
    const isComplete = async (dir: string): Promise<boolean> =>
      (await readJsonFile(join(dir, fetch.markerFile), fetch.markerSchema)) !== undefined;
    await publishDir(tree, target, isComplete);
    return { root: target, marker };
  });
}

async function downloadAndExtract(
  name: string,
  version: string,
  arch: Arch,
  tmp: string,
  tree: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  const download = join(tmp, 'download');
  await mkdir(download);
  await runHostCommand('apt-get', ['download', `${qualifiedPackage(name, arch)}=${version}`], {
    cwd: download,
    signal,
    install: APT_INSTALL,
    remedy: isHostArch(arch) ? APT_UPDATE_REMEDY : foreignArchRemedy(arch),
  });
  const debs = (await readdir(download)).filter((f) => f.endsWith('.deb'));
  if (debs.length !== 1) {
    throw new ImageBuildError(`apt-get download ${name} produced ${debs.length} .deb files`, APT_UPDATE_REMEDY);
  }
  await runHostCommand('dpkg-deb', ['-x', join(download, debs[0]!), tree], { signal, install: 'apt-get install dpkg' });
}

/** Compares strings with digit runs as numbers ("…-56…" after "…-9…"); Intl.Collator costs ~9 ms to create. */
export function compareNatural(a: string, b: string): number {
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
