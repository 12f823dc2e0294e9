import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { findOnPath } from '../core/host-tools.js';

export interface VmmLaunch {
  readonly cwd: string;
  /** Let the VMM outlive this process: its own session, and no parent-death signal. */
  readonly detached: boolean;
  /** File for the VMM's stdout (Firecracker prints the guest console there); discarded when absent. */
  readonly stdoutPath?: string;
  /** File for the VMM's stderr. */
  readonly stderrPath: string;
}

/**
 * Keeps the VMM from outliving the process that started it (unless detached), even if that process is SIGKILLed.
 * Linux: `setpriv --pdeathsig KILL`. Windows needs nothing: libuv puts every child not spawned detached into a job
 * object with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, which ends it when this process ends (src/win/process.c,
 * `uv__init_global_job_handle`). macOS has neither: an orphaned VMM is killed on the next look at its record.
 */
function withParentDeathSignal(binary: string, args: readonly string[], detached: boolean): [string, string[]] {
  const setpriv = process.platform === 'linux' && !detached ? findOnPath('setpriv') : undefined;
  return setpriv ? [setpriv, ['--pdeathsig', 'KILL', binary, ...args]] : [binary, [...args]];
}

/** Spawns a VMM with its output in files and resolves once it runs (rejects if it could not be executed). */
export async function spawnVmm(
  binary: string,
  args: readonly string[],
  launch: VmmLaunch,
): Promise<ChildProcess & { pid: number }> {
  const stderrFd = openSync(launch.stderrPath, 'w', 0o600);
  const stdoutFd = launch.stdoutPath ? openSync(launch.stdoutPath, 'w', 0o600) : 'ignore';
  const [command, argv] = withParentDeathSignal(binary, args, launch.detached);
  try {
    const child = spawn(command, argv, {
      stdio: ['ignore', stdoutFd, stderrFd],
      detached: launch.detached,
      cwd: launch.cwd,
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid as number));
      child.once('error', reject);
    });
    if (launch.detached) child.unref();
    return Object.assign(child, { pid });
  } finally {
    closeSync(stderrFd);
    if (typeof stdoutFd === 'number') closeSync(stdoutFd);
  }
}
