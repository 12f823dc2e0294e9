/** Installs the fake `firecracker` and `jailer` as executables, and reads what the fake recorded. */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { readJsonLines, writeLaunchScript } from '../fake-vmm-script.js';

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
  const firecracker = join(dir, 'firecracker');
  const jailer = join(dir, 'jailer');
  await writeLaunchScript(firecracker, env, [process.execPath, FAKE_FIRECRACKER]);
  await writeLaunchScript(jailer, { FAKE_FIRECRACKER_VERSION: options.version }, ['bash', FAKE_JAILER]);
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
  return readJsonLines(path, RecordedRequestSchema);
}
