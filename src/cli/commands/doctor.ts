import { findVirtiofsd } from '../../backends/qemu/virtiofs.js';
import type { Command } from 'commander';
import { chooseBackend, explainBackendChoice, probeBackends } from '../../backends/index.js';
import { chooseAccelerator } from '../../core/accelerator.js';
import { ARCHES, type Arch, hostArch } from '../../core/config.js';
import { findOnPath } from '../../core/host-tools.js';
import { cacheRoot } from '../../image/cache.js';
import { guestArchFacts, isHostArch } from '../../image/guest-arch.js';

/** QEMU's security policy (docs/system/security.rst) covers hardware virtualization only, not TCG emulation. */
const TCG_SECURITY_NOTE =
  'QEMU gives no security guarantee under TCG (its security policy covers hardware virtualization only): ' +
  'for hostile code use kvm, hvf, whpx or Firecracker/vz';

interface HostTool {
  readonly tool: string;
  readonly path: string | undefined;
  readonly package: string;
  /** What the tool is needed for. */
  readonly for: string;
}

/** Host tools the image build and guests of each architecture need, and the Debian package of each. */
function hostTools(): HostTool[] {
  const tool = (name: string, pkg: string, purpose: string): HostTool => ({
    tool: name,
    path: findOnPath(name),
    package: pkg,
    for: purpose,
  });
  const perArch = ARCHES.filter((arch) => !isHostArch(arch)).map((arch: Arch) => {
    const facts = guestArchFacts(arch);
    return tool(`${facts.gnuTriplet}-gcc`, facts.crossPackages, `${arch} guest images`);
  });
  return [
    tool('gcc', 'gcc libc6-dev', 'the guest agent'),
    tool('busybox', 'busybox-static', 'the guest userland'),
    tool('apt-get', 'apt', 'guest kernels'),
    tool('dpkg-deb', 'dpkg', 'guest kernels'),
    tool('mkfs.ext4', 'e2fsprogs', 'rootfs images and overlay disks'),
    tool('qemu-img', 'qemu-utils', 'snapshot clones with writable drives'),
    { ...tool('virtiofsd', 'qemu-system-common', 'host directory volumes (QEMU)'), path: findVirtiofsd() },
    tool('debootstrap', 'debootstrap', 'the Debian rootfs recipe (scripts/debian-rootfs.sh)'),
    tool('nft', 'nftables', 'Firecracker nat mode (with ip, as root)'),
    tool('ip', 'iproute2', 'Firecracker nat mode (with nft, as root)'),
    ...perArch,
  ];
}

/** The accelerator for `guest`, or why there is none (doctor must explain a bad JITVM_ACCEL, not crash on it). */
function acceleratorOrWhyNot(guest: Arch): { accelerator: string; reason: string } {
  try {
    return chooseAccelerator(guest);
  } catch (error) {
    return { accelerator: 'none', reason: error instanceof Error ? error.message : String(error) };
  }
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('explain which backend and accelerator this host would use, and why')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const arch = hostArch();
      const reports = await probeBackends();
      const chosen = Object.fromEntries(ARCHES.map((guest) => [guest, chooseBackend(reports, guest)?.name ?? null]));
      const accelerators = ARCHES.map((guest) => ({ guest, ...acceleratorOrWhyNot(guest) }));
      // Images are built on Debian only; elsewhere `image build` says so and the tools do not apply.
      const tools = process.platform === 'linux' ? hostTools() : [];
      if (flags.json) {
        const summary = { arch, platform: process.platform, accelerators, backends: reports, chosen };
        process.stdout.write(`${JSON.stringify({ ...summary, tools, cache: cacheRoot() }, null, 2)}\n`);
        return;
      }
      const out: string[] = [`host: ${process.platform} ${arch ?? process.arch} (node ${process.version})`];
      out.push('accelerator (QEMU) per guest architecture:');
      for (const choice of accelerators) out.push(`  ${choice.guest}: ${choice.accelerator} — ${choice.reason}`);
      if (accelerators.some((choice) => choice.accelerator === 'tcg')) out.push(`  note: ${TCG_SECURITY_NOTE}`);
      out.push('backends:');
      for (const { name, probe } of reports) {
        const version = probe.version ? ` [${probe.version}]` : '';
        out.push(`  ${probe.available ? '✓' : '✗'} ${name}: ${probe.reason}${version}`);
        for (const warning of probe.warnings) out.push(`      warning: ${warning}`);
      }
      for (const guest of ARCHES) out.push(`chosen backend (${guest} guests): ${explainBackendChoice(reports, guest)}`);
      out.push('  override with --backend or JITVM_BACKEND');
      out.push(tools.length > 0 ? 'host tools:' : 'host tools: none needed here (images are built on Debian)');
      for (const tool of tools) {
        const where = tool.path ? ` (${tool.path})` : ` — install: apt-get install ${tool.package}`;
        out.push(`  ${tool.path ? '✓' : '✗'} ${tool.tool} for ${tool.for}${where}`);
      }
      out.push(`image cache: ${cacheRoot()}`);
      process.stdout.write(`${out.join('\n')}\n`);
    });
}
