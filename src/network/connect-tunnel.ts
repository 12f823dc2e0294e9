/**
 * A CONNECT request: check the target, connect, answer `200 Connection established`, then relay bytes both ways.
 * The server's bytes flow to the guest at once (some protocols speak first); the guest's first bytes wait for the
 * SNI check (sni-guard.ts).
 */
import type { IncomingMessage } from 'node:http';
import { type Duplex, pipeline } from 'node:stream';

import type { EgressContext } from './egress-options.js';
import { parseConnectTarget } from './egress-target.js';
import { endWith, replyText } from './http-replies.js';
import { readFirstFlight } from './sni-guard.js';
import { openUpstream } from './upstream.js';

const ESTABLISHED = Buffer.from('HTTP/1.1 200 Connection established\r\n\r\n');

/** Serves the CONNECT request `req` whose connection node's parser has handed over, with `head` already read. */
export async function serveConnect(
  context: EgressContext,
  req: IncomingMessage,
  guest: Duplex,
  head: Buffer,
): Promise<void> {
  const parsed = parseConnectTarget(req.url ?? '');
  if (!parsed.ok) return endWith(guest, 400, replyText(400, parsed.why));
  const { target } = parsed;
  const upstream = await openUpstream(context, target, 'CONNECT');
  if (!upstream.ok) return endWith(guest, upstream.status, replyText(upstream.status, upstream.why, target));
  const server = upstream.socket;
  guest.write(ESTABLISHED);
  pipeline(server, guest, () => undefined);
  const first = await readFirstFlight(guest, head, target);
  if (!first.ok) {
    context.decide({
      host: target.host,
      port: target.port,
      method: 'CONNECT',
      allowed: false,
      reason: first.reason,
      addresses: [upstream.address.text],
      message: `CONNECT ${target.host}:${target.port} refused: ${first.why}`,
    });
    server.destroy();
    guest.destroy();
    return;
  }
  server.write(first.bytes);
  pipeline(guest, server, () => undefined);
}
