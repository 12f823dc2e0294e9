import type { Command } from 'commander';
import { listPools } from '../../sandbox/pool-status.js';
import { printTable } from '../table.js';

const percent = (ratio: number | undefined): string => `${Math.round((ratio ?? 0) * 100)}%`;
const count = (value: number | undefined): string => String(value ?? 0);

/** `jitvm pool`: the warm pools running on this host (each process that started one with `Pool.start`). */
export function registerPool(program: Command): void {
  program
    .command('pool')
    .description('show the warm pools running on this host: size, ready, starting, handed out, hit ratio, errors')
    .option('--json', 'print JSON')
    .action((flags: { json?: boolean }) => {
      const pools = listPools();
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(pools, null, 2)}\n`);
        return;
      }
      const rows = pools.map(({ id, source, stats }) => [
        id,
        source,
        count(stats.size),
        count(stats.ready),
        count(stats.starting),
        count(stats.handedOut),
        `${count(stats.hits)}/${count(stats.misses)}`,
        percent(stats.hitRatio),
        count(stats.refillErrors),
        count(stats.retired),
      ]);
      const header = [
        'POOL',
        'SOURCE',
        'SIZE',
        'READY',
        'STARTING',
        'HANDED-OUT',
        'HITS/MISSES',
        'HIT%',
        'ERRORS',
        'RETIRED',
      ];
      printTable([header, ...rows]);
    });
}
