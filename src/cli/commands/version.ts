import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { PROTOCOL_VERSION } from '../../channel/protocol.js';

/** jitvm's own version, from its package.json. */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

export function registerVersion(program: Command): void {
  program
    .command('version')
    .description('print jitvm and agent protocol versions')
    .action(() => {
      process.stdout.write(`jitvm ${packageVersion()} (agent protocol ${PROTOCOL_VERSION}, node ${process.version})\n`);
    });
}
