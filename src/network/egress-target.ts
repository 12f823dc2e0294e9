/**
 * Where a proxy request wants to go, read from a CONNECT authority (`host:port`) or an absolute-form URL
 * (`http://host:port/path`). Both go through the WHATWG URL parser, so a host has one meaning everywhere: the name
 * or address that is checked is the one connected to and the one the origin sees in `Host`.
 */
import { isIPv4 } from 'node:net';

import { normalizeDomainName } from './domain-name.js';
import { type IpAddress, parseIpAddress } from './ip-address.js';

export interface EgressTarget {
  /** The name in normalizeDomainName's form, or the address's canonical text. */
  readonly host: string;
  /** Set when the target is an IP address rather than a name. */
  readonly ip: IpAddress | undefined;
  readonly port: number;
}

/** A parsed target, or the reason the request is malformed (a 400 answer). */
export type TargetParse<T> = ({ readonly ok: true } & T) | { readonly ok: false; readonly why: string };

/** `name:port`, `a.b.c.d:port` or `[v6]:port`, ASCII only: nothing the URL parser could read as a path or user. */
const AUTHORITY = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$/;
const HTTP_PORT = 80;

/** Reads a CONNECT request-target. The port is required. */
export function parseConnectTarget(authority: string): TargetParse<{ target: EgressTarget }> {
  const match = AUTHORITY.exec(authority);
  const url = match ? parseUrl(`http://${match[1] ?? ''}`) : undefined;
  if (!url) return { ok: false, why: `CONNECT needs host:port, got ${quote(authority)}` };
  return targetOf(url.hostname, Number(match?.[2]));
}

/**
 * Reads an absolute-form request-target. Only `http:` is proxied this way (HTTPS goes through CONNECT); `path` is the
 * origin-form target (path and query) to forward, `authority` the Host header to send.
 */
export function parseProxyUrl(url: string): TargetParse<{ target: EgressTarget; path: string; authority: string }> {
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(url)) {
    return { ok: false, why: 'this is a proxy: request an absolute URL (GET http://host/path), or use CONNECT' };
  }
  const parsed = parseUrl(url);
  if (!parsed) return { ok: false, why: `${quote(url)} is not a valid URL` };
  if (parsed.protocol !== 'http:') {
    return { ok: false, why: `only http:// URLs are proxied as requests; use CONNECT for ${parsed.protocol}` };
  }
  const result = targetOf(parsed.hostname, parsed.port === '' ? HTTP_PORT : Number(parsed.port));
  if (!result.ok) return result;
  const { host, ip, port } = result.target;
  const authority = `${ip?.family === 'ipv6' ? `[${host}]` : host}${port === HTTP_PORT ? '' : `:${port}`}`;
  return { ...result, path: `${parsed.pathname}${parsed.search}`, authority };
}

function targetOf(hostname: string, port: number): TargetParse<{ target: EgressTarget }> {
  if (port < 1 || port > 65535) return { ok: false, why: `port ${port} is not from 1 to 65535` };
  const ip = hostname.startsWith('[') || isIPv4(hostname) ? parseIpAddress(hostname) : undefined;
  if (ip) return { ok: true, target: { host: ip.text, ip, port } };
  const name = normalizeDomainName(hostname);
  if (name === undefined) return { ok: false, why: `${quote(hostname)} is not a valid host name` };
  return { ok: true, target: { host: name, ip: undefined, port } };
}

function parseUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

function quote(text: string): string {
  return JSON.stringify(text.slice(0, 300));
}
