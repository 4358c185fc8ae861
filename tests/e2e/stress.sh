#!/usr/bin/env bash
# Load: ten builds of the example worker with verify, four at a time, two of them
# --no-cache, on each engine; all must succeed and the engine must stay up (same container
# start, no `panic:` in its log). Docker 28 builds through its own buildx; Docker 20.10
# (docker20-dind: the host's 20.10 in a container of its own, never the host's dockerd,
# which a panic would take down with every other suite) through its classic
# `DOCKER_BUILDKIT=1 docker build`. Its BuildKit 0.8 panicked under this load ("failed to
# get edge"), and Docker 28.5 once failed a cached build beside a --no-cache one ("failed
# to get state for index 0"), until kiln's --no-cache builds got ops of their own
# (docs/security.md, "Engine faults"). The 20.10 part takes about 3 minutes (first
# `up` on a fresh machine: about 1.5 minutes more).
# Environment: KILN_E2E_STRESS_ENGINES (default "docker28 docker20-dind"), KILN_E2E_STRESS_TAG
# (the frontend image tag, default e2e-stress).
# Ends with "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

ENGINES=${KILN_E2E_STRESS_ENGINES:-docker28 docker20-dind}
TAG=${KILN_E2E_STRESS_TAG:-e2e-stress}
BASE=kiln-local/python:3.11
CA=/etc/ssl/certs/ca-certificates.crt
engine_up || exit 1

for name in $ENGINES; do
  echo "== $name: ten builds with verify, four at a time, two --no-cache"
  engine_frontend "$name" "$TAG" || continue
  frontend=$ENGINE_FRONTEND
  container="kiln-engine-$name"
  # A dockerd that dies ends its container; --restart brings it back within seconds, so
  # "not restarted" is: running, with the same start and restart count.
  started=$("$DOCKER" inspect -f '{{.State.Status}} {{.RestartCount}} {{.State.StartedAt}}' "$container")
  since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  ctx="$E2E_WORK/$name-ctx"
  cp -r examples/worker "$ctx"
  { echo "# syntax=$frontend"; tail -n +2 specs/worker.yaml; } >"$ctx/kiln.yaml"
  failed="$E2E_WORK/$name-failed"
  : >"$failed"
  start=$(date +%s)
  (
    eval "$(scripts/engine.sh env "$name")" || exit 1
    build=(docker buildx build)
    case $name in docker20*) build=(docker build) ;; esac
    for i in $(seq 1 10); do
      case $i in 3|7) flags=(--no-cache --target minimal) ;; *) flags=(--target "$( ((i % 2)) && echo minimal || echo cuda)") ;; esac
      while [ "$(jobs -rp | wc -l)" -ge 4 ]; do wait -n; done
      { "${build[@]}" --progress=plain "${flags[@]}" -f "$ctx/kiln.yaml" \
          --build-arg "PYTHON_IMAGE=$BASE" --build-arg PYTHON_VERSION=3.11 \
          --secret "id=pipca,src=$CA" "$ctx" >"$E2E_WORK/logs/$name-stress-$i.log" 2>&1 \
          || echo "$i" >>"$failed"; } &
    done
    wait
  )
  assert_eq "$name: all ten builds (verify included) succeeded ($(( $(date +%s) - start )) s)" "" "$(sort -n "$failed" | tr '\n' ' ')"
  assert_eq "$name: the engine was not restarted" "$started" "$("$DOCKER" inspect -f '{{.State.Status}} {{.RestartCount}} {{.State.StartedAt}}' "$container")"
  assert_not_contains "$name: no panic in the engine's log" "$("$DOCKER" logs --since "$since" "$container" 2>&1)" "panic:"
done
finish
