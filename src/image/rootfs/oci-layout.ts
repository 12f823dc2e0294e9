/**
 * Choosing the image in an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`): through the index and
 * any nested index (a multi-platform image's), with every manifest and config checked against its digest.
 */

import type { z } from 'zod';

import type { Arch } from '../../core/config.js';
import { InvalidArgumentError, JitvmError } from '../../core/errors.js';
import { type Platform, type SelectedImage, diffIds, effectivePlatform, onlyImage, runsOn } from './image-choice.js';
import type { LayerBlob } from './layer-source.js';
import type { UnpackedArchive } from './oci-archive.js';
import {
  type Descriptor,
  INDEX_MEDIA_TYPES,
  type ImageConfig,
  ImageConfigSchema,
  type ImageIndex,
  ImageIndexSchema,
  ImageManifestSchema,
  MANIFEST_MEDIA_TYPES,
  OciLayoutSchema,
  layerCompression,
} from './oci-schema.js';

/** Indexes nest (a layout's index → a multi-platform index); deeper than this is not a real image. */
const MAX_INDEX_DEPTH = 4;

interface Candidate {
  readonly descriptor: Descriptor;
  readonly tags: string[];
}

/** An image of the layout, read: its manifest and config. */
interface LayoutImage extends Candidate {
  readonly manifest: z.output<typeof ImageManifestSchema>;
  readonly config: ImageConfig;
}

/** The name an index annotation gives an image: containerd's full name, else the OCI ref name. */
function tagsOf(descriptor: Descriptor): string[] {
  const notes = descriptor.annotations ?? {};
  const name = notes['io.containerd.image.name'] ?? notes['org.opencontainers.image.ref.name'];
  return name === undefined ? [] : [name];
}

/** Every image manifest `index` lists, through nested indexes; other artifacts are skipped. */
async function manifestsOf(archive: UnpackedArchive, index: ImageIndex, depth: number): Promise<Candidate[]> {
  const found: Candidate[] = [];
  for (const descriptor of index.manifests) {
    if (MANIFEST_MEDIA_TYPES.has(descriptor.mediaType)) found.push({ descriptor, tags: tagsOf(descriptor) });
    if (!INDEX_MEDIA_TYPES.has(descriptor.mediaType)) continue;
    if (depth >= MAX_INDEX_DEPTH) {
      throw new InvalidArgumentError(`${archive.name} nests image indexes over ${MAX_INDEX_DEPTH} deep`);
    }
    const nested = await manifestsOf(archive, await archive.blobJson(descriptor, ImageIndexSchema), depth + 1);
    found.push(...nested.map((c) => ({ ...c, tags: c.tags.length > 0 ? c.tags : tagsOf(descriptor) })));
  }
  return found;
}

/** The one image that runs on `arch`; images whose index entry names another platform are not read. */
async function chooseImage(archive: UnpackedArchive, arch: Arch): Promise<LayoutImage> {
  const candidates = await manifestsOf(archive, await archive.json('index.json', ImageIndexSchema), 0);
  const seen: Platform[] = [];
  const matches = new Map<string, LayoutImage>();
  for (const candidate of candidates) {
    const declared = candidate.descriptor.platform;
    if (declared && !runsOn(declared, arch)) {
      seen.push(declared);
      continue;
    }
    const manifest = await archive.blobJson(candidate.descriptor, ImageManifestSchema);
    const config = await archive.blobJson(manifest.config, ImageConfigSchema);
    const platform = effectivePlatform(config, declared);
    seen.push(platform);
    if (runsOn(platform, arch)) matches.set(candidate.descriptor.digest, { ...candidate, manifest, config });
  }
  return onlyImage(archive, arch, [...matches.values()], seen, (c) => c.tags[0] ?? c.descriptor.digest);
}

async function layerBlob(
  archive: UnpackedArchive,
  layer: Descriptor,
  label: string,
  diffId: string | undefined,
): Promise<LayerBlob> {
  const compression = layerCompression(layer.mediaType);
  if (compression === undefined) {
    throw new JitvmError('unsupported', `${label} has media type ${layer.mediaType}, which is not a tar layer`);
  }
  const path = await archive.blob(layer);
  return { path, label, compression, mediaType: layer.mediaType, digest: layer.digest, diffId };
}

/**
 * The image of the OCI layout in `archive` that runs on an `arch` Linux guest, its layers' blobs located and sized.
 * Refuses a layout version other than 1.x and layers that are not tars (`unsupported`); see onlyImage for the rest.
 */
export async function selectFromLayout(archive: UnpackedArchive, arch: Arch): Promise<SelectedImage> {
  const layout = await archive.json('oci-layout', OciLayoutSchema);
  if (!layout.imageLayoutVersion.startsWith('1.')) {
    throw new JitvmError(
      'unsupported',
      `${archive.name} is an OCI image layout of version ${layout.imageLayoutVersion}; jitvm reads 1.x`,
    );
  }
  const { descriptor, tags, manifest, config } = await chooseImage(archive, arch);
  const count = manifest.layers.length;
  const ids = diffIds(archive, config, count);
  const layers = manifest.layers.map((layer, i) =>
    layerBlob(archive, layer, `layer ${i + 1}/${count} (${layer.digest}) of ${archive.name}`, ids[i]),
  );
  return {
    format: 'oci-layout',
    config,
    configDigest: manifest.config.digest,
    manifestDigest: descriptor.digest,
    tags,
    layers: await Promise.all(layers),
  };
}
