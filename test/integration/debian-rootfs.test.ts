/**
 * A real environment: the Debian bookworm + python3 rootfs from docs/rootfs.md's debootstrap recipe, booted with a
 * disk overlay, running python3, and reaching a listed name through the allowlist proxy with urllib.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { debianRootfs } from '../helpers/debian-rootfs.js';
import { startOrigin } from '../helpers/origin.js';
import { withSandbox } from '../helpers/sandbox.js';

it('runs python3 in a Debian rootfs, whose urllib goes out through the allowlist proxy', async (t) => {
  const rootfs = await debianRootfs();
  if ('skip' in rootfs) {
    console.log(`Debian rootfs test skipped: ${rootfs.skip}`);
    t.skip(rootfs.skip);
    return;
  }
  const origin = await startOrigin(t, 'python');
  await withSandbox(
    async (sandbox) => {
      const release = await sandbox.files.read('/etc/debian_version');
      assert.match(release.toString(), /^12\./);
      const fetch = `import urllib.request; print(urllib.request.urlopen('http://allowed.test:${origin.port}/py').read().decode())`;
      const out = await sandbox.exec(['python3', '-c', `import sys; print(sys.version_info[:2]); ${fetch}`]);
      assert.equal(out.stdout, '(3, 11)\npython /py\n', out.stderr);
    },
    {
      memoryMiB: 512,
      rootfs: { image: rootfs.image, overlay: { type: 'disk', sizeMiB: 256 } },
      network: { mode: 'allowlist', allow: ['allowed.test'], hosts: { 'allowed.test': '127.0.0.1' } },
    },
  );
});
