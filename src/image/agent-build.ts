/** Compiles the guest agent (guest/*.c) into a static executable that runs as the guest's /init. */

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { type Arch, hostArch } from '../core/config.js';
import { ImageBuildError } from './errors.js';
import { guestArchFacts, isHostArch } from './guest-arch.js';
import { runHostCommand } from './host-command.js';

/** `<repo>/guest`, found from this file's place in dist/src/image/. */
export const AGENT_SOURCE_DIR = fileURLToPath(new URL('../../../guest/', import.meta.url));

const GCC_INSTALL = 'apt-get install gcc libc6-dev';

/** The C compiler for `arch` guests and how to install it: the host's gcc, or Debian's cross compiler. */
function compilerFor(arch: Arch): { program: string; install: string } {
  if (isHostArch(arch)) return { program: 'gcc', install: GCC_INSTALL };
  const facts = guestArchFacts(arch);
  return { program: `${facts.gnuTriplet}-gcc`, install: `apt-get install ${facts.crossPackages}` };
}

/** The agent's source files (`*.c` and `*.h`) in `sourceDir`, as absolute paths sorted by name. */
export async function listAgentSources(sourceDir: string): Promise<string[]> {
  const names = await readdir(sourceDir).catch((cause: unknown) => {
    throw new ImageBuildError(`cannot read the agent sources in ${sourceDir}`, 'Reinstall jitvm.', { cause });
  });
  const sources = names.filter((n) => n.endsWith('.c') || n.endsWith('.h')).sort();
  if (!sources.some((n) => n.endsWith('.c'))) {
    throw new ImageBuildError(`no agent sources (*.c) in ${sourceDir}`, 'Reinstall jitvm.');
  }
  return sources.map((n) => join(sourceDir, n));
}

/** Options of buildAgent. */
export interface BuildAgentOptions {
  /** The architecture to build for (default: the host's); another one needs Debian's cross compiler. */
  readonly arch?: Arch;
  readonly signal?: AbortSignal;
}

/** Compiles every `*.c` of `sourceDir` with `gcc -static` into `outFile`. Warnings are errors. */
export async function buildAgent(sourceDir: string, outFile: string, options: BuildAgentOptions = {}): Promise<void> {
  const compiler = compilerFor(options.arch ?? hostArch() ?? 'x86_64');
  const cFiles = (await listAgentSources(sourceDir)).filter((f) => f.endsWith('.c'));
  const args = ['-static', '-Os', '-std=gnu11', '-Wall', '-Wextra', '-Werror', '-o', outFile, ...cFiles];
  await runHostCommand(compiler.program, args, {
    signal: options.signal,
    install: compiler.install,
    remedy: `The guest agent did not compile. If headers or libc.a are missing: ${compiler.install}`,
  });
}
