import type { Command } from 'commander';
import { type CommandFlags, addCommandFlags } from '../flags.js';
import { streamCommand } from '../stream-command.js';
import { connectSandbox } from '../sandboxes.js';

export function registerExec(program: Command, setExit: (code: number) => void): void {
  const command = program
    .command('exec')
    .description('run a command in a detached sandbox with live output, and exit with its status')
    .argument('<id>', 'sandbox id (from `jitvm create` or `jitvm ls`)')
    .argument('<command...>', 'the command and its arguments (after --)');
  addCommandFlags(command).action(async (id: string, argv: string[], flags: CommandFlags) => {
    // Options pass through after the id, so the `--` separating the guest command arrives as an argument.
    const command = argv[0] === '--' ? argv.slice(1) : argv;
    const sandbox = await connectSandbox(id);
    try {
      setExit(await streamCommand(sandbox, command, flags));
    } finally {
      sandbox.detach();
    }
  });
}
