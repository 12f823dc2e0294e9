import type { SandboxRegistry } from '../registry.js';
import { type Route, defineRoute } from '../route.js';
import { PingResult, PublishPortBody, PublishedPortSchema, SandboxIdParams } from '../schemas.js';

/** Act on a sandbox's VM: publish a guest port, pause and resume its vCPUs, ping its agent. */
export function sandboxVmRoutes(registry: SandboxRegistry): Route[] {
  return [
    defineRoute(
      {
        method: 'POST',
        url: '/v1/sandboxes/:id/ports',
        operationId: 'publishPort',
        summary:
          "Publish a guest TCP port on the daemon host's 127.0.0.1 (`host` 0 or absent: a free port); works in " +
          'every network mode',
        params: SandboxIdParams,
        body: PublishPortBody,
        responses: { 200: { description: 'where the host reaches the guest port', json: PublishedPortSchema } },
      },
      async ({ params, body }) => registry.publishPort(params.id, body),
    ),
    defineRoute(
      {
        method: 'POST',
        url: '/v1/sandboxes/:id/pause',
        operationId: 'pauseSandbox',
        summary: "Freeze the sandbox's vCPUs; commands and transfers wait until it is resumed (its deadlines run on)",
        params: SandboxIdParams,
        responses: { 204: { description: 'paused' } },
      },
      async ({ params, reply }) => {
        await registry.get(params.id).pause();
        return reply.code(204).send();
      },
    ),
    defineRoute(
      {
        method: 'POST',
        url: '/v1/sandboxes/:id/resume',
        operationId: 'resumeSandbox',
        summary: 'Let a paused sandbox run again',
        params: SandboxIdParams,
        responses: { 204: { description: 'running' } },
      },
      async ({ params, reply }) => {
        await registry.get(params.id).resume();
        return reply.code(204).send();
      },
    ),
    defineRoute(
      {
        method: 'POST',
        url: '/v1/sandboxes/:id/ping',
        operationId: 'pingSandbox',
        summary: "Round trip from the daemon to the sandbox's guest agent",
        params: SandboxIdParams,
        responses: { 200: { description: 'the round trip', json: PingResult } },
      },
      async ({ params }) => ({ agentMs: await registry.get(params.id).ping() }),
    ),
  ];
}
