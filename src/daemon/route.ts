import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { z } from 'zod';
import { parseWith } from '../core/config.js';

/** A response of a route as the OpenAPI document describes it: JSON, NDJSON lines, raw bytes, or nothing. */
export interface ResponseSpec {
  readonly description: string;
  readonly json?: z.ZodType;
  /** Each line of an `application/x-ndjson` body is one value of this schema. */
  readonly ndjson?: z.ZodType;
  readonly binary?: true;
  /** A text body of this media type (e.g. Prometheus' exposition format). */
  readonly text?: string;
}

/** `binary`: the body is the request's raw byte stream (`application/octet-stream`), never buffered. */
type BodySpec = z.ZodType | 'binary';
type Parsed<S> = S extends z.ZodType ? z.output<S> : S extends 'binary' ? Readable : undefined;

/** What one endpoint accepts and answers: the single description both the router and the OpenAPI document use. */
export interface RouteSpec<
  P extends z.ZodType | undefined = z.ZodType | undefined,
  Q extends z.ZodType | undefined = z.ZodType | undefined,
  B extends BodySpec | undefined = BodySpec | undefined,
> {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Fastify syntax: `/v1/sandboxes/:id`. */
  readonly url: string;
  readonly operationId: string;
  readonly summary: string;
  /** Served without a bearer token even on TCP. */
  readonly public?: boolean;
  readonly params?: P;
  readonly query?: Q;
  readonly body?: B;
  readonly responses: Readonly<Record<number, ResponseSpec>>;
}

/** A request's parts, parsed by the route's schemas. */
export interface RouteInput<P, Q, B> {
  readonly params: Parsed<P>;
  readonly query: Parsed<Q>;
  readonly body: Parsed<B>;
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
}

/** What a WebSocket route gets with its socket: the upgrade request's parsed parts. */
export type WebSocketInput<P, Q> = Omit<RouteInput<P, Q, undefined>, 'body' | 'reply'>;

/** The messages a WebSocket route exchanges, as the OpenAPI document lists them (`x-websocket-messages`). */
export interface WebSocketMessages {
  /** Text messages the client sends. */
  readonly client: z.ZodType;
  /** Text messages the daemon sends. */
  readonly server: z.ZodType;
}

type Untyped<T> = Omit<T, 'params' | 'query' | 'body'> & {
  readonly params: unknown;
  readonly query: unknown;
  readonly body: unknown;
};

interface HttpHandler {
  readonly kind: 'http';
  readonly handle: (input: Untyped<RouteInput<unknown, unknown, unknown>>) => Promise<unknown>;
}

interface WebSocketHandler {
  readonly kind: 'websocket';
  readonly messages: WebSocketMessages;
  readonly connect: (socket: WebSocket, input: Untyped<WebSocketInput<unknown, unknown>>) => void;
}

/**
 * A route: its spec and either an HTTP handler that calls the SDK with the parsed input, or (`websocket`) a GET
 * that is upgraded to a WebSocket, whose socket is handed over once the upgrade is done.
 */
export type Route = RouteSpec & (HttpHandler | WebSocketHandler);

/** Pairs a spec with its handler, typing the handler's input from the spec's schemas. */
export function defineRoute<
  P extends z.ZodType | undefined = undefined,
  Q extends z.ZodType | undefined = undefined,
  B extends BodySpec | undefined = undefined,
>(spec: RouteSpec<P, Q, B>, handle: (input: RouteInput<P, Q, B>) => Promise<unknown>): Route {
  return { ...spec, kind: 'http', handle: handle as HttpHandler['handle'] };
}

/**
 * A GET upgraded to a WebSocket: `connect` gets the socket once the upgrade is done. Auth and the path's schemas
 * are applied before the upgrade, so a refused request gets a plain HTTP problem and no socket.
 */
export function defineWebSocketRoute<
  P extends z.ZodType | undefined = undefined,
  Q extends z.ZodType | undefined = undefined,
>(
  spec: Omit<RouteSpec<P, Q, undefined>, 'method' | 'body'> & { readonly messages: WebSocketMessages },
  connect: (socket: WebSocket, input: WebSocketInput<P, Q>) => void,
): Route {
  return { ...spec, method: 'GET', kind: 'websocket', connect: connect as WebSocketHandler['connect'] };
}

function parsePart(schema: BodySpec | undefined, value: unknown, what: string): unknown {
  if (schema === 'binary') return value ?? Readable.from([]);
  if (schema === undefined) return undefined;
  return parseWith(schema, value ?? {}, `invalid ${what}`);
}

function parseParts(route: Route, request: FastifyRequest) {
  return {
    params: parsePart(route.params, request.params, 'path parameters'),
    query: parsePart(route.query, request.query, 'query'),
    body: parsePart(route.body, request.body, 'request body'),
  };
}

/** A plain GET on a WebSocket route: fastify's 4xx `statusCode` becomes the problem's status. */
const upgradeRequired = () =>
  Object.assign(new Error('this endpoint speaks WebSocket only: send the GET with `Upgrade: websocket`'), {
    statusCode: 426,
  });

/**
 * Registers `route` on `app` (which must have @fastify/websocket registered for a WebSocket route): parses params,
 * query and body with its schemas (InvalidArgumentError on a mismatch).
 */
export function registerRoute(app: FastifyInstance, route: Route): void {
  const common = { method: route.method, url: route.url, config: { public: route.public === true } };
  if (route.kind === 'http') {
    app.route({
      ...common,
      handler: async (request, reply) => route.handle({ ...parseParts(route, request), request, reply }),
    });
    return;
  }
  const parsed = new WeakMap<FastifyRequest, ReturnType<typeof parseParts>>();
  app.route({
    ...common,
    preValidation: async (request) => void parsed.set(request, parseParts(route, request)),
    handler: async () => {
      throw upgradeRequired();
    },
    wsHandler: (socket, request) => route.connect(socket, { ...parsed.get(request)!, request }),
  });
}
