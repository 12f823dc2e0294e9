import { type Command, Option } from 'commander';
import { defaultLimits } from '../../daemon/lifecycle.js';
import { createDaemon } from '../../daemon/server.js';
import { defaultStateDir } from '../../daemon/state.js';
import { type ListenTarget, defaultSocketPath, parseTcpListen } from '../../daemon/listen.js';
import { defaultTokenPath, loadOrCreateToken, rotateToken } from '../../daemon/token-store.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { onStopSignal } from '../../core/stop-signals.js';
import { positiveInt } from '../flags.js';

interface ServeFlags {
  listen?: string;
  socket?: string;
  allowRemote?: boolean;
  rotateToken?: boolean;
  maxSandboxes: number;
  maxMemoryMib: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

function target(flags: ServeFlags): ListenTarget {
  if (flags.listen && flags.socket) throw new InvalidArgumentError('pass --listen or --socket, not both');
  if (!flags.listen) return { kind: 'unix', path: flags.socket ?? defaultSocketPath() };
  return parseTcpListen(flags.listen, flags.allowRemote ?? false, 'the daemon');
}

/** Resolves with the first SIGINT or SIGTERM. */
const stopSignal = (): Promise<NodeJS.Signals> => new Promise((resolve) => onStopSignal(resolve));

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve the REST API (docs/api.md): on a Unix socket by default, or on TCP with a bearer token')
    .option('--listen <ip:port>', 'listen on TCP (a bearer token is then required; port 0 picks a free one)')
    .option('--socket <path>', 'listen on this Unix socket instead of <runtime dir>/jitvm.sock')
    .option('--allow-remote', 'allow --listen on a non-loopback address (dangerous: see the warning)')
    .option('--rotate-token', `replace the bearer token (${defaultTokenPath()}) and exit`)
    .option(
      '--max-sandboxes <n>',
      'most sandboxes held at once; creates past it get 429',
      positiveInt('--max-sandboxes'),
      defaultLimits().maxSandboxes,
    )
    .option(
      '--max-memory-mib <n>',
      'most guest memory of all sandboxes together, in MiB (default: half the host RAM); past it, 507',
      positiveInt('--max-memory-mib'),
      defaultLimits().maxMemoryMiB,
    )
    .addOption(
      new Option('--log-level <level>', 'JSON logs on stderr: one line per request (with its id) and per sandbox')
        .choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
        .default('info'),
    )
    .action(async (flags: ServeFlags) => {
      const tokenPath = defaultTokenPath();
      if (flags.rotateToken) {
        rotateToken(tokenPath);
        process.stdout.write(`jitvm: wrote a new token to ${tokenPath}\n`);
        return;
      }
      const listen = target(flags);
      const token = listen.kind === 'tcp' ? loadOrCreateToken(tokenPath) : undefined;
      const daemon = createDaemon({
        token,
        limits: { maxSandboxes: flags.maxSandboxes, maxMemoryMiB: flags.maxMemoryMib },
        stateDir: defaultStateDir(),
        ...(flags.logLevel === 'silent' ? {} : { log: { level: flags.logLevel } }),
        onInternalError: (error) => process.stderr.write(`jitvm: request failed: ${String(error)}\n`),
      });
      const stopped = stopSignal();
      const address = await daemon.listen(listen);
      const auth = token ? `; bearer token in ${tokenPath}` : '';
      process.stdout.write(`jitvm: serving on ${address}${auth}\n`);
      const signal = await stopped;
      process.stderr.write(`jitvm: ${signal}: draining requests and destroying this daemon's sandboxes\n`);
      await daemon.close();
    });
}
