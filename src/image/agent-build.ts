/** Compiles the guest agent (guest/*.c) into a static executable that runs as the guest's /init. */

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ImageBuildError } from './errors.js';
import { runHostCommand } from './host-command.js';

/** `<repo>/guest`, found from this file's place in dist/src/image/. */
export const AGENT_SOURCE_DIR = fileURLToPath(new URL('../../../guest/', import.meta.url));

const GCC_INSTALL = 'apt-get install gcc libc6-dev';

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

/** Compiles every `*.c` of `sourceDir` with `gcc -static` into `outFile`. Warnings are errors. */
export async function buildAgent(sourceDir: string, outFile: string, signal?: AbortSignal): Promise<void> {
  const cFiles = (await listAgentSources(sourceDir)).filter((f) => f.endsWith('.c'));
  const args = ['-static', '-Os', '-std=gnu11', '-Wall', '-Wextra', '-Werror', '-o', outFile, ...cFiles];
  await runHostCommand('gcc', args, {
    signal,
    install: GCC_INSTALL,
    remedy: `The guest agent did not compile. If headers or libc.a are missing: ${GCC_INSTALL}`,
  });
}
