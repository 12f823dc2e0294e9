/**
 * QEMU with Hypervisor.framework on macOS: `-M virt -cpu host` on Apple silicon (q35 on Intel), Unix sockets. Needs
 * `brew install qemu` and a guest image for this Mac's architecture built on Linux (JITVM_TEST_KERNEL/INITRD).
 */
import { qemuRealHostSuite } from '../helpers/qemu-real-host.js';

qemuRealHostSuite({ platform: 'darwin', platformName: 'macOS', accelerator: 'hvf' });
