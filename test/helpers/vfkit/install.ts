/** Installs the fake `vfkit` (fake-vfkit.ts) as an executable, and reads what it recorded. */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { VfkitOptions } from '../../../src/backends/vz/index.js';
import { readJsonLines, writeLaunchScript } from '../fake-vmm-script.js';

const FAKE_VFKIT = fileURLToPath(new URL('./fake-vfkit.js', import.meta.url));

export interface FakeVfkitOptions {
  /** The jitvm agent built for this host (dev mode): the guest's PID 1, reached over vsock port 1024. */
  readonly agent?: string;
  /** A file that gets one JSON line for the command line and one per REST request (see readVfkitRecord). */
  readonly record?: string;
  /** What `--version` says after "vfkit version: " (default v0.6.1). */
  readonly version?: string;
  /** The Mac it pretends to be: `arm64` (checks for an uncompressed arm64 kernel) or `amd64`. */
  readonly goarch?: 'arm64' | 'amd64';
  /** The guest ignores a stop request (POST Stop), so only HardStop or a kill ends it. */
  readonly ignoreStop?: boolean;
  /** How long the guest takes to start its agent: until then vfkit's vsock dials are refused. */
  readonly bootMs?: number;
}

/** Writes `dir/vfkit`, a shell script with the settings baked in that execs the fake under this node. */
export async function installFakeVfkit(dir: string, options: FakeVfkitOptions = {}): Promise<string> {
  const env = {
    FAKE_VFKIT_AGENT: options.agent,
    FAKE_VFKIT_RECORD: options.record,
    FAKE_VFKIT_VERSION: options.version,
    FAKE_VFKIT_GOARCH: options.goarch,
    FAKE_VFKIT_IGNORE_STOP: options.ignoreStop ? '1' : undefined,
    FAKE_VFKIT_BOOT_MS: options.bootMs === undefined ? undefined : String(options.bootMs),
  };
  const path = join(dir, 'vfkit');
  await writeLaunchScript(path, env, [process.execPath, FAKE_VFKIT]);
  return path;
}

/**
 * The VfkitHypervisor options that make the fake usable: a Mac of the fake's architecture (the probe refuses any other
 * platform, so the fake is reachable only through these injected values).
 */
export function fakeMac(binary: string, goarch: 'arm64' | 'amd64' = process.arch === 'arm64' ? 'arm64' : 'amd64') {
  return {
    binary,
    platform: 'darwin',
    osRelease: '24.6.0', // macOS 15
    arch: goarch === 'arm64' ? 'arm64' : 'x64',
  } satisfies VfkitOptions;
}

const RecordSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('argv'), argv: z.array(z.string()) }),
  z
    .object({
      kind: z.literal('request'),
      method: z.string(),
      path: z.string(),
      body: z.string().nullable(),
      status: z.number().int(),
      error: z.string().optional(),
    })
    .loose(),
]);
export type VfkitRecord = z.infer<typeof RecordSchema>;

/** What the fake recorded, in order; nothing when the file does not exist yet. */
export function readVfkitRecord(path: string): VfkitRecord[] {
  return readJsonLines(path, RecordSchema);
}
