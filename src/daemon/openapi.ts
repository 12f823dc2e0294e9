import { z } from 'zod';
import { packageVersion } from '../core/version.js';
import { PROBLEM_CONTENT_TYPE } from './problem.js';
import type { ResponseSpec, Route, WebSocketMessages } from './route.js';
import { ProblemSchema } from './schemas.js';

type JsonSchema = Record<string, unknown>;

/** A zod schema as an inline JSON Schema 2020-12 (OpenAPI 3.1's dialect), without its `$schema` tag. */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const generated = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema;
  delete generated.$schema;
  return generated;
}

/** Fastify's `/a/:id/b` as OpenAPI's `/a/{id}/b`. */
const openApiPath = (url: string): string => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

function parameters(route: Route): JsonSchema[] {
  const from = (schema: z.ZodType | undefined, where: 'path' | 'query'): JsonSchema[] => {
    if (!schema) return [];
    const object = jsonSchema(schema, 'input') as { properties?: Record<string, JsonSchema>; required?: string[] };
    return Object.entries(object.properties ?? {}).map(([name, property]) => ({
      name,
      in: where,
      required: where === 'path' || (object.required ?? []).includes(name),
      schema: property,
    }));
  };
  return [...from(route.params, 'path'), ...from(route.query, 'query')];
}

function requestBody(route: Route): JsonSchema | undefined {
  if (route.body === undefined) return undefined;
  const content =
    route.body === 'binary'
      ? { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } }
      : { 'application/json': { schema: jsonSchema(route.body, 'input') } };
  return { required: true, content };
}

function response(spec: ResponseSpec): JsonSchema {
  if (spec.json)
    return {
      description: spec.description,
      content: { 'application/json': { schema: jsonSchema(spec.json, 'output') } },
    };
  if (spec.ndjson) {
    const line = jsonSchema(spec.ndjson, 'output');
    return {
      description: `${spec.description}; the schema is that of one line`,
      content: { 'application/x-ndjson': { schema: line } },
    };
  }
  if (spec.text) return { description: spec.description, content: { [spec.text]: { schema: { type: 'string' } } } };
  if (spec.binary)
    return {
      description: spec.description,
      content: {
        'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } },
      },
    };
  return { description: spec.description };
}

/**
 * The text messages of a WebSocket route, which OpenAPI has no words for: an `x-` extension with the JSON Schema of
 * each direction, next to the 101 response whose description tells the rest of the protocol.
 */
function webSocketMessages(messages: WebSocketMessages): JsonSchema {
  return { client: jsonSchema(messages.client, 'input'), server: jsonSchema(messages.server, 'output') };
}

function operation(route: Route, tokenRequired: boolean): JsonSchema {
  const responses: Record<string, JsonSchema> = Object.fromEntries(
    Object.entries(route.responses).map(([status, spec]) => [status, response(spec)]),
  );
  responses.default = {
    description: 'an error, as an RFC 7807 problem carrying the SDK error code',
    content: { [PROBLEM_CONTENT_TYPE]: { schema: jsonSchema(ProblemSchema, 'output') } },
  };
  const body = requestBody(route);
  return {
    operationId: route.operationId,
    summary: route.summary,
    parameters: parameters(route),
    ...(body ? { requestBody: body } : {}),
    responses,
    ...(route.kind === 'websocket' ? { 'x-websocket-messages': webSocketMessages(route.messages) } : {}),
    ...(route.public || !tokenRequired ? { security: [] } : {}),
  };
}

/**
 * The OpenAPI 3.1 document of `routes`, generated from the same zod schemas the daemon parses requests with.
 * `tokenRequired`: whether this daemon demands a bearer token (TCP) — public routes are marked as needing none.
 */
export function openApiDocument(routes: readonly Route[], tokenRequired: boolean): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of routes) {
    const path = (paths[openApiPath(route.url)] ??= {});
    path[route.method.toLowerCase()] = operation(route, tokenRequired);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'jitvm daemon',
      version: packageVersion(),
      description: 'Micro-VM sandboxes over HTTP. Reference: docs/api.md.',
    },
    servers: [{ url: '/' }],
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: tokenRequired ? [{ bearer: [] }] : [],
    paths,
  };
}
