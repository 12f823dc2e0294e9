import { type Command, Option } from 'commander';
import { serveStdio } from '../../mcp/stdio.js';
import { DEFAULT_MAX_SANDBOXES } from '../../mcp/session.js';
import { Sandbox } from '../../sandbox/sandbox.js';
import { positiveInt } from '../flags.js';
import { imageProgressPrinter } from '../progress.js';

interface McpFlags {
  bootTimeout?: number;
  maxSandboxes: number;
  backend?: string;
}

export function registerMcp(program: Command): void {
  program
    .command('mcp')
    .description('serve MCP on stdio: tools for AI agents to create sandboxes, run commands and move files in them')
    .addOption(
      new Option('--boot-timeout <ms>', 'how long a sandbox may take to boot').argParser(positiveInt('--boot-timeout')),
    )
    .addOption(
      new Option('--max-sandboxes <n>', 'sandboxes one session may hold at once')
        .argParser(positiveInt('--max-sandboxes'))
        .default(DEFAULT_MAX_SANDBOXES),
    )
    .option('--backend <name>', 'hypervisor backend (default: best available, or $JITVM_BACKEND)')
    .action(async (flags: McpFlags) => {
      const onImageProgress = imageProgressPrinter();
      await serveStdio({
        maxSandboxes: flags.maxSandboxes,
        createSandbox: (options) =>
          Sandbox.create({ ...options, bootTimeoutMs: flags.bootTimeout, backend: flags.backend, onImageProgress }),
      });
    });
}
