import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { readVmRecord } from '../../core/vm-record.js';

export function registerLogs(program: Command): void {
  program
    .command('logs')
    .description("print a detached sandbox's serial console log")
    .argument('<id>', 'sandbox id')
    .action((id: string) => {
      process.stdout.write(readFileSync(readVmRecord(id).consoleLog));
    });
}
