/**
 * How `Pool.start` starts each sandbox: `Sandbox.create` (a clone of the snapshot, or a cold boot), then one warm-up
 * command. Under TCG the first exec in a new QEMU pays for translating the guest's fork/exec path: measured ~96 ms
 * for `true` in a fresh snapshot clone (~37 ms after a cold boot) against ~9 ms for the next one. Paying that in the
 * background refill keeps it off the caller's first exec.
 */
import { JitvmError } from '../core/errors.js';
import type { SandboxOptions } from './options.js';
import type { PoolStarter } from './pool-types.js';
import { Sandbox } from './sandbox.js';

/** A start function for a pool of `Sandbox.create(options)` sandboxes, each run through `true` first if `warmUp`. */
export function sandboxStarter(options: SandboxOptions, warmUp: boolean): PoolStarter<Sandbox> {
  return async (signal) => {
    const sandbox = await Sandbox.create({ ...options, signal });
    if (!warmUp) return sandbox;
    try {
      const result = await sandbox.exec(['true'], { signal });
      if (result.exitCode !== 0) {
        throw new JitvmError(
          'guest_error',
          `the warm-up command \`true\` exited with ${result.exitCode} in ${sandbox.id}`,
        );
      }
      return sandbox;
    } catch (error) {
      await sandbox.destroy();
      throw error;
    }
  };
}
