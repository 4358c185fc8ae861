#!/usr/bin/env bash
# End-to-end: `kiln init` on copies of examples/init-uv (uv.lock), init-poetry (poetry.lock)
# and init-piptools (layered requirement files), each psycopg2 from its sdist; every spec
# kiln init writes is built unmodified on Docker 20.10 (docker build, the frontend by
# BUILDKIT_SYNTAX) and on Docker 28 (buildx): the build runs its verify (the command's
# --help, psycopg2's import), the image's command runs and loads libpq, no compiler or dev
# package reaches the image; the full variant (extra / optional group) has tabulate.
# Needs the engines (scripts/engine.sh up; up docker28) and builds the frontend image.
#   KILN_E2E_FRONTEND=kiln/frontend:e2e   the frontend image tag to build and use
# The build arguments are what any build here needs, not spec edits: the local base
# (PYTHON_IMAGE, no registry is reachable here), the frontend (BUILDKIT_SYNTAX: the spec's
# own line names kiln/frontend:latest) and the CA bundle (TLS is intercepted here; kiln
# init --ca-bundle pipca writes the build_secrets line the --secret fills).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

FRONTEND="${KILN_E2E_FRONTEND:-kiln/frontend:e2e}"
BASE=kiln-local/python:3.11
CA=/etc/ssl/certs/ca-certificates.crt
scripts/frontend-image.sh "$FRONTEND" >/dev/null || { echo "cannot build the frontend image"; exit 1; }
# frontend-image.sh built this kiln (static); kiln init runs on the host.
KILN="${CARGO_TARGET_DIR:-$E2E_ROOT/target}/$(uname -m)-unknown-linux-gnu/release/kiln"
[ -x "$KILN" ] || { echo "no kiln binary at $KILN"; exit 1; }
"$DOCKER" image inspect "$BASE" >/dev/null 2>&1 || { echo "no $BASE: run scripts/engine.sh up"; exit 1; }

RUN_ID="$(date +%s%N)"
# This run's own base (a label naming the run): its digest, and so the package caches'
# ids (which follow it), are this run's. The engines may still find the steps that stand
# on its layers in their cache (apt, a fetched sdist's wheel): the first run on an engine
# builds psycopg2 from its sdist, later ones may not. Each copy's app code gets a comment
# naming the run, so every run builds a new image and its verify runs.
RUN_BASE="kiln-e2e/python:init-$RUN_ID"
printf 'FROM %s\nLABEL dev.kiln.e2e-run=%s\n' "$BASE" "$RUN_ID" \
  | DOCKER_BUILDKIT=1 "$DOCKER" build -q -t "$RUN_BASE" - >/dev/null \
  || { echo "cannot make this run's base image from $BASE"; exit 1; }
trap '"$DOCKER" rmi "$RUN_BASE" >/dev/null 2>&1 || true' EXIT
IMG=kiln-e2e/init
PROJECTS="uv poetry piptools"
drun() { "$DOCKER" run --rm "$@" 2>&1; }
# verified LOG COMMAND: the build's verify ran COMMAND and it passed (`kiln-verify: [N] 0: COMMAND`).
verified() { grep -qE "kiln-verify: \[[0-9]+\] 0: $2\$" "$1"; }

# ---------------------------------------------------------------------------------------
echo "== kiln init on copies of the examples"
for p in $PROJECTS; do
  ctx="$E2E_WORK/$p"
  rm -rf "$ctx"; cp -r "examples/init-$p" "$ctx"
  for init in "$ctx/src/pgver/__init__.py" "$ctx/pgver/__init__.py"; do
    [ -f "$init" ] && echo "# e2e run $RUN_ID" >>"$init"
  done
  if "$KILN" init "$ctx" --ca-bundle pipca >"$E2E_WORK/logs/init-$p.log" 2>&1; then
    ok "$p: kiln init wrote $ctx/kiln.yaml"
    out=$(cat "$E2E_WORK/logs/init-$p.log")
    assert_contains "$p: it says why build-essential and libpq-dev" "$out" "psycopg2 2.9.13"
    assert_contains "$p: it says what it left out" "$out" "left out:"
    check "$p: kiln check --context passes the spec as written" "$KILN" check "$ctx/kiln.yaml" --context "$ctx"
  else
    fail "$p: kiln init: $(cat "$E2E_WORK/logs/init-$p.log")"
  fi
done

# image_checks LABEL RUN...: what every image kiln init's spec gives must show (RUN is the
# engine's `docker run --rm`).
image_checks() {
  local label="$1"; shift
  local out
  out=$("$@" 2>&1)
  assert_contains "$label: the command runs and loads libpq" "$out" "psycopg2 2.9.13, libpq 1"
  assert_eq "$label: runs as uid 10001" "10001" "$("$@" id -u 2>&1)"
  assert_eq "$label: no compiler or libpq headers in the image" "" \
    "$("$@" sh -c 'command -v gcc cc make pg_config; ls /usr/include/postgresql 2>/dev/null' 2>&1)"
  if "$@" python -c 'import pytest' >/dev/null 2>&1; then fail "$label: a dev package (pytest) is in the image"; else ok "$label: no dev package (pytest)"; fi
}

