import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createMcpServer } from './server.js';
import { SandboxSession, type SandboxSessionOptions } from './session.js';
import { onStopSignal } from '../core/stop-signals.js';

/**
 * Serves MCP on this process's stdin/stdout until stdin ends or SIGINT/SIGTERM arrives, then destroys every sandbox
 * the session created and resolves. Nothing else may write to stdout meanwhile: it carries the protocol.
 */
export async function serveStdio(options: SandboxSessionOptions = {}): Promise<void> {
  const session = new SandboxSession(options);
  const server = createMcpServer({ session });
  let stop = (): void => undefined;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  process.stdin.once('end', stop).once('close', stop);
  const removeSignalHandlers = onStopSignal(stop);
  await server.connect(new StdioServerTransport());
  await stopped;
  await server.close();
  await session.close();
  removeSignalHandlers();
  process.stdin.destroy();
}
