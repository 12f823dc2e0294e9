import type { Command } from 'commander';
import { PROTOCOL_VERSION } from '../../channel/protocol.js';
import { packageVersion } from '../../core/version.js';

export function registerVersion(program: Command): void {
  program
    .command('version')
    .description('print jitvm and agent protocol versions')
    .action(() => {
      process.stdout.write(`jitvm ${packageVersion()} (agent protocol ${PROTOCOL_VERSION}, node ${process.version})\n`);
    });
}
