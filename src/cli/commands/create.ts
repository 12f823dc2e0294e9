import type { Command } from 'commander';
import { type VmFlags, addVmFlags, sandboxOptionsFrom } from '../flags.js';
import { imageProgressPrinter } from '../progress.js';
import { createSandbox } from '../sandboxes.js';
import { type SandboxFlags, addSandboxFlags, sandboxFlagOptions } from '../sandbox-flags.js';

export function registerCreate(program: Command): void {
  const command = program
    .command('create')
    .description('start a detached sandbox that outlives this command, and print its id');
  // No --publish: a published port lives in the process holding the sandbox, and this one exits at once.
  addSandboxFlags(addVmFlags(command), { publish: false }).action(async (flags: VmFlags & SandboxFlags) => {
    const sandbox = await createSandbox({
      ...sandboxOptionsFrom(flags),
      ...sandboxFlagOptions(flags),
      detached: true,
      onImageProgress: imageProgressPrinter(),
    });
    sandbox.detach();
    process.stdout.write(`${sandbox.id}\n`);
  });
}
