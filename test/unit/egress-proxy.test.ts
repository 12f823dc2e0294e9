/**
 * serveEgress end to end on loopback only: a net.Server on 127.0.0.1:0 hands each accepted socket to the proxy, a
 * client socket plays the guest, and origins are servers this file starts. Names reach them only through `hosts`
 * overrides or an injected lookup; the default lookup here fails the test if anything tries to resolve.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type IncomingHttpHeaders, createServer as createHttpServer } from 'node:http';
import { type Socket, connect, createServer } from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import { connect as tlsConnect } from 'node:tls';

import { type EgressDecision, type EgressProxyOptions } from '../../src/network/egress-options.js';
import { type EgressPolicyInput, compileEgressPolicy } from '../../src/network/egress-policy.js';
import { serveEgress } from '../../src/network/egress-proxy.js';
import { inspectClientHello } from '../../src/network/tls-sni.js';

interface Proxy {
  readonly port: number;
  readonly decisions: EgressDecision[];
  /** Names the proxy asked its resolver about. */
  readonly lookups: string[];
  /** A new guest connection to the proxy. */
  guest(): Promise<Socket>;
}

/** The proxy under test, fed real loopback sockets; everything is closed and awaited when the test ends. */
async function startProxy(t: TestContext, policy: EgressPolicyInput, options: EgressProxyOptions = {}): Promise<Proxy> {
  const compiled = compileEgressPolicy(policy);
  const decisions: EgressDecision[] = [];
  const lookups: string[] = [];
  const errors: Error[] = [];
  const served: Promise<void>[] = [];
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    served.push(
      serveEgress(socket, compiled, {
        lookup: (name) => {
          lookups.push(name);
          return Promise.reject(Object.assign(new Error(`the test resolved ${name}`), { code: 'ENOTFOUND' }));
        },
        onDecision: (decision) => decisions.push(decision),
        onError: (error) => errors.push(error),
        ...options,
      }),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await Promise.all(served);
    server.close();
    await once(server, 'close');
    assert.deepEqual(errors, [], 'the proxy reported no internal failure');
  });
  const guest = async (): Promise<Socket> => {
    const socket = connect(port, '127.0.0.1');
    sockets.add(socket);
    await once(socket, 'connect');
    return socket;
  };
  return { port, decisions, lookups, guest };
}

interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** An HTTP origin on 127.0.0.1 that answers `origin saw <method> <url> body=<body>`, once `hold` resolves. */
async function startOrigin(t: TestContext, hold?: Promise<void>) {
  const seen: SeenRequest[] = [];
  const state = { port: 0, seen, abandoned: 0 };
  const server = createHttpServer(async (req, res) => {
    res.once('close', () => {
      if (!res.writableFinished) state.abandoned++;
    });
    let body = '';
    for await (const chunk of req) body += String(chunk);
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
    await hold;
    res.setHeader('keep-alive', 'timeout=5');
    res.setHeader('x-origin', 'yes');
    res.end(`origin saw ${req.method} ${req.url} body=${body}`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });
  state.port = (server.address() as { port: number }).port;
  return state;
}

/** A TCP origin that echoes what it gets and keeps a copy; `connections` counts who reached it. */
async function startEchoOrigin(t: TestContext, host = '127.0.0.1') {
  const state = { port: 0, connections: 0, closed: 0, received: Buffer.alloc(0) };
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    state.connections++;
    sockets.add(socket);
    socket.once('close', () => state.closed++);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      state.received = Buffer.concat([state.received, chunk]);
      socket.write(chunk);
    });
  });
  server.listen(0, host);
  await once(server, 'listening');
  state.port = (server.address() as { port: number }).port;
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    server.close();
    await once(server, 'close');
  });
  return state;
}

