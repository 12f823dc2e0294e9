/**
 * A layer blob of an unpacked image archive, streamed as its uncompressed tar, and checked afterwards against the
 * digests the image gives for it: the blob's own (OCI manifest) and the uncompressed tar's (the config's diff_ids).
 */

import { type Hash, createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type Readable, Transform, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';

import { InvalidArgumentError, JitvmError } from '../../core/errors.js';
import type { Compression } from './oci-schema.js';
import { TarFormatError } from './tar-entries.js';

/** One layer of the image being built. */
export interface LayerBlob {
  /** The blob's file in the unpacked archive. */
  readonly path: string;
  /** Names the layer in messages: `layer 2/5 (sha256:…) of <archive>`. */
  readonly label: string;
  readonly compression: Compression;
  /** The media type the manifest gives (OCI layouts only). */
  readonly mediaType?: string;
  /** `sha256:…` of the blob, from the manifest (OCI layouts only; UnpackedArchive.blob has checked its size). */
  readonly digest?: string;
  /** `sha256:…` of the uncompressed tar, from the image config's `rootfs.diff_ids`. */
  readonly diffId?: string;
}

function hashing(hash: Hash): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
}

/** Refuses (`unsupported`) a layer jitvm cannot decompress: zstd, which Node 20's zlib lacks. */
export function assertDecompressible(layer: LayerBlob): void {
  if (layer.compression !== 'zstd') return;
  throw new JitvmError(
    'unsupported',
    `${layer.label} is zstd-compressed (${layer.mediaType ?? 'zstd magic bytes'}), which jitvm cannot unpack: ` +
      `Node.js ${process.versions.node} has no zstd decompressor. Convert the image to gzip layers first, e.g. ` +
      '`skopeo copy --dest-compress-format gzip --dest-force-compress-format oci-archive:IN oci-archive:OUT`',
  );
}

/** zlib's and node-tar's errors mean a corrupt layer; anything else (a full disk…) is not the archive's fault. */
function asCorruptLayer(layer: LayerBlob): (error: unknown) => never {
  return (error) => {
    const code = (error as { code?: unknown }).code;
    if (error instanceof TarFormatError || (typeof code === 'string' && code.startsWith('Z_'))) {
      throw new InvalidArgumentError(
        `${layer.label} is not a valid ${layer.compression === 'none' ? '' : `${layer.compression} `}tar ` +
          `(${(error as Error).message}); the archive is corrupt: export it again`,
        { cause: error },
      );
    }
    throw error;
  };
}

function checkDigest(layer: LayerBlob, what: string, expected: string | undefined, hash: Hash): void {
  const actual = `sha256:${hash.digest('hex')}`;
  if (expected !== undefined && actual !== expected) {
    throw new InvalidArgumentError(
      `${layer.label}: its ${what} is ${actual}, not the ${expected} the image records; ` +
        'the archive is corrupt or was tampered with: export it again',
    );
  }
}

/**
 * Hands the layer's uncompressed tar to `consume` as a stream, then checks the blob's digest and the tar's diff id
 * (InvalidArgumentError on a mismatch or a corrupt blob). Checks come after `consume`, which must therefore write
 * only where a failed build is cleaned up. A zstd layer is refused (`unsupported`).
 */
export async function readLayer(layer: LayerBlob, consume: (tar: Readable) => Promise<void>): Promise<void> {
  assertDecompressible(layer);
  const stages = layer.compression === 'gzip' ? [createGunzip()] : [];
  const blobHash = createHash('sha256');
  const tarHash = createHash('sha256');
  const tar = hashing(tarHash);
  // pipeline destroys every stage with the first error, so reading `tar` throws it.
  pipeline([createReadStream(layer.path), hashing(blobHash), ...stages, tar], () => {});
  try {
    await consume(tar).catch(asCorruptLayer(layer));
  } finally {
    tar.destroy();
  }
  checkDigest(layer, 'digest', layer.digest, blobHash);
  checkDigest(layer, 'uncompressed digest (diff id)', layer.diffId, tarHash);
}
