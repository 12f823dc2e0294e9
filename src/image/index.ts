/**
 * The guest image: Debian's cloud kernel plus an initramfs holding the jitvm agent (/init), a static busybox and the
 * kernel modules the guest needs, for an x86_64 or aarch64 guest. Images are built once per architecture and cached
 * by the hash of everything they are made from.
 */

import { constants, copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { type Arch, hostArch } from '../core/config.js';
import { CancelledError, JitvmError } from '../core/errors.js';
import { AGENT_SOURCE_DIR, buildAgent, listAgentSources } from './agent-build.js';
import { fetchBusybox, inspectBusybox, locateBusybox } from './busybox.js';
import {
  cacheRoot,
  imageKey,
  kernelsDir,
  newestCachedImage,
  pruneImages,
  readCachedImage,
  storeImage,
  type GuestImage,
} from './cache.js';
import { fetchDebianKernel, findExtractedKernel, type KernelInfo } from './debian-kernel.js';
import { buildInitramfs, GUEST_MODULES } from './initramfs.js';
import { indexModules, resolveModules } from './modules.js';

export type { GuestImage } from './cache.js';
export { ImageBuildError } from './errors.js';

/** A step of an image build, reported as it starts and (with `done: true`) as it ends. */
export interface ImageProgress {
  step: 'kernel' | 'agent' | 'modules' | 'initramfs';
  message: string;
  done?: boolean;
}

/** Options of resolveImage. */
export interface ResolveImageOptions {
  /** Called as each build step starts and ends; resolveImage never calls it when the image is already cached. */
  onProgress?: (progress: ImageProgress) => void;
  /** Cancels a build in progress (running compilers and downloads are killed). */
  signal?: AbortSignal;
  /** Directory of the agent's C sources; defaults to the `guest/` directory shipped with jitvm. */
  agentSourceDir?: string;
  /** The guest architecture (default: the host's). Another one is cross-built with Debian's packages for it. */
  arch?: Arch;
}

/** Options of buildImage. */
export interface BuildImageOptions extends ResolveImageOptions {
  /** Rebuild even when an image with the same key is cached. */
  force?: boolean;
  /** Ask apt for the current cloud kernel (downloading it when new) instead of using the newest one cached. */
  refreshKernel?: boolean;
}

/**
 * An image resolution shared by every concurrent caller (the daemon's clients, say): its build is cancelled only once
 * all of them gave up, so one caller going away does not fail the others.
 */
interface SharedResolution {
  readonly image: Promise<GuestImage>;
  readonly cancel: AbortController;
  /** Callers still waiting that may give up. */
  waiting: number;
  /** A caller without a signal waits for it: the build is never cancelled. */
  pinned: boolean;
}

const memo = new Map<string, SharedResolution>();

/** Built images kept in the cache; older ones are removed after each build (a running VM keeps its loaded copy). */
const KEPT_IMAGES = 3;

/**
 * The image to boot, built on first use. When a kernel is already in the cache this needs no network and no apt:
 * it hashes the inputs and returns the cached image. The answer is memoized for the life of the process (a failed
 * attempt is not), so concurrent callers share one build; only the first caller's options (progress callback) take
 * effect, and `signal` cancels a caller's wait, and the build once every waiting caller cancelled.
 */
export function resolveImage(options: ResolveImageOptions = {}): Promise<GuestImage> {
  const key = memoKey(options);
  let shared = memo.get(key);
  if (!shared) {
    const cancel = new AbortController();
    const image = resolveUnmemoized({ ...options, signal: cancel.signal }).catch(asCancelled(cancel.signal));
    const attempt: SharedResolution = { image, cancel, waiting: 0, pinned: false };
    memo.set(key, attempt);
    image.catch(() => {
      if (memo.get(key) === attempt) memo.delete(key);
    });
    shared = attempt;
  }
  return waitFor(shared, options.signal);
}

function waitFor(shared: SharedResolution, signal: AbortSignal | undefined): Promise<GuestImage> {
  if (!signal) {
    shared.pinned = true;
    return shared.image;
  }
  if (signal.aborted) return Promise.reject(new CancelledError('the guest image build was cancelled'));
  shared.waiting++;
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      if (--shared.waiting === 0 && !shared.pinned) shared.cancel.abort();
      reject(new CancelledError('the guest image build was cancelled'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    shared.image.finally(() => signal.removeEventListener('abort', onAbort)).then(resolve, reject);
  });
}

/**
 * Builds the image unless an identical one is cached (`force` rebuilds regardless); `refreshKernel` asks apt for
 * Debian's current cloud kernel first, so a kernel update yields a new image. Later resolveImage calls return it.
 */
export async function buildImage(options: BuildImageOptions = {}): Promise<GuestImage> {
  const image = await buildUnmemoized(options).catch(asCancelled(options.signal));
  memo.set(memoKey(options), {
    image: Promise.resolve(image),
    cancel: new AbortController(),
    waiting: 0,
    pinned: true,
  });
  return image;
}

function memoKey(options: ResolveImageOptions): string {
  return `${cacheRoot()}\0${options.agentSourceDir ?? AGENT_SOURCE_DIR}\0${guestArch(options)}`;
}

function guestArch(options: ResolveImageOptions): Arch {
  return options.arch ?? hostArch() ?? 'x86_64';
}

async function resolveUnmemoized(options: ResolveImageOptions): Promise<GuestImage> {
  const root = cacheRoot();
  if (!canBuildImages()) return copiedImage(root, guestArch(options));
  const kernel = await findExtractedKernel(kernelsDir(root), guestArch(options));
  const key = kernel && (await keyFor(kernel, options));
  const cached = key && (await readCachedImage(root, key));
  if (cached) return cached;
  return buildUnmemoized(options);
}

async function buildUnmemoized(options: BuildImageOptions): Promise<GuestImage> {
  assertSupportedHost();
  const { signal } = options;
  const progress = options.onProgress ?? (() => {});
  const sourceDir = options.agentSourceDir ?? AGENT_SOURCE_DIR;
  const root = cacheRoot();
  const arch = guestArch(options);

  const kernel = await obtainKernel(root, arch, options.refreshKernel ?? false, progress, signal);
  if (!(await locateBusybox(arch, root))) await fetchBusybox(arch, root, signal);
  const key = await keyFor(kernel, options);
  if (key === undefined) throw new JitvmError('internal', `the ${arch} busybox vanished from the cache`);
  if (!options.force) {
    const cached = await readCachedImage(root, key);
    if (cached) return cached;
  }

  const image = await storeImage(
    root,
    key,
    async (staged) => {
      progress({ step: 'agent', message: `compiling the ${arch} guest agent from ${sourceDir}` });
      const agent = join(staged.scratch, 'init');
      await buildAgent(sourceDir, agent, { arch, signal });
      const busybox = await inspectBusybox((await locateBusybox(arch, root))!.path, arch);
      progress({ step: 'agent', message: `agent built; busybox has ${busybox.applets.length} applets`, done: true });

      progress({ step: 'modules', message: `resolving ${GUEST_MODULES.length} kernel modules and their dependencies` });
      const modules = await resolveModules(await indexModules(kernel.modulesDir), GUEST_MODULES);
      progress({ step: 'modules', message: modules.map((m) => m.name).join(' '), done: true });

      signal?.throwIfAborted();
      progress({ step: 'initramfs', message: 'writing the kernel and initramfs' });
      const initramfs = await buildInitramfs({ agent, busybox, modules });
      await Promise.all([
        writeFile(staged.initrd, initramfs),
        copyFile(kernel.vmlinuz, staged.kernel, constants.COPYFILE_FICLONE),
      ]);
      progress({ step: 'initramfs', message: `initramfs ${(initramfs.length / 1048576).toFixed(1)} MiB`, done: true });
      return {
        kernelVersion: kernel.version,
        kernelPackage: kernel.id,
        arch,
        modules: modules.map((m) => m.name),
      };
    },
    options.force ?? false,
  );
  await pruneImages(root, KEPT_IMAGES);
  return image;
}

async function obtainKernel(
  root: string,
  arch: Arch,
  refresh: boolean,
  progress: (p: ImageProgress) => void,
  signal: AbortSignal | undefined,
): Promise<KernelInfo> {
  const cached = refresh ? undefined : await findExtractedKernel(kernelsDir(root), arch);
  if (cached) {
    progress({ step: 'kernel', message: `using cached kernel ${cached.version}`, done: true });
    return cached;
  }
  progress({ step: 'kernel', message: `fetching Debian's ${arch} cloud kernel with apt` });
  const kernel = await fetchDebianKernel(kernelsDir(root), arch, signal);
  progress({ step: 'kernel', message: `kernel ${kernel.version} (${kernel.id})`, done: true });
  return kernel;
}

/** The image key for `kernel`; undefined while the busybox of a foreign architecture has not been fetched. */
async function keyFor(kernel: KernelInfo, options: ResolveImageOptions): Promise<string | undefined> {
  const [agentSources, busybox] = await Promise.all([
    listAgentSources(options.agentSourceDir ?? AGENT_SOURCE_DIR),
    locateBusybox(kernel.arch, cacheRoot()),
  ]);
  if (!busybox) return undefined;
  return imageKey({
    arch: kernel.arch,
    kernelId: kernel.id,
    agentSources,
    busybox: { path: busybox.path, size: busybox.stats.size, mtimeMs: busybox.stats.mtimeMs },
    modules: GUEST_MODULES,
  });
}

/** Turns whatever an aborted build threw into CancelledError. */
function asCancelled(signal: AbortSignal | undefined): (error: unknown) => never {
  return (error) => {
    if (signal?.aborted) throw new CancelledError('the guest image build was cancelled');
    throw error;
  };
}

/** Images are built with Debian's packages (apt, dpkg) for x86_64 or aarch64 guests, on an x86_64 or arm64 host. */
function canBuildImages(): boolean {
  return process.platform === 'linux' && hostArch() !== undefined;
}

function assertSupportedHost(): void {
  if (!canBuildImages()) {
    throw new JitvmError(
      'unsupported',
      `guest images are built on Debian hosts (x86_64 or arm64); this host is ${process.platform} ${process.arch}. ` +
        'Build the image on Debian with `jitvm image build --arch <arch>` and copy its directory into ' +
        `${join(cacheRoot(), 'images')}, or pass the kernel and initrd (--kernel/--initrd)`,
    );
  }
}

/** Where images cannot be built (macOS, Windows): the newest one of `arch` copied into the cache from a Debian host. */
async function copiedImage(root: string, arch: Arch): Promise<GuestImage> {
  const image = await newestCachedImage(root, arch);
  if (image) return image;
  throw new JitvmError(
    'not_found',
    `no ${arch} guest image in ${join(root, 'images')}, and images are built on Debian only: run ` +
      `\`jitvm image build --arch ${arch}\` there and copy the printed image directory into ${join(root, 'images')}, ` +
      'or pass the kernel and initrd (--kernel/--initrd)',
  );
}
