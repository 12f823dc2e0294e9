import type { Command } from 'commander';
import { buildImage } from '../../image/index.js';
import type { Arch } from '../../core/config.js';
import { archOption } from '../flags.js';
import { imageProgressPrinter } from '../progress.js';

export function registerImage(program: Command): void {
  const image = program.command('image').description('manage the guest image (kernel + initramfs with the agent)');
  image
    .command('build')
    .description('build the guest image now (otherwise it is built on first use); cached until its inputs change')
    .option('--force', 'rebuild even if an identical image is cached')
    .option('--refresh-kernel', "ask apt for Debian's current cloud kernel instead of the newest one cached")
    .addOption(archOption("the guest architecture to build for (default: the host's)"))
    .action(async (flags: { force?: boolean; refreshKernel?: boolean; arch?: Arch }) => {
      const built = await buildImage({ ...flags, onProgress: imageProgressPrinter() });
      process.stdout.write(
        `arch ${built.arch}\nkernel ${built.kernelVersion}\nkernel path ${built.kernel}\ninitrd path ${built.initrd}\n`,
      );
    });
}
