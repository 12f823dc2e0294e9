import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { readVmRecord } from '../../core/vm-record.js';

export function registerLogs(program: Command): void {
  program
    .command('logs')
    .description("print a detached sandbox's serial console log")
    .argument('<id>', 'sandbox id')
    .action(async (id: string) => {
      await pipeline(createReadStream(readVmRecord(id).consoleLog), process.stdout, { end: false });
    });
}
