#!/usr/bin/env bash
# Build the demo end to end and show the result:
#  1. the busybox base image, made from Debian's busybox-static;
#  2. demo/hello on top of it (two independent stages and a final one);
#  3. what the image holds (its config and files), then the image run with
#     `rbuild run`: it prints what its command prints;
#  4. a registry: Debian's docker-registry started on 127.0.0.1 (its own
#     config and data under the temporary directory), the base pushed to it,
#     the classic tutorial's image (demo/baseos) built FROM it as
#     example.com/baseos:1.0, then tagged, pushed and read back by skopeo.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-packages.sh busybox-static skopeo slirp4netns docker-registry
cargo build --release --locked --quiet
RBUILD=$PWD/target/release/rbuild
export RBUILD_ROOT=${RBUILD_ROOT:-$PWD/target/example-store}
work=$(mktemp -d)
registry_pid=
cleanup() {
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

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
echo "-- rbuild run --rm rbuild.local/hello:latest"
"$RBUILD" run --rm rbuild.local/hello:latest

echo "== 4. a registry on 127.0.0.1, and the classic example.com/baseos:1.0"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry-data
http:
  addr: $reg
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
echo "-- docker-registry on $reg; the base pushed to it:"
"$RBUILD" tag rbuild.local/busybox:latest "$reg/library/busybox:latest"
"$RBUILD" push "$reg/library/busybox:latest"
echo "-- rbuild -t example.com/baseos:1.0 demo/baseos (FROM $reg/library/busybox:latest):"
"$RBUILD" build --progress plain --pull --build-arg "REGISTRY=$reg" -t example.com/baseos:1.0 demo/baseos
echo "-- tagged and pushed as $reg/example.com/baseos:1.0:"
"$RBUILD" tag example.com/baseos:1.0 "$reg/example.com/baseos:1.0"
"$RBUILD" push "$reg/example.com/baseos:1.0"
skopeo inspect --tls-verify=false "docker://$reg/example.com/baseos:1.0" | python3 -c '
import json, sys
i = json.load(sys.stdin)
print("name:", i["Name"], " digest:", i["Digest"])
print("labels:", i["Labels"])
print("layers:", len(i["Layers"]), " os/arch:", i["Os"] + "/" + i["Architecture"])
'
