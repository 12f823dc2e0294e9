/**
 * `npm run bench`: jitvm against raw baselines measured in the same run, on the same kernel and initramfs.
 * Prints a table and a JSON summary (last line).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { chooseAccelerator } from '../src/core/accelerator.js';
import { CpioWriter } from '../src/image/cpio.js';
import { type GuestImage, resolveImage } from '../src/image/index.js';
import { qemuBinary } from '../src/backends/qemu/args.js';
import { findOnPath } from '../src/core/host-tools.js';
import { Sandbox } from '../src/sandbox/sandbox.js';
import { FirecrackerHypervisor } from '../src/backends/firecracker/index.js';
import { firecrackerColdStart } from './firecracker.js';
import { snapshotSamples } from './snapshot.js';
import { launchRawVm, rawBootToFirstByte, rawCommand, readExactly } from './raw-vm.js';
import { alternateColdStarts, coldCycle } from './cold.js';
import { type Summary, summarize, timeEach } from './stats.js';
import { egressSamples, publishedPortSamples, rootfsColdStarts } from './network-storage.js';
import { DOWNLOAD_MIB, daemonSamples } from './daemon.js';

const COLD_RUNS = Number(process.env.BENCH_COLD_RUNS ?? 5);
const EXEC_RUNS = 200;
const PING_RUNS = 1000;
const TRANSFER_MIB = 64;
const TRANSFER_RUNS = 3;
const BOOT_TIMEOUT_MS = 120_000;

const RAW_INIT = `#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
while read module; do insmod "$module"; done < /etc/jitvm/modules
exec /bench/raw-echo
`;

/** The product image plus an appended cpio holding the raw echo program (the kernel unpacks both archives). */
function buildRawInitrd(productInitrd: string, dir: string): string {
  const source = fileURLToPath(new URL('../../bench/raw-echo.c', import.meta.url));
  const binary = join(dir, 'raw-echo');
  execFileSync('gcc', ['-static', '-O2', '-o', binary, source]);
  const extra = new CpioWriter();
  extra.addFile('bench/raw-echo', readFileSync(binary), 0o755);
  extra.addFile('bench/init.sh', Buffer.from(RAW_INIT), 0o755);
  const initrd = join(dir, 'raw-initrd.gz');
  writeFileSync(initrd, Buffer.concat([readFileSync(productInitrd), gzipSync(extra.finish())]));
  return initrd;
}

const mibPerSecond = (bytes: number) => (ms: number) => bytes / (1024 * 1024) / (ms / 1000);

interface Row {
  readonly name: string;
  readonly jitvm: Summary;
  readonly raw?: Summary;
  readonly unit: string;
  /** jitvm ÷ raw on medians (time: lower is better; throughput: higher is better). */
  readonly ratio?: number;
  readonly goal?: string;
}

function row(name: string, unit: string, jitvm: number[], raw?: number[], goal?: string): Row {
  const j = summarize(jitvm);
  const r = raw ? summarize(raw) : undefined;
  return { name, unit, jitvm: j, raw: r, ratio: r ? j.median / r.median : undefined, goal };
}

async function coldStart(image: GuestImage): Promise<Row> {
  const samples = await alternateColdStarts(
    COLD_RUNS,
    () => coldCycle({ backend: 'qemu', arch: image.arch, bootTimeoutMs: BOOT_TIMEOUT_MS }),
    () => rawBootToFirstByte(image.kernel, image.initrd, image.arch),
  );
  return row(
    `${image.arch === 'x86_64' ? '' : `${image.arch} guest `}cold start (create + exec true + destroy vs raw boot to first byte)`,
    'ms',
    samples.jitvm,
    samples.raw,
    '≤ 1.10×',
  );
}

/** The aarch64 guest (the image macOS users boot) under qemu-system-aarch64, where it is installed. */
async function aarch64Rows(): Promise<Row[]> {
  if (!findOnPath(qemuBinary('aarch64'))) {
    console.log(`aarch64 guest: skipped (${qemuBinary('aarch64')} is not installed; apt-get install qemu-system-arm)`);
    return [];
  }
  const image = await resolveImage({ arch: 'aarch64' });
  const cold = await coldStart(image);
  const sandbox = await Sandbox.create({ backend: 'qemu', arch: 'aarch64', bootTimeoutMs: BOOT_TIMEOUT_MS });
  try {
    await timeEach(20, () => sandbox.exec(['true']));
    const exec = await timeEach(EXEC_RUNS, () => sandbox.exec(['true']));
    return [cold, row('aarch64 guest: exec true on a running sandbox', 'ms', exec)];
  } finally {
    await sandbox.destroy();
  }
}

interface RawFigures {
  echo: number[];
  upload: number[];
  download: number[];
  fileUpload: number[];
  fileDownload: number[];
}

