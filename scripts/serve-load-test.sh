#!/usr/bin/env bash
# Load test of `rbuild serve`: N concurrent clients (default 8) build the
# same project, then N different projects sharing a first step, through one
# server on a unix socket; checks and figures:
#   - every build succeeds; the shared steps run once (counted by the
#     RUN output markers the clients receive);
#   - N concurrent builds of one project against one build: wall time ratio
#     (target <= 1.3);
#   - a client killed mid-build leaves the server healthy (a later build
#     succeeds, nothing left running);
#   - the store is intact (every blob under blobs/sha256 and the context
#     cache re-hashed to its name);
#   - the server's peak RSS (VmHWM) stays under MAX_RSS_MB;
#   - a warm no-op build through the server against a local one (target <= 2).
# Env: RBUILD (binary; default target/debug/rbuild), N, SLEEP (seconds of
# the slow step, default 3), REPS (no-op repetitions, default 5),
# MAX_RSS_MB (default 256), KEEP=1 keeps the scratch directory,
# STRICT=1 fails when a benchmark target is missed (CI leaves it off: the
# machine is shared).
set -euo pipefail

RBUILD=${RBUILD:-$(cd "$(dirname "$0")/.." && pwd)/target/debug/rbuild}
N=${N:-8}
SLEEP=${SLEEP:-3}
REPS=${REPS:-5}
MAX_RSS_MB=${MAX_RSS_MB:-256}
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/rbuild-serve-load.XXXXXX)
export RBUILD_OFFLINE=1
unset RBUILD_SERVER_TOKEN
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  [ "${KEEP:-}" = 1 ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

ROOT=$WORK/server-store
SOCK=$WORK/s.sock
ADDR=unix://$SOCK
[ -x /bin/busybox ] || fail "/bin/busybox missing (apt-get install busybox-static)"

# The busybox base in the server's store.
mkdir -p "$WORK/bb"
cp -a "$REPO/demo/busybox-base/." "$WORK/bb/"
cp /bin/busybox "$WORK/bb/busybox"
RBUILD_ROOT=$ROOT "$RBUILD" build -q -t bb "$WORK/bb" >/dev/null

RBUILD_ROOT=$ROOT "$RBUILD" serve --listen "$ADDR" --max-builds "$N" \
  2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || fail "server did not start: $(cat "$WORK/server.log")"

# project NAME TAG ID: a slow first step (its text TAG), then COPY and a
# step of its own (ID).
project() {
  mkdir -p "$WORK/$1"
  printf 'FROM bb\nRUN sleep %s && echo %s-$((1+1)) > /shared && echo %s-$((1+1))\nCOPY id /id\nRUN echo OWN-$((1+1))-$(cat /id)\n' \
    "$SLEEP" "$2" "$2" >"$WORK/$1/Dockerfile"
  echo "$3" >"$WORK/$1/id"
}
client() { # LOG CTX [flags]
  local log=$1 ctx=$2; shift 2
  RBUILD_ROOT=$WORK/client-store "$RBUILD" build --progress plain --server "$ADDR" "$@" "$ctx" \
    >"$log.out" 2>"$log"
}
runs() { cat "$WORK"/logs/"$1"-* 2>/dev/null | grep -c "$2" || true; }
mkdir -p "$WORK/logs"

# One build, cold.
project one ONE one
t0=$(now); client "$WORK/logs/one-0" "$WORK/one" || fail "single build: $(cat "$WORK/logs/one-0")"
T1=$(secs "$t0" "$(now)")

# N concurrent builds of the same project, cold.
project same SAME same
t0=$(now)
pids=()
for i in $(seq "$N"); do client "$WORK/logs/same-$i" "$WORK/same" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || fail "a build of the same project failed"; done
TN=$(secs "$t0" "$(now)")
[ "$(runs same 'SAME-2')" = 1 ] || fail "shared step ran $(runs same 'SAME-2') times, not once"
[ "$(runs same 'OWN-2-same')" = 1 ] || fail "the project's own step ran $(runs same 'OWN-2-same') times"

# N different projects sharing their first step.
pids=()
for i in $(seq "$N"); do
  project "diff$i" DIFF "p$i"
  client "$WORK/logs/diff-$i" "$WORK/diff$i" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a build of a different project failed"; done
[ "$(runs diff 'DIFF-2')" = 1 ] || fail "shared step of different projects ran $(runs diff 'DIFF-2') times"
for i in $(seq "$N"); do
  [ "$(runs diff "OWN-2-p$i")" = 1 ] || fail "project $i's own step did not run once"
done

# A client killed mid-build.
mkdir -p "$WORK/killed"
printf 'FROM bb\nRUN sleep 57\n' >"$WORK/killed/Dockerfile"
RBUILD_ROOT=$WORK/client-store "$RBUILD" build --progress plain --server "$ADDR" "$WORK/killed" \
  >/dev/null 2>&1 &
victim=$!
sleep 2
kill -9 "$victim"; wait "$victim" 2>/dev/null || true
for _ in $(seq 100); do
  ! pgrep -f -x 'sleep 57' >/dev/null && break
  sleep 0.1
done
pgrep -f -x 'sleep 57' >/dev/null && fail "the killed client's RUN step still runs"
project after AFTER after
client "$WORK/logs/after" "$WORK/after" || fail "a build after the kill failed"

# Warm no-op: local against through the server (same project, both warm).
project noop NOOP noop
RBUILD_ROOT=$WORK/local-store "$RBUILD" build -q -t bb "$WORK/bb" >/dev/null
RBUILD_ROOT=$WORK/local-store "$RBUILD" build -q "$WORK/noop" >/dev/null
client "$WORK/logs/noop-warm" "$WORK/noop" || fail "no-op warm-up"
t0=$(now)
for _ in $(seq "$REPS"); do RBUILD_ROOT=$WORK/local-store "$RBUILD" build -q "$WORK/noop" >/dev/null; done
LOCAL=$(secs "$t0" "$(now)")
t0=$(now)
for i in $(seq "$REPS"); do client "$WORK/logs/noop-$i" "$WORK/noop" -q || fail "no-op build"; done
SERVED=$(secs "$t0" "$(now)")

# The store is intact: every blob hashes to its name.
checked=0
for dir in "$ROOT/blobs/sha256" "$ROOT/serve/sha256"; do
  for f in "$dir"/*; do
    [ -f "$f" ] || continue
    [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || fail "corrupt blob $f"
    checked=$((checked + 1))
  done
done

HWM_KB=$(awk '/^VmHWM/ { print $2 }' "/proc/$SERVER_PID/status")
[ "$HWM_KB" -le $((MAX_RSS_MB * 1024)) ] || fail "server peak RSS ${HWM_KB} kB > ${MAX_RSS_MB} MB"
kill -0 "$SERVER_PID" || fail "server died"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "serve load test: N=$N SLEEP=$SLEEP"
echo "  one build: ${T1}s; $N concurrent builds of one project: ${TN}s (ratio $(ratio "$TN" "$T1"), target <= 1.3)"
echo "  warm no-op x$REPS: local ${LOCAL}s, through the server ${SERVED}s (ratio $(ratio "$SERVED" "$LOCAL"), target <= 2)"
echo "  shared steps ran once; killed client: server healthy; $checked blobs re-hashed; server VmHWM ${HWM_KB} kB"
if [ "${STRICT:-}" = 1 ]; then
  awk -v a="$TN" -v b="$T1" 'BEGIN { exit !(a <= 1.3 * b) }' || fail "concurrent ratio above 1.3"
  awk -v a="$SERVED" -v b="$LOCAL" 'BEGIN { exit !(a <= 2 * b) }' || fail "no-op ratio above 2"
fi
echo "PASS"
