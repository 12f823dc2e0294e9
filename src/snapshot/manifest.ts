/**
 * A snapshot's `manifest.json`, written last: what wrote the snapshot (jitvm, backend, VMM version), the VM it
 * restores into (guest arch, full config), and every file with its role, size and sha256. `manifestSha256`, over the
 * canonical JSON of every other field, catches an edited field. Read with a size cap and parsed with zod; a format
 * version this jitvm does not know is refused.
 */

import { createHash } from 'node:crypto';
import { constants, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { z } from 'zod';

import { ARCHES, VmConfigSchema, describeZodError, parseWith } from '../core/config.js';
import { parseJsonOrUndefined } from '../core/json.js';
import { SnapshotRejectedError, corruptSnapshot } from './errors.js';

/**
 * Flags for opening a snapshot file to read: O_NOFOLLOW refuses a link, O_NONBLOCK keeps a planted FIFO from blocking
 * the open (both are absent, so 0, on Windows).
 */
export const READ_NO_FOLLOW = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

/** The manifest's file name inside a snapshot directory. */
export const MANIFEST_FILE = 'manifest.json';
/** The `format` field: marks a directory as a jitvm snapshot. */
export const SNAPSHOT_FORMAT = 'jitvm-snapshot';
/** Bumped whenever the layout or the manifest changes incompatibly; other versions are refused. */
export const SNAPSHOT_FORMAT_VERSION = 1;
/** A manifest larger than this is refused unread (a real one is a few KiB). */
export const MAX_MANIFEST_BYTES = 256 * 1024;
/** A snapshot name, which is also its directory's name: `[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`. */
export const SNAPSHOT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** What a file of a snapshot holds: device and vCPU state, guest memory, or anything else a backend needs. */
export const FILE_ROLES = ['state', 'memory', 'other'] as const;
/** One of FILE_ROLES. */
export type FileRole = (typeof FILE_ROLES)[number];

/** A file name inside a snapshot directory: no path separators, no leading dot, never the manifest's own name. */
export const SnapshotFileNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'a snapshot file name is 1-128 letters, digits, `_`, `.` or `-`')
  .refine((name) => name !== MANIFEST_FILE, `a snapshot file may not be named ${MANIFEST_FILE}`);

const SnapshotFileSchema = z
  .object({
    name: SnapshotFileNameSchema,
    role: z.enum(FILE_ROLES),
    size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 is 64 lowercase hex digits'),
  })
  .strict();
/** One file of a snapshot, as its manifest records it. */
export type SnapshotFile = z.output<typeof SnapshotFileSchema>;

const exactlyOne = (role: FileRole) => (files: readonly SnapshotFile[]) =>
  files.filter((file) => file.role === role).length === 1;

/** The manifest as stored; `config` is re-parsed with VmConfigSchema. */
export const SnapshotManifestSchema = z
  .object({
    format: z.literal(SNAPSHOT_FORMAT),
    formatVersion: z.literal(SNAPSHOT_FORMAT_VERSION),
    name: z.string().regex(SNAPSHOT_NAME),
    jitvmVersion: z.string().min(1).max(64),
    createdAt: z.iso.datetime(),
    backend: z.string().min(1).max(64),
    vmmVersion: z.string().min(1).max(128).nullable(),
    arch: z.enum(ARCHES),
    config: VmConfigSchema,
    files: z
      .array(SnapshotFileSchema)
      .min(2)
      .max(64)
      .refine((files) => new Set(files.map((file) => file.name)).size === files.length, 'file names must be unique')
      .refine(exactlyOne('state'), 'exactly one file must have the role state')
      .refine(exactlyOne('memory'), 'exactly one file must have the role memory'),
    manifestSha256: z.string().regex(/^[0-9a-f]{64}$/),
  })
  .strict()
  .refine((manifest) => manifest.arch === manifest.config.arch, {
    message: 'differs from config.arch',
    path: ['arch'],
  });
/** A validated manifest. */
export type SnapshotManifest = z.output<typeof SnapshotManifestSchema>;
/** The fields the store fills in; `format`, `formatVersion` and `manifestSha256` are added when it is written. */
export type ManifestBody = Omit<SnapshotManifest, 'format' | 'formatVersion' | 'manifestSha256'>;

