import type { Command } from 'commander';
import { type VmRecord, listVmIds, liveVmRecord } from '../../core/vm-record.js';
import { RemoteSandbox } from '../../remote/sandbox.js';
import { daemonFromEnv } from '../sandboxes.js';
import { printTable } from '../table.js';

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function listLocal(json: boolean): void {
  const records = listVmIds()
    .map(liveVmRecord)
    .filter((record): record is VmRecord => record !== undefined);
  if (json) return printJson(records);
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
}

async function listDaemon(daemon: { daemon: string }, json: boolean): Promise<void> {
  const sandboxes = await RemoteSandbox.list(daemon);
  if (json) return printJson(sandboxes);
  const rows = sandboxes.map((s) => [s.id, s.backend, s.config.network, s.createdAt, s.expiresAt, s.idleExpiresAt]);
  printTable([['ID', 'BACKEND', 'NETWORK', 'CREATED', 'EXPIRES', 'IDLE EXPIRES'], ...rows]);
}

export function registerLs(program: Command): void {
  program
    .command('ls')
    .description('list running sandboxes (those of $JITVM_DAEMON when set; exited VMs are cleaned up)')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const daemon = daemonFromEnv();
      if (daemon) await listDaemon(daemon, flags.json ?? false);
      else listLocal(flags.json ?? false);
    });
}
