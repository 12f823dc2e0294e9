import type { ChildProcess } from 'node:child_process';
import type { VmExit } from './hypervisor.js';
import { processMatches, provenProcess } from './process.js';

/** A VMM process this code can signal and wait for, whether it is our child or was started by another process. */
export interface VmmProcess {
  readonly pid: number;
  /** Whether this process is our child (its exit is reported for free) rather than polled. */
  readonly child: boolean;
  /** Resolves when the process is gone. */
  readonly exited: Promise<VmExit>;
  signal(signal: NodeJS.Signals): void;
  isAlive(): boolean;
  /** Stops watching the process so this program can exit while it runs on; `exited` then never settles. */
  release(): void;
}

/** Wraps a child we spawned: exit is reported by Node, so nothing is polled. */
export function childVmmProcess(child: ChildProcess & { pid: number }): VmmProcess {
  let alive = true;
  const exited = new Promise<VmExit>((resolve) => {
    child.once('exit', (code, signal) => {
      alive = false;
      resolve({ code: code ?? undefined, signal: signal ?? undefined });
    });
  });
  return {
    pid: child.pid,
    child: true,
    exited,
    signal: (signal) => {
      if (!alive) return;
      // Whoever signals a VMM waits for its exit: a detached one's handle is unref'd, and Node would end first.
      child.ref();
      child.kill(signal);
    },
    isAlive: () => alive,
    release: () => child.unref(),
  };
}

/** How often a process that is not our child is checked for exit. */
const FOREIGN_POLL_MS = 50;

/**
 * Wraps a VMM started by another jitvm process (a detached sandbox). Node cannot wait on a non-child, so its
 * liveness is checked every 50 ms; `marker` (the VM's runtime dir) guards against a reused pid.
 */
export function foreignVmmProcess(pid: number, marker: string): VmmProcess {
  const isAlive = (): boolean => processMatches(pid, marker);
  let exited: Promise<VmExit> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let released = false;
  return {
    pid,
    child: false,
    // Polled only once someone waits, so a CLI that merely execs in a detached VM can exit.
    get exited() {
      exited ??= new Promise<VmExit>((resolve) => {
        const check = (): void => {
          if (released) return;
          if (isAlive()) timer = setTimeout(check, FOREIGN_POLL_MS);
          else resolve({ code: undefined, signal: undefined });
        };
        check();
      });
      return exited;
    },
    signal: (signal) => {
      if (provenProcess(pid, marker)) process.kill(pid, signal);
    },
    isAlive,
    release: () => {
      released = true;
      clearTimeout(timer);
    },
  };
}
