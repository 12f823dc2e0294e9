/** What choosing an image from an archive has in common between OCI layouts and `docker save` archives. */

import type { Arch } from '../../core/config.js';
import { InvalidArgumentError, JitvmError } from '../../core/errors.js';
import type { LayerBlob } from './layer-source.js';
import type { UnpackedArchive } from './oci-archive.js';
import type { ImageConfig } from './oci-schema.js';

/** The architecture names of the OCI image spec (Go's GOARCH). */
const OCI_ARCH: Record<Arch, string> = { x86_64: 'amd64', aarch64: 'arm64' };

/** The image chosen from an archive. */
export interface SelectedImage {
  readonly format: 'oci-layout' | 'docker-archive';
  readonly config: ImageConfig;
  readonly configDigest?: string;
  readonly manifestDigest?: string;
  /** The names the archive gives it. */
  readonly tags: string[];
  /** Its layers, lowest first. */
  readonly layers: LayerBlob[];
}

/** The platform of an image, as an index entry or an image config gives it. */
export interface Platform {
  readonly os?: string;
  readonly architecture?: string;
  readonly variant?: string;
}

function platformName(platform: Platform): string {
  return [platform.os ?? '?', platform.architecture ?? '?', platform.variant].filter(Boolean).join('/');
}

/** Whether `platform` runs on an `arch` Linux guest (arm64 images of variant v8, or none, only). */
export function runsOn(platform: Platform, arch: Arch): boolean {
  const { os, architecture, variant } = platform;
  return os === 'linux' && architecture === OCI_ARCH[arch] && (arch !== 'aarch64' || !variant || variant === 'v8');
}

/** The platform an image runs on: its config's, where the config names one, else `declared` (its index entry's). */
export function effectivePlatform(config: ImageConfig, declared: Platform | undefined): Platform {
  return {
    os: config.os ?? declared?.os,
    architecture: config.architecture ?? declared?.architecture,
    variant: config.variant ?? declared?.variant,
  };
}

/**
 * The one image of `matches`. Refuses none (`not_found`, listing the platforms `seen`) and several
 * (InvalidArgumentError, listing them by `name`).
 */
export function onlyImage<T>(
  archive: UnpackedArchive,
  arch: Arch,
  matches: readonly T[],
  seen: readonly Platform[],
  name: (image: T) => string,
): T {
  const wanted = `linux/${OCI_ARCH[arch]}`;
  if (matches.length === 0) {
    const has = [...new Set(seen.map(platformName))].join(', ') || 'no images';
    throw new JitvmError(
      'not_found',
      `${archive.name} has no ${wanted} image (it has ${has}): save the image for that platform ` +
        `(e.g. \`docker pull --platform ${wanted} IMAGE\` before \`docker save\`), or build for the ` +
        'architecture it has with --arch',
    );
  }
  if (matches.length > 1) {
    throw new InvalidArgumentError(
      `${archive.name} holds ${matches.length} ${wanted} images (${matches.map(name).join(', ')}); ` +
        'save one image per archive',
    );
  }
  return matches[0]!;
}

/** The diff id of each of `layers` layers; refuses a config whose diff_ids do not list one per layer. */
export function diffIds(archive: UnpackedArchive, config: ImageConfig, layers: number): (string | undefined)[] {
  const ids = config.rootfs?.diff_ids;
  if (ids === undefined) return Array.from({ length: layers }, () => undefined);
  if (ids.length !== layers) {
    throw new InvalidArgumentError(
      `${archive.name}: the image config lists ${ids.length} layer digests for ${layers} layers; ` +
        'the archive is corrupt',
    );
  }
  return ids;
}
