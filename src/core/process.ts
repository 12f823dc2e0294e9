import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { JitvmError } from './errors.js';

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether the command line of process `pid` contains `marker`: from /proc on Linux, from `ps` on macOS; undefined
 * where it cannot be read (Windows, or a process that just exited).
 */
function commandLineHolds(pid: number, marker: string): boolean | undefined {
  try {
    if (process.platform === 'linux') return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
    if (process.platform === 'darwin') {
      return execFileSync('ps', ['-o', 'command=', '-p', String(pid)], { encoding: 'utf8', timeout: 5000 }).includes(
        marker,
      );
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/**
 * Whether `pid` is alive and, where that is cheap to tell (Linux), still the process whose command line contains
 * `marker` (guards against a reused pid). Elsewhere a live pid counts; signal only a `provenProcess`.
 */
export function processMatches(pid: number, marker: string): boolean {
  if (!pidAlive(pid)) return false;
  return process.platform === 'linux' ? commandLineHolds(pid, marker) === true : true;
}

/**
 * Whether `pid` is alive and provably the process whose command line contains `marker`. Only such a process may be
 * signalled: a pid whose owner cannot be told (Windows, where pids are reused quickly) is never killed on a guess.
 */
export function provenProcess(pid: number, marker: string): boolean {
  return pidAlive(pid) && commandLineHolds(pid, marker) === true;
}

/** Resolves after `ms`, or rejects early when `signal` aborts. Used for bounded waits, never to stand in for work. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * `work`, or a JitvmError('timeout', `failure`) once the wall clock reaches `deadline` (ms since the epoch). `work` is
 * left to settle on its own; its late rejection is swallowed, never unhandled.
 */
export async function beforeDeadline<T>(work: Promise<T>, deadline: number, failure: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new JitvmError('timeout', failure)), Math.max(0, deadline - Date.now()));
  });
  work.catch(() => undefined);
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}
