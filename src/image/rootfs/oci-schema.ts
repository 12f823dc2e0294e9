/**
 * The parts of the OCI image spec (image layout, index, manifest, config) and of `docker save`'s manifest.json that
 * jitvm reads, as zod schemas: an image archive is untrusted input, checked before it is used.
 */

import { z } from 'zod';

/** A content descriptor: what a blob is, its digest and size, and for an image in an index, its platform. */
export const DescriptorSchema = z.object({
  mediaType: z.string(),
  digest: z.string(),
  size: z.number().int().nonnegative(),
  platform: z.object({ architecture: z.string(), os: z.string(), variant: z.string().optional() }).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type Descriptor = z.output<typeof DescriptorSchema>;

/** `oci-layout` at the root of an image layout. */
export const OciLayoutSchema = z.object({ imageLayoutVersion: z.string() });

/** `index.json`, or a nested image index (manifest list). */
export const ImageIndexSchema = z.object({ schemaVersion: z.literal(2), manifests: z.array(DescriptorSchema) });
export type ImageIndex = z.output<typeof ImageIndexSchema>;

/** An image manifest: one config and the layers, lowest first. */
export const ImageManifestSchema = z.object({
  schemaVersion: z.literal(2),
  config: DescriptorSchema,
  layers: z.array(DescriptorSchema),
});

/** The image config: the platform, the runtime defaults, and the digests of the uncompressed layers. */
export const ImageConfigSchema = z.object({
  architecture: z.string().optional(),
  os: z.string().optional(),
  variant: z.string().optional(),
  config: z
    .object({
      Env: z.array(z.string()).nullish(),
      WorkingDir: z.string().nullish(),
      Entrypoint: z.array(z.string()).nullish(),
      Cmd: z.array(z.string()).nullish(),
      User: z.string().nullish(),
    })
    .nullish(),
  rootfs: z.object({ type: z.string(), diff_ids: z.array(z.string()) }).optional(),
});
export type ImageConfig = z.output<typeof ImageConfigSchema>;

/** `manifest.json` of a `docker save` archive: per image, its config file and its layer files, lowest first. */
export const DockerManifestSchema = z
  .array(z.object({ Config: z.string(), RepoTags: z.array(z.string()).nullish(), Layers: z.array(z.string()) }))
  .min(1);

/** Media types of an image index (OCI) and a manifest list (Docker), which list images per platform. */
export const INDEX_MEDIA_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);

/** Media types of an image manifest (OCI and Docker schema 2). */
export const MANIFEST_MEDIA_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
]);

/** How a layer blob is compressed. */
export type Compression = 'none' | 'gzip' | 'zstd';

/** OCI layer types (`…layer.v1.tar`, `+gzip`, `+zstd`, non-distributable too) and Docker's (`…diff.tar.gzip`). */
const LAYER_MEDIA_TYPE = new RegExp(
  '^application/vnd\\.(?:oci\\.image\\.layer(?:\\.nondistributable)?\\.v1\\.tar' +
    '|docker\\.image\\.rootfs\\.(?:foreign\\.)?diff\\.tar)(?:[+.](gzip|zstd))?$',
);

/** The compression of a layer of media type `mediaType`; undefined when it is not a tar layer. */
export function layerCompression(mediaType: string): Compression | undefined {
  const match = LAYER_MEDIA_TYPE.exec(mediaType);
  if (!match) return undefined;
  return (match[1] as Compression | undefined) ?? 'none';
}

/** The compression of a blob that starts with `head`, from its magic bytes (docker save names no media types). */
export function sniffCompression(head: Buffer): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}
