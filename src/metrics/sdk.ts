import { JitvmError } from '../core/errors.js';
import type { EgressDecision } from '../network/egress-options.js';
import {
  bootSeconds,
  egressDecisions,
  errorsTotal,
  execSeconds,
  restoreSeconds,
  sandboxesActive,
  sandboxesCreated,
  sandboxesDestroyed,
} from './registry.js';

/** How a Sandbox object came to be: a cold boot, a snapshot restore, or re-attaching to a running detached VM. */
export type StartOrigin = 'boot' | 'snapshot' | 'attach';

/** A Sandbox is ready: it counts as active, and (unless re-attached) as created, with its start latency. */
export function recordStart(backend: string, origin: StartOrigin, startedAtMs: number): void {
  sandboxesActive.inc({ backend });
  if (origin === 'attach') return;
  sandboxesCreated.inc({ backend, source: origin });
  const seconds = (performance.now() - startedAtMs) / 1000;
  (origin === 'boot' ? bootSeconds : restoreSeconds).observe({ backend }, seconds);
}

/** A Sandbox object let go of its VM: destroyed it (`destroyed`), or left it running (detach). */
export function recordEnd(backend: string, destroyed: boolean): void {
  sandboxesActive.dec({ backend });
  if (destroyed) sandboxesDestroyed.inc({ backend });
}

/** A command (exec or spawn) that ran to its exit status, from request to result. */
export function recordExec(startedAtMs: number): void {
  execSeconds.observe((performance.now() - startedAtMs) / 1000);
}

/** Counts a failure of `operation` under its jitvm error code (`internal` for anything else). */
export function recordError(operation: string, error: unknown): void {
  errorsTotal.inc({ operation, code: error instanceof JitvmError ? error.code : 'internal' });
}

/** Runs `work`, counting a failure under `operation`. */
export async function countingErrors<T>(operation: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    recordError(operation, error);
    throw error;
  }
}

/** One verdict of the allowlist proxy. */
export function recordEgress(decision: EgressDecision): void {
  egressDecisions.inc({ allowed: String(decision.allowed), reason: decision.reason });
}
