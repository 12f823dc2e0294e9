/**
 * An image tarball (OCI image layout or `docker save`) unpacked into a directory, and safe reads from it: every
 * reference the archive makes to its own files is checked to stay inside it, every blob against its digest.
 */

import { createHash } from 'node:crypto';
import { mkdir, readFile, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { extract } from 'tar';
import type { z } from 'zod';

import { describeZodError } from '../../core/config.js';
import { InvalidArgumentError, JitvmError } from '../../core/errors.js';
import { parseJsonOrUndefined } from '../../core/json.js';
import { isWithin, pathComponents } from './entry-path.js';
import { lstatIfExists } from './lstat-if-exists.js';
import type { Descriptor } from './oci-schema.js';

/** Manifests, indexes and configs are small; a bigger one is not read into memory. */
const MAX_JSON_BYTES = 4 * 1024 * 1024;

/** Entry types of the outer archive worth unpacking: files, directories and (older `docker save`) symlinks. */
const UNPACKED_TYPES = new Set(['File', 'OldFile', 'Directory', 'SymbolicLink']);

const SHA256_DIGEST = /^sha256:([0-9a-f]{64})$/;

/** The `sha256:…` digest of `bytes`. */
export function sha256Digest(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** An unpacked image archive; `name` (the tarball's path) names it in messages. */
export class UnpackedArchive {
  private constructor(
    readonly name: string,
    private readonly dir: string,
  ) {}

  /**
   * Unpacks the tarball at `tarPath` into the new directory `dir`: its files, directories and symlinks, nothing
   * else. node-tar refuses (and so does this, with InvalidArgumentError) entries with absolute paths or `..`, and
   * never writes through a symlink.
   */
  static async unpack(tarPath: string, dir: string): Promise<UnpackedArchive> {
    if (!(await stat(tarPath).catch(() => undefined))?.isFile()) {
      throw new InvalidArgumentError(`${tarPath} is not a file: give an image tarball (docker save, or an OCI layout)`);
    }
    await mkdir(dir);
    await extract({
      file: tarPath,
      cwd: dir,
      strict: true,
      preserveOwner: false,
      filter: (_path, entry) => 'type' in entry && UNPACKED_TYPES.has(entry.type),
    }).catch((error: unknown) => {
      if (!(error as { tarCode?: string }).tarCode) throw error;
      throw new InvalidArgumentError(`${tarPath} is not a usable image tarball: ${(error as Error).message}`, {
        cause: error,
      });
    });
    return new UnpackedArchive(tarPath, await realpath(dir));
  }

  /** Whether the archive has a file at `reference`. */
  async has(reference: string): Promise<boolean> {
    return (await lstatIfExists(join(this.dir, ...pathComponents(reference, this.name)))) !== undefined;
  }

  /**
   * The host path of the regular file `reference` names, symlinks followed. Refuses (InvalidArgumentError) a
   * reference that climbs out of the archive, by its path or its symlinks, and one to a missing or special file.
   */
  async file(reference: string): Promise<string> {
    const path = await realpath(join(this.dir, ...pathComponents(reference, this.name))).catch(() => undefined);
    if (path !== undefined && !isWithin(this.dir, path)) {
      throw new InvalidArgumentError(`${this.name} refers to ${reference}, a symlink that leads out of the archive`);
    }
    if (path === undefined || !(await stat(path)).isFile()) {
      throw new InvalidArgumentError(`${this.name} refers to ${reference}, which is not a file in it`);
    }
    return path;
  }

  /**
   * The host path of the blob `descriptor` names (`blobs/sha256/<hex>`), checked to be a file of its size.
   * Refuses a digest of another algorithm (`unsupported`) or a missing or wrong-sized blob (InvalidArgumentError).
   */
  async blob(descriptor: Descriptor): Promise<string> {
    const hex = SHA256_DIGEST.exec(descriptor.digest)?.[1];
    if (hex === undefined) {
      throw new JitvmError(
        'unsupported',
        `${this.name} names the blob ${descriptor.digest}; jitvm verifies sha256 digests only`,
      );
    }
    const path = await this.file(`blobs/sha256/${hex}`);
    const { size } = await stat(path);
    if (size !== descriptor.size) {
      throw new InvalidArgumentError(
        `${this.name}: the blob ${descriptor.digest} is ${size} bytes, not the ${descriptor.size} its manifest says; ` +
          'the archive is corrupt: export it again',
      );
    }
    return path;
  }

  /**
   * Reads the JSON file `reference` (at most 4 MiB) and checks it against `schema`; with `digest`, the bytes must
   * hash to it. Refuses with InvalidArgumentError naming what is wrong.
   */
  async json<S extends z.ZodType>(reference: string, schema: S, digest?: string): Promise<z.output<S>> {
    const path = await this.file(reference);
    if ((await stat(path)).size > MAX_JSON_BYTES) {
      throw new InvalidArgumentError(
        `${this.name}: ${reference} is over ${MAX_JSON_BYTES} bytes, too big for JSON metadata`,
      );
    }
    const bytes = await readFile(path);
    if (digest !== undefined && sha256Digest(bytes) !== digest) {
      throw new InvalidArgumentError(
        `${this.name}: ${reference} does not match its digest ${digest}; the archive is corrupt: export it again`,
      );
    }
    const parsed = schema.safeParse(parseJsonOrUndefined(bytes.toString('utf8')));
    if (!parsed.success) {
      throw new InvalidArgumentError(
        `${this.name}: ${reference} is not what it should be (${describeZodError(parsed.error)})`,
      );
    }
    return parsed.data;
  }

  /** The blob `descriptor` names, read as JSON as by `json` and verified against its digest. */
  async blobJson<S extends z.ZodType>(descriptor: Descriptor, schema: S): Promise<z.output<S>> {
    await this.blob(descriptor);
    return this.json(`blobs/sha256/${descriptor.digest.slice('sha256:'.length)}`, schema, descriptor.digest);
  }
}
