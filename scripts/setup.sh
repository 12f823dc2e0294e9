#!/usr/bin/env bash
# Sets up a fresh Debian machine for jitvm: host packages, npm dependencies, the build, and the guest image.
set -euo pipefail
cd "$(dirname "$0")/.."

# lz4, xz-utils, zstd: the decompressors behind Firecracker's vmlinux extraction (and its tests' reference encoders).
packages=(qemu-system-x86 busybox-static gcc libc6-dev cpio util-linux lz4 xz-utils zstd)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
# The guest kernel comes from Debian's archive through apt, so package lists must exist even when nothing is missing.
if [ ${#missing[@]} -gt 0 ] || ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
  "${sudo[@]}" apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
node dist/src/cli/main.js image build
