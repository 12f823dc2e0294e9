import type { Command } from 'commander';
import { backendByName } from '../../backends/index.js';
import { JitvmError } from '../../core/errors.js';
import { readVmRecord } from '../../core/vm-record.js';

export function registerRm(program: Command): void {
  program
    .command('rm')
    .description('destroy detached sandboxes and remove what they left on the host')
    .argument('<ids...>', 'sandbox ids')
    .action(async (ids: string[]) => {
      for (const id of ids) {
        const backend = backendByName(readVmRecord(id).backend);
        // A sandbox whose VM already exited is cleaned up by attach(), which then reports it gone: that is success.
        const instance = await backend.attach(id).catch((error: unknown) => {
          if (error instanceof JitvmError && error.code === 'not_found') return undefined;
          throw error;
        });
        await instance?.kill();
        process.stdout.write(`${id}\n`);
      }
    });
}
