import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { JitvmError } from '../core/errors.js';

/** Bytes of randomness in a token (written as base64url: 43 characters). */
const TOKEN_BYTES = 32;
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** `$XDG_CONFIG_HOME/jitvm/token`, else `~/.config/jitvm/token`: where the daemon's bearer token is kept. */
export function defaultTokenPath(env: NodeJS.ProcessEnv = process.env): string {
  const configHome = env.XDG_CONFIG_HOME || path.join(homedir(), '.config');
  return path.join(configHome, 'jitvm', 'token');
}

/**
 * Writes a fresh token to `file` (mode 0600, its directory 0700 when created) and returns it. The write goes to a
 * temporary file renamed over the old one, so a reader never sees half a token.
 */
export function rotateToken(file: string): string {
  const token = randomBytes(TOKEN_BYTES).toString('base64url');
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const partial = `${file}.${process.pid}.tmp`;
  writeFileSync(partial, `${token}\n`, { mode: 0o600 });
  chmodSync(partial, 0o600);
  renameSync(partial, file);
  return token;
}

/**
 * The token stored in `file`, created on first use. Refuses a file that is readable by others (fix: `chmod 600`) or
 * does not hold a token this module wrote (fix: `jitvm serve --rotate-token`).
 */
export function loadOrCreateToken(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return rotateToken(file);
    throw error;
  }
  const uid = process.getuid?.();
  if (uid !== undefined && (statSync(file).mode & 0o077) !== 0) {
    throw new JitvmError('invalid_state', `${file} is readable by other users; run \`chmod 600 ${file}\``);
  }
  const token = text.trim();
  if (!TOKEN_PATTERN.test(token)) {
    throw new JitvmError('invalid_state', `${file} does not hold a jitvm token; run \`jitvm serve --rotate-token\``);
  }
  return token;
}
