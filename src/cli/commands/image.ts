import type { Command } from 'commander';
import { buildImage } from '../../image/index.js';
import { imageProgressPrinter } from '../progress.js';

export function registerImage(program: Command): void {
  const image = program.command('image').description('manage the guest image (kernel + initramfs with the agent)');
  image
    .command('build')
    .description('build the guest image now (otherwise it is built on first use); cached until its inputs change')
    .option('--force', 'rebuild even if an identical image is cached')
    .option('--refresh-kernel', "ask apt for Debian's current cloud kernel instead of the newest one cached")
    .action(async (flags: { force?: boolean; refreshKernel?: boolean }) => {
      const built = await buildImage({ ...flags, onProgress: imageProgressPrinter() });
      process.stdout.write(`kernel ${built.kernelVersion}\nkernel path ${built.kernel}\ninitrd path ${built.initrd}\n`);
    });
}