async function rawChannel(kernel: string, initrd: string): Promise<RawFigures> {
  const vm = await launchRawVm(kernel, initrd, 'x86_64', ['rdinit=/bench/init.sh']);
  try {
    const roundTrip = async (): Promise<void> => {
      const reply = readExactly(vm.socket, 12);
      vm.socket.write(Buffer.concat([rawCommand('E', 12), Buffer.alloc(12)]));
      await reply;
    };
    await timeEach(50, roundTrip);
    const echo = await timeEach(PING_RUNS, roundTrip);
    const bytes = TRANSFER_MIB * 1024 * 1024;
    const payload = Buffer.alloc(bytes, 1);
    const pull = (letter: 'D' | 'R') => async (): Promise<void> => {
      const all = readExactly(vm.socket, bytes);
      vm.socket.write(rawCommand(letter, bytes));
      await all;
    };
    const push = (letter: 'U' | 'F') => async (): Promise<void> => {
      const ack = readExactly(vm.socket, 1);
      vm.socket.write(rawCommand(letter, bytes));
      vm.socket.write(payload);
      await ack;
    };
    return {
      echo,
      upload: await timeEach(TRANSFER_RUNS, push('U')),
      download: await timeEach(TRANSFER_RUNS, pull('D')),
      fileUpload: await timeEach(TRANSFER_RUNS, push('F')),
      fileDownload: await timeEach(TRANSFER_RUNS, pull('R')),
    };
  } finally {
    await vm.stop();
  }
}

async function running(): Promise<{ exec: number[]; ping: number[]; upload: number[]; download: number[] }> {
  const sandbox = await Sandbox.create({ backend: 'qemu', bootTimeoutMs: BOOT_TIMEOUT_MS });
  try {
    await timeEach(20, () => sandbox.exec(['true']));
    const exec = await timeEach(EXEC_RUNS, () => sandbox.exec(['true']));
    await timeEach(50, () => sandbox.ping());
    const ping = await timeEach(PING_RUNS, () => sandbox.ping());
    const payload = Buffer.alloc(TRANSFER_MIB * 1024 * 1024, 1);
    const upload = await timeEach(TRANSFER_RUNS, () => sandbox.files.write('/tmp/bench.bin', payload));
    const download = await timeEach(TRANSFER_RUNS, () => sandbox.files.read('/tmp/bench.bin'));
    return { exec, ping, upload, download };
  } finally {
    await sandbox.destroy();
  }
}

function printTable(rows: Row[]): void {
  const fmt = (n: number | undefined): string => (n === undefined ? '—' : n >= 100 ? n.toFixed(0) : n.toFixed(3));
  console.log(
    `\n${'benchmark'.padEnd(90)} ${'jitvm p50'.padStart(10)} ${'p99'.padStart(9)} ${'raw p50'.padStart(9)} ${'ratio'.padStart(7)}  goal`,
  );
  for (const r of rows) {
    console.log(
      `${`${r.name} [${r.unit}]`.padEnd(90)} ${fmt(r.jitvm.median).padStart(10)} ${fmt(r.jitvm.p99).padStart(9)} ${fmt(r.raw?.median).padStart(9)} ${(r.ratio === undefined ? '—' : `${r.ratio.toFixed(2)}×`).padStart(7)}  ${r.goal ?? ''}`,
    );
  }
}

/**
 * Restore from a stored snapshot against a cold boot, both as create + exec true + destroy (the ratio is restore ÷
 * cold: the goal is ≥ 10× faster, i.e. ≤ 0.10×), and the time to take a snapshot.
 */
async function snapshotRows(): Promise<Row[]> {
  const samples = await snapshotSamples(COLD_RUNS, BOOT_TIMEOUT_MS);
  if (!samples) return [];
  return [
    row(
      'restore from snapshot vs cold start (create + exec true + destroy each)',
      'ms',
      samples.restore,
      samples.cold,
      '≤ 0.10×',
    ),
    row('take a snapshot (256 MiB guest: pause, device state, RAM copy, seal, resume)', 'ms', samples.snapshot),
    row('warm pool: acquire() on a hit', 'ms', samples.poolHit, undefined, '≤ 5 ms'),
    row('warm pool: acquire() to the first exec true answered', 'ms', samples.poolFirstExec),
  ];
}

