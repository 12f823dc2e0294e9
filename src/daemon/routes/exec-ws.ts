import { z } from 'zod';
import { ExecSocketSession } from '../exec-ws-session.js';
import type { SandboxRegistry } from '../registry.js';
import { type Route, defineWebSocketRoute } from '../route.js';
import { SandboxIdParams } from '../schemas.js';
import { ExecWsControl, ExecWsEvent, ExecWsStart } from '../schemas-exec-ws.js';

const PROTOCOL =
  'Switching Protocols: the socket now carries one exec. The client sends a `start` text message, then stdin as ' +
  'binary frames, `stdin_end` and `signal` text messages; the daemon sends `started`, output as binary frames (first ' +
  'byte 1 stdout, 2 stderr, then the bytes), and `exit` last (or one `error` carrying a problem), then closes with ' +
  '1000. Closing the socket early kills the command. The text messages are in `x-websocket-messages`; flow control ' +
  'and close codes: docs/api.md, "Exec over a WebSocket".';

/** Run a command in a sandbox over a WebSocket: stdin while it runs, signals, output with backpressure. */
export function execWsRoutes(registry: SandboxRegistry): Route[] {
  return [
    defineWebSocketRoute(
      {
        url: '/v1/sandboxes/:id/exec/ws',
        operationId: 'execWebSocket',
        summary: 'Run a command over a WebSocket (GET with `Upgrade: websocket`): stdin while it runs, signals',
        params: SandboxIdParams,
        messages: { client: z.union([ExecWsStart, ExecWsControl]), server: ExecWsEvent },
        responses: { 101: { description: PROTOCOL } },
      },
      (socket, { params, request }) =>
        new ExecSocketSession(
          socket,
          ({ command, env, cwd, timeoutMs }) => registry.get(params.id).spawn(command, { env, cwd, timeoutMs }),
          request.log,
        ),
    ),
  ];
}
