/** Finds the image to build in an unpacked image archive, whichever of the two formats it is. */

import type { Arch } from '../../core/config.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { selectFromDockerArchive } from './docker-archive.js';
import type { SelectedImage } from './image-choice.js';
import type { UnpackedArchive } from './oci-archive.js';
import { selectFromLayout } from './oci-layout.js';

/**
 * The image in `archive` that runs on an `arch` Linux guest: from its OCI layout (`oci-layout` + `index.json`) when
 * it has one (Docker 25+ writes both), else from `docker save`'s manifest.json. Refuses an archive that is neither,
 * or holds several such images (InvalidArgumentError), and one without such an image (`not_found`, listing the
 * platforms it has).
 */
export async function selectImage(archive: UnpackedArchive, arch: Arch): Promise<SelectedImage> {
  if (await archive.has('oci-layout')) return selectFromLayout(archive, arch);
  if (await archive.has('manifest.json')) return selectFromDockerArchive(archive, arch);
  throw new InvalidArgumentError(
    `${archive.name} is neither an OCI image layout (no oci-layout and index.json) nor a \`docker save\` archive ` +
      '(no manifest.json)',
  );
}
