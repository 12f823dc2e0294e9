import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';

import { BOOT_ARG } from '../channel/protocol.js';
import { type DriveSchema, type ShareSchema, attachOrder } from '../core/config.js';
import { InvalidArgumentError } from '../core/errors.js';

type DriveInput = z.input<typeof DriveSchema>;
type ShareInput = z.input<typeof ShareSchema>;

/** The drive ids jitvm gives the disks it attaches for `rootfs` and `volumes`; user drives may not take them. */
export const STORAGE_DRIVE = { ROOT: 'jitvm_root', OVERLAY: 'jitvm_overlay', VOLUME_PREFIX: 'jitvm_vol' } as const;
/** The virtio-fs tag prefix of shared host directories. */
const SHARE_PREFIX = 'jitvm_share';

const MAX_MIB = 1_048_576;

/**
 * Where a sandbox's writes to its root filesystem go: guest RAM (`tmpfs`, at most `sizeMiB` when given, else half
 * the RAM), or a fresh ext4 disk of `sizeMiB` made for this sandbox and removed with it. Either way the base image is
 * never written, and the guest cannot write more than the limit (ENOSPC).
 */
export const OverlaySchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('tmpfs'), sizeMiB: z.number().int().min(1).max(MAX_MIB).optional() }).strict(),
  z.object({ type: z.literal('disk'), sizeMiB: z.number().int().min(8).max(MAX_MIB) }).strict(),
]);
export type Overlay = z.output<typeof OverlaySchema>;

/** A root filesystem image (ext4, from `jitvm image build --from-dir|--from-oci`), shared read-only by sandboxes. */
export const RootfsSchema = z
  .object({ image: z.string().min(1), overlay: OverlaySchema.default({ type: 'tmpfs' }) })
  .strict();

/** An absolute guest path a kernel argument can carry: no whitespace or quotes, no `..`, not `/` itself. */
const GuestMountPath = z
  .string()
  .regex(/^\/[^\s"'\\]+$/, 'a mount path is absolute, without spaces, quotes or backslashes')
  .refine((path) => !path.split('/').includes('..'), 'a mount path may not contain `..`');

/**
 * Mounted at `path` in the guest, read-only unless `readOnly: false`: an ext4 disk `image` (any backend), or a host
 * directory `hostDir` shared over virtio-fs (QEMU on Linux through virtiofsd, vfkit; not Firecracker).
 */
export const VolumeSchema = z.union([
  z.object({ image: z.string().min(1), path: GuestMountPath, readOnly: z.boolean().default(true) }).strict(),
  z.object({ hostDir: z.string().min(1), path: GuestMountPath, readOnly: z.boolean().default(true) }).strict(),
]);
type Volume = z.output<typeof VolumeSchema>;

/**
 * What the storage options add to a VM config: drives, host directory shares, and the boot arguments that tell the
 * agent what they are.
 */
export interface StoragePlan {
  readonly drives: DriveInput[];
  readonly shares: ShareInput[];
  readonly kernelArgs: string[];
}

function existingImage(path: string, what: string): string {
  const absolute = resolve(path);
  if (!existsSync(absolute)) {
    throw new InvalidArgumentError(
      `${what} ${absolute} does not exist; build one with \`jitvm image build --from-dir DIR\` or \`--from-oci TAR\``,
    );
  }
  return absolute;
}

function rootfsDrives(rootfs: z.output<typeof RootfsSchema>): { drives: DriveInput[]; kernelArgs: string[] } {
  const drives: DriveInput[] = [
    { id: STORAGE_DRIVE.ROOT, path: existingImage(rootfs.image, 'rootfs image'), readOnly: true },
  ];
  const overlay = rootfs.overlay;
  if (overlay.type === 'disk') drives.push({ id: STORAGE_DRIVE.OVERLAY, sizeMiB: overlay.sizeMiB, readOnly: false });
  const upper = overlay.type === 'disk' ? `disk:${STORAGE_DRIVE.OVERLAY}` : `tmpfs:${overlay.sizeMiB ?? 0}`;
  return { drives, kernelArgs: [`${BOOT_ARG.ROOT}=${STORAGE_DRIVE.ROOT}`, `${BOOT_ARG.OVERLAY}=${upper}`] };
}

/**
 * Turns `rootfs` and `volumes` into drives and boot arguments, next to the caller's own `drives`. The agent finds
 * each disk by its id (QEMU's disk serial) or, where a backend has no serials, by the attach order listed in
 * `jitvm.drives`.
 */
export function storagePlan(options: {
  readonly rootfs?: z.output<typeof RootfsSchema>;
  readonly volumes?: readonly z.output<typeof VolumeSchema>[];
  readonly drives?: readonly DriveInput[];
}): StoragePlan {
  const own = options.drives ?? [];
  const reserved = own.find((drive) => drive.id.startsWith('jitvm_'));
  if (reserved) throw new InvalidArgumentError(`drive id ${reserved.id}: ids starting with jitvm_ are jitvm's own`);
  const root = options.rootfs ? rootfsDrives(options.rootfs) : { drives: [], kernelArgs: [] };
  const volumes = (options.volumes ?? []).map((volume, index) => volumeParts(volume, index));
  const added = [...root.drives, ...volumes.flatMap((volume) => volume.drives)];
  const shares = volumes.flatMap((volume) => volume.shares);
  if (added.length === 0 && shares.length === 0) return { drives: [...own], shares, kernelArgs: [] };
  const drives = [...added, ...own];
  const order = attachOrder(drives.map((drive) => ({ id: drive.id, root: drive.root ?? false })));
  return {
    drives,
    shares,
    kernelArgs: [
      ...root.kernelArgs,
      ...volumes.map((volume) => volume.arg),
      ...(added.length > 0 ? [`${BOOT_ARG.DRIVES}=${order.map((drive) => drive.id).join(',')}`] : []),
    ],
  };
}

function volumeParts(volume: Volume, index: number): { drives: DriveInput[]; shares: ShareInput[]; arg: string } {
  const mode = volume.readOnly ? 'ro' : 'rw';
  if ('hostDir' in volume) {
    const tag = `${SHARE_PREFIX}${index}`;
    const share = { tag, path: existingDir(volume.hostDir), readOnly: volume.readOnly };
    return { drives: [], shares: [share], arg: `${BOOT_ARG.MOUNT}=virtiofs:${tag}:${mode}:${volume.path}` };
  }
  const id = `${STORAGE_DRIVE.VOLUME_PREFIX}${index}`;
  const drive = { id, path: existingImage(volume.image, 'volume image'), readOnly: volume.readOnly };
  return { drives: [drive], shares: [], arg: `${BOOT_ARG.MOUNT}=blk:${id}:${mode}:${volume.path}` };
}

function existingDir(path: string): string {
  const absolute = resolve(path);
  if (!existsSync(absolute) || !statSync(absolute).isDirectory()) {
    throw new InvalidArgumentError(`volume hostDir ${absolute} is not a directory on this host`);
  }
  return absolute;
}
