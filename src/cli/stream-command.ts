import type { SandboxApi } from '../sandbox/api.js';
import type { CommandFlags } from './flags.js';

/**
 * Runs argv in the sandbox with output streamed live to this terminal and (when it is not a TTY) this process's
 * stdin forwarded. Ctrl-C kills the guest command. Resolves with the exit status to pass through.
 */
export async function streamCommand(sandbox: SandboxApi, argv: string[], flags: CommandFlags): Promise<number> {
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const result = await sandbox.exec(argv, {
      env: flags.env,
      cwd: flags.cwd,
      timeoutMs: flags.timeout,
      stdin: flags.stdin && !process.stdin.isTTY ? process.stdin : undefined,
      signal: abort.signal,
      onStdout: (chunk) => process.stdout.write(chunk),
      onStderr: (chunk) => process.stderr.write(chunk),
    });
    return result.exitCode;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    process.stdin.destroy();
  }
}
