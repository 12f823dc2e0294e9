/**
 * QEMU with WHPX on Windows: named pipes for QMP and the agent, `-M pc` with virtio over PCI. Needs QEMU for
 * Windows, Windows Hypervisor Platform enabled, and a guest image built on Linux (JITVM_TEST_KERNEL/INITRD).
 */
import { qemuRealHostSuite } from '../helpers/qemu-real-host.js';

qemuRealHostSuite({ platform: 'win32', platformName: 'Windows', accelerator: 'whpx' });
