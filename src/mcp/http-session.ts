import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createMcpServer } from './server.js';
import { SandboxSession, type SandboxSessionOptions } from './session.js';

/**
 * Largest POST body a session reads. write_file takes up to 4 Mi characters of content, which JSON can spell in up to
 * 12 MiB of UTF-8; the SDK's own default (4 MiB) would refuse the largest writes.
 */
export const MAX_REQUEST_BYTES = 16 * 1024 * 1024;

/** Which Host and Origin headers a request may carry (DNS-rebinding protection); undefined: any. */
export interface AllowedHeaders {
  readonly hosts: string[] | undefined;
  readonly origins: string[];
}

export interface McpHttpSessionOptions {
  readonly sandboxes: SandboxSessionOptions;
  readonly allowed: AllowedHeaders;
  /** Closes the session when no POST or DELETE was in flight for this long. */
  readonly idleTimeoutMs: number;
  /** Called once when the session starts ending, so its owner forgets it. */
  readonly onEnd: (session: McpHttpSession) => void;
}

/**
 * One MCP session over streamable HTTP: its transport (stateful, with a random session id), its McpServer, and the
 * SandboxSession holding its sandboxes. It ends on DELETE, when idle too long, or by `end()`; ending destroys its
 * sandboxes.
 */
export class McpHttpSession {
  private readonly transport: StreamableHTTPServerTransport;
  private readonly server: McpServer;
  private readonly sandboxes: SandboxSession;
  private inFlight = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private ended: Promise<void> | undefined;

  constructor(private readonly options: McpHttpSessionOptions) {
    this.sandboxes = new SandboxSession(options.sandboxes);
    this.server = createMcpServer({ session: this.sandboxes });
    this.transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      onsessionclosed: () => this.end(),
      enableDnsRebindingProtection: true,
      allowedHosts: options.allowed.hosts,
      allowedOrigins: options.allowed.origins,
      maxRequestBodySize: MAX_REQUEST_BYTES,
    });
  }

  /** The session id, once an initialize request went through `handle`. */
  get id(): string | undefined {
    return this.transport.sessionId;
  }

  /** Connects the McpServer to the transport; call once, before `handle`. */
  async start(): Promise<void> {
    await this.server.connect(this.transport);
  }

  /**
   * Answers one HTTP request of this session. POST and DELETE count as activity until their response ends; a GET
   * (the client's standing notification stream) does not, so an open stream alone does not keep a session alive.
   */
  async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (request.method !== 'GET') this.busyUntil(response);
    await this.transport.handleRequest(request, response);
  }

  private busyUntil(response: ServerResponse): void {
    this.inFlight += 1;
    clearTimeout(this.idleTimer);
    response.once('close', () => {
      this.inFlight -= 1;
      if (this.inFlight === 0 && !this.ended) {
        this.idleTimer = setTimeout(() => void this.end(), this.options.idleTimeoutMs).unref();
      }
    });
  }

  /** Closes the transport (its open streams end) and destroys every sandbox of the session; idempotent. */
  end(): Promise<void> {
    this.ended ??= this.close();
    return this.ended;
  }

  private async close(): Promise<void> {
    clearTimeout(this.idleTimer);
    this.options.onEnd(this);
    await this.server.close();
    await this.sandboxes.close();
  }
}