interface Response {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Reads one response (a status line with a Content-Length, or the CONNECT answer) and pauses the socket after it. */
function readResponse(socket: Socket): Promise<Response> {
  return new Promise((resolve, reject) => {
    let buffer = Buffer.alloc(0);
    const done = (): void => {
      socket.off('data', onData).off('end', onEnd).off('error', onEnd);
      socket.pause();
    };
    const onData = (chunk: Buffer): void => {
      buffer = Buffer.concat([buffer, chunk]);
      const headEnd = buffer.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const [statusLine = '', ...lines] = buffer.subarray(0, headEnd).toString('latin1').split('\r\n');
      const headers = Object.fromEntries(
        lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
      );
      const length = Number(headers['content-length'] ?? 0);
      if (buffer.length < headEnd + 4 + length) return;
      done();
      const rest = buffer.subarray(headEnd + 4 + length);
      if (rest.length > 0) socket.unshift(rest);
      const body = buffer.subarray(headEnd + 4, headEnd + 4 + length).toString();
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body });
    };
    const onEnd = (): void => {
      done();
      reject(new Error(`the connection ended before a whole response: ${JSON.stringify(buffer.toString('latin1'))}`));
    };
    socket.on('data', onData).once('end', onEnd).once('error', onEnd);
    socket.resume();
  });
}

/** Sends `text` and reads the answer. */
async function exchange(socket: Socket, text: string): Promise<Response> {
  socket.write(text);
  return readResponse(socket);
}

/** Resolves once the proxy has closed `socket`, whatever it still sends. */
async function closedByProxy(socket: Socket): Promise<void> {
  socket.on('error', () => undefined);
  if (socket.destroyed) return;
  socket.resume();
  await once(socket, 'close');
}

const get = (url: string, extra = ''): string => `GET ${url} HTTP/1.1\r\nHost: ignored.test\r\n${extra}\r\n`;
const connectTo = (authority: string): string => `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`;
const LOOPBACK = { 'allowed.test': '127.0.0.1' };

