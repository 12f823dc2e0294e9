import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { describe, it, type TestContext } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CancelledError } from '../../src/core/errors.js';
import { parseListen } from '../../src/daemon/listen.js';
import { type McpHttpOptions, type McpHttpServer, startMcpHttpServer } from '../../src/mcp/http.js';

const TOKEN = randomBytes(32).toString('base64url');

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
};

/** A server on a free loopback port, closed when the test ends. No test here boots a sandbox. */
async function serve(t: TestContext, options: Partial<McpHttpOptions> = {}): Promise<McpHttpServer> {
  const server = await startMcpHttpServer({
    listen: parseListen('127.0.0.1:0'),
    token: TOKEN,
    sandboxes: { createSandbox: () => Promise.reject(new CancelledError('no sandboxes in unit tests')) },
    ...options,
  });
  t.after(() => server.close());
  return server;
}

async function connect(t: TestContext, url: string, token = TOKEN): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: 'jitvm-unit', version: '0' });
  await client.connect(transport);
  t.after(() => client.close());
  return client;
}

/** A raw MCP POST (node:http, so that Host can be set too); resolves with the status, headers and body text. */
function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; sessionId: string | undefined; text: string }>((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${TOKEN}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...headers,
      },
    });
    req.on('error', reject).on('response', (response) => {
      let text = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        const sessionId = response.headers['mcp-session-id'] as string | undefined;
        resolve({ status: response.statusCode!, sessionId, text });
      });
    });
    req.end(JSON.stringify(body));
  });
}

describe('MCP over streamable HTTP', { timeout: 20_000 }, () => {
  it('serves the tools to the SDK client that sends the bearer token', async (t) => {
    const server = await serve(t);
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
    const { tools } = await (await connect(t, server.url)).listTools();
    assert.ok(tools.some((tool) => tool.name === 'create_sandbox'));
  });

  it('refuses a request without the token or with a wrong one (401), and any other path (404)', async (t) => {
    const server = await serve(t);
    const missing = await fetch(server.url, { method: 'POST', body: JSON.stringify(INITIALIZE) });
    assert.equal(missing.status, 401);
    assert.equal(missing.headers.get('www-authenticate'), 'Bearer');
    assert.match(((await missing.json()) as { error: { message: string } }).error.message, /Authorization: Bearer/);
    await assert.rejects(connect(t, server.url, randomBytes(32).toString('base64url')), { code: 401 });
    const elsewhere = await fetch(new URL('/other', server.url), { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(elsewhere.status, 404);
    await elsewhere.body?.cancel();
  });

  it('refuses a foreign Host or Origin (403): a DNS-rebinding page cannot reach it', async (t) => {
    const server = await serve(t);
    const port = new URL(server.url).port;
    assert.equal((await post(server.url, INITIALIZE, { origin: 'http://evil.example' })).status, 403);
    assert.equal((await post(server.url, INITIALIZE, { host: `evil.example:${port}` })).status, 403);
    const local = await post(server.url, INITIALIZE, { host: `localhost:${port}`, origin: `http://localhost:${port}` });
    assert.equal(local.status, 200);
  });

  it('refuses a session past maxSessions (503) until one ends', async (t) => {
    const server = await serve(t, { maxSessions: 1 });
    const first = await connect(t, server.url);
    await assert.rejects(connect(t, server.url), { code: 503, message: /limit of 1 sessions \(--max-sessions\)/ });
    await (first.transport as StreamableHTTPClientTransport).terminateSession();
    await connect(t, server.url);
  });

  it('ends a session that had no request for the idle timeout, even with its notification stream open', async (t) => {
    const server = await serve(t, { sessionIdleTimeoutMs: 200 });
    const { sessionId } = await post(server.url, INITIALIZE);
    assert.ok(sessionId);
    const stream = await fetch(server.url, {
      headers: { authorization: `Bearer ${TOKEN}`, accept: 'text/event-stream', 'mcp-session-id': sessionId },
    });
    assert.equal(stream.status, 200);
    await stream.text(); // the stream carries nothing here, and ends when the session does
    const after = await post(
      server.url,
      { jsonrpc: '2.0', id: 2, method: 'tools/list' },
      { 'mcp-session-id': sessionId },
    );
    assert.equal(after.status, 404);
  });

  it('close() ends every session and stops listening', async (t) => {
    const server = await serve(t);
    const client = await connect(t, server.url);
    await server.close();
    await assert.rejects(client.listTools());
    await assert.rejects(fetch(server.url), /fetch failed/);
  });
});
