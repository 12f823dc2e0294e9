import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { findOnPath } from '../../src/core/host-tools.js';
import { cacheRoot } from '../../src/image/cache.js';
import { fromDirectory } from '../../src/image/rootfs/index.js';

const SCRIPT = fileURLToPath(new URL('../../../scripts/debian-rootfs.sh', import.meta.url));

/** Where the tests keep the Debian rootfs image between runs (built once per machine, ~1 min). */
export function debianRootfsPath(): string {
  return process.env.JITVM_TEST_DEBIAN_ROOTFS ?? join(cacheRoot(), 'rootfs', 'test-debian-bookworm-python3.ext4');
}

/**
 * The Debian bookworm + python3 rootfs image of docs/rootfs.md's recipe, built with scripts/debian-rootfs.sh the
 * first time (packages come from the Debian mirror) and cached; or why it cannot be built on this host.
 */
export async function debianRootfs(): Promise<{ image: string } | { skip: string }> {
  const image = debianRootfsPath();
  if (existsSync(image)) return { image };
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return { skip: 'building it needs root on Linux' };
  if (!findOnPath('debootstrap')) return { skip: 'debootstrap is not installed (apt-get install debootstrap)' };
  const work = mkdtempSync(join(dirname(cacheRoot()), 'jitvm-debian-'));
  try {
    await promisify(execFile)('bash', [SCRIPT, join(work, 'tree')], { maxBuffer: 64 * 1024 * 1024 });
    await fromDirectory(join(work, 'tree'), { output: image });
    return { image };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
