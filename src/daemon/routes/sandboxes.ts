import { Sandbox } from '../../sandbox/sandbox.js';
import type { SandboxRegistry } from '../registry.js';
import { type Route, defineRoute } from '../route.js';
import { CreateSandboxBody, SandboxIdParams, SandboxInfo, SandboxList } from '../schemas.js';

/** Create, list, inspect and destroy the daemon's sandboxes. */
export function sandboxRoutes(registry: SandboxRegistry): Route[] {
  return [
    defineRoute(
      {
        method: 'POST',
        url: '/v1/sandboxes',
        operationId: 'createSandbox',
        summary: 'Boot a sandbox (or restore one from a snapshot) and wait for its agent',
        body: CreateSandboxBody,
        responses: { 201: { description: 'the sandbox is running', json: SandboxInfo } },
      },
      async ({ body, request, reply }) => {
        const sandbox = await Sandbox.create(body);
        request.log.info({ sandboxId: sandbox.id, backend: sandbox.instance.backend }, 'sandbox created');
        reply.code(201);
        return registry.add(sandbox, body);
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
        method: 'DELETE',
        url: '/v1/sandboxes/:id',
        operationId: 'deleteSandbox',
        summary: 'Destroy a sandbox: its VM is killed and everything it left on the host removed',
        params: SandboxIdParams,
        responses: { 204: { description: 'destroyed' } },
      },
      async ({ params, request, reply }) => {
        await registry.destroy(params.id);
        request.log.info({ sandboxId: params.id }, 'sandbox destroyed');
        return reply.code(204).send();
      },
    ),
  ];
}
