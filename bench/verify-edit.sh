#!/usr/bin/env bash
# The app edit with verify: the example worker's minimal image rebuilt after a one-line
# app change, for each frontend image given, alternating, RUNS times each. Prints the
# wall time of each rebuild and how many verify containers it started (exec vertices
# whose name starts with `verify`). Needs the engine and the base image (scripts/engine.sh up).
# Usage: bench/verify-edit.sh [--runs N] FRONTEND_IMAGE...
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3
if [ "${1:-}" = --runs ]; then runs=$2; shift 2; fi
[ $# -gt 0 ] || { echo "usage: $0 [--runs N] FRONTEND_IMAGE..." >&2; exit 2; }
DOCKER=/usr/bin/docker
work=$(mktemp -d /tmp/kiln-verify-edit.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r examples/worker "$work/ctx"
args=(--build-arg PYTHON_IMAGE=kiln-local/python:3.11 --build-arg PYTHON_VERSION=3.11
  --secret id=pipca,src=/etc/ssl/certs/ca-certificates.crt)

build() { # frontend logfile
  { echo "# syntax=$1"; tail -n +2 specs/worker.yaml; } >"$work/spec.yaml"
  local start=$(date +%s%N)
  DOCKER_BUILDKIT=1 "$DOCKER" build --progress=plain -f "$work/spec.yaml" --target minimal \
    -t kiln-bench/verify-edit "${args[@]}" "$work/ctx" >"$2" 2>&1
  echo $((($(date +%s%N) - start) / 1000000))
}

# Verify vertices that ran (not CACHED): one line `#N [...] verify ...` each.
verify_runs() {
  local ids id n=0
  ids=$(sed -n 's/^#\([0-9]*\) .*verify .*/\1/p' "$1" | sort -u)
  for id in $ids; do grep -qx "#$id CACHED" "$1" || n=$((n + 1)); done
  echo $n
}

for f in "$@"; do build "$f" "$work/warm.log" >/dev/null; done
for i in $(seq 1 "$runs"); do
  for f in "$@"; do
    echo "# edit $i for $f $(date +%s%N)" >>"$work/ctx/app/api.py"
    ms=$(build "$f" "$work/run.log")
    echo "$f run $i: ${ms} ms, verify containers started: $(verify_runs "$work/run.log")"
  done
done
