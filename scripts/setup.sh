#!/usr/bin/env bash
# Sets up a fresh Debian machine for jitvm: host packages, npm dependencies, the build, and the guest image.
set -euo pipefail
cd "$(dirname "$0")/.."

# Guests of both architectures are built and tested: the host's own, and the other one under emulation (arm64 guests
# are what macOS users boot). The other architecture's kernel and busybox come from Debian's archive for it.
case "$(dpkg --print-architecture)" in
  amd64) other=arm64 other_triplet=aarch64-linux-gnu ;;
  arm64) other=amd64 other_triplet=x86-64-linux-gnu ;;
  *) echo "jitvm builds guests on amd64 or arm64 hosts, not $(dpkg --print-architecture)" >&2; exit 1 ;;
esac
# qemu-utils: qemu-img, for the qcow2 overlays of restored clones. lz4, xz-utils, zstd: the decompressors behind Firecracker's vmlinux extraction (and its tests' reference encoders).
# e2fsprogs: mkfs.ext4 for rootfs images and overlay disks; qemu-system-common brings virtiofsd for shared directories;
# debootstrap: the Debian rootfs recipe (scripts/debian-rootfs.sh), which the tests build once and cache.
# iproute2, nftables: `ip` and `nft`, which Firecracker's nat mode runs to create a TAP and its NAT rules.
packages=(qemu-system-x86 qemu-system-arm qemu-system-common qemu-utils busybox-static gcc libc6-dev cpio util-linux e2fsprogs debootstrap lz4 xz-utils zstd iproute2 nftables
  "gcc-${other_triplet}" "libc6-dev-${other}-cross")
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
update=0
if ! dpkg --print-foreign-architectures | grep -qx "$other"; then
  echo "letting apt fetch $other packages (dpkg --add-architecture $other) for the $other guest image"
  "${sudo[@]}" dpkg --add-architecture "$other"
  update=1
fi
# Guest kernels come from Debian's archive through apt, so package lists must exist even when nothing is missing.
if [ $update -eq 1 ] || [ ${#missing[@]} -gt 0 ] || ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
  "${sudo[@]}" apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
node dist/src/cli/main.js image build --arch x86_64
node dist/src/cli/main.js image build --arch aarch64
