import type { Command } from 'commander';
import { backendByName } from '../../backends/index.js';
import { JitvmError } from '../../core/errors.js';
import { readVmRecord } from '../../core/vm-record.js';
import { Sandbox } from '../../sandbox/sandbox.js';
import { daemonFromEnv } from '../sandboxes.js';

/** Kills the detached sandbox `id` of this host. */
async function removeLocal(id: string): Promise<void> {
  const backend = backendByName(readVmRecord(id).backend);
  // A sandbox whose VM already exited is cleaned up by attach(), which then reports it gone: that is success.
  const instance = await backend.attach(id).catch((error: unknown) => {
    if (error instanceof JitvmError && error.code === 'not_found') return undefined;
    throw error;
  });
  await instance?.kill();
}

export function registerRm(program: Command): void {
  program
    .command('rm')
    .description('destroy sandboxes (those of $JITVM_DAEMON when set) and remove what they left on the host')
    .argument('<ids...>', 'sandbox ids')
    .action(async (ids: string[]) => {
      const daemon = daemonFromEnv();
      for (const id of ids) {
        if (daemon) await (await Sandbox.connect(id, daemon)).destroy();
        else await removeLocal(id);
        process.stdout.write(`${id}\n`);
      }
    });
}
