#!/usr/bin/env bash
# Test assets made from Debian's packages (cached under target/test-assets):
# a minimal Debian rootfs tarball (mmdebstrap) for the Debian base image, and
# the `hello` package as a local .deb so RUN can install it without network.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-packages.sh mmdebstrap
dir=target/test-assets
mkdir -p "$dir"
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
if [ ! -s "$dir/debian-rootfs.tar" ]; then
  echo "== mmdebstrap --variant=minbase $suite"
  mmdebstrap --variant=minbase --quiet "$suite" "$dir/debian-rootfs.partial.tar"
  mv "$dir/debian-rootfs.partial.tar" "$dir/debian-rootfs.tar"
fi
if ! ls "$dir"/hello_*.deb >/dev/null 2>&1; then
  (cd "$dir" && apt-get download hello >/dev/null 2>&1)
fi
# An arm64 busybox (Debian's busybox-static:arm64) for the emulated RUN tests.
if [ ! -x "$dir/busybox-arm64" ]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    apt-get update -qq
  fi
  tmp=$(mktemp -d) && chmod 755 "$tmp"
  (cd "$tmp" && apt-get download busybox-static:arm64 >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get download busybox-static:arm64 >/dev/null 2>&1; })
  dpkg-deb -x "$tmp"/busybox-static_*_arm64.deb "$tmp/root"
  cp "$tmp/root/bin/busybox" "$dir/busybox-arm64.partial"
  mv "$dir/busybox-arm64.partial" "$dir/busybox-arm64"
  rm -rf "$tmp"
fi
