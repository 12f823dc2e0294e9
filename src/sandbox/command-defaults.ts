import type { VmConfig } from '../core/config.js';
import { readRootfsConfig } from '../image/rootfs/image-config.js';
import type { ExecOptions } from './command.js';
import { STORAGE_DRIVE } from './storage.js';

/** What every command in a sandbox starts with unless the call says otherwise. */
export interface CommandDefaults {
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
}

/**
 * A sandbox's command defaults: the environment and working directory its rootfs image was built with (a container
 * image's Env and WorkingDir, from the image's sidecar), then `networkEnv` (the proxy settings in allowlist mode).
 */
export async function commandDefaults(
  config: VmConfig,
  networkEnv: Readonly<Record<string, string>>,
): Promise<CommandDefaults> {
  const root = config.drives.find((drive) => drive.id === STORAGE_DRIVE.ROOT);
  const image = root?.path ? await readRootfsConfig(root.path) : undefined;
  return { env: { ...image?.env, ...networkEnv }, ...(image?.workingDir ? { cwd: image.workingDir } : {}) };
}

/** `options` with the defaults under it: the call's own env entries and cwd win. */
export function withDefaults<T extends ExecOptions>(defaults: CommandDefaults, options: T): T {
  const cwd = options.cwd ?? defaults.cwd;
  return { ...options, env: { ...defaults.env, ...options.env }, ...(cwd ? { cwd } : {}) };
}
