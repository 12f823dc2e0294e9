import { lstatSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { JitvmError } from './errors.js';

/** Path syntax of `platform`: `path.win32` on Windows, `path.posix` elsewhere (so Windows paths test on Linux). */
export function platformPath(platform: NodeJS.Platform = process.platform): path.PlatformPath {
  return platform === 'win32' ? path.win32 : path.posix;
}

/** Where the runtime dir is looked up: the environment and the platform, injectable for tests. */
export interface RuntimeHost {
  readonly env: NodeJS.ProcessEnv;
  readonly platform: NodeJS.Platform;
}

const thisHost: RuntimeHost = { env: process.env, platform: process.platform };

/**
 * The per-user directory holding one subdirectory per live VM (sockets, console log, state).
 * `JITVM_RUNTIME_DIR` overrides. On Windows it is `%LOCALAPPDATA%\jitvm` (a per-user directory only its owner can
 * open); elsewhere `$XDG_RUNTIME_DIR/jitvm`, else `<tmpdir>/jitvm-<uid>`.
 */
export function runtimeRoot(host: RuntimeHost = thisHost): string {
  const { env, platform } = host;
  if (env.JITVM_RUNTIME_DIR) return env.JITVM_RUNTIME_DIR;
  const paths = platformPath(platform);
  if (platform === 'win32' && env.LOCALAPPDATA) return paths.join(env.LOCALAPPDATA, 'jitvm');
  if (platform !== 'win32' && env.XDG_RUNTIME_DIR) return paths.join(env.XDG_RUNTIME_DIR, 'jitvm');
  return paths.join(tmpdir(), `jitvm-${process.getuid?.() ?? 'user'}`);
}

/** Where VM runtime dirs live: `<runtimeRoot>/vms`. */
export function vmsRoot(host: RuntimeHost = thisHost): string {
  return platformPath(host.platform).join(runtimeRoot(host), 'vms');
}

/**
 * Creates `dir` (and parents) and refuses one that is a symlink or not a directory. On POSIX hosts it must also be
 * owned by us with mode 0700, since a shared /tmp would otherwise let another user plant sockets for us. Windows has
 * no mode bits (Node reports 0666/0777 whatever the ACL says): there the directory inherits the ACL of
 * `%LOCALAPPDATA%`, which only its owner (and administrators) can open.
 */
export function ensurePrivateDir(dir: string, platform: NodeJS.Platform = process.platform): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stat = lstatSync(dir);
  const uid = process.getuid?.();
  const posixPrivate = platform === 'win32' || ((uid === undefined || stat.uid === uid) && (stat.mode & 0o077) === 0);
  if (!stat.isDirectory() || !posixPrivate) {
    const rule = platform === 'win32' ? 'a directory (not a link)' : 'a directory owned by you with mode 0700';
    throw new JitvmError('invalid_state', `${dir} must be ${rule}; remove it or set JITVM_RUNTIME_DIR elsewhere`);
  }
  return dir;
}
