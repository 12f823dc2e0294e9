/**
 * Root filesystem images: ext4 files the guest mounts read-only as the lower layer of its root overlay, built
 * without mounting anything, from a directory tree or from a container image tarball. See docs/rootfs.md.
 */

export { type FromDirectoryOptions, fromDirectory } from './from-directory.js';
export { type FromOciOptions, fromOci } from './from-oci.js';
export { DEFAULT_LABEL, type RootfsBuildOptions, type RootfsImage } from './ext4-image.js';
export {
  ROOTFS_CONFIG_VERSION,
  type RootfsConfig,
  RootfsConfigSchema,
  readRootfsConfig,
  rootfsConfigPath,
} from './image-config.js';
export { defaultRootfsPath } from './rootfs-path.js';
