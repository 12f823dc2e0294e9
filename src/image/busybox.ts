/** Finds the host's static busybox (Debian's busybox-static), which provides the guest's shell and tools. */

import { readFile, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';

import { HostToolMissingError } from '../core/errors.js';
import { ElfFormatError, PT_INTERP, parseElf64 } from './elf.js';
import { ImageBuildError } from './errors.js';
import { runHostCommand } from './host-command.js';

/** A static busybox on the host. */
export interface Busybox {
  path: string;
  /** Applet names (`sh`, `ls`, …) from `busybox --list`. */
  applets: string[];
}

const CANDIDATES = ['/bin/busybox', '/usr/bin/busybox'];
const INSTALL = 'apt-get install busybox-static';
const EM_X86_64 = 62;

/** The path and stat of the host's busybox, without checking it; throws HostToolMissingError when there is none. */
export async function locateBusybox(): Promise<{ path: string; stats: Stats }> {
  for (const path of CANDIDATES) {
    const stats = await stat(path).catch(() => undefined);
    if (stats?.isFile()) return { path, stats };
  }
  throw new HostToolMissingError('busybox', INSTALL);
}

/** Checks that the busybox at `path` is a static x86-64 executable and lists its applets. */
export async function inspectBusybox(path: string, signal?: AbortSignal): Promise<Busybox> {
  let elf;
  try {
    elf = parseElf64(await readFile(path));
  } catch (cause) {
    if (!(cause instanceof ElfFormatError)) throw cause;
    throw new ImageBuildError(`${path} is not a usable executable: ${cause.message}`, `Install it with: ${INSTALL}`, {
      cause,
    });
  }
  if (elf.machine !== EM_X86_64) {
    throw new ImageBuildError(`${path} is not an x86-64 executable`, `Install the amd64 package: ${INSTALL}`);
  }
  if (elf.programHeaderTypes.includes(PT_INTERP)) {
    throw new ImageBuildError(
      `${path} is dynamically linked and cannot run in the guest`,
      `Install it with: ${INSTALL}`,
    );
  }
  const { stdout } = await runHostCommand(path, ['--list'], { signal, install: INSTALL });
  const applets = stdout.split('\n').filter((name) => /^[A-Za-z0-9._[\]-]+$/.test(name));
  return { path, applets };
}
