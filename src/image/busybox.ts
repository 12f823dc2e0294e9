/**
 * The guest's static busybox (Debian's busybox-static), which provides its shell and tools: the host's own for a
 * guest of the host's architecture, else the package of the guest's architecture fetched into the cache.
 */

import { readFile, readdir, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';

import { z } from 'zod';

import { ARCHES, type Arch } from '../core/config.js';
import { HostToolMissingError } from '../core/errors.js';
import { candidateVersion, compareNatural, fetchPackage } from './debian-package.js';
import { ElfFormatError, PT_INTERP, parseElf64 } from './elf.js';
import { ImageBuildError } from './errors.js';
import { readJsonFile } from './fs-util.js';
import { guestArchFacts, isHostArch } from './guest-arch.js';

/** A static busybox for the guest. */
export interface Busybox {
  path: string;
  /** Applet names (`sh`, `ls`, …), read from the binary's applet table. */
  applets: string[];
}

const HOST_CANDIDATES = ['/bin/busybox', '/usr/bin/busybox'];
const PACKAGE = 'busybox-static';
const INSTALL = `apt-get install ${PACKAGE}`;
const MARKER = 'busybox.json';
const markerSchema = z.object({ packageVersion: z.string(), arch: z.enum(ARCHES), path: z.string() });

/** Where busybox packages of other architectures are cached. */
export function packagesDir(cacheRoot: string): string {
  return join(cacheRoot, 'packages');
}

/**
 * The path and stat of the busybox for `arch` guests, without checking it: the host's own, or the newest one of
 * that architecture in the cache. Undefined when a foreign one has not been fetched yet; HostToolMissingError when
 * the host has none.
 */
export async function locateBusybox(
  arch: Arch,
  cacheRoot: string,
): Promise<{ path: string; stats: Stats } | undefined> {
  if (isHostArch(arch)) {
    for (const path of HOST_CANDIDATES) {
      const stats = await stat(path).catch(() => undefined);
      if (stats?.isFile()) return { path, stats };
    }
    throw new HostToolMissingError('busybox', INSTALL);
  }
  const dir = packagesDir(cacheRoot);
  const entries = (await readdir(dir).catch(() => [])).filter((name) => name.startsWith(`${PACKAGE}_`));
  for (const entry of entries.sort((a, b) => compareNatural(b, a))) {
    const marker = await readJsonFile(join(dir, entry, MARKER), markerSchema);
    if (marker?.arch !== arch) continue;
    const path = join(dir, entry, marker.path);
    return { path, stats: await stat(path) };
  }
  return undefined;
}

/** Downloads Debian's busybox-static for `arch` into the cache (a no-op when that version is there already). */
export async function fetchBusybox(arch: Arch, cacheRoot: string, signal?: AbortSignal): Promise<void> {
  const version = await candidateVersion(PACKAGE, arch, signal);
  await fetchPackage({
    dir: packagesDir(cacheRoot),
    entry: `${PACKAGE}_${version.replaceAll(':', '%3a')}_${guestArchFacts(arch).debianArch}`,
    name: PACKAGE,
    version,
    arch,
    markerFile: MARKER,
    markerSchema,
    signal,
    describe: async () => ({ packageVersion: version, arch, path: 'bin/busybox' }),
  });
}

/** Checks that the busybox at `path` is a static executable for `arch` and reads its applet names. */
export async function inspectBusybox(path: string, arch: Arch): Promise<Busybox> {
  const binary = await readFile(path);
  let elf;
  try {
    elf = parseElf64(binary);
  } catch (cause) {
    if (!(cause instanceof ElfFormatError)) throw cause;
    throw new ImageBuildError(`${path} is not a usable executable: ${cause.message}`, `Install it with: ${INSTALL}`, {
      cause,
    });
  }
  if (elf.machine !== guestArchFacts(arch).elfMachine) {
    throw new ImageBuildError(`${path} is not an ${arch} executable`, `Install the right package: ${INSTALL}`);
  }
  if (elf.programHeaderTypes.includes(PT_INTERP)) {
    throw new ImageBuildError(`${path} is dynamically linked and cannot run in the guest`, `Install: ${INSTALL}`);
  }
  return { path, applets: appletNames(binary, path) };
}

const APPLET_NAME = /^[A-Za-z0-9._[\]-]+$/;

/**
 * Busybox keeps its applet names as one sorted, NUL-separated string starting with `[` and `[[` (applet_tables.h).
 * Reading it from the file works for any architecture, where running `busybox --list` works for the host's only.
 */
export function appletNames(binary: Buffer, path: string): string[] {
  const start = binary.indexOf('\0[\0[[\0');
  const names: string[] = [];
  for (let at = start + 1; start >= 0;) {
    const end = binary.indexOf(0, at);
    const name = binary.toString('latin1', at, end);
    if (end < 0 || !APPLET_NAME.test(name)) break;
    names.push(name);
    at = end + 1;
  }
  const sorted = names.every((name, i) => i === 0 || names[i - 1]! < name);
  if (names.length < 10 || !sorted) {
    throw new ImageBuildError(`cannot find the applet table in ${path}`, `Use Debian's busybox: ${INSTALL}`);
  }
  return names;
}
