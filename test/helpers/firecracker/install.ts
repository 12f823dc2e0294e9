/** Installs the fake `firecracker` and `jailer` as executables, and reads what the fake recorded. */
import { readFileSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const FAKE_FIRECRACKER = fileURLToPath(new URL('./fake-firecracker.js', import.meta.url));
/** The bash script is not compiled: it lives in the source tree (this file runs from dist/test/helpers/firecracker/). */
const FAKE_JAILER = fileURLToPath(new URL('../../../../test/helpers/firecracker/fake-jailer.sh', import.meta.url));

export interface FakeFirecrackerOptions {
  /** The jitvm agent built for this host (dev mode): the guest's PID 1, reached over hybrid vsock. */
  readonly agent?: string;
  /** A file that gets one JSON line per API request (see readRecordedRequests). */
  readonly record?: string;
  /** What `--version` and `GET /version` say; default the vendored swagger's version. */
  readonly version?: string;
  /** The guest ignores SendCtrlAltDel, so only a kill stops it. */
  readonly ignoreCtrlAltDel?: boolean;
}

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

async function writeScript(path: string, lines: string[]): Promise<void> {
  await writeFile(path, `${lines.join('\n')}\n`);
  await chmod(path, 0o755);
}

/**
 * Writes `dir/firecracker` and `dir/jailer`. The settings are baked into the scripts (the jailer clears the
 * environment, as the real one does), and node is named by absolute path for the same reason.
 */
export async function installFakeFirecracker(
  dir: string,
  options: FakeFirecrackerOptions = {},
): Promise<{ firecracker: string; jailer: string }> {
  const env = {
    FAKE_FIRECRACKER_AGENT: options.agent,
    FAKE_FIRECRACKER_RECORD: options.record,
    FAKE_FIRECRACKER_VERSION: options.version,
    FAKE_FIRECRACKER_IGNORE_CTRL_ALT_DEL: options.ignoreCtrlAltDel ? '1' : undefined,
  };
  const exports = Object.entries(env)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([name, value]) => `export ${name}=${shellQuote(value)}`);
  const firecracker = join(dir, 'firecracker');
  const jailer = join(dir, 'jailer');
  await writeScript(firecracker, [
    '#!/bin/sh',
    ...exports,
    `exec ${shellQuote(process.execPath)} ${shellQuote(FAKE_FIRECRACKER)} "$@"`,
  ]);
  const version = options.version ? [`export FAKE_FIRECRACKER_VERSION=${shellQuote(options.version)}`] : [];
  await writeScript(jailer, ['#!/bin/sh', ...version, `exec bash ${shellQuote(FAKE_JAILER)} "$@"`]);
  return { firecracker, jailer };
}

const RecordedRequestSchema = z.object({
  method: z.string(),
  path: z.string(),
  /** The parsed JSON body, the raw text when it was not JSON, null when there was none. */
  body: z.unknown(),
  status: z.number().int(),
  fault_message: z.string().optional(),
});
export type RecordedRequest = z.infer<typeof RecordedRequestSchema>;

/** The requests the fake answered, in order; none when the file does not exist yet. */
export function readRecordedRequests(path: string): RecordedRequest[] {
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
    .map((line) => RecordedRequestSchema.parse(JSON.parse(line)));
}
