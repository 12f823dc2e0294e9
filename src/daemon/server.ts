import { chmodSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import fastifyWebsocket from '@fastify/websocket';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { InvalidArgumentError } from '../core/errors.js';
import { bearerMatches } from './auth.js';
import { type ListenTarget, claimSocketPath } from './listen.js';
import { openApiDocument } from './openapi.js';
import { PROBLEM_CONTENT_TYPE, type Problem, problemFor, problemFromError } from './problem.js';
import { type Limits, defaultLimits } from './lifecycle.js';
import { activityHook } from './lifecycle-activity.js';
import { SandboxRegistry } from './registry.js';
import { type Route, registerRoute } from './route.js';
import { execRoutes } from './routes/exec.js';
import { execWsRoutes } from './routes/exec-ws.js';
import { fileRoutes } from './routes/files.js';
import { metaRoutes } from './routes/meta.js';
import { poolRoutes } from './routes/pools.js';
import { sandboxRoutes } from './routes/sandboxes.js';
import { sandboxVmRoutes } from './routes/sandbox-vm.js';
import { DaemonStateStore } from './state.js';
import { snapshotRoutes } from './routes/snapshots.js';

/** How a daemon is set up. */
export interface DaemonOptions {
  /** Demanded as `Authorization: Bearer <token>` on every route but health and the OpenAPI document; TCP needs one. */
  readonly token?: string;
  /** How long `close()` lets in-flight requests finish before cutting their connections (default 10 s). */
  readonly drainTimeoutMs?: number;
  /** Told about requests that failed unexpectedly (500s), with the error. */
  readonly onInternalError?: (error: unknown) => void;
  /** Most sandboxes and guest memory held at once (default 16, and half the host's RAM); past them: 429 / 507. */
  readonly limits?: Partial<Limits>;
  /**
   * Where the daemon saves which VMs it owns (`<runtime dir>/daemon` for `jitvm serve`): `listen` first re-adopts
   * the sandboxes of daemons that died, or kills them. Without it, nothing is saved and a killed daemon's VMs are
   * not re-adopted.
   */
  readonly stateDir?: string;
  /** How often expired sandboxes are looked for (default 1 s). */
  readonly reapIntervalMs?: number;
  /**
   * Structured logs (pino, through fastify): one JSON line per request with its id, plus the sandbox ids routes
   * act on, to `stream` (default stderr). Off unless given.
   */
  readonly log?: {
    readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
    readonly stream?: NodeJS.WritableStream;
  };
}

/** A daemon: a fastify app over the SDK, owning the sandboxes created through it. */
export interface Daemon {
  /** The fastify instance (tests can `inject` requests without listening). */
  readonly app: FastifyInstance;
  /** The OpenAPI 3.1 document it serves at `/v1/openapi.json`. */
  readonly openApi: object;
  /**
   * Re-adopts the sandboxes of daemons that died (with `stateDir`), starts the reaper, then listens; resolves with
   * where (`unix:<path>` or `http://host:port`). A Unix socket gets mode 0600, and a stale one is replaced; TCP is
   * refused without a token.
   */
  listen(target: ListenTarget): Promise<string>;
  /**
   * Stops accepting, lets in-flight requests finish (bounded by `drainTimeoutMs`, then their connections are cut),
   * destroys every sandbox it created and removes its socket.
   */
  close(): Promise<void>;
}

const DRAIN_TIMEOUT_MS = 10_000;
const REAP_INTERVAL_MS = 1_000;
/** The largest WebSocket message accepted (a stdin chunk); a larger one closes the socket with 1009. */
export const WS_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

function sendProblem(reply: FastifyReply, problem: Problem): FastifyReply {
  return reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).send(problem);
}

function isPublic(request: FastifyRequest): boolean {
  return (request.routeOptions.config as { public?: boolean } | undefined)?.public === true;
}

/** Builds a daemon (not yet listening) with the whole `/v1` API. */
export function createDaemon(options: DaemonOptions = {}): Daemon {
  const { token } = options;
  const logger = options.log ? { level: options.log.level, stream: options.log.stream ?? process.stderr } : false;
  const app = Fastify({ logger, return503OnClosing: true });
  const registry = new SandboxRegistry({
    limits: { ...defaultLimits(), ...options.limits },
    store: options.stateDir === undefined ? undefined : new DaemonStateStore(options.stateDir),
    log: app.log,
  });
  let document: object = {};
  const routes: Route[] = [
    ...metaRoutes(() => document),
    ...sandboxRoutes(registry),
    ...sandboxVmRoutes(registry),
    ...execRoutes(registry),
    ...execWsRoutes(registry),
    ...fileRoutes(registry),
    ...snapshotRoutes(registry),
    ...poolRoutes(),
  ];
  document = openApiDocument(routes, token !== undefined);

  app.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));
  app.setErrorHandler((error, _request, reply) => {
    const problem = problemFromError(error);
    if (problem.status >= 500 && problem.code === 'internal') options.onInternalError?.(error);
    return sendProblem(reply, problem);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, problemFor('not_found', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );
  void app.register(fastifyWebsocket, { options: { maxPayload: WS_MAX_MESSAGE_BYTES } });
  // Hooks and routes only once the plugin has loaded: its onRequest hook must run first (it marks upgrade requests,
  // whose socket it destroys after a refusal such as a 401), and its route hook must see the WebSocket routes.
  app.after((error) => {
    if (error) throw error;
    app.addHook('onRequest', async (request, reply) => {
      if (token === undefined || isPublic(request) || bearerMatches(request.headers.authorization, token)) return;
      reply.header('www-authenticate', 'Bearer realm="jitvm"');
      const problem = problemFor('invalid_argument', 'a valid bearer token is required: see `jitvm serve --help`');
      return sendProblem(reply, { ...problem, status: 401, title: 'Unauthorized' });
    });
    app.addHook('onRequest', activityHook(registry));
    for (const route of routes) registerRoute(app, route);
  });

  // Every connection, upgraded ones included (the HTTP server forgets a socket once it is upgraded): all are cut
  // when draining times out.
  const connections = new Set<Socket>();
  app.server.on('connection', (socket: Socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
  });

  let socketPath: string | undefined;
  return {
    app,
    openApi: document,
    async listen(target) {
      if (target.kind === 'tcp' && token === undefined) {
        throw new InvalidArgumentError('listening on TCP requires a bearer token');
      }
      if (target.kind === 'unix') await claimSocketPath(target.path);
      await registry.adoptOrphans();
      registry.startReaper(options.reapIntervalMs ?? REAP_INTERVAL_MS, (sandboxId, reason) =>
        app.log.info({ sandboxId, reason }, 'sandbox expired'),
      );
      if (target.kind === 'tcp') return app.listen({ host: target.host, port: target.port });
      await app.listen({ path: target.path });
      chmodSync(target.path, 0o600);
      socketPath = target.path;
      return `unix:${target.path}`;
    },
    async close() {
      const closing = app.close();
      const drainTimer = new AbortController();
      const drained = await Promise.race([
        closing.then(() => true),
        delay(options.drainTimeoutMs ?? DRAIN_TIMEOUT_MS, false, { signal: drainTimer.signal }).catch(() => true),
      ]);
      drainTimer.abort();
      if (!drained) {
        connections.forEach((socket) => socket.destroy());
        await closing;
      }
      await registry.destroyAll();
      if (socketPath) rmSync(socketPath, { force: true });
    },
  };
}
