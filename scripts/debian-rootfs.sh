#!/usr/bin/env bash
# Builds a minimal Debian root filesystem tree with python3 in OUT_DIR, for `jitvm image build --from-dir OUT_DIR`.
# Needs root (debootstrap chroots into the tree to configure its packages) and debootstrap; downloads about 40 MB
# of packages from the Debian mirror. Builds for this host's architecture.
#
#   sudo scripts/debian-rootfs.sh /var/tmp/debian-rootfs
#   sudo jitvm image build --from-dir /var/tmp/debian-rootfs --output debian.ext4
#
# Environment: DEBIAN_SUITE (default bookworm), DEBIAN_MIRROR (default http://deb.debian.org/debian),
# DEBIAN_PACKAGES (extra packages, comma-separated, added to python3).
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
out=$1
suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=python3${DEBIAN_PACKAGES:+,$DEBIAN_PACKAGES}

if [ "$(id -u)" -ne 0 ]; then
  echo "$0: debootstrap needs root: run it with sudo" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null; then
  echo "$0: debootstrap is not installed: apt-get install debootstrap" >&2
  exit 1
fi
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
  echo "$0: $out is not empty: give a new or empty directory" >&2
  exit 1
fi

debootstrap --variant=minbase --include="$packages" "$suite" "$out" "$mirror"

# The image is mounted read-only under an overlay: downloaded .debs and package lists are dead weight in it
# (`apt-get update` in the guest fetches fresh lists into the overlay).
rm -rf "$out"/var/cache/apt/archives/*.deb "$out"/var/lib/apt/lists/*
# debootstrap leaves the build host's name and resolver in the tree; the guest gets its own.
echo jitvm >"$out/etc/hostname"
rm -f "$out/etc/resolv.conf"

echo "Debian $suite with python3 in $out ($(du -sh "$out" | cut -f1)); next: jitvm image build --from-dir $out"
