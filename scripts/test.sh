#!/usr/bin/env bash
# The full test suite: installs the tools the tests use (busybox-static for
# base images, skopeo and umoci to validate OCI output, docker.io for a real
# engine that loads and runs our docker archives, mmdebstrap for a Debian
# base), then formatting, lints and every test (unit, integration, BuildKit
# conformance, crash safety, the RUN sandbox).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-packages.sh busybox-static skopeo umoci docker.io procps util-linux slirp4netns iproute2 python3 docker-registry apache2-utils openssl git chromium qemu-user-static
./scripts/test-assets.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --all-targets --locked
