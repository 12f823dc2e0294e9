import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
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

type UntypedInput = Omit<RouteInput<undefined, undefined, undefined>, 'params' | 'query' | 'body'> & {
  readonly params: unknown;
  readonly query: unknown;
  readonly body: unknown;
};

/** A route: its spec and the handler that calls the SDK with the parsed input. */
export interface Route extends RouteSpec {
  readonly handle: (input: UntypedInput) => Promise<unknown>;
}

/** Pairs a spec with its handler, typing the handler's input from the spec's schemas. */
export function defineRoute<
  P extends z.ZodType | undefined = undefined,
  Q extends z.ZodType | undefined = undefined,
  B extends BodySpec | undefined = undefined,
>(spec: RouteSpec<P, Q, B>, handle: (input: RouteInput<P, Q, B>) => Promise<unknown>): Route {
  return { ...spec, handle: handle as Route['handle'] };
}

function parsePart(schema: BodySpec | undefined, value: unknown, what: string): unknown {
  if (schema === 'binary') return value ?? Readable.from([]);
  if (schema === undefined) return undefined;
  return parseWith(schema, value ?? {}, `invalid ${what}`);
}

/** Registers `route` on `app`: parses params, query and body with its schemas (InvalidArgumentError on a mismatch). */
export function registerRoute(app: FastifyInstance, route: Route): void {
  app.route({
    method: route.method,
    url: route.url,
    config: { public: route.public === true },
    handler: async (request, reply) =>
      route.handle({
        params: parsePart(route.params, request.params, 'path parameters'),
        query: parsePart(route.query, request.query, 'query'),
        body: parsePart(route.body, request.body, 'request body'),
        request,
        reply,
      }),
  });
}
