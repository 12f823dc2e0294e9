#!/usr/bin/env node
import { Command } from 'commander';
import { registerCp } from './commands/cp.js';
import { registerCreate } from './commands/create.js';
import { registerDoctor } from './commands/doctor.js';
import { registerExec } from './commands/exec.js';
import { registerImage } from './commands/image.js';
import { registerLogs } from './commands/logs.js';
import { registerLs } from './commands/ls.js';
import { registerMcp } from './commands/mcp.js';
import { registerRm } from './commands/rm.js';
import { registerRun } from './commands/run.js';
import { registerPool } from './commands/pool.js';
import { registerSnapshot } from './commands/snapshot.js';
import { registerServe } from './commands/serve.js';
import { packageVersion } from '../core/version.js';
import { registerVersion } from './commands/version.js';
import { reportError } from './errors.js';

/** Prints Node warnings (e.g. the TCG fallback) as one plain line instead of Node's default format. */
function printWarningsPlainly(): void {
  process.removeAllListeners('warning');
  process.on('warning', (warning) => process.stderr.write(`jitvm: warning: ${warning.message}\n`));
}

async function main(argv: string[]): Promise<number> {
  printWarningsPlainly();
  let exitCode = 0;
  const setExit = (code: number): void => {
    exitCode = code;
  };
  const program = new Command('jitvm')
    .description('just-in-time micro-VMs for untrusted code')
    .version(packageVersion(), '-V, --version')
    .enablePositionalOptions()
    .exitOverride();
  registerRun(program, setExit);
  registerCreate(program);
  registerExec(program, setExit);
  registerCp(program);
  registerLs(program);
  registerRm(program);
  registerLogs(program);
  registerDoctor(program);
  registerImage(program);
  registerSnapshot(program);
  registerPool(program);
  registerServe(program);
  registerMcp(program);
  registerVersion(program);
  for (const command of program.commands) command.passThroughOptions();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    const code = (error as { code?: string; exitCode?: number }).code;
    if (typeof code === 'string' && code.startsWith('commander.')) return (error as { exitCode: number }).exitCode;
    return reportError(error);
  }
  return exitCode;
}

process.exitCode = await main(process.argv);
