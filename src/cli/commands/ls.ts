import type { Command } from 'commander';
import { type VmRecord, listVmIds, liveVmRecord } from '../../core/vm-record.js';
import { printTable } from '../table.js';

export function registerLs(program: Command): void {
  program
    .command('ls')
    .description('list running sandboxes (entries of VMs that exited are cleaned up)')
    .option('--json', 'print JSON')
    .action((flags: { json?: boolean }) => {
      const records = listVmIds()
        .map(liveVmRecord)
        .filter((record): record is VmRecord => record !== undefined);
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(records, null, 2)}\n`);
        return;
      }
      const rows = records.map((r) => [
        r.id,
        String(r.pid),
        r.backend,
        r.accelerator,
        String(r.cpus),
        `${r.memoryMiB}M`,
        r.createdAt,
      ]);
      printTable([['ID', 'PID', 'BACKEND', 'ACCEL', 'CPUS', 'MEMORY', 'CREATED'], ...rows]);
    });
}
