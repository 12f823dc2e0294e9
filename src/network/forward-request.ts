/**
 * An absolute-form request (`GET http://host:port/path`): check the target, then send it to the origin in origin
 * form on a fresh connection to the checked address, and stream the answer back. Hop-by-hop and `Proxy-*` headers
 * do not cross in either direction, and `Host` is rewritten to the target that was checked, so the origin cannot be
 * told another name than the one the policy allowed.
 */
import { type ClientRequest, type IncomingMessage, type ServerResponse, request } from 'node:http';
import { pipeline } from 'node:stream';

import type { EgressContext } from './egress-options.js';
import { parseProxyUrl } from './egress-target.js';
import { reply, replyText } from './http-replies.js';
import { openUpstream } from './upstream.js';

/**
 * RFC 9110 §7.6.1 connection-specific fields, plus Expect (node's server already answered 100-continue) and Host
 * (rewritten on requests, meaningless on responses).
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'host',
]);

/** Serves one proxied request; resolves once it is on its way to the origin, or answered by the proxy itself. */
export async function forwardRequest(context: EgressContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const parsed = parseProxyUrl(req.url ?? '');
  if (!parsed.ok) return reply(res, 400, replyText(400, parsed.why));
  const method = req.method ?? 'GET';
  const upstream = await openUpstream(context, parsed.target, method);
  if (!upstream.ok) return reply(res, upstream.status, replyText(upstream.status, upstream.why, parsed.target));
  let outgoing: ClientRequest;
  try {
    outgoing = request({
      createConnection: () => upstream.socket,
      method,
      path: parsed.path,
      headers: requestHeaders(req, parsed.authority),
    });
  } catch (error) {
    upstream.socket.destroy();
    return reply(res, 400, replyText(400, `cannot forward this request: ${(error as Error).message}`));
  }
  outgoing.once('response', (response) => {
    try {
      res.writeHead(response.statusCode ?? 502, response.statusMessage, endToEnd(response.rawHeaders));
    } catch (error) {
      // node's writer is stricter than its parser about a few header bytes: refuse rather than crash.
      response.destroy();
      return reply(res, 502, replyText(502, `cannot relay the origin's answer: ${(error as Error).message}`));
    }
    pipeline(response, res, () => undefined);
  });
  outgoing.on('error', (error) =>
    reply(res, 502, replyText(502, `the origin failed: ${error.message}`, parsed.target)),
  );
  req.once('close', () => {
    if (!req.complete) outgoing.destroy();
  });
  req.pipe(outgoing);
}

/** The guest's headers for the origin: end-to-end ones, then Host, body framing and `Connection: close`. */
function requestHeaders(req: IncomingMessage, authority: string): string[] {
  const headers = ['Host', authority, ...endToEnd(req.rawHeaders)];
  // The parser removed the chunked framing; the client re-applies it when this header says so.
  if (req.headers['transfer-encoding'] !== undefined) headers.push('Transfer-Encoding', 'chunked');
  headers.push('Connection', 'close');
  return headers;
}

/** `rawHeaders` (name, value, name, value…) without hop-by-hop fields, `Proxy-*`, or fields `Connection` names. */
function endToEnd(rawHeaders: readonly string[]): string[] {
  const named = new Set<string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() !== 'connection') continue;
    for (const token of rawHeaders[i + 1]?.split(',') ?? []) named.add(token.trim().toLowerCase());
  }
  const kept: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? '';
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower.startsWith('proxy-') || named.has(lower)) continue;
    kept.push(name, rawHeaders[i + 1] ?? '');
  }
  return kept;
}
