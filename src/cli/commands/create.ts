import type { Command } from 'commander';
import { Sandbox } from '../../sandbox/sandbox.js';
import { type VmFlags, addVmFlags, sandboxOptionsFrom } from '../flags.js';
import { imageProgressPrinter } from '../progress.js';

export function registerCreate(program: Command): void {
  const command = program
    .command('create')
    .description('start a detached sandbox that outlives this command, and print its id');
  addVmFlags(command).action(async (flags: VmFlags) => {
    const sandbox = await Sandbox.create({
      ...sandboxOptionsFrom(flags),
      detached: true,
      onImageProgress: imageProgressPrinter(),
    });
    sandbox.detach();
    process.stdout.write(`${sandbox.id}\n`);
  });
}
