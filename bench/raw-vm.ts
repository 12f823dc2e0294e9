/**
 * The raw baselines: the same QEMU command line jitvm uses, driven with bare sockets and no jitvm code in the path.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { buildQemuArgs, qemuBinary, runtimePaths } from '../src/backends/qemu/args.js';
import { encodeFrame } from '../src/channel/codec.js';
import { MsgType } from '../src/channel/protocol.js';
import { PayloadWriter } from '../src/channel/wire.js';
import { chooseAccelerator } from '../src/core/accelerator.js';
import { type Arch, parseVmConfig } from '../src/core/config.js';
import { qemuHasSeccomp } from '../src/backends/qemu/features.js';
import { ramDirFor, ramFileIn } from '../src/backends/qemu/guest-ram.js';
import { findOnPath } from '../src/core/host-tools.js';

export interface RawVm {
  readonly socket: Socket;
  readonly launchedAt: number;
  stop(): Promise<void>;
}

const CONNECT_DEADLINE_MS = 30_000;

async function connectWhenReady(path: string, child: ChildProcess): Promise<Socket> {
  const deadline = Date.now() + CONNECT_DEADLINE_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error('raw QEMU exited before its socket appeared');
    if (Date.now() > deadline) throw new Error(`raw QEMU's socket did not appear in ${CONNECT_DEADLINE_MS} ms`);
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const socket = connect(path);
        socket.once('connect', () => resolve(socket));
        socket.once('error', reject);
      });
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }
}

/** Launches QEMU exactly as jitvm would for this kernel/initrd and connects to the agent port's socket. */
export async function launchRawVm(
  kernel: string,
  initrd: string,
  arch: Arch = 'x86_64',
  kernelArgs: string[] = [],
): Promise<RawVm> {
  const config = parseVmConfig({ kernel, initrd, kernelArgs, arch });
  const accelerator = chooseAccelerator(config.arch).accelerator;
  const binary = findOnPath(qemuBinary(config.arch)) as string;
  const dir = mkdtempSync(join(tmpdir(), 'jitvm-raw-'));
  const paths = runtimePaths(dir);
  // Guest RAM in a file as jitvm keeps it (where /dev/shm has room), so both boot the same command line.
  const ramDir = ramDirFor(basename(dir), config.memoryMiB);
  if (ramDir) mkdirSync(ramDir, { mode: 0o700 });
  const ram = ramDir ? { path: ramFileIn(ramDir), shared: true } : undefined;
  const seccomp = await qemuHasSeccomp(binary);
  const args = buildQemuArgs({ config, accelerator, paths, seccomp, name: 'jitvm-raw', ram });
  const launchedAt = performance.now();
  const child = spawn(binary, args, { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const stop = async (): Promise<void> => {
    child.kill('SIGKILL');
    await exited;
    rmSync(dir, { recursive: true, force: true });
    if (ramDir) rmSync(ramDir, { recursive: true, force: true });
  };
  try {
    const socket = await connectWhenReady(paths.agentSocket, child);
    return {
      socket,
      launchedAt,
      stop: async () => {
        socket.destroy();
        await stop();
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Reads exactly `size` bytes from the socket. */
export function readExactly(socket: Socket, size: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let received = 0;
    const onClose = (): void => reject(new Error('raw channel closed'));
    const onData = (data: Buffer): void => {
      received += data.length;
      if (received >= size) {
        socket.removeListener('data', onData);
        socket.removeListener('close', onClose);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

/** Raw cold start: QEMU launch until the first byte the guest agent sends (its answer to HELLO). */
export async function rawBootToFirstByte(kernel: string, initrd: string, arch: Arch = 'x86_64'): Promise<number> {
  const vm = await launchRawVm(kernel, initrd, arch);
  vm.socket.write(encodeFrame(MsgType.HELLO, 0, new PayloadWriter().u32(1).u32(1).finish()));
  await readExactly(vm.socket, 1);
  const elapsed = performance.now() - vm.launchedAt;
  await vm.stop();
  return elapsed;
}

/** A command to bench/raw-echo.c (see its header for the letters): one letter and a u64 length. */
export function rawCommand(letter: 'E' | 'U' | 'D' | 'F' | 'R', length: number): Buffer {
  const header = Buffer.alloc(9);
  header.write(letter, 0, 'ascii');
  header.writeBigUInt64LE(BigInt(length), 1);
  return header;
}