/** JSON with object keys sorted at every level: one text per value, whatever order the keys were written in. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    const fields = Object.keys(record)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`);
    return `{${fields.join(',')}}`;
  }
  return JSON.stringify(value);
}

function checksum(fields: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson(fields)).digest('hex');
}

/** The text of `manifest.json` for `body`: pretty JSON, with the format fields and the manifest's own checksum. */
export function serializeManifest(body: ManifestBody): string {
  // Through JSON first, so the checksum covers exactly what a reader parses (undefined fields dropped).
  const fields = JSON.parse(
    JSON.stringify({ format: SNAPSHOT_FORMAT, formatVersion: SNAPSHOT_FORMAT_VERSION, ...body }),
  ) as Record<string, unknown>;
  return `${JSON.stringify({ ...fields, manifestSha256: checksum(fields) }, null, 2)}\n`;
}

/** Validates `body`, writes it as `dir/manifest.json` (read-only, never over an existing one) and returns it parsed. */
export async function writeManifest(dir: string, body: ManifestBody): Promise<SnapshotManifest> {
  const text = serializeManifest(body);
  const manifest = parseWith(SnapshotManifestSchema, JSON.parse(text), `the manifest of snapshot "${body.name}"`);
  await writeFile(join(dir, MANIFEST_FILE), text, { mode: 0o400, flag: 'wx' });
  return manifest;
}

/**
 * Parses the manifest text of snapshot `name`. Refuses (SnapshotRejectedError) another format, a format version this
 * jitvm does not read, a checksum that does not match, and any field zod rejects.
 */
export function parseManifest(name: string, text: string): SnapshotManifest {
  const raw = parseJsonOrUndefined(text);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw corruptSnapshot(name, `has a ${MANIFEST_FILE} that is not a JSON object`);
  }
  const { manifestSha256, ...fields } = raw as Record<string, unknown>;
  if (fields.format !== SNAPSHOT_FORMAT) throw corruptSnapshot(name, `has a ${MANIFEST_FILE} of another format`);
  if (fields.formatVersion !== SNAPSHOT_FORMAT_VERSION) {
    const writer = typeof fields.jitvmVersion === 'string' ? ` by jitvm ${fields.jitvmVersion.slice(0, 64)}` : '';
    throw new SnapshotRejectedError(
      name,
      'incompatible',
      `snapshot "${name}" was written${writer} in format version ${JSON.stringify(fields.formatVersion)}; this ` +
        `jitvm reads version ${SNAPSHOT_FORMAT_VERSION}: restore it with the jitvm that wrote it, or take it again`,
    );
  }
  if (manifestSha256 !== checksum(fields)) {
    throw corruptSnapshot(
      name,
      `has a ${MANIFEST_FILE} whose manifestSha256 does not match its fields (it was edited)`,
    );
  }
  const parsed = SnapshotManifestSchema.safeParse(raw);
  if (!parsed.success) {
    throw corruptSnapshot(name, `has an invalid ${MANIFEST_FILE} (${describeZodError(parsed.error)})`);
  }
  return parsed.data;
}

/**
 * Reads and parses `dir/manifest.json` of snapshot `name`, refusing a link, a non-file, one over the size cap, and
 * one that names another snapshot.
 */
export async function readManifest(name: string, dir: string): Promise<SnapshotManifest> {
  const handle = await open(join(dir, MANIFEST_FILE), READ_NO_FOLLOW).catch((error: unknown) => {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw corruptSnapshot(name, `has no readable ${MANIFEST_FILE} (${code})`, { cause: error });
  });
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw corruptSnapshot(name, `has a ${MANIFEST_FILE} that is not a regular file`);
    const buffer = Buffer.alloc(MAX_MANIFEST_BYTES + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead > MAX_MANIFEST_BYTES) {
      throw corruptSnapshot(name, `has a ${MANIFEST_FILE} over the ${MAX_MANIFEST_BYTES}-byte cap`);
    }
    const manifest = parseManifest(name, buffer.subarray(0, bytesRead).toString('utf8'));
    if (manifest.name !== name) {
      throw corruptSnapshot(name, `holds the manifest of snapshot "${manifest.name}" (its directory was renamed)`);
    }
    return manifest;
  } finally {
    await handle.close();
  }
}
