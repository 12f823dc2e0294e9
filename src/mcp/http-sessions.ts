import { JitvmError } from '../core/errors.js';
import { McpHttpSession, type McpHttpSessionOptions } from './http-session.js';

/** MCP sessions one HTTP server holds at once, by default. */
export const DEFAULT_MAX_SESSIONS = 16;
/** How long a session may go without a request before it is closed, by default (30 min). */
export const DEFAULT_SESSION_IDLE_TIMEOUT_MS = 30 * 60 * 1000;

export interface McpHttpSessionsOptions extends Omit<McpHttpSessionOptions, 'onEnd'> {
  readonly maxSessions: number;
}

/**
 * The MCP sessions of one HTTP server: opens them up to a cap (a session counts from its initialize request on),
 * finds them by id, and ends them all on `closeAll()`, after which it opens no more.
 */
export class McpHttpSessions {
  private readonly live = new Set<McpHttpSession>();
  private closing = false;

  constructor(private readonly options: McpHttpSessionsOptions) {}

  /** The initialized session with this id, if it has not ended. */
  get(id: string): McpHttpSession | undefined {
    for (const session of this.live) if (session.id === id) return session;
    return undefined;
  }

  /** A new session, started and counted; refuses (invalid_state) past the cap or once closing. */
  async open(): Promise<McpHttpSession> {
    if (this.closing) throw new JitvmError('invalid_state', 'this MCP server is shutting down; it opens no sessions');
    if (this.live.size >= this.options.maxSessions) {
      throw new JitvmError(
        'invalid_state',
        `this MCP server is at its limit of ${this.options.maxSessions} sessions (--max-sessions); end one ` +
          "(an HTTP DELETE with its Mcp-Session-Id: the client's terminateSession) or wait until one idles out",
      );
    }
    const session = new McpHttpSession({ ...this.options, onEnd: (ended) => this.live.delete(ended) });
    this.live.add(session);
    await session.start();
    return session;
  }

  /** Ends every session (destroying their sandboxes) and refuses new ones from now on. */
  async closeAll(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.live].map((session) => session.end()));
  }
}
