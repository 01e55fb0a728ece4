#!/usr/bin/env bash
# Build the demo end to end and show the result.
# Today (frontend milestone): prepares the busybox base context from Debian's
# busybox-static, then validates both Dockerfiles with `rbuild check` and
# prints the build plan rbuild derives from them. It becomes "build the base
# image, build demo/hello on it, run it" as the engine and RUN land.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-packages.sh busybox-static
cargo build --release --locked --quiet
RBUILD=target/release/rbuild
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -a demo/busybox-base "$work/base"
cp /bin/busybox "$work/base/busybox"
echo "== rbuild check (busybox base)"
$RBUILD check "$work/base"
echo "== rbuild check (hello demo)"
$RBUILD check --build-arg WHO=rbuild demo/hello
echo "== what the hello image will hold (from rbuild parse --json)"
$RBUILD parse --json -f demo/hello/Dockerfile | python3 -c "$(cat <<'PY'
import json, sys
doc = json.load(sys.stdin)["dockerfile"]
for st in doc["stages"]:
    name = st.get("name") or "(final)"
    print("stage %d %s: FROM %s" % (st["index"], name, st["base"]))
    for ins in st["instructions"]:
        print("    line %2d: %s" % (ins["span"]["start"]["line"], ins["original"]))
PY
)"
