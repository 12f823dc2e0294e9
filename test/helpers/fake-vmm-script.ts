/** What the fake VMM installers share: a launch script with settings baked in, and the JSON-lines record a fake writes. */
import { readFileSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import type { z } from 'zod';

/** `value` as one single-quoted shell word. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * Writes an executable `#!/bin/sh` script at `path` that exports the defined entries of `env` and execs `command`
 * with the script's arguments. Settings are baked in rather than inherited because a jailer clears the environment.
 */
export async function writeLaunchScript(
  path: string,
  env: Record<string, string | undefined>,
  command: readonly string[],
): Promise<void> {
  const exports = Object.entries(env)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([name, value]) => `export ${name}=${shellQuote(value)}`);
  const lines = ['#!/bin/sh', ...exports, `exec ${command.map(shellQuote).join(' ')} "$@"`];
  await writeFile(path, `${lines.join('\n')}\n`);
  await chmod(path, 0o755);
}

/** The records a fake wrote to `path`, one JSON value per line, each checked with `schema`; none before the file exists. */
export function readJsonLines<T>(path: string, schema: z.ZodType<T>): T[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => schema.parse(JSON.parse(line)));
}
