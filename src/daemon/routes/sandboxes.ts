import { LimitExceededError } from '../lifecycle.js';
import { PROBLEM_CONTENT_TYPE } from '../problem.js';
import type { SandboxRegistry } from '../registry.js';
import { type Route, defineRoute } from '../route.js';
import {
  CreateSandboxBody,
  DestroyQuery,
  SandboxIdParams,
  SandboxInfo,
  SandboxList,
  SetTimeoutBody,
} from '../schemas.js';

/** Create, list, inspect, extend and destroy the daemon's sandboxes. */
export function sandboxRoutes(registry: SandboxRegistry): Route[] {
  return [
    defineRoute(
      {
        method: 'POST',
        url: '/v1/sandboxes',
        operationId: 'createSandbox',
        summary:
          'Boot a sandbox (or restore one from a snapshot) and wait for its agent; 429 or 507 when the daemon holds ' +
          'its most sandboxes or guest memory',
        body: CreateSandboxBody,
        responses: { 201: { description: 'the sandbox is running', json: SandboxInfo } },
      },
      async ({ body, request, reply }) => {
        // A client that disconnects while its sandbox boots would never learn its id: the boot is cancelled.
        const gone = new AbortController();
        reply.raw.once('close', () => {
          if (!reply.raw.writableFinished) gone.abort();
        });
        try {
          const info = await registry.create(body, gone.signal);
          request.log.info({ sandboxId: info.id, backend: info.backend }, 'sandbox created');
          reply.code(201);
          return info;
        } catch (error) {
          if (!(error instanceof LimitExceededError)) throw error;
          return reply.code(error.status).type(PROBLEM_CONTENT_TYPE).send(error.problem());
        }
      },
    ),
    defineRoute(
      {
        method: 'GET',
        url: '/v1/sandboxes',
        operationId: 'listSandboxes',
        summary: "The daemon's sandboxes",
        responses: { 200: { description: 'every sandbox this daemon owns', json: SandboxList } },
      },
      async () => ({ sandboxes: registry.list() }),
    ),
    defineRoute(
      {
        method: 'GET',
        url: '/v1/sandboxes/:id',
        operationId: 'getSandbox',
        summary: 'One sandbox',
        params: SandboxIdParams,
        responses: { 200: { description: 'the sandbox', json: SandboxInfo } },
      },
      async ({ params }) => registry.info(params.id),
    ),
    defineRoute(
      {
        method: 'POST',
        url: '/v1/sandboxes/:id/timeout',
        operationId: 'setSandboxTimeout',
        summary: 'Destroy the sandbox `timeoutMs` from now instead of at its current deadline (at most 24 h)',
        params: SandboxIdParams,
        body: SetTimeoutBody,
        responses: { 200: { description: 'the sandbox, with its new expiresAt', json: SandboxInfo } },
      },
      async ({ params, body }) => registry.setTimeout(params.id, body.timeoutMs),
    ),
    defineRoute(
      {
        method: 'DELETE',
        url: '/v1/sandboxes/:id',
        operationId: 'deleteSandbox',
        summary:
          'Destroy a sandbox: its VM is killed (`graceful=true`: the guest is asked to power off first) and ' +
          'everything it left on the host removed',
        params: SandboxIdParams,
        query: DestroyQuery,
        responses: { 204: { description: 'destroyed' } },
      },
      async ({ params, query, request, reply }) => {
        await registry.destroy(params.id, { graceful: query.graceful === 'true' });
        request.log.info({ sandboxId: params.id }, 'sandbox destroyed');
        return reply.code(204).send();
      },
    ),
  ];
}
