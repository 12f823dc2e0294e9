import type { z } from 'zod';
import type { SandboxRegistry } from '../registry.js';
import { type Route, defineRoute } from '../route.js';
import { execEvents } from '../exec-stream.js';
import { ExecBody, ExecEvent, SandboxIdParams } from '../schemas.js';

function stdinBytes(stdin: z.output<typeof ExecBody>['stdin']): Buffer | undefined {
  if (stdin === undefined) return undefined;
  return 'text' in stdin ? Buffer.from(stdin.text) : Buffer.from(stdin.base64, 'base64');
}

/** Run a command in a sandbox, streaming its output as NDJSON. */
export function execRoutes(registry: SandboxRegistry): Route[] {
  return [
    defineRoute(
      {
        method: 'POST',
        url: '/v1/sandboxes/:id/exec',
        operationId: 'exec',
        summary: 'Run a command; its output streams back as NDJSON lines while it runs, the exit line last',
        params: SandboxIdParams,
        body: ExecBody,
        responses: {
          200: { description: 'one JSON object per line: stdout/stderr chunks, then the exit', ndjson: ExecEvent },
        },
      },
      async ({ params, body, reply }) => {
        const { command, stdin, ...options } = body;
        const handle = registry.get(params.id).spawn(command, { ...options, stdin: stdinBytes(stdin) });
        if (stdin === undefined) handle.closeStdin();
        // A command that cannot start (no such program…) is answered as a problem, before any line is sent.
        await handle.pid;
        const events = execEvents(handle);
        reply.raw.once('close', () => {
          if (!reply.raw.writableFinished) events.destroy();
        });
        return reply.type('application/x-ndjson').send(events);
      },
    ),
  ];
}