# ---------------------------------------------------------------------------------------
echo "== Docker 20.10: each spec built unmodified (docker build, frontend by BUILDKIT_SYNTAX)"
ARGS=(--build-arg "PYTHON_IMAGE=$RUN_BASE" --build-arg "BUILDKIT_SYNTAX=$FRONTEND" --secret "id=pipca,src=$CA")
for p in $PROJECTS; do
  ctx="$E2E_WORK/$p"
  [ -f "$ctx/kiln.yaml" ] || { fail "$p: no kiln.yaml to build"; continue; }
  if dbuild "$p-20" -f "$ctx/kiln.yaml" -t "$IMG-$p:20" "${ARGS[@]}" "$ctx"; then
    ok "$p: builds on Docker 20.10 (${DBUILD_MS} ms)"
    log="$E2E_WORK/logs/$p-20.log"
    assert_contains "$p: the frontend is the BUILDKIT_SYNTAX one" "$(cat "$log")" "docker-image://docker.io/$FRONTEND"
    cmd="pgver --help"; [ "$p" = piptools ] && cmd="python -m pgver --help"
    check "$p: verify ran the command's --help" verified "$log" "$cmd"
    check "$p: verify imported psycopg2" verified "$log" "python -c 'import psycopg2'"
    image_checks "$p 20.10" "$DOCKER" run --rm "$IMG-$p:20"
  else
    fail "$p: builds on Docker 20.10: $(tail -n 15 "$E2E_WORK/logs/$p-20.log")"
  fi
done
for p in uv poetry; do
  ctx="$E2E_WORK/$p"
  if dbuild "$p-20-full" -f "$ctx/kiln.yaml" --target full -t "$IMG-$p:20-full" "${ARGS[@]}" "$ctx"; then
    ok "$p: the full variant builds (${DBUILD_MS} ms)"
    assert_contains "$p full: the optional group is in (tabulate's table)" \
      "$(drun "$IMG-$p:20-full" pgver --table)" "component"
    check "$p minimal: no optional group" bash -c "! $DOCKER run --rm $IMG-$p:20 pgver --table >/dev/null 2>&1"
  else
    fail "$p: the full variant builds: $(tail -n 15 "$E2E_WORK/logs/$p-20-full.log")"
  fi
done

# ---------------------------------------------------------------------------------------
echo "== Docker 28: each spec built unmodified (buildx, frontend from the engine's registry)"
D28=docker28
if engine_frontend "$D28" "${FRONTEND##*:}"; then
  F28=$ENGINE_FRONTEND
  D28_ENV=$(scripts/engine.sh env "$D28")
  d28() ( eval "$D28_ENV"; docker "$@" )
  base28="kiln-e2e/python:init-$RUN_ID"
  if printf 'FROM %s\nLABEL dev.kiln.e2e-run=%s\n' "$BASE" "$RUN_ID" \
      | d28 buildx build -q --load -t "$base28" - >"$E2E_WORK/logs/$D28-base.log" 2>&1; then
    for p in $PROJECTS; do
      ctx="$E2E_WORK/$p"
      [ -f "$ctx/kiln.yaml" ] || continue
      log="$E2E_WORK/logs/$p-28.log"
      start=$(date +%s%N)
      if d28 buildx build --progress=plain --load -f "$ctx/kiln.yaml" -t "$IMG-$p:28" \
          --build-arg "PYTHON_IMAGE=$base28" --build-arg "BUILDKIT_SYNTAX=$F28" \
          --secret "id=pipca,src=$CA" "$ctx" >"$log" 2>&1; then
        ok "$p: builds on Docker 28 ($((($(date +%s%N) - start) / 1000000)) ms)"
        cmd="pgver --help"; [ "$p" = piptools ] && cmd="python -m pgver --help"
        check "$p 28: verify ran the command's --help" verified "$log" "$cmd"
        check "$p 28: verify imported psycopg2" verified "$log" "python -c 'import psycopg2'"
        image_checks "$p 28" d28 run --rm "$IMG-$p:28"
      else
        fail "$p: builds on Docker 28: $(tail -n 15 "$log")"
      fi
      d28 rmi "$IMG-$p:28" >/dev/null 2>&1
    done
    d28 rmi "$base28" >/dev/null 2>&1
  else
    fail "$D28: this run's base image: $(tail -n 5 "$E2E_WORK/logs/$D28-base.log")"
  fi
fi

for p in $PROJECTS; do "$DOCKER" rmi "$IMG-$p:20" "$IMG-$p:20-full" >/dev/null 2>&1; done
finish
