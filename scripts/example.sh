#!/usr/bin/env bash
# Build the demo end to end and show the result:
#  1. the busybox base image, made from Debian's busybox-static;
#  2. demo/hello on top of it (two independent stages and a final one);
#  3. what the image holds: its config and files, and its output when run by
#     a real engine if Docker is installed (it becomes `rbuild run` later).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-packages.sh busybox-static skopeo slirp4netns
cargo build --release --locked --quiet
RBUILD=$PWD/target/release/rbuild
export RBUILD_ROOT=${RBUILD_ROOT:-$PWD/target/example-store}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== 1. base image rbuild.local/busybox:latest"
cp -a demo/busybox-base "$work/base"
cp /bin/busybox "$work/base/busybox"
"$RBUILD" build --progress plain -t rbuild.local/busybox:latest "$work/base"

echo "== 2. demo/hello"
"$RBUILD" build --progress plain --build-arg WHO=rbuild -t rbuild.local/hello:latest \
  -o "type=oci-dir,dest=$work/hello-oci,name=rbuild.local/hello:latest" \
  -o "type=local,dest=$work/hello-rootfs" demo/hello

echo "== 3. what the image holds"
skopeo inspect --config "oci:$work/hello-oci:latest" | python3 -c '
import json, sys
c = json.load(sys.stdin)
cfg = c["config"]
print("entrypoint:", cfg.get("Entrypoint"), " cmd:", cfg.get("Cmd"), " workdir:", cfg.get("WorkingDir"))
print("labels:", cfg.get("Labels"))
print("layers:", len(c["rootfs"]["diff_ids"]))
for h in c["history"]:
    print("   ", "     " if h.get("empty_layer") else "layer", h["created_by"])
'
echo "-- /srv:"
ls -ln "$work/hello-rootfs/srv"
echo "-- running the image's command on its files:"
(cd "$work/hello-rootfs" && cat srv/greeting srv/info)
