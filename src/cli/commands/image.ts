import { type Command, Option } from 'commander';
import { buildImage } from '../../image/index.js';
import { type RootfsImage, fromDirectory, fromOci, rootfsConfigPath } from '../../image/rootfs/index.js';
import type { Arch } from '../../core/config.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { archOption, positiveInt } from '../flags.js';
import { imageProgressPrinter } from '../progress.js';

interface BuildFlags {
  force?: boolean;
  refreshKernel?: boolean;
  arch?: Arch;
  fromDir?: string;
  fromOci?: string;
  output?: string;
  size?: number;
}

/** Refuses flag combinations that mix the guest image build with a rootfs build, or two rootfs sources. */
function checkFlags(flags: BuildFlags): void {
  const rootfs = flags.fromDir !== undefined || flags.fromOci !== undefined;
  if (flags.fromDir !== undefined && flags.fromOci !== undefined) {
    throw new InvalidArgumentError('--from-dir and --from-oci each build a rootfs image: give one of them');
  }
  if (rootfs && (flags.force || flags.refreshKernel)) {
    throw new InvalidArgumentError(
      '--force and --refresh-kernel apply to the kernel and initramfs build, not to --from-dir/--from-oci ' +
        '(a rootfs image is rebuilt every time)',
    );
  }
  if (!rootfs && (flags.output !== undefined || flags.size !== undefined)) {
    throw new InvalidArgumentError('--output and --size apply to rootfs images: add --from-dir DIR or --from-oci TAR');
  }
  if (flags.fromDir !== undefined && flags.arch !== undefined) {
    throw new InvalidArgumentError('--arch does not apply to --from-dir: a directory tree is copied as it is');
  }
}

function printRootfs(image: RootfsImage): void {
  const onDisk = (image.diskBytes / 1048576).toFixed(1);
  const lines = [
    `image path ${image.path}`,
    `size ${image.sizeMiB} MiB (${onDisk} MiB on disk)`,
    `inodes ${image.inodes}`,
  ];
  if (image.config) lines.push(`config path ${rootfsConfigPath(image.path)}`);
  process.stdout.write(lines.join('\n') + '\n');
}

async function buildRootfs(flags: BuildFlags): Promise<void> {
  const options = {
    output: flags.output,
    sizeMiB: flags.size,
    onProgress: (message: string) => process.stderr.write(`[rootfs] ${message}\n`),
  };
  const image =
    flags.fromDir !== undefined
      ? await fromDirectory(flags.fromDir, options)
      : await fromOci(flags.fromOci!, { ...options, arch: flags.arch });
  printRootfs(image);
}

export function registerImage(program: Command): void {
  const image = program.command('image').description('manage the guest image (kernel + initramfs with the agent)');
  image
    .command('build')
    .description(
      'build the guest image now (otherwise it is built on first use; cached until its inputs change), ' +
        'or with --from-dir/--from-oci an ext4 root filesystem image (docs/rootfs.md)',
    )
    .option('--force', 'rebuild even if an identical image is cached')
    .option('--refresh-kernel', "ask apt for Debian's current cloud kernel instead of the newest one cached")
    .addOption(archOption("the guest architecture to build for (default: the host's)"))
    .option('--from-dir <dir>', 'build a rootfs image holding a copy of this directory tree')
    .option('--from-oci <tar>', 'build a rootfs image from a container image tarball (docker save, or an OCI layout)')
    .option('--output <path>', 'where to write the rootfs image (default: <cache>/rootfs/<name>.ext4)')
    .addOption(
      new Option(
        '--size <MiB>',
        'rootfs image size (default: what the tree needs plus a quarter, at least 64)',
      ).argParser(positiveInt('--size')),
    )
    .action(async (flags: BuildFlags) => {
      checkFlags(flags);
      if (flags.fromDir !== undefined || flags.fromOci !== undefined) return buildRootfs(flags);
      const { force, refreshKernel, arch } = flags;
      const built = await buildImage({ force, refreshKernel, arch, onProgress: imageProgressPrinter() });
      process.stdout.write(
        `arch ${built.arch}\nkernel ${built.kernelVersion}\nkernel path ${built.kernel}\ninitrd path ${built.initrd}\n`,
      );
    });
}
