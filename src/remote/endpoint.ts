import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '../core/errors.js';
import { defaultTokenPath } from '../daemon/token-store.js';

/** Where a daemon listens, as a client reaches it: a Unix socket, or an http:// origin. */
export type DaemonEndpoint =
  | { readonly kind: 'unix'; readonly socketPath: string; readonly text: string }
  | { readonly kind: 'tcp'; readonly origin: string; readonly text: string };

/**
 * Parses a daemon address: `unix:///path/to/jitvm.sock` (or `unix:/path`, as `jitvm serve` prints it) or
 * `http://127.0.0.1:PORT`. https is not served by the daemon (put a TLS proxy in front and give its http side).
 */
export function parseDaemonEndpoint(text: string): DaemonEndpoint {
  const unix = /^unix:(?:\/\/)?(\/.+)$/.exec(text);
  if (unix) return { kind: 'unix', socketPath: unix[1]!, text };
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (url?.protocol === 'http:' && (url.pathname === '/' || url.pathname === '') && !url.search && !url.username) {
    return { kind: 'tcp', origin: url.origin, text };
  }
  throw new InvalidArgumentError(
    `daemon address "${text}" is neither unix:///path/to/jitvm.sock nor http://HOST:PORT (as \`jitvm serve\` prints it)`,
  );
}

/**
 * The bearer token for a daemon: the one given, else `$JITVM_TOKEN`, else the local daemon's token file if there is
 * one (a daemon on this host and user wrote it). A Unix socket needs none: its file mode is the access control.
 */
export function resolveToken(
  endpoint: DaemonEndpoint,
  given: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  if (given !== undefined) return given;
  if (env.JITVM_TOKEN) return env.JITVM_TOKEN;
  if (endpoint.kind === 'unix') return undefined;
  try {
    return readFileSync(defaultTokenPath(env), 'utf8').trim();
  } catch {
    return undefined;
  }
}
