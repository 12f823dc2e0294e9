/**
 * The zod schemas of the snapshot and pool endpoints (`/v1/snapshots`, `/v1/sandboxes/:id/snapshots`, `/v1/pools`):
 * the daemon parses requests with them and the OpenAPI document is generated from them.
 */
import { z } from 'zod';
import { FILE_ROLES, SNAPSHOT_NAME } from '../snapshot/manifest.js';

const SnapshotName = z
  .string()
  .regex(SNAPSHOT_NAME, 'a snapshot name is 1-64 letters, digits, `_`, `.` or `-`, starting with a letter or digit');

/** `POST /v1/sandboxes/:id/snapshots`: the name to store it under, and what the sandbox does afterwards. */
export const CreateSnapshotBody = z
  .object({
    name: SnapshotName,
    then: z
      .enum(['resume', 'destroy'])
      .optional()
      .describe('resume (default): the sandbox runs on; destroy: it is destroyed once the snapshot is written'),
  })
  .strict();

export const SnapshotNameParams = z.object({ name: SnapshotName }).strict();

/** Query of `GET /v1/snapshots/:name`: check the files' sizes (default) or re-hash them all (reads the whole snapshot). */
export const InspectSnapshotQuery = z.object({ verify: z.enum(['size', 'full']).optional() }).strict();

/** A readable snapshot, from its manifest. */
export const SnapshotInfo = z.object({
  name: z.string(),
  bytes: z.number().int().describe("total size of the snapshot's files (memory, device state), from its manifest"),
  createdAt: z.string().describe('ISO 8601 time it was taken'),
  backend: z.string(),
  vmmVersion: z.string().nullable(),
  arch: z.string(),
  cpus: z.number().int(),
  memoryMiB: z.number().int(),
});
export type SnapshotInfo = z.infer<typeof SnapshotInfo>;

/** A snapshot directory whose manifest cannot be read: listed so it can be seen and removed. */
const UnreadableSnapshot = z.object({
  name: z.string(),
  bytes: z.number().int().describe('total size of the files in its directory'),
  createdAt: z.string().describe('ISO 8601 mtime of its directory'),
  problem: z.string().describe('why it cannot be used; remove it with DELETE /v1/snapshots/{name}'),
});

export const SnapshotList = z.object({ snapshots: z.array(z.union([SnapshotInfo, UnreadableSnapshot])) });

/** `GET /v1/snapshots/:name`: the summary, which jitvm wrote it, and every file with its recorded size and sha256. */
export const SnapshotDetail = SnapshotInfo.extend({
  jitvmVersion: z.string(),
  files: z.array(z.object({ name: z.string(), role: z.enum(FILE_ROLES), size: z.number().int(), sha256: z.string() })),
  verified: z.enum(['size', 'full']).describe('what was checked against the manifest: sizes, or sizes and sha256s'),
});

/** One warm pool of this host, from the status file its process keeps (what `jitvm pool` shows). */
const PoolStatus = z.object({
  id: z.string(),
  pid: z.number().int(),
  source: z.string().describe('what it starts sandboxes from'),
  startedAt: z.string(),
  updatedAt: z.string().describe('when its process last rewrote the status (every 500 ms while it runs)'),
  stats: z
    .record(z.string(), z.number())
    .describe(
      'its counters (`pool.stats()`): size, ready, starting, waiting, handedOut, hits, misses, hitRatio, started, ' +
        'refillErrors, retired, discarded, meanStartMs',
    ),
});

export const PoolList = z.object({ pools: z.array(PoolStatus) });