describe('serveEgress: absolute-form requests', { timeout: 15_000 }, () => {
  it('forwards an allowed name to its hosts override in origin form, with Host rewritten and proxy headers dropped', async (t) => {
    const origin = await startOrigin(t);
    const proxy = await startProxy(t, { allow: ['allowed.test'], hosts: LOOPBACK });
    const guest = await proxy.guest();
    const extra =
      'Proxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nConnection: x-secret\r\nX-Secret: 1\r\nX-Kept: 2\r\n';
    const response = await exchange(guest, get(`http://Allowed.TEST.:${origin.port}/path?q=1`, extra));
    assert.equal(response.status, 200);
    assert.equal(response.body, 'origin saw GET /path?q=1 body=');
    assert.equal(response.headers['x-origin'], 'yes');
    assert.equal(response.headers['keep-alive'], undefined, 'hop-by-hop response headers are dropped');
    const [seen] = origin.seen;
    assert.equal(seen?.headers.host, `allowed.test:${origin.port}`);
    assert.equal(seen?.headers['x-kept'], '2');
    for (const dropped of ['proxy-authorization', 'proxy-connection', 'x-secret']) {
      assert.equal(seen?.headers[dropped], undefined, `${dropped} does not reach the origin`);
    }
    assert.deepEqual(proxy.lookups, [], 'an override is used before DNS');
    assert.deepEqual(
      proxy.decisions.map(({ host, port, method, allowed, reason, addresses }) => ({
        host,
        port,
        method,
        allowed,
        reason,
        addresses,
      })),
      [
        {
          host: 'allowed.test',
          port: origin.port,
          method: 'GET',
          allowed: true,
          reason: 'hosts_override',
          addresses: ['127.0.0.1'],
        },
      ],
    );
  });

  it('streams request bodies, sized and chunked', async (t) => {
    const origin = await startOrigin(t);
    const proxy = await startProxy(t, { allow: ['allowed.test'], hosts: LOOPBACK });
    const guest = await proxy.guest();
    const url = `http://allowed.test:${origin.port}/upload`;
    const sized = await exchange(guest, `POST ${url} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello`);
    assert.equal(sized.body, 'origin saw POST /upload body=hello');
    const chunked = await exchange(
      guest,
      `PUT ${url} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n`,
    );
    assert.equal(chunked.body, 'origin saw PUT /upload body=abcdefg');
  });

  it('refuses an unlisted name with 403 without resolving it or contacting anyone', async (t) => {
    const origin = await startEchoOrigin(t);
    const proxy = await startProxy(t, { allow: ['allowed.test'], hosts: { ...LOOPBACK, 'other.test': '127.0.0.1' } });
    const guest = await proxy.guest();
    const response = await exchange(guest, get(`http://other.test:${origin.port}/`));
    assert.equal(response.status, 403);
    assert.equal(response.body, `jitvm egress proxy: other.test:${origin.port} refused: not in the allowlist\n`);
    assert.equal(origin.connections, 0);
    assert.deepEqual(proxy.lookups, []);
    assert.equal(proxy.decisions[0]?.reason, 'not_allowlisted');
  });

  it('re-checks every request on a kept-alive connection', async (t) => {
    const origin = await startOrigin(t);
    const proxy = await startProxy(t, { allow: ['allowed.test'], hosts: { ...LOOPBACK, 'other.test': '127.0.0.1' } });
    const guest = await proxy.guest();
    assert.equal((await exchange(guest, get(`http://allowed.test:${origin.port}/one`))).status, 200);
    const refused = await exchange(guest, get(`http://other.test:${origin.port}/two`));
    assert.equal(refused.status, 403);
    assert.match(refused.body, /other\.test.*not in the allowlist/);
    assert.equal((await exchange(guest, get(`http://allowed.test:${origin.port}/three`))).status, 200);
    assert.deepEqual(
      origin.seen.map((request) => request.url),
      ['/one', '/three'],
    );
  });

  it('allows a raw IP only when a listed address or range contains it, IPv4-mapped IPv6 included', async (t) => {
    const origin = await startOrigin(t);
    const closed = await startProxy(t, { allow: ['allowed.test'] });
    const refused = await exchange(await closed.guest(), get(`http://127.0.0.1:${origin.port}/`));
    assert.equal(refused.status, 403);
    assert.match(refused.body, /127\.0\.0\.1:\d+ refused: raw IP address not in the allowlist/);
    assert.equal(origin.seen.length, 0);

    const open = await startProxy(t, { allow: ['127.0.0.0/8'] });
    const guest = await open.guest();
    assert.equal((await exchange(guest, get(`http://127.0.0.1:${origin.port}/v4`))).status, 200);
    assert.equal((await exchange(guest, get(`http://[::ffff:127.0.0.1]:${origin.port}/mapped`))).status, 200);
    assert.equal((await exchange(guest, get(`http://2130706433:${origin.port}/decimal`))).status, 200);
    assert.deepEqual(
      open.decisions.map((decision) => [decision.host, decision.reason]),
      [
        ['127.0.0.1', 'listed_address'],
        ['127.0.0.1', 'listed_address'],
        ['127.0.0.1', 'listed_address'],
      ],
    );
  });

  it('refuses an allowed name whose DNS answer is loopback or private, unless a listed range holds it', async (t) => {
    const origin = await startOrigin(t);
    const answers: Record<string, string[]> = {
      'loop.test': ['127.0.0.1'],
      'private.test': ['10.1.2.3'],
      'mixed.test': ['127.0.0.1', '127.0.0.2'],
    };
    const lookup = async (name: string) => (answers[name] ?? []).map((address) => ({ address }));
    const proxy = await startProxy(t, { allow: ['*.test'] }, { lookup });
    const guest = await proxy.guest();
    for (const [name, range] of [
      ['loop.test', 'loopback'],
      ['private.test', 'private'],
    ] as const) {
      const response = await exchange(guest, get(`http://${name}:${origin.port}/`));
      assert.equal(response.status, 403, name);
      assert.match(response.body, new RegExp(`${name}:\\d+ refused: resolves to a non-public \\(${range}\\) address`));
    }
    assert.deepEqual(
      proxy.decisions.map((decision) => [decision.reason, decision.addresses]),
      [
        ['non_public_address', ['127.0.0.1']],
        ['non_public_address', ['10.1.2.3']],
      ],
    );

    const listed = await startProxy(t, { allow: ['*.test', '127.0.0.1/32'] }, { lookup });
    const other = await listed.guest();
    const mixed = await exchange(other, get(`http://mixed.test:${origin.port}/`));
    assert.equal(mixed.status, 403, 'one address outside the listed range refuses the name');
    assert.equal((await exchange(other, get(`http://loop.test:${origin.port}/ok`))).status, 200);
    assert.deepEqual(
      listed.decisions.map((decision) => [decision.reason, decision.addresses]),
      [
        ['non_public_address', ['127.0.0.2']],
        ['listed_name', ['127.0.0.1']],
      ],
    );
    assert.deepEqual(
      origin.seen.map((request) => request.url),
      ['/ok'],
    );
  });

  it('matches *.name below the name at any depth, never the name itself', async (t) => {
    const origin = await startOrigin(t);
    const hosts = { 'a.wild.test': '127.0.0.1', 'a.b.wild.test': '127.0.0.1', 'wild.test': '127.0.0.1' };
    const proxy = await startProxy(t, { allow: ['*.wild.test'], hosts });
    const guest = await proxy.guest();
    assert.equal((await exchange(guest, get(`http://a.wild.test:${origin.port}/`))).status, 200);
    assert.equal((await exchange(guest, get(`http://a.b.wild.test:${origin.port}/`))).status, 200);
    assert.equal((await exchange(guest, get(`http://wild.test:${origin.port}/`))).status, 403);
  });

  it('answers 502 when the origin refuses the connection, and 504 when resolving outlasts the deadline', async (t) => {
    const gone = createServer();
    gone.listen(0, '127.0.0.1');
    await once(gone, 'listening');
    const closedPort = (gone.address() as { port: number }).port;
    gone.close();
    await once(gone, 'close');
    const proxy = await startProxy(
      t,
      { allow: ['allowed.test', 'slow.test'], hosts: LOOPBACK },
      { lookup: () => new Promise(() => undefined), connectTimeoutMs: 200 },
    );
    const guest = await proxy.guest();
    const refused = await exchange(guest, get(`http://allowed.test:${closedPort}/`));
    assert.equal(refused.status, 502);
    assert.match(refused.body, /ECONNREFUSED/);
    const slow = await exchange(guest, get('http://slow.test/'));
    assert.equal(slow.status, 504);
    assert.match(slow.body, /resolving slow\.test:80 took longer than 200 ms/);
  });

  it('sends at most 8 pipelined requests upstream at once and answers the rest 429, in order', async (t) => {
    let release = (): void => undefined;
    const origin = await startOrigin(t, new Promise<void>((resolve) => (release = resolve)));
    const proxy = await startProxy(t, { allow: ['allowed.test'], hosts: LOOPBACK });
    const guest = await proxy.guest();
    guest.write(Array.from({ length: 10 }, (_, i) => get(`http://allowed.test:${origin.port}/${i}`)).join(''));
    while (origin.seen.length < 8) await new Promise((resolve) => setTimeout(resolve, 10));
    release();
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await readResponse(guest)).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 429, 429]);
    assert.equal(origin.seen.length, 8);
  });

  it('drops the origin connection when the guest goes away mid-request', async (t) => {
    const origin = await startOrigin(t, new Promise<void>(() => undefined));
    const proxy = await startProxy(t, { allow: ['allowed.test'], hosts: LOOPBACK });
    const guest = await proxy.guest();
    guest.write(get(`http://allowed.test:${origin.port}/held`));
    while (origin.seen.length < 1) await new Promise((resolve) => setTimeout(resolve, 10));
    guest.destroy();
    while (origin.abandoned < 1) await new Promise((resolve) => setTimeout(resolve, 10));
  });

  it('serves a guest that is a plain Duplex, as the agent tunnel hands over', async (t) => {
    const origin = await startOrigin(t);
    const toProxy = new PassThrough();
    const toGuest = new PassThrough();
    const proxySide = Duplex.from({ readable: toProxy, writable: toGuest });
    t.after(() => proxySide.destroy());
    const served = serveEgress(proxySide, compileEgressPolicy({ allow: ['allowed.test'], hosts: LOOPBACK }));
    toProxy.write(get(`http://allowed.test:${origin.port}/duplex`, 'Connection: close\r\n'));
    let answer = '';
    for await (const chunk of toGuest) answer += String(chunk);
    assert.match(answer, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\norigin saw GET \/duplex body=$/);
    toProxy.end();
    proxySide.destroy();
    await served;
  });

  it('reports a throwing onDecision to onError and goes on serving', async (t) => {
    const origin = await startOrigin(t);
    const errors: Error[] = [];
    const proxy = await startProxy(
      t,
      { allow: ['allowed.test'], hosts: LOOPBACK },
      {
        onDecision: () => {
          throw new Error('logger broke');
        },
        onError: (error) => errors.push(error),
      },
    );
    const response = await exchange(await proxy.guest(), get(`http://allowed.test:${origin.port}/`));
    assert.equal(response.status, 200);
    assert.deepEqual(
      errors.map((error) => error.message),
      ['logger broke'],
    );
  });
});

