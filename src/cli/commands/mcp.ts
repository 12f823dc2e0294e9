import { type Command, Option } from 'commander';
import { InvalidArgumentError } from '../../core/errors.js';
import { parseTcpListen } from '../../daemon/listen.js';
import { defaultTokenPath, loadOrCreateToken } from '../../daemon/token-store.js';
import { startMcpHttpServer } from '../../mcp/http.js';
import { DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_IDLE_TIMEOUT_MS } from '../../mcp/http-sessions.js';
import { DEFAULT_MAX_SANDBOXES, type SandboxSessionOptions } from '../../mcp/session.js';
import { SandboxBudget } from '../../mcp/budget.js';
import { defaultLimits } from '../../daemon/lifecycle.js';
import { serveStdio } from '../../mcp/stdio.js';
import { onStopSignal } from '../../core/stop-signals.js';
import { positiveInt } from '../flags.js';
import { imageProgressPrinter } from '../progress.js';
import { createSandbox } from '../sandboxes.js';

interface McpFlags {
  bootTimeout?: number;
  maxSandboxes: number;
  backend?: string;
  listen?: string;
  allowRemote?: boolean;
  maxSessions: number;
  maxSandboxesTotal: number;
  sessionIdleTimeout: number;
}

/** Flags that mean something only with --listen, by their attribute name. */
const HTTP_ONLY_FLAGS = {
  allowRemote: '--allow-remote',
  maxSessions: '--max-sessions',
  maxSandboxesTotal: '--max-sandboxes-total',
  sessionIdleTimeout: '--session-idle-timeout',
};

async function serveHttp(flags: McpFlags & { listen: string }, sandboxes: SandboxSessionOptions): Promise<void> {
  const listen = parseTcpListen(flags.listen, flags.allowRemote ?? false, 'the MCP server');
  const tokenPath = defaultTokenPath();
  const token = loadOrCreateToken(tokenPath);
  let stop = (_signal: NodeJS.Signals): void => undefined;
  const stopped = new Promise<NodeJS.Signals>((resolve) => (stop = resolve));
  const removeSignalHandlers = onStopSignal(stop);
  try {
    const server = await startMcpHttpServer({
      listen,
      token,
      maxSessions: flags.maxSessions,
      sessionIdleTimeoutMs: flags.sessionIdleTimeout,
      sandboxes: { ...sandboxes, budget: new SandboxBudget(flags.maxSandboxesTotal) },
    });
    process.stderr.write(`jitvm: MCP on ${server.url}; bearer token in ${tokenPath}\n`);
    const signal = await stopped;
    process.stderr.write(`jitvm: ${signal}: ending MCP sessions and destroying their sandboxes\n`);
    await server.close();
  } finally {
    removeSignalHandlers();
  }
}

export function registerMcp(program: Command): void {
  program
    .command('mcp')
    .description(
      'serve MCP (on stdio, or on HTTP with --listen): tools for AI agents to create sandboxes, run commands and ' +
        'move files in them',
    )
    .addOption(
      new Option('--boot-timeout <ms>', 'how long a sandbox may take to boot').argParser(positiveInt('--boot-timeout')),
    )
    .addOption(
      new Option('--max-sandboxes <n>', 'sandboxes one session may hold at once')
        .argParser(positiveInt('--max-sandboxes'))
        .default(DEFAULT_MAX_SANDBOXES),
    )
    .option('--backend <name>', 'hypervisor backend (default: best available, or $JITVM_BACKEND)')
    .option('--listen <ip:port>', 'serve streamable HTTP at http://IP:PORT/mcp, with a bearer token (port 0: any)')
    .option('--allow-remote', 'allow --listen on a non-loopback address (dangerous: anyone with the token runs code)')
    .addOption(
      new Option('--max-sessions <n>', 'with --listen: MCP sessions held at once; new ones past it get 503')
        .argParser(positiveInt('--max-sessions'))
        .default(DEFAULT_MAX_SESSIONS),
    )
    .addOption(
      new Option(
        '--max-sandboxes-total <n>',
        'with --listen: sandboxes all sessions together may hold at once (as `jitvm serve`)',
      )
        .argParser(positiveInt('--max-sandboxes-total'))
        .default(defaultLimits().maxSandboxes),
    )
    .addOption(
      new Option('--session-idle-timeout <ms>', 'with --listen: end a session (and its sandboxes) idle this long')
        .argParser(positiveInt('--session-idle-timeout'))
        .default(DEFAULT_SESSION_IDLE_TIMEOUT_MS),
    )
    .action(async (flags: McpFlags, command: Command) => {
      const onImageProgress = imageProgressPrinter();
      const sandboxes: SandboxSessionOptions = {
        maxSandboxes: flags.maxSandboxes,
        createSandbox: (options) =>
          createSandbox({ ...options, bootTimeoutMs: flags.bootTimeout, backend: flags.backend, onImageProgress }),
      };
      if (flags.listen) return serveHttp({ ...flags, listen: flags.listen }, sandboxes);
      for (const [attribute, flag] of Object.entries(HTTP_ONLY_FLAGS)) {
        if (command.getOptionValueSource(attribute) === 'cli') throw new InvalidArgumentError(`${flag} needs --listen`);
      }
      await serveStdio(sandboxes);
    });
}
