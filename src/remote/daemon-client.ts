import type { Readable } from 'node:stream';
import { Agent, type Dispatcher, errors as undiciErrors, request } from 'undici';
import { z } from 'zod';
import { CancelledError, type ErrorCode, JitvmError } from '../core/errors.js';
import { ProblemSchema } from '../daemon/schemas.js';
import { type DaemonEndpoint, parseDaemonEndpoint, resolveToken } from './endpoint.js';

/** A request the daemon refused: its RFC 7807 problem, with the SDK error code it carries. */
export class DaemonError extends JitvmError {
  constructor(
    readonly status: number,
    readonly problem: z.infer<typeof ProblemSchema>,
  ) {
    super(problem.code, problem.detail);
  }
}

export interface RequestOptions {
  readonly query?: Record<string, string | undefined>;
  /** A JSON body. */
  readonly json?: unknown;
  /** A byte body, streamed (application/octet-stream). */
  readonly bytes?: Readable | AsyncIterable<Buffer> | Buffer;
  readonly signal?: AbortSignal;
}

/** Connection errors that mean nothing listens where the daemon should be. */
const NOT_LISTENING = new Set(['ECONNREFUSED', 'ENOENT']);

/**
 * HTTP to one jitvm daemon (`jitvm serve`) over its Unix socket or TCP, with its bearer token: each call resolves with
 * a 2xx response or rejects with the daemon's problem as a DaemonError carrying the SDK error code.
 */
export class DaemonClient {
  private readonly dispatcher: Agent;
  private readonly origin: string;

  /** A client of the daemon at `address` (see parseDaemonEndpoint), with `token` or the one resolveToken finds. */
  static of(address: string, token?: string): DaemonClient {
    const endpoint = parseDaemonEndpoint(address);
    return new DaemonClient(endpoint, resolveToken(endpoint, token));
  }

  constructor(
    readonly endpoint: DaemonEndpoint,
    private readonly token: string | undefined,
  ) {
    // No undici timeouts: a command may print nothing for longer than its 5-minute defaults, and a first boot may
    // build the image meanwhile; callers bound waits with their `signal` and `timeoutMs`, as in-process.
    const timeouts = { headersTimeout: 0, bodyTimeout: 0 };
    this.dispatcher = new Agent(
      endpoint.kind === 'unix' ? { ...timeouts, connect: { socketPath: endpoint.socketPath } } : timeouts,
    );
    this.origin = endpoint.kind === 'unix' ? 'http://localhost' : endpoint.origin;
  }

  /** The `Authorization` header for this daemon (none on a Unix socket without a token). */
  get authHeaders(): Record<string, string> {
    return this.token === undefined ? {} : { authorization: `Bearer ${this.token}` };
  }

  /** Sends a request; resolves with the response once its status is 2xx (its body still to be read). */
  async send(
    method: Dispatcher.HttpMethod,
    path: string,
    options: RequestOptions = {},
  ): Promise<Dispatcher.ResponseData> {
    const query = Object.fromEntries(Object.entries(options.query ?? {}).filter(([, value]) => value !== undefined));
    const search = Object.keys(query).length > 0 ? `?${new URLSearchParams(query as Record<string, string>)}` : '';
    const headers: Record<string, string> = { ...this.authHeaders };
    let body: Dispatcher.DispatchOptions['body'];
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.json);
    } else if (options.bytes !== undefined) {
      headers['content-type'] = 'application/octet-stream';
      body = options.bytes as Dispatcher.DispatchOptions['body'];
    }
    let response: Dispatcher.ResponseData;
    try {
      response = await request(`${this.origin}${path}${search}`, {
        method,
        headers,
        body,
        signal: options.signal,
        dispatcher: this.dispatcher,
      });
    } catch (error) {
      throw this.transportError(error, options.signal);
    }
    if (response.statusCode >= 200 && response.statusCode < 300) return response;
    throw await problemOf(response);
  }

  /** A request whose 2xx JSON answer is parsed with `schema`. */
  async json<S extends z.ZodType>(
    schema: S,
    method: Dispatcher.HttpMethod,
    path: string,
    options?: RequestOptions,
  ): Promise<z.output<S>> {
    const response = await this.send(method, path, options);
    const parsed = schema.safeParse(await response.body.json());
    if (!parsed.success) {
      throw new JitvmError(
        'protocol',
        `the daemon's answer to ${method} ${path} is malformed: ${parsed.error.message}`,
      );
    }
    return parsed.data;
  }

  /** A request whose answer has no body (204). */
  async empty(method: Dispatcher.HttpMethod, path: string, options?: RequestOptions): Promise<void> {
    const response = await this.send(method, path, options);
    await response.body.dump();
  }

  /** Closes the connections; the client cannot be used afterwards. */
  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /** An error from the connection itself, said in jitvm's terms. */
  transportError(error: unknown, signal?: AbortSignal): unknown {
    if (signal?.aborted) return new CancelledError('the request to the daemon was cancelled');
    const code = (error as { code?: string }).code;
    if (code !== undefined && NOT_LISTENING.has(code)) {
      return new JitvmError(
        'not_found',
        `no jitvm daemon answers at ${this.endpoint.text} (${code}): start one with \`jitvm serve\`` +
          (this.endpoint.kind === 'tcp' ? ' --listen' : ''),
        { cause: error },
      );
    }
    if (error instanceof undiciErrors.UndiciError) {
      return new JitvmError(
        'agent_lost',
        `the connection to the daemon at ${this.endpoint.text} failed: ${error.message}`,
        {
          cause: error,
        },
      );
    }
    return error;
  }
}

/** Codes for error answers without a problem document (from a proxy in front of the daemon, say). */
const FALLBACK_CODE: Record<number, ErrorCode> = {
  401: 'invalid_argument',
  404: 'not_found',
  429: 'resource_exhausted',
  507: 'resource_exhausted',
};

/** The DaemonError of a non-2xx response: its problem document, or one made from the status. */
async function problemOf(response: Dispatcher.ResponseData): Promise<DaemonError> {
  const text = await response.body.text();
  const parsed = (() => {
    try {
      return ProblemSchema.safeParse(JSON.parse(text));
    } catch {
      return undefined;
    }
  })();
  if (parsed?.success) return new DaemonError(response.statusCode, parsed.data);
  const code = FALLBACK_CODE[response.statusCode] ?? 'internal';
  return new DaemonError(response.statusCode, {
    type: `urn:jitvm:error:${code}`,
    title: `HTTP ${response.statusCode}`,
    status: response.statusCode,
    detail: `the daemon answered ${response.statusCode} without a problem document: ${text.slice(0, 200)}`,
    code,
  });
}
