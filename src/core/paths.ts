import { lstatSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JitvmError } from './errors.js';

/**
 * The per-user directory holding one subdirectory per live VM (sockets, console log, state).
 * `JITVM_RUNTIME_DIR` overrides; else `$XDG_RUNTIME_DIR/jitvm`; else `<tmpdir>/jitvm-<uid>`.
 */
export function runtimeRoot(): string {
  if (process.env.JITVM_RUNTIME_DIR) return process.env.JITVM_RUNTIME_DIR;
  if (process.env.XDG_RUNTIME_DIR) return join(process.env.XDG_RUNTIME_DIR, 'jitvm');
  return join(tmpdir(), `jitvm-${process.getuid?.() ?? 'user'}`);
}

/** Where VM runtime dirs live: `<runtimeRoot>/vms`. */
export function vmsRoot(): string {
  return join(runtimeRoot(), 'vms');
}

/**
 * Creates `dir` (and parents) with mode 0700 and refuses one that is a symlink or owned by someone else,
 * since a shared /tmp would otherwise let another user plant sockets for us.
 */
export function ensurePrivateDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stat = lstatSync(dir);
  const uid = process.getuid?.();
  if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o077) !== 0) {
    throw new JitvmError(
      'invalid_state',
      `${dir} must be a directory owned by you with mode 0700; remove it or set JITVM_RUNTIME_DIR elsewhere`,
    );
  }
  return dir;
}
