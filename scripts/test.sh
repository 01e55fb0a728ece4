#!/usr/bin/env bash
# The full test suite: installs what the tests need, then formatting, lints
# and every test (unit, integration, BuildKit conformance).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-packages.sh busybox-static
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --all-targets --locked
