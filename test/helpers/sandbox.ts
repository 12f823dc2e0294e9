import { after, before } from 'node:test';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import type { SandboxOptions } from '../../src/sandbox/options.js';

/** Generous bound for hangs only: guests boot under TCG here, several at once on 2 cores. */
export const BOOT_TIMEOUT_MS = 120_000;

function describeForFailure(sandbox: Sandbox): string {
  return `sandbox ${sandbox.id}, console log ${sandbox.instance.consoleLogPath}\n--- console tail ---\n${sandbox.instance.consoleTail()}`;
}

/** Boots a sandbox, runs `body` with it and always destroys it; on failure prints its id and console tail. */
export async function withSandbox<T>(body: (sandbox: Sandbox) => Promise<T>, options: SandboxOptions = {}): Promise<T> {
  const sandbox = await Sandbox.create({ bootTimeoutMs: BOOT_TIMEOUT_MS, ...options });
  try {
    return await body(sandbox);
  } catch (error) {
    console.error(describeForFailure(sandbox));
    throw error;
  } finally {
    await sandbox.destroy();
  }
}

/** One sandbox shared by every test of a file: booted before them, destroyed after them (console tail on error). */
export function sharedSandbox(options: SandboxOptions = {}): () => Sandbox {
  let sandbox: Sandbox | undefined;
  before(async () => {
    sandbox = await Sandbox.create({ bootTimeoutMs: BOOT_TIMEOUT_MS, ...options });
  });
  after(async () => {
    await sandbox?.destroy();
  });
  return () => {
    if (!sandbox) throw new Error('the shared sandbox did not boot');
    return sandbox;
  };
}

/** Wraps a test body so a failure prints the shared sandbox's id and console tail. */
export function explained(get: () => Sandbox, body: (sandbox: Sandbox) => Promise<void>): () => Promise<void> {
  return async () => {
    const sandbox = get();
    try {
      await body(sandbox);
    } catch (error) {
      console.error(describeForFailure(sandbox));
      throw error;
    }
  };
}
