/** What building a guest image needs to know about each guest architecture, and how to get it on a Debian host. */

import { type Arch, hostArch } from '../core/config.js';

/** The per-architecture facts of the image build. */
export interface GuestArchFacts {
  /** Debian's name for the architecture, used in package names (`linux-image-cloud-arm64`) and `pkg:arch`. */
  readonly debianArch: 'amd64' | 'arm64';
  /** `e_machine` of the architecture's ELF executables. */
  readonly elfMachine: number;
  /** The GNU triplet of Debian's cross toolchain for it (`aarch64-linux-gnu-gcc`). */
  readonly gnuTriplet: string;
  /** The Debian packages of that cross toolchain, including the static libc the agent links against. */
  readonly crossPackages: string;
}

const FACTS: Record<Arch, GuestArchFacts> = {
  x86_64: {
    debianArch: 'amd64',
    elfMachine: 62,
    gnuTriplet: 'x86_64-linux-gnu',
    crossPackages: 'gcc-x86-64-linux-gnu libc6-dev-amd64-cross',
  },
  aarch64: {
    debianArch: 'arm64',
    elfMachine: 183,
    gnuTriplet: 'aarch64-linux-gnu',
    crossPackages: 'gcc-aarch64-linux-gnu libc6-dev-arm64-cross',
  },
};

/** The facts for building `arch` guests. */
export function guestArchFacts(arch: Arch): GuestArchFacts {
  return FACTS[arch];
}

/** Whether `arch` is this host's own architecture (native compiler and the host's own busybox suffice). */
export function isHostArch(arch: Arch): boolean {
  return arch === hostArch();
}

/** `pkg:arch` — the Debian package of another architecture (apt needs `dpkg --add-architecture` for it first). */
export function qualifiedPackage(name: string, arch: Arch): string {
  return `${name}:${guestArchFacts(arch).debianArch}`;
}

/** What to run when apt does not know packages of `arch`. */
export function foreignArchRemedy(arch: Arch): string {
  const debianArch = guestArchFacts(arch).debianArch;
  return `Let apt fetch ${debianArch} packages: \`sudo dpkg --add-architecture ${debianArch} && sudo apt-get update\`.`;
}
