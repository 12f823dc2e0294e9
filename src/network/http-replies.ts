/**
 * The proxy's own answers to the guest: short plain-text bodies that name the target and the reason, written through
 * node's ServerResponse while node's parser owns the connection, or as raw bytes once it has let go (CONNECT, parse
 * errors, timeouts).
 */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

import type { EgressTarget } from './egress-target.js';

/** How long a connection the proxy ended may stay open for its peer to read the answer and close. */
const LINGER_MS = 1000;

/** The answer's text: `jitvm egress proxy: api.test:443 refused: not in the allowlist`. */
export function replyText(status: number, why: string, target?: EgressTarget): string {
  const subject = target ? `${target.host}:${target.port} ` : '';
  const verdict = status === 403 ? 'refused' : (STATUS_CODES[status] ?? 'error').toLowerCase();
  return `jitvm egress proxy: ${subject}${verdict}: ${why}\n`;
}

/**
 * Answers one request through node's server; the connection stays open for the next one. When an answer has
 * already begun, or the guest is gone, there is nothing left to say: the response is destroyed instead.
 */
export function reply(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = Buffer.from(text);
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': body.length }).end(body);
}

/**
 * Writes a whole response as raw bytes and ends the connection; destroys it LINGER_MS later if the peer has not
 * closed by then. Reading on meanwhile keeps unread input from turning the close into a reset that would discard
 * the answer. On a connection already ended, only schedules the destroy.
 */
export function endWith(connection: Duplex, status: number, text: string): void {
  if (connection.destroyed) return;
  if (!connection.writableEnded) {
    const body = Buffer.from(text);
    const head =
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
    connection.end(Buffer.concat([Buffer.from(head), body]));
  }
  const timer = setTimeout(() => connection.destroy(), LINGER_MS);
  connection.once('close', () => clearTimeout(timer));
  connection.resume();
}
