import type { SandboxOptions } from '../sandbox/options.js';

type ProgressHandler = NonNullable<SandboxOptions['onImageProgress']>;

/** Prints image build steps to stderr as they start and finish, with their duration. */
export function imageProgressPrinter(): ProgressHandler {
  const startedAt = new Map<string, number>();
  return ({ step, message, done }) => {
    if (!done) startedAt.set(step, performance.now());
    const started = startedAt.get(step);
    const elapsed = done && started !== undefined ? ` (${((performance.now() - started) / 1000).toFixed(1)} s)` : '';
    process.stderr.write(`[image ${step}] ${done ? '✓' : '…'} ${message}${elapsed}\n`);
  };
}
