import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { vmsRoot } from '../../core/paths.js';
import { processMatches } from '../../core/process.js';
import { type VmRecord, listVmIds, readVmRecord } from '../../core/vm-record.js';

function liveRecord(id: string): VmRecord | undefined {
  const runtimeDir = join(vmsRoot(), id);
  try {
    const record = readVmRecord(id);
    if (processMatches(record.pid, runtimeDir)) return record;
  } catch {
    // unreadable: a half-written or damaged entry, treated as stale
  }
  rmSync(runtimeDir, { recursive: true, force: true });
  return undefined;
}

export function registerLs(program: Command): void {
  program
    .command('ls')
    .description('list running sandboxes (entries of VMs that exited are cleaned up)')
    .option('--json', 'print JSON')
    .action((flags: { json?: boolean }) => {
      const records = listVmIds()
        .map(liveRecord)
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
      const table = [['ID', 'PID', 'BACKEND', 'ACCEL', 'CPUS', 'MEMORY', 'CREATED'], ...rows];
      const widths = table[0]!.map((_, column) => Math.max(...table.map((row) => row[column]!.length)));
      for (const row of table)
        process.stdout.write(
          `${row
            .map((cell, i) => cell.padEnd(widths[i]!))
            .join('  ')
            .trimEnd()}\n`,
        );
    });
}