/** Rootfs boots, the allowlist proxy against NAT, and published ports (docs/network.md, docs/storage.md). */
async function networkStorageRows(dir: string): Promise<Row[]> {
  const base = { backend: 'qemu', bootTimeoutMs: BOOT_TIMEOUT_MS };
  const rootfs = await rootfsColdStarts(COLD_RUNS, dir, base);
  const egress = await egressSamples(base);
  const ports = await publishedPortSamples(base);
  const bytes = 16 * 1024 * 1024;
  return [
    row('rootfs image + disk overlay cold start vs initramfs cold start', 'ms', rootfs.jitvm, rootfs.raw),
    row(
      'guest wget, small response: allowlist proxy vs QEMU NAT (exec included)',
      'ms',
      egress.small.jitvm,
      egress.small.raw,
    ),
    row(
      'guest wget 16 MiB: allowlist proxy vs QEMU NAT',
      'MiB/s',
      egress.big.jitvm.map(mibPerSecond(bytes)),
      egress.big.raw?.map(mibPerSecond(bytes)),
    ),
    row('host GET through a published port, small response', 'ms', ports.small.jitvm),
    row(
      'host GET 16 MiB through a published port vs files.read of the same file',
      'MiB/s',
      ports.big.jitvm.map(mibPerSecond(bytes)),
      ports.big.raw?.map(mibPerSecond(bytes)),
    ),
  ];
}

/** The daemon's paths (REST, the SDK's remote mode, the exec WebSocket) against the SDK on a local sandbox. */
async function daemonRows(): Promise<Row[]> {
  const samples = await daemonSamples(EXEC_RUNS, BOOT_TIMEOUT_MS);
  const bytes = DOWNLOAD_MIB * 1024 * 1024;
  return [
    row('exec true through jitvm serve (REST, loopback TCP) vs the SDK', 'ms', samples.rest, samples.sdkExec),
    row('exec true: SDK remote mode (daemon, loopback TCP) vs local', 'ms', samples.remoteExec, samples.sdkExec),
    row('spawn cat, line echo: remote (exec WebSocket) vs local', 'ms', samples.remoteEcho, samples.sdkEcho),
    row(
      `files.read ${DOWNLOAD_MIB} MiB: remote (streamed HTTP) vs local`,
      'MiB/s',
      samples.remoteDownload.map(mibPerSecond(bytes)),
      samples.sdkDownload.map(mibPerSecond(bytes)),
    ),
  ];
}

/** Firecracker's cold start where it can run here; else one line saying why it was skipped. */
async function firecrackerRows(image: { kernel: string; initrd: string }): Promise<Row[]> {
  const hypervisor = new FirecrackerHypervisor();
  const probe = await hypervisor.probe();
  if (!probe.available || !probe.binary) {
    console.log(`firecracker: skipped (${probe.reason})`);
    return [];
  }
  const samples = await firecrackerColdStart(hypervisor, probe.binary, image, COLD_RUNS);
  return [
    row(
      'firecracker cold start (create + exec true + destroy vs raw boot to agent accept)',
      'ms',
      samples.jitvm,
      samples.raw,
      '≤ 1.10×',
    ),
  ];
}

async function main(): Promise<void> {
  const image = await resolveImage();
  const dir = mkdtempSync(join(tmpdir(), 'jitvm-bench-'));
  try {
    const rawInitrd = buildRawInitrd(image.initrd, dir);
    const accelerator = chooseAccelerator('x86_64');
    console.log(`accelerator: ${accelerator.accelerator} (${accelerator.reason})`);
    const cold = await coldStart(image);
    const live = await running();
    const raw = await rawChannel(image.kernel, rawInitrd);
    const bytes = TRANSFER_MIB * 1024 * 1024;
    const rows = [
      cold,
      row('agent ping round trip vs raw channel echo (12 bytes)', 'ms', live.ping, raw.echo, '≤ 2×'),
      row('exec true on a running sandbox', 'ms', live.exec),
      row(
        `file upload ${TRANSFER_MIB} MiB vs raw channel write`,
        'MiB/s',
        live.upload.map(mibPerSecond(bytes)),
        raw.upload.map(mibPerSecond(bytes)),
        '≥ 0.70×',
      ),
      row(
        `file download ${TRANSFER_MIB} MiB vs raw channel read`,
        'MiB/s',
        live.download.map(mibPerSecond(bytes)),
        raw.download.map(mibPerSecond(bytes)),
        '≥ 0.70×',
      ),
      row(
        `file upload ${TRANSFER_MIB} MiB vs raw channel → tmpfs file`,
        'MiB/s',
        live.upload.map(mibPerSecond(bytes)),
        raw.fileUpload.map(mibPerSecond(bytes)),
      ),
      row(
        `file download ${TRANSFER_MIB} MiB vs raw tmpfs file → channel`,
        'MiB/s',
        live.download.map(mibPerSecond(bytes)),
        raw.fileDownload.map(mibPerSecond(bytes)),
      ),
    ];
    rows.push(
      ...(await snapshotRows()),
      ...(await networkStorageRows(dir)),
      ...(await daemonRows()),
      ...(await aarch64Rows()),
      ...(await firecrackerRows(image)),
    );
    printTable(rows);
    console.log(JSON.stringify({ accelerator: accelerator.accelerator, date: new Date().toISOString(), rows }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
