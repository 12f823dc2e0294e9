/**
 * The sidecar `<image>.json` next to a rootfs image built from a container image: its runtime config (Env,
 * WorkingDir, Entrypoint, Cmd, User) and where it came from, for the SDK to apply to commands run in it.
 */

import { z } from 'zod';

import { ARCHES, describeZodError } from '../../core/config.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { parseJsonOrUndefined } from '../../core/json.js';
import { readTextIfExists } from '../fs-util.js';

/** Bumped when the sidecar's shape changes; readers refuse other versions. */
export const ROOTFS_CONFIG_VERSION = 1;

/** The sidecar's shape: strict, so a sidecar written by a newer jitvm is refused rather than half read. */
export const RootfsConfigSchema = z
  .object({
    version: z.literal(ROOTFS_CONFIG_VERSION),
    /** The archive the image was built from and what identifies the image in it. */
    source: z
      .object({
        format: z.enum(['oci-layout', 'docker-archive']),
        archive: z.string(),
        /** `sha256:…` of the image manifest (OCI layouts only). */
        manifestDigest: z.string().optional(),
        /** `sha256:…` of the image config: the image id. */
        configDigest: z.string().optional(),
        /** Names the archive gives the image (`debian:bookworm`). */
        tags: z.array(z.string()),
      })
      .strict(),
    arch: z.enum(ARCHES),
    /** The image's environment; later `KEY=` entries win, as in a container runtime. */
    env: z.record(z.string(), z.string()),
    workingDir: z.string().optional(),
    entrypoint: z.array(z.string()).optional(),
    cmd: z.array(z.string()).optional(),
    /** `user`, `uid`, `user:group` or `uid:gid`, as the image gives it. */
    user: z.string().optional(),
  })
  .strict();
/** What a rootfs image's sidecar records. */
export type RootfsConfig = z.output<typeof RootfsConfigSchema>;

/** The sidecar path of the image at `imagePath`. */
export function rootfsConfigPath(imagePath: string): string {
  return `${imagePath}.json`;
}

/**
 * The config recorded next to the image at `imagePath`; undefined when it has none (an image built from a
 * directory). A sidecar that is not valid JSON of this version is refused with InvalidArgumentError.
 */
export async function readRootfsConfig(imagePath: string): Promise<RootfsConfig | undefined> {
  const path = rootfsConfigPath(imagePath);
  const text = await readTextIfExists(path);
  if (text === undefined) return undefined;
  const parsed = RootfsConfigSchema.safeParse(parseJsonOrUndefined(text));
  if (parsed.success) return parsed.data;
  throw new InvalidArgumentError(
    `${path} is not a jitvm rootfs config of version ${ROOTFS_CONFIG_VERSION} (${describeZodError(parsed.error)}); ` +
      'rebuild the image with `jitvm image build --from-oci`',
  );
}

/** `KEY=VALUE` strings as a record; entries without `=` are dropped and a later duplicate wins. */
export function envRecord(env: readonly string[]): Record<string, string> {
  const record: Record<string, string> = {};
  for (const item of env) {
    const equals = item.indexOf('=');
    if (equals > 0) record[item.slice(0, equals)] = item.slice(equals + 1);
  }
  return record;
}
