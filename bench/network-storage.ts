/**
 * Networking and storage figures: booting into a rootfs image against the initramfs, the allowlist proxy against
 * QEMU's NAT for the same guest download from a host loopback server, and a published port's latency and throughput
 * against reading the same file over the agent's file channel.
 */
import { randomBytes } from 'node:crypto';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fromDirectory } from '../src/image/rootfs/index.js';
import { Sandbox } from '../src/sandbox/sandbox.js';
import type { SandboxOptions } from '../src/sandbox/options.js';
import { busyboxTree } from '../test/helpers/busybox-tree.js';
import { alternateColdStarts, coldCycle } from './cold.js';
import { timeEach } from './stats.js';

const BIG_MIB = 16;
const SMALL_RUNS = 30;
const BIG_RUNS = 3;

/** Samples of one network or storage measurement: jitvm's, and the baseline's when there is one. */
export interface Samples {
  readonly jitvm: number[];
  readonly raw?: number[];
}

/** Cold start (create + exec true + destroy) into a rootfs image with a disk overlay, alternating with the initramfs. */
export async function rootfsColdStarts(runs: number, dir: string, base: SandboxOptions): Promise<Samples> {
  const image = await fromDirectory(busyboxTree(join(dir, 'tree'), 'bench'), { output: join(dir, 'bench.ext4') });
  const rootfs = { image: image.path, overlay: { type: 'disk', sizeMiB: 256 } } as const;
  const timedInitramfs = async (): Promise<number> => (await timeEach(1, () => coldCycle(base)))[0] as number;
  const samples = await alternateColdStarts(runs, () => coldCycle({ ...base, rootfs }), timedInitramfs);
  return { jitvm: samples.jitvm, raw: samples.raw };
}

async function origin(big: Buffer): Promise<{ server: Server; port: number }> {
  const server = createServer((request, response) => response.end(request.url === '/big' ? big : 'ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

async function guestFetches(options: SandboxOptions, url: (path: string) => string) {
  const sandbox = await Sandbox.create(options);
  try {
    const get = (path: string, to: string) => async () => {
      const result = await sandbox.exec(['wget', '-q', '-O', to, url(path)]);
      if (result.exitCode !== 0) throw new Error(`wget ${url(path)} failed: ${result.stderr}`);
    };
    await timeEach(3, get('/small', '-'));
    return {
      small: await timeEach(SMALL_RUNS, get('/small', '-')),
      big: await timeEach(BIG_RUNS, get('/big', '/dev/null')),
    };
  } finally {
    await sandbox.destroy();
  }
}

/** A guest download (exec of wget) of a small and a 16 MiB response: through the allowlist proxy, and through NAT. */
export async function egressSamples(base: SandboxOptions): Promise<{ small: Samples; big: Samples }> {
  const { server, port } = await origin(randomBytes(BIG_MIB * 1024 * 1024));
  try {
    const proxied = await guestFetches(
      { ...base, network: { mode: 'allowlist', allow: ['origin.test'], hosts: { 'origin.test': '127.0.0.1' } } },
      (path) => `http://origin.test:${port}${path}`,
    );
    const nat = await guestFetches({ ...base, network: { mode: 'nat' } }, (path) => `http://10.0.2.2:${port}${path}`);
    return { small: { jitvm: proxied.small, raw: nat.small }, big: { jitvm: proxied.big, raw: nat.big } };
  } finally {
    server.close();
  }
}

/** The guest server starts in the background: retry its first answer, bounded. */
async function retryUntilServing(request: () => Promise<void>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await request();
    } catch (error) {
      if (attempt >= 100) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** GETs from a guest HTTP server through a published port; the baseline reads the same file with `files.read`. */
export async function publishedPortSamples(base: SandboxOptions): Promise<{ small: Samples; big: Samples }> {
  const sandbox = await Sandbox.create({ ...base, ports: [{ guest: 8080 }] });
  const bigBytes = BIG_MIB * 1024 * 1024;
  const files = `mkdir -p /tmp/www && echo ok > /tmp/www/small && head -c ${bigBytes} /dev/urandom > /tmp/www/big`;
  const made = await sandbox.exec(['sh', '-c', files]);
  if (made.exitCode !== 0) throw new Error(`could not make the files to serve: ${made.stderr}`);
  const server = sandbox.spawn(['httpd', '-f', '-p', '127.0.0.1:8080', '-h', '/tmp/www']);
  try {
    const get = (path: string) => async () => {
      const response = await fetch(`http://${sandbox.getHost(8080)}${path}`);
      if (!response.ok) throw new Error(`GET ${path}: ${response.status}`);
      await response.arrayBuffer();
    };
    await retryUntilServing(get('/small'));
    return {
      small: { jitvm: await timeEach(SMALL_RUNS, get('/small')) },
      big: {
        jitvm: await timeEach(BIG_RUNS, get('/big')),
        raw: await timeEach(BIG_RUNS, () => sandbox.files.read('/tmp/www/big')),
      },
    };
  } finally {
    server.kill();
    await sandbox.destroy();
  }
}
