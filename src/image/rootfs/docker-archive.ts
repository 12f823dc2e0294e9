/** Choosing the image in a `docker save` archive: manifest.json lists each image's config file and layer files. */

import { open } from 'node:fs/promises';
import { basename } from 'node:path';

import type { Arch } from '../../core/config.js';
import { type SelectedImage, diffIds, effectivePlatform, onlyImage, runsOn } from './image-choice.js';
import type { LayerBlob } from './layer-source.js';
import type { UnpackedArchive } from './oci-archive.js';
import { DockerManifestSchema, ImageConfigSchema, sniffCompression } from './oci-schema.js';

/** The digest a config's file name carries (`<hex>.json`, `blobs/sha256/<hex>`): the image id. */
function digestInName(reference: string): string | undefined {
  const hex = /^([0-9a-f]{64})(\.json)?$/.exec(basename(reference))?.[1];
  return hex === undefined ? undefined : `sha256:${hex}`;
}

async function headOf(path: string): Promise<Buffer> {
  const file = await open(path);
  try {
    const { buffer, bytesRead } = await file.read(Buffer.alloc(4), 0, 4, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

/**
 * The image of the `docker save` archive that runs on an `arch` Linux guest (a config without `os` counts as
 * linux). Its config is checked against the digest its file name carries; layers, which have no digest here, are
 * checked later against the config's diff ids, and their compression is told by their first bytes.
 */
export async function selectFromDockerArchive(archive: UnpackedArchive, arch: Arch): Promise<SelectedImage> {
  const images = await archive.json('manifest.json', DockerManifestSchema);
  const loaded = await Promise.all(
    images.map(async (image) => ({
      image,
      config: await archive.json(image.Config, ImageConfigSchema, digestInName(image.Config)),
    })),
  );
  const platforms = loaded.map(({ config }) => effectivePlatform(config, { os: 'linux' }));
  const matches = loaded.filter((_, i) => runsOn(platforms[i]!, arch));
  const { image, config } = onlyImage(
    archive,
    arch,
    matches,
    platforms,
    (m) => m.image.RepoTags?.[0] ?? m.image.Config,
  );
  const ids = diffIds(archive, config, image.Layers.length);
  const layers = image.Layers.map(async (reference, i): Promise<LayerBlob> => {
    const path = await archive.file(reference);
    const label = `layer ${i + 1}/${image.Layers.length} (${reference}) of ${archive.name}`;
    return { path, label, compression: sniffCompression(await headOf(path)), diffId: ids[i] };
  });
  return {
    format: 'docker-archive',
    config,
    configDigest: digestInName(image.Config),
    tags: image.RepoTags ?? [],
    layers: await Promise.all(layers),
  };
}
