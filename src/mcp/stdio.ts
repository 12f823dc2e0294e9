import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createMcpServer } from './server.js';
import { SandboxSession, type SandboxSessionOptions } from './session.js';

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

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
  for (const signal of STOP_SIGNALS) process.once(signal, stop);
  await server.connect(new StdioServerTransport());
  await stopped;
  await server.close();
  await session.close();
  for (const signal of STOP_SIGNALS) process.off(signal, stop);
  process.stdin.destroy();
}
