import type { Command } from 'commander';
import { Sandbox } from '../../sandbox/sandbox.js';
import { type CommandFlags, type VmFlags, addCommandFlags, addVmFlags, sandboxOptionsFrom } from '../flags.js';
import { imageProgressPrinter } from '../progress.js';
import { streamCommand } from '../stream-command.js';

export function registerRun(program: Command, setExit: (code: number) => void): void {
  const command = program
    .command('run')
    .description('boot an ephemeral VM, run a command in it with live output, exit with its status, tear it down')
    .argument('<command...>', 'the command and its arguments (after --)');
  addCommandFlags(addVmFlags(command)).action(async (argv: string[], flags: VmFlags & CommandFlags) => {
    const sandbox = await Sandbox.create({ ...sandboxOptionsFrom(flags), onImageProgress: imageProgressPrinter() });
    try {
      setExit(await streamCommand(sandbox, argv, flags));
    } finally {
      await sandbox.destroy();
    }
  });
}
