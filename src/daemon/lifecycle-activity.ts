import type { FastifyReply, FastifyRequest } from 'fastify';
import type { SandboxRegistry } from './registry.js';

/**
 * A fastify `onRequest` hook that counts every request on `/v1/sandboxes/:id/…` as activity on that sandbox until
 * its response is over (finished or cut): a streaming exec or transfer keeps the sandbox from going idle. An upgraded
 * WebSocket counts until its connection closes (@fastify/websocket binds the response to the socket).
 */
export function activityHook(registry: SandboxRegistry) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (!request.routeOptions.url?.startsWith('/v1/sandboxes/:id')) return;
    const { id } = request.params as { id?: unknown };
    if (typeof id !== 'string') return;
    reply.raw.once('close', registry.beginActivity(id));
  };
}
