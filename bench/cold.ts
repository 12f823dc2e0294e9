/** Cold-start measurement shared by the QEMU and Firecracker rows. */
import { Sandbox } from '../src/sandbox/sandbox.js';
import type { SandboxOptions } from '../src/sandbox/options.js';
import { timeEach } from './stats.js';

/** What one jitvm cold start is: create a sandbox, run `true` in it, destroy it. */
export async function coldCycle(options: SandboxOptions): Promise<void> {
  const sandbox = await Sandbox.create(options);
  await sandbox.exec(['true']);
  await sandbox.destroy();
}

/**
 * Cold-start samples: one warm-up of each, then `runs` rounds alternating a timed jitvm run with a raw baseline that
 * measures itself (so both see the same machine state).
 */
export async function alternateColdStarts(
  runs: number,
  jitvm: () => Promise<unknown>,
  raw: () => Promise<number>,
): Promise<{ jitvm: number[]; raw: number[] }> {
  await jitvm();
  await raw();
  const samples = { jitvm: [] as number[], raw: [] as number[] };
  for (let i = 0; i < runs; i++) {
    samples.jitvm.push(...(await timeEach(1, jitvm)));
    samples.raw.push(await raw());
  }
  return samples;
}