describe('serveEgress: what the guest gets wrong', { timeout: 15_000 }, () => {
  it('answers 400 to requests that are not proxy requests, and keeps the connection', async (t) => {
    const origin = await startOrigin(t);
    const proxy = await startProxy(t, { allow: ['allowed.test'], hosts: LOOPBACK });
    const guest = await proxy.guest();
    const originForm = await exchange(guest, 'GET /local HTTP/1.1\r\nHost: allowed.test\r\n\r\n');
    assert.equal(originForm.status, 400);
    assert.match(originForm.body, /request an absolute URL/);
    const https = await exchange(guest, get('https://allowed.test/'));
    assert.equal(https.status, 400);
    assert.match(https.body, /use CONNECT for https:/);
    assert.equal((await exchange(guest, get(`http://allowed.test:${origin.port}/`))).status, 200);
    assert.equal(proxy.decisions.length, 1, 'a malformed request makes no decision');
  });

  it('answers 400 to bytes that are not HTTP and closes', async (t) => {
    const proxy = await startProxy(t, { allow: [] });
    const guest = await proxy.guest();
    const response = await exchange(guest, 'NOT HTTP AT ALL\r\n\r\n');
    assert.equal(response.status, 400);
    assert.match(response.body, /malformed request \(HPE_/);
    await closedByProxy(guest);
  });

  it('answers 400 to a CONNECT target that is not host:port and closes', async (t) => {
    const proxy = await startProxy(t, { allow: ['allowed.test'] });
    const guest = await proxy.guest();
    const response = await exchange(guest, connectTo('allowed.test'));
    assert.equal(response.status, 400);
    assert.match(response.body, /CONNECT needs host:port/);
    await closedByProxy(guest);
  });

  it('answers 431 to a head over the limit and closes', async (t) => {
    const proxy = await startProxy(t, { allow: ['allowed.test'] }, { maxHeadBytes: 4096 });
    const guest = await proxy.guest();
    const response = await exchange(guest, get('http://allowed.test/', `X-Big: ${'a'.repeat(5000)}\r\n`));
    assert.equal(response.status, 431);
    assert.match(response.body, /request head over 4096 bytes/);
    await closedByProxy(guest);
  });

  it('answers 408 when the head does not arrive in time, also between kept-alive requests', async (t) => {
    const origin = await startOrigin(t);
    const proxy = await startProxy(t, { allow: ['allowed.test'], hosts: LOOPBACK }, { headTimeoutMs: 300 });
    const slow = await proxy.guest();
    slow.write('GET http://allowed.test/ HTTP/1.1\r\nHost: allo');
    const response = await readResponse(slow);
    assert.equal(response.status, 408);
    await closedByProxy(slow);

    const idle = await proxy.guest();
    assert.equal((await exchange(idle, get(`http://allowed.test:${origin.port}/`))).status, 200);
    assert.equal((await readResponse(idle)).status, 408);
    await closedByProxy(idle);
  });
});

describe('serveEgress: CONNECT', { timeout: 15_000 }, () => {
  it('tunnels raw bytes to an allowed name both ways', async (t) => {
    const origin = await startEchoOrigin(t);
    const proxy = await startProxy(t, { allow: ['allowed.test'], hosts: LOOPBACK });
    const guest = await proxy.guest();
    const answer = await exchange(guest, connectTo(`allowed.test:${origin.port}`));
    assert.equal(answer.status, 200);
    guest.write('ping over the tunnel');
    guest.resume();
    const [echoed] = (await once(guest, 'data')) as [Buffer];
    assert.equal(echoed.toString(), 'ping over the tunnel');
    assert.equal(proxy.decisions[0]?.method, 'CONNECT');
  });

  it('closes the server side when the guest goes away', async (t) => {
    const origin = await startEchoOrigin(t);
    const proxy = await startProxy(t, { allow: ['allowed.test'], hosts: LOOPBACK });
    const guest = await proxy.guest();
    assert.equal((await exchange(guest, connectTo(`allowed.test:${origin.port}`))).status, 200);
    guest.destroy();
    while (origin.closed < 1) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(origin.connections, 1);
  });

  it('passes bytes sent together with the CONNECT head', async (t) => {
    const origin = await startEchoOrigin(t);
    const proxy = await startProxy(t, { allow: ['allowed.test'], hosts: LOOPBACK });
    const guest = await proxy.guest();
    const answer = await exchange(guest, `${connectTo(`allowed.test:${origin.port}`)}early bytes`);
    assert.equal(answer.status, 200);
    guest.resume();
    const [echoed] = (await once(guest, 'data')) as [Buffer];
    assert.equal(echoed.toString(), 'early bytes');
  });

  it('refuses unlisted names, unlisted IPs and IPv6 literals with 403 before connecting', async (t) => {
    const origin = await startEchoOrigin(t);
    const proxy = await startProxy(t, { allow: ['allowed.test', '10.0.0.0/8'], hosts: LOOPBACK });
    for (const authority of [`other.test:${origin.port}`, `127.0.0.1:${origin.port}`, `[::1]:${origin.port}`]) {
      const guest = await proxy.guest();
      const answer = await exchange(guest, connectTo(authority));
      assert.equal(answer.status, 403, authority);
      await closedByProxy(guest);
    }
    assert.equal(origin.connections, 0);
    assert.deepEqual(
      proxy.decisions.map((decision) => [decision.host, decision.reason]),
      [
        ['other.test', 'not_allowlisted'],
        ['127.0.0.1', 'address_not_listed'],
        ['::1', 'address_not_listed'],
      ],
    );
  });

  it('tunnels to a listed IPv6 address', async (t) => {
    let origin: Awaited<ReturnType<typeof startEchoOrigin>>;
    try {
      origin = await startEchoOrigin(t, '::1');
    } catch {
      return t.skip('this host has no IPv6 loopback');
    }
    const proxy = await startProxy(t, { allow: ['::1/128'] });
    const guest = await proxy.guest();
    assert.equal((await exchange(guest, connectTo(`[0:0::1]:${origin.port}`))).status, 200);
    guest.write('v6');
    guest.resume();
    const [echoed] = (await once(guest, 'data')) as [Buffer];
    assert.equal(echoed.toString(), 'v6');
  });

  it('closes a tunnel whose TLS ClientHello names another server, before the server sees a byte', async (t) => {
    const origin = await startEchoOrigin(t);
    const proxy = await startProxy(t, { allow: ['allowed.test'], hosts: LOOPBACK });
    const guest = await proxy.guest();
    assert.equal((await exchange(guest, connectTo(`allowed.test:${origin.port}`))).status, 200);
    const tls = tlsConnect({ socket: guest, servername: 'forbidden.test', rejectUnauthorized: false });
    tls.on('error', () => undefined);
    await once(guest, 'close');
    tls.destroy();
    assert.equal(origin.received.length, 0);
    assert.deepEqual(
      proxy.decisions.map((decision) => [decision.allowed, decision.reason]),
      [
        [true, 'hosts_override'],
        [false, 'sni_mismatch'],
      ],
    );
    assert.match(proxy.decisions[1]?.message ?? '', /names "forbidden\.test", not the CONNECT host/);
  });

  it('passes a TLS ClientHello whose SNI is the CONNECT host', async (t) => {
    const origin = await startEchoOrigin(t);
    const proxy = await startProxy(t, { allow: ['allowed.test'], hosts: LOOPBACK });
    const guest = await proxy.guest();
    assert.equal((await exchange(guest, connectTo(`allowed.test:${origin.port}`))).status, 200);
    const tls = tlsConnect({ socket: guest, servername: 'allowed.test', rejectUnauthorized: false });
    tls.on('error', () => undefined);
    t.after(() => tls.destroy());
    while (inspectClientHello(origin.received).kind === 'incomplete') await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(inspectClientHello(origin.received), { kind: 'client_hello', serverName: 'allowed.test' });
    assert.equal(proxy.decisions.length, 1);
  });
});
