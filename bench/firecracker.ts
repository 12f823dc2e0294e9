/**
 * Firecracker cold start: jitvm (create + exec true + destroy) against a raw Firecracker boot of the same vmlinux and
 * initramfs, driven with bare API calls, until the agent accepts on vsock. Runs only where the backend is available.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FirecrackerApi } from '../src/backends/firecracker/api-client.js';
import { GUEST_CID, kernelBootArgs } from '../src/backends/firecracker/boot-config.js';
import type { FirecrackerHypervisor } from '../src/backends/firecracker/index.js';
import { connectHybridVsock } from '../src/channel/hybrid-vsock.js';
import { AGENT_VSOCK_PORT } from '../src/channel/protocol.js';
import { parseVmConfig } from '../src/core/config.js';
import { ChannelClosedError } from '../src/core/errors.js';
import { delay } from '../src/core/process.js';
import { vmlinuxFor } from '../src/image/vmlinux.js';
import { alternateColdStarts, coldCycle } from './cold.js';

const MEMORY_MIB = 256;
const BOOT_DEADLINE_MS = 30_000;

/** jitvm's cold start on Firecracker, alternated with raw boots of the same vmlinux and initramfs. */
export async function firecrackerColdStart(
  hypervisor: FirecrackerHypervisor,
  binary: string,
  image: { kernel: string; initrd: string },
  runs: number,
): Promise<{ jitvm: number[]; raw: number[] }> {
  const vmlinux = await vmlinuxFor(image.kernel);
  return alternateColdStarts(
    runs,
    () => coldCycle({ hypervisor, memoryMiB: MEMORY_MIB, bootTimeoutMs: BOOT_DEADLINE_MS }),
    () => rawBoot(binary, vmlinux, image.initrd),
  );
}

/** Milliseconds from spawning Firecracker to the guest agent accepting a hybrid-vsock connection. */
async function rawBoot(binary: string, vmlinux: string, initrd: string): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'jitvm-bench-fc-'));
  const apiSocket = join(dir, 'api.sock');
  const vsockSocket = join(dir, 'vsock.sock');
  let child: ChildProcess | undefined;
  try {
    const started = performance.now();
    const vmm = spawn(binary, ['--api-sock', apiSocket], { stdio: 'ignore' });
    child = vmm;
    const api = new FirecrackerApi(apiSocket);
    await api.waitUntilReady(BOOT_DEADLINE_MS, () => vmm.exitCode === null);
    const config = parseVmConfig({ kernel: vmlinux, initrd, memoryMiB: MEMORY_MIB });
    await api.putBootSource({ kernel_image_path: vmlinux, initrd_path: initrd, boot_args: kernelBootArgs(config) });
    await api.putMachineConfig({ vcpu_count: 1, mem_size_mib: MEMORY_MIB, smt: false });
    await api.putVsock({ guest_cid: GUEST_CID, uds_path: vsockSocket });
    await api.action('InstanceStart');
    const deadline = Date.now() + BOOT_DEADLINE_MS;
    for (;;) {
      try {
        (await connectHybridVsock(vsockSocket, AGENT_VSOCK_PORT)).destroy();
        return performance.now() - started;
      } catch (error) {
        if (!(error instanceof ChannelClosedError) || Date.now() > deadline) throw error;
        await delay(1);
      }
    }
  } finally {
    if (child && child.exitCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
