import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { JitvmError } from '../core/errors.js';
import { bearerMatches } from '../daemon/auth.js';
import type { ListenTarget } from '../daemon/listen.js';
import type { AllowedHeaders } from './http-session.js';
import { DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_IDLE_TIMEOUT_MS, McpHttpSessions } from './http-sessions.js';
import type { SandboxSessionOptions } from './session.js';

/** The one path MCP is served at. */
export const MCP_PATH = '/mcp';

export interface McpHttpOptions {
  /** A TCP address from `parseListen`; port 0 picks a free port. Non-loopback is the caller's decision to allow. */
  readonly listen: ListenTarget & { kind: 'tcp' };
  /** Every request must carry `Authorization: Bearer <token>`. */
  readonly token: string;
  readonly maxSessions?: number;
  readonly sessionIdleTimeoutMs?: number;
  /** How each session starts sandboxes, and how many it may hold. */
  readonly sandboxes?: SandboxSessionOptions;
}

/** A running MCP streamable-HTTP server. */
export interface McpHttpServer {
  /** `http://HOST:PORT/mcp`, with the port actually bound. */
  readonly url: string;
  /** Stops accepting requests, ends every session (destroying its sandboxes), then closes every connection. */
  close(): Promise<void>;
}

/** Answers a request the transport never sees, with a JSON-RPC error body as the SDK's own refusals have. */
function refuse(response: ServerResponse, status: number, message: string, headers: Record<string, string> = {}) {
  const body = JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null });
  response.writeHead(status, { 'content-type': 'application/json', ...headers }).end(body);
}

/**
 * Host and Origin values a request may carry. On loopback only this address and `localhost` (a DNS-rebinding page
 * names its own host); on another address any Host (clients may use any name for it), but no foreign Origin.
 */
function allowedHeaders(listen: McpHttpOptions['listen'], authority: string, port: number): AllowedHeaders {
  const authorities = listen.loopback ? [authority, `localhost:${port}`] : [authority];
  return {
    hosts: listen.loopback ? authorities : undefined,
    origins: authorities.map((name) => `http://${name}`),
  };
}

function requestHandler(sessions: McpHttpSessions, token: string) {
  return async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    if (!bearerMatches(request.headers.authorization, token)) {
      return refuse(
        response,
        401,
        'missing or wrong bearer token: send the header "Authorization: Bearer <token>" with the token from the ' +
          'file `jitvm mcp --listen` printed when it started (by default ~/.config/jitvm/token)',
        { 'www-authenticate': 'Bearer' },
      );
    }
    if (new URL(request.url ?? '/', 'http://host').pathname !== MCP_PATH) {
      return refuse(response, 404, `nothing here; MCP is served at ${MCP_PATH}`);
    }
    const id = request.headers['mcp-session-id'];
    if (typeof id === 'string') {
      const session = sessions.get(id);
      if (!session) return refuse(response, 404, 'Session not found: it ended or idled out; start a new session');
      return session.handle(request, response);
    }
    if (request.method !== 'POST') return refuse(response, 400, 'Bad Request: Mcp-Session-Id header is required');
    let session;
    try {
      session = await sessions.open();
    } catch (error) {
      if (!(error instanceof JitvmError)) throw error;
      return refuse(response, 503, error.message, { 'retry-after': '5' });
    }
    try {
      await session.handle(request, response);
    } finally {
      // Anything but a valid initialize request is refused by the transport and leaves no session to keep.
      if (session.id === undefined) await session.end();
    }
  };
}

function listening(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/**
 * Serves MCP over streamable HTTP at `MCP_PATH` (stateful: one McpServer and one SandboxSession per MCP session).
 * Refuses a request without the bearer token (401), with a foreign Host or Origin (403), and a new session past
 * `maxSessions` (503).
 */
export async function startMcpHttpServer(options: McpHttpOptions): Promise<McpHttpServer> {
  const server = createServer();
  const { port } = await listening(server, options.listen.host, options.listen.port);
  const host = options.listen.host.includes(':') ? `[${options.listen.host}]` : options.listen.host;
  const sessions = new McpHttpSessions({
    maxSessions: options.maxSessions ?? DEFAULT_MAX_SESSIONS,
    idleTimeoutMs: options.sessionIdleTimeoutMs ?? DEFAULT_SESSION_IDLE_TIMEOUT_MS,
    sandboxes: options.sandboxes ?? {},
    allowed: allowedHeaders(options.listen, `${host}:${port}`, port),
  });
  const handle = requestHandler(sessions, options.token);
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) refuse(response, 500, `internal error (a jitvm bug): ${String(error)}`);
      else response.destroy();
    });
  });
  return {
    url: `http://${host}:${port}${MCP_PATH}`,
    async close() {
      const closed = new Promise((resolve) => server.close(resolve));
      await sessions.closeAll();
      server.closeAllConnections();
      await closed;
    },
  };
}
