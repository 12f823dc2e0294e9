import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { packageVersion } from '../core/version.js';
import { SandboxSession } from './session.js';
import { registerSandboxTools } from './tools.js';

export interface McpServerOptions {
  /** Where the sandboxes of this MCP session live (default: a new one with the default cap and `Sandbox.create`). */
  readonly session?: SandboxSession;
}

/**
 * An MCP server offering jitvm's sandbox tools (create_sandbox, run_command, write_file, read_file, list_files,
 * snapshot_sandbox, destroy_sandbox, list_sandboxes). When its transport closes, the session is closed: every
 * sandbox it created is destroyed (await `session.close()` to know when that is done).
 */
export function createMcpServer(options: McpServerOptions = {}): McpServer {
  const session = options.session ?? new SandboxSession();
  const server = new McpServer(
    { name: 'jitvm', version: packageVersion() },
    {
      instructions:
        'jitvm runs code in disposable Linux micro-VMs. create_sandbox, then run_command / write_file / read_file ' +
        'in it, destroy_sandbox when done. Everything this session creates is destroyed when it ends.',
    },
  );
  registerSandboxTools(server, session);
  server.server.onclose = () => void session.close();
  return server;
}
