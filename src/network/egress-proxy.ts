/**
 * The host side of `allowlist` network mode: one guest connection to the HTTP proxy at guest 127.0.0.1:3128,
 * carried to the host as a Duplex, served here. Node's own HTTP server parses the guest's requests (it is fed the
 * Duplex and never listens), bounded in head size and in the time to send a head; every request is checked against
 * the policy on its own, including each one on a kept-alive connection.
 *
 * - `CONNECT host:port` → `200 Connection established`, then a byte tunnel (TLS SNI checked, see sni-guard.ts).
 * - `GET http://host[:port]/path` (any method, bodies streamed) → forwarded in origin form (forward-request.ts).
 * - A request that is not a proxy request (origin form, `https://` URL) → 400. Malformed → 400, head over the
 *   limit → 431, head not complete in time → 408, each closing the connection.
 * - Refused by the policy → 403 naming the target and why; upstream unreachable → 502; no connection within
 *   connectTimeoutMs → 504; more than MAX_IN_FLIGHT pipelined requests waiting → 429.
 */
import { createServer } from 'node:http';
import type { Duplex } from 'node:stream';

import { serveConnect } from './connect-tunnel.js';
import { type EgressProxyOptions, egressContext } from './egress-options.js';
import type { EgressPolicy } from './egress-policy.js';
import { forwardRequest } from './forward-request.js';
import { endWith, reply, replyText } from './http-replies.js';

/**
 * Pipelined requests served at once on one connection, each with its own upstream connection; the rest get 429
 * (whose queued answers make node's server pause reading, so a flood of them stays bounded).
 */
const MAX_IN_FLIGHT = 8;

/**
 * Serves one proxied guest connection under `policy` until it closes (its 'close' event); resolves then, once
 * every upstream socket it opened has been destroyed. Never rejects for anything the guest or the network does; failures of the proxy itself
 * go to `options.onError` and close the connection. Rejects with InvalidArgumentError, before reading anything,
 * when `options` are wrong. For CONNECT tunnels to pass half-closes on, `guest` should allow half-open.
 */
export async function serveEgress(
  guest: Duplex,
  policy: EgressPolicy,
  options: EgressProxyOptions = {},
): Promise<void> {
  const closedController = new AbortController();
  const context = egressContext(policy, options, closedController.signal);
  const handlers = new Set<Promise<void>>();
  const track = (handler: Promise<void>): void => {
    const settled = handler
      .catch((error: unknown) => {
        context.fail(error);
        guest.destroy();
      })
      .finally(() => handlers.delete(settled));
    handlers.add(settled);
  };

  let inFlight = 0;
  let headTimer: NodeJS.Timeout | undefined;
  const awaitHead = (): void => {
    clearTimeout(headTimer);
    headTimer = setTimeout(() => {
      const why = `no complete request head within ${context.headTimeoutMs} ms`;
      endWith(guest, 408, replyText(408, why));
    }, context.headTimeoutMs);
  };

  const server = createServer({
    maxHeaderSize: context.maxHeadBytes,
    requireHostHeader: false,
    insecureHTTPParser: false,
  });
  // Idle time between requests is the head timer's business. A guest that ends its side of the connection aborts
  // what it had in flight (node's default, as nginx does): its upstream connections close with it.
  server.keepAliveTimeout = 0;
  server.on('request', (req, res) => {
    clearTimeout(headTimer);
    inFlight++;
    res.once('close', () => {
      if (--inFlight === 0 && !guest.destroyed) awaitHead();
    });
    if (inFlight > MAX_IN_FLIGHT) {
      return reply(res, 429, replyText(429, `at most ${MAX_IN_FLIGHT} pipelined requests are served at once`));
    }
    track(forwardRequest(context, req, res));
  });
  server.on('connect', (req, socket: Duplex, head: Buffer) => {
    clearTimeout(headTimer);
    track(serveConnect(context, req, socket, head));
  });
  let answeredError = false;
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    clearTimeout(headTimer);
    if (answeredError) return;
    answeredError = true;
    if (inFlight > 0 || error.code === 'ECONNRESET') return socket.destroy();
    const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    const why =
      status === 431 ? `request head over ${context.maxHeadBytes} bytes` : `malformed request (${error.code})`;
    endWith(socket, status, replyText(status, why));
  });

  const closed = new Promise<void>((resolve) => guest.once('close', resolve));
  guest.on('error', () => undefined);
  if (guest.destroyed) return;
  awaitHead();
  server.emit('connection', guest);
  await closed;
  clearTimeout(headTimer);
  closedController.abort();
  while (handlers.size > 0) await Promise.all(handlers);
}
