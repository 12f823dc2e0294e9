import { type Command, Option } from 'commander';
import { InvalidArgumentError } from '../../core/errors.js';
import type { OpenedSnapshot } from '../../snapshot/compat.js';
import type { SnapshotEntry } from '../../snapshot/layout.js';
import { SnapshotStore } from '../../snapshot/store.js';
import { connectSandbox } from '../sandboxes.js';
import { printTable } from '../table.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;
const SIZE_SUFFIX: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };
const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `--max-size`: bytes, or a number with a binary suffix (`512M`, `20G`, `1.5GiB`). */
function parseSize(value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(value.trim());
  const bytes = match ? Math.floor(Number(match[1]) * SIZE_SUFFIX[match[2]!.toLowerCase()]!) : NaN;
  if (!Number.isSafeInteger(bytes)) {
    throw new InvalidArgumentError(`--max-size expects bytes or a size like 512M or 20G, got "${value}"`);
  }
  return bytes;
}

/** `--max-age`: a number with a unit (`90s`, `30m`, `12h`, `7d`); a bare number is refused as ambiguous. */
function parseDuration(value: string): number {
  const match = /^(\d+)\s*(ms|s|m|h|d)$/.exec(value.trim());
  if (!match) throw new InvalidArgumentError(`--max-age expects a duration like 90s, 30m, 12h or 7d, got "${value}"`);
  return Number(match[1]) * DURATION_UNIT_MS[match[2]!]!;
}

function formatSize(bytes: number): string {
  const power = Math.min(Math.floor(Math.log2(Math.max(bytes, 1)) / 10), UNITS.length - 1);
  return power === 0 ? `${bytes} B` : `${(bytes / 2 ** (10 * power)).toFixed(1)} ${UNITS[power]}`;
}

function printList(entries: readonly SnapshotEntry[]): void {
  const rows = entries.map(({ name, manifest: m, bytes, createdAt }) => [
    name,
    m ? `${m.backend} ${m.vmmVersion ?? '?'}` : '(unreadable)',
    m?.arch ?? '-',
    m ? String(m.config.cpus) : '-',
    m ? `${m.config.memoryMiB}M` : '-',
    formatSize(bytes),
    createdAt,
  ]);
  printTable([['NAME', 'BACKEND', 'ARCH', 'CPUS', 'MEMORY', 'SIZE', 'CREATED'], ...rows]);
  for (const entry of entries) {
    if (entry.problem) process.stderr.write(`jitvm: warning: ${entry.problem}\n`);
  }
}

function printSnapshot(snapshot: OpenedSnapshot, verified: string): void {
  const { manifest: m } = snapshot;
  const lines = [
    `name      ${m.name}`,
    `dir       ${snapshot.dir}`,
    `taken     ${m.createdAt} by jitvm ${m.jitvmVersion} (snapshot format ${m.formatVersion})`,
    `backend   ${m.backend} ${m.vmmVersion ?? '(unknown VMM version)'}`,
    `guest     ${m.arch}, ${m.config.cpus} vCPU, ${m.config.memoryMiB} MiB, kernel ${m.config.kernel}`,
    `files     (${verified} verified)`,
    ...m.files.map((file) => {
      const name = file.name.padEnd(Math.max(...m.files.map((other) => other.name.length)));
      return `  ${file.role.padEnd(7)} ${name}  ${formatSize(file.size).padStart(9)}  sha256:${file.sha256}`;
    }),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** `jitvm snapshot create|ls|inspect|rm|gc`: taking snapshots of detached sandboxes, and the snapshot store. */
export function registerSnapshot(program: Command): void {
  const snapshot = program
    .command('snapshot')
    .description('manage stored VM snapshots (in $JITVM_SNAPSHOT_DIR, else <cache dir>/snapshots)');
  snapshot
    .command('create')
    .description('snapshot a running sandbox (from `jitvm create`) under a name; it keeps running unless --stop')
    .argument('<id>', 'sandbox id')
    .argument('<name>', 'snapshot name: a letter or digit, then up to 63 letters, digits, _ . -')
    .option('--stop', 'destroy the sandbox once the snapshot is written')
    .action(async (id: string, name: string, flags: { stop?: boolean }) => {
      const sandbox = await connectSandbox(id);
      const taken = await sandbox.snapshot({ name, then: flags.stop ? 'destroy' : 'resume' });
      if (!flags.stop) sandbox.detach();
      process.stdout.write(`${taken.name}\n`);
    });
  snapshot
    .command('ls')
    .description('list snapshots, oldest first; unreadable ones are listed with the reason on stderr')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const entries = await new SnapshotStore().list();
      if (flags.json) process.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
      else printList(entries);
    });
  snapshot
    .command('inspect')
    .description("print a snapshot's manifest after checking its files' sizes")
    .argument('<name>', 'snapshot name')
    .option('--verify', 're-hash every file too (reads the whole snapshot)')
    .option('--json', 'print JSON')
    .action(async (name: string, flags: { verify?: boolean; json?: boolean }) => {
      const verify = flags.verify ? 'full' : 'size';
      const opened = await new SnapshotStore().inspect(name, { verify });
      const verified = verify === 'full' ? 'sizes and sha256s' : 'sizes';
      if (flags.json) process.stdout.write(`${JSON.stringify({ ...opened, verified }, null, 2)}\n`);
      else printSnapshot(opened, verified);
    });
  snapshot
    .command('rm')
    .description('remove snapshots')
    .argument('<names...>', 'snapshot names')
    .action(async (names: string[]) => {
      const store = new SnapshotStore();
      for (const name of names) {
        await store.remove(name);
        process.stdout.write(`${name}\n`);
      }
    });
  snapshot
    .command('gc')
    .description('remove old snapshots (and what crashed snapshot writers left behind), oldest first')
    .addOption(
      new Option('--max-age <duration>', 'remove those older than this: 90s, 30m, 12h, 7d').argParser(parseDuration),
    )
    .addOption(
      new Option('--max-size <bytes>', 'then the oldest until the rest fit: 1073741824, 512M, 20G').argParser(
        parseSize,
      ),
    )
    .action(async (flags: { maxAge?: number; maxSize?: number }) => {
      if (flags.maxAge === undefined && flags.maxSize === undefined) {
        throw new InvalidArgumentError('snapshot gc needs --max-age, --max-size or both');
      }
      const removed = await new SnapshotStore().gc({ maxAgeMs: flags.maxAge, maxTotalBytes: flags.maxSize });
      for (const entry of removed) process.stdout.write(`${entry.name}\t${formatSize(entry.bytes)}\n`);
    });
}
