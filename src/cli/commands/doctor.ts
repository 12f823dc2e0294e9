import type { Command } from 'commander';
import { probeBackends } from '../../backends/index.js';
import { chooseAccelerator } from '../../core/accelerator.js';
import { hostArch } from '../../core/config.js';
import { findOnPath } from '../../core/host-tools.js';
import { cacheRoot } from '../../image/cache.js';

/** Host tools the image build needs, and the Debian package that provides each. */
const IMAGE_TOOLS = [
  ['gcc', 'gcc libc6-dev'],
  ['busybox', 'busybox-static'],
  ['apt-get', 'apt'],
  ['dpkg-deb', 'dpkg'],
] as const;

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('explain which backend and accelerator this host would use, and why')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const arch = hostArch();
      const reports = await probeBackends();
      const chosen = reports.find((report) => report.probe.available);
      const accelerator = arch ? chooseAccelerator(arch) : undefined;
      const tools = IMAGE_TOOLS.map(([tool, pkg]) => ({ tool, path: findOnPath(tool), package: pkg }));
      if (flags.json) {
        process.stdout.write(
          `${JSON.stringify({ arch, platform: process.platform, accelerator, backends: reports, chosen: chosen?.name, tools, cache: cacheRoot() }, null, 2)}\n`,
        );
        return;
      }
      const out: string[] = [`host: ${process.platform} ${arch ?? process.arch} (node ${process.version})`];
      if (accelerator) out.push(`accelerator: ${accelerator.accelerator} — ${accelerator.reason}`);
      out.push('backends:');
      for (const { name, probe } of reports) {
        out.push(
          `  ${probe.available ? '✓' : '✗'} ${name}: ${probe.reason}${probe.version ? ` [${probe.version}]` : ''}`,
        );
        for (const warning of probe.warnings) out.push(`      warning: ${warning}`);
      }
      out.push(
        chosen
          ? `chosen backend: ${chosen.name} (first available; override with --backend or JITVM_BACKEND)`
          : 'chosen backend: none — install one of the above',
      );
      out.push('image build tools:');
      for (const tool of tools)
        out.push(
          `  ${tool.path ? '✓' : '✗'} ${tool.tool}${tool.path ? ` (${tool.path})` : ` — install: apt-get install ${tool.package}`}`,
        );
      out.push(`image cache: ${cacheRoot()}`);
      process.stdout.write(`${out.join('\n')}\n`);
    });
}
