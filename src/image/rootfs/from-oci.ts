/**
 * `jitvm image build --from-oci`: a container image tarball (`docker save`, or an OCI image layout) as an ext4 rootfs
 * image, its layers applied in order into a staging tree next to the output, plus the image's runtime config in
 * the sidecar `<image>.json`.
 */

import { mkdir, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

import { type Arch, hostArch } from '../../core/config.js';
import { JitvmError } from '../../core/errors.js';
import { withTempDir } from '../fs-util.js';
import { asCancelled } from './cancel.js';
import { type RootfsBuildOptions, type RootfsImage, buildExt4Image } from './ext4-image.js';
import { ROOTFS_CONFIG_VERSION, type RootfsConfig, envRecord } from './image-config.js';
import { LayerApplier } from './layer-apply.js';
import { assertDecompressible, readLayer } from './layer-source.js';
import type { SelectedImage } from './image-choice.js';
import { UnpackedArchive } from './oci-archive.js';
import { selectImage } from './oci-select.js';
import { defaultRootfsPath } from './rootfs-path.js';
import { StagingTree } from './staging-tree.js';
import { forEachTarEntry } from './tar-entries.js';

/** Options of fromOci. */
export interface FromOciOptions extends RootfsBuildOptions {
  /** Where to write the image (default: `<cache>/rootfs/<tarball name>.ext4`); the sidecar goes next to it. */
  output?: string;
  /** The guest architecture whose image to take from a multi-platform archive (default: the host's). */
  arch?: Arch;
}

function requireRoot(): void {
  if (process.getuid?.() === 0) return;
  throw new JitvmError(
    'unsupported',
    "building a rootfs from a container image needs root: the image's files keep their owners, setuid bits and " +
      'device nodes, which only root can create. Run it as root (`sudo jitvm image build --from-oci …`), or unpack ' +
      'the image yourself as root and use --from-dir',
  );
}

/** The sidecar config of `image`; fields the image leaves empty are left out, as they are from the file. */
function rootfsConfig(tarPath: string, arch: Arch, image: SelectedImage): RootfsConfig {
  const source: RootfsConfig['source'] = { format: image.format, archive: tarPath, tags: image.tags };
  if (image.manifestDigest) source.manifestDigest = image.manifestDigest;
  if (image.configDigest) source.configDigest = image.configDigest;
  const runtime = image.config.config ?? {};
  const config: RootfsConfig = { version: ROOTFS_CONFIG_VERSION, source, arch, env: envRecord(runtime.Env ?? []) };
  if (runtime.WorkingDir) config.workingDir = runtime.WorkingDir;
  if (runtime.Entrypoint) config.entrypoint = runtime.Entrypoint;
  if (runtime.Cmd) config.cmd = runtime.Cmd;
  if (runtime.User) config.user = runtime.User;
  return config;
}

/**
 * Builds the ext4 image of the container image in the tarball `tarPath`, for an `arch` guest: unpacks the tarball,
 * applies its layers (OCI whiteouts and opaque directories honoured; owners, modes, symlinks, hard links and device
 * nodes kept), then builds the image as fromDirectory does and writes the runtime config next to it. Needs root
 * (`unsupported` otherwise) and free space next to the output for the unpacked tarball, the tree and the image;
 * all of it is removed afterwards, on failure too.
 *
 * Refuses (InvalidArgumentError) an archive that is malformed, climbs out of its tree, or whose blobs do not match
 * their digests; (`not_found`) one without a linux image for `arch`; (`unsupported`) zstd layers, which Node 20
 * cannot decompress. Extended attributes (file capabilities) in layers are not kept.
 */
export async function fromOci(tarPath: string, options: FromOciOptions = {}): Promise<RootfsImage> {
  requireRoot();
  const source = resolve(tarPath);
  const arch = options.arch ?? hostArch() ?? 'x86_64';
  const output = resolve(options.output ?? defaultRootfsPath(source));
  const progress = options.onProgress ?? (() => {});
  await mkdir(dirname(output), { recursive: true });
  const build = withTempDir(dirname(output), async (tmp) => {
    progress(`unpacking ${source}`);
    const archive = await UnpackedArchive.unpack(source, join(tmp, 'archive'));
    const image = await selectImage(archive, arch);
    image.layers.forEach(assertDecompressible);
    const tree = new StagingTree(join(tmp, 'rootfs'), source);
    await mkdir(tree.root);
    for (const layer of image.layers) {
      progress(`applying ${layer.label}`);
      options.signal?.throwIfAborted();
      const applier = new LayerApplier(tree, layer.label);
      await readLayer(layer, (tar) => forEachTarEntry(tar, (entry) => applier.apply(entry), options.signal));
    }
    await tree.settleDirectoryTimes();
    await rm(join(tmp, 'archive'), { recursive: true, force: true });
    const what = `the ${arch} image in ${source}`;
    return buildExt4Image({ dir: tree.root, what }, output, options, rootfsConfig(source, arch, image));
  });
  return build.catch(asCancelled(options.signal));
}
