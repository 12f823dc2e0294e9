import type { Command } from 'commander';
import { type CommandFlags, type VmFlags, addCommandFlags, addVmFlags, sandboxOptionsFrom } from '../flags.js';
import { imageProgressPrinter } from '../progress.js';
import { type SandboxFlags, addSandboxFlags, sandboxFlagOptions } from '../sandbox-flags.js';
import { streamCommand } from '../stream-command.js';
import { createSandbox } from '../sandboxes.js';

export function registerRun(program: Command, setExit: (code: number) => void): void {
  const command = program
    .command('run')
    .description('boot an ephemeral VM, run a command in it with live output, exit with its status, tear it down')
    .argument('<command...>', 'the command and its arguments (after --)');
  const flagged = addSandboxFlags(addCommandFlags(addVmFlags(command)), { publish: true });
  flagged.action(async (argv: string[], flags: VmFlags & CommandFlags & SandboxFlags) => {
    const sandbox = await createSandbox({
      ...sandboxOptionsFrom(flags),
      ...sandboxFlagOptions(flags),
      onImageProgress: imageProgressPrinter(),
    });
    for (const port of sandbox.ports) process.stderr.write(`guest port ${port.guest} -> 127.0.0.1:${port.host}\n`);
    try {
      setExit(await streamCommand(sandbox, argv, flags));
    } finally {
      await sandbox.destroy();
    }
  });
}
