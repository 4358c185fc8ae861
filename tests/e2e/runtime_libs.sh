#!/usr/bin/env bash
# End-to-end: the runtime-library check and `system.runtime: auto` on real BuildKits, the
# example worker on Docker 20.10 (this host) and Docker 28 (buildx, containerd store):
#   - without libpq5 in system.runtime, the build fails at the core group's line naming
#     the file, `libpq.so.5` and the package to add (`libpq5`), and exports no image;
#   - with `system.runtime: auto` it builds, libpq5 is in the image, and psycopg2 imports;
#   - the spec as it is builds with the check (its scan run on this run's venv), and a
#     rebuild finds the scan and the verdict CACHED.
# Prints what the check's steps took (from the progress output) when they ran and on a
# no-op rebuild. Needs the engines (scripts/engine.sh up; up docker28); builds the frontend
# (KILN_E2E_FRONTEND, default kiln/frontend:e2e).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

FRONTEND=${KILN_E2E_FRONTEND:-kiln/frontend:e2e}
BASE=kiln-local/python:3.11
IMG=${KILN_E2E_IMAGE:-kiln-e2e/runtime-libs}
engine_up
scripts/frontend-image.sh "$FRONTEND" >/dev/null || { echo "cannot build the frontend image"; exit 1; }
build_progress_reader

CTX="$E2E_WORK/ctx"
cp -r examples/worker "$CTX"
RUN_ID="$(date +%s%N)"
LINE=$(grep -n '^  core:' specs/worker.yaml | cut -d: -f1)
RUNTIME='  runtime: [libpq5, libjpeg62-turbo]'
# A venv of this run's own, so that the check runs here rather than being found cached
# from an earlier run: a pip timeout of this run's own changes the install step alone
# (uv's cache keeps it quick; a comment in a requirement file changes nothing kiln sends).
TIMEOUT='  timeout: 1000'
OWN_TIMEOUT="  timeout: $((1001 + RUN_ID % 997))"
for line in "$RUNTIME" "$TIMEOUT"; do
  grep -qxF -- "$line" specs/worker.yaml || { echo "specs/worker.yaml has no [$line] line"; exit 1; }
done
ARGS=(--build-arg "PYTHON_IMAGE=$BASE" --build-arg PYTHON_VERSION=3.11 --secret "id=pipca,src=/etc/ssl/certs/ca-certificates.crt")

# spec_as NAME SYNTAX RUNTIME-LINE: the example worker for frontend SYNTAX with its runtime
# line replaced, as NAME/worker.yaml (the frontend names it worker.yaml in messages).
spec_as() {
  mkdir -p "$E2E_WORK/$1"
  { echo "# syntax=$2"; tail -n +2 specs/worker.yaml \
      | awk -v from="$RUNTIME" -v to="$3" -v t="$TIMEOUT" -v own="$OWN_TIMEOUT" \
          '$0 == from { $0 = to } $0 == t { $0 = own } { print }'; } >"$E2E_WORK/$1/worker.yaml"
  grep -qxF -- "$3" "$E2E_WORK/$1/worker.yaml" || { echo "spec $1: no [$3] line" >&2; exit 1; }
  echo "$E2E_WORK/$1/worker.yaml"
}

# step_secs LOG NAME: the seconds the step whose name starts with NAME took (`#N DONE 1.2s`),
# or CACHED.
step_secs() {
  local n
  n=$(grep -E "^#[0-9]+ $2" "$E2E_WORK/logs/$1.log" | head -n 1 | cut -d' ' -f1)
  [ -n "$n" ] || { echo "absent"; return; }
  grep -E "^$n (DONE [0-9.]+s|CACHED)" "$E2E_WORK/logs/$1.log" | tail -n 1 | sed -E 's/^#[0-9]+ (DONE )?//'
}

# cases ENGINE SYNTAX BUILD DOCKER: the builds through BUILD (a function taking a log name
# and docker build's arguments) with the frontend SYNTAX, the images read with DOCKER; the
# checks are prefixed with ENGINE.
cases() {
  local engine=$1 syntax=$2 build=$3 docker=$4 spec out
  echo "== $engine: the worker without libpq5 in system.runtime"
  spec=$(spec_as "$engine-nolibpq" "$syntax" '  runtime: [libjpeg62-turbo]') || { fail "$engine: no spec"; return; }
  $docker rmi -f "$IMG:$engine-nolibpq" >/dev/null 2>&1
  if $build "$engine-nolibpq" -f "$spec" --target minimal -t "$IMG:$engine-nolibpq" "${ARGS[@]}" "$CTX"; then
    fail "$engine: the build without libpq5 succeeded"
  else
    out=$(log_of "$engine-nolibpq")
    assert_contains "$engine: the error is at the core group's line" "$out" "worker.yaml:$LINE"
    assert_contains "$engine: it names the file" "$out" "psycopg2/_psycopg"
    assert_contains "$engine: it names the library and the package" "$out" "needs \`libpq.so.5\`, which the minimal image lacks: add \`libpq5\` to \`system.runtime\`"
    check "$engine: the scan ran" step_ran "$engine-nolibpq" "scan: runtime libraries: core"
    check "$engine: no image exported" bash -c "! $docker image inspect $IMG:$engine-nolibpq >/dev/null 2>&1"
  fi

  echo "== $engine: the worker with system.runtime: auto"
  spec=$(spec_as "$engine-auto" "$syntax" '  runtime: auto') || { fail "$engine: no spec"; return; }
  if $build "$engine-auto" -f "$spec" --target minimal -t "$IMG:$engine-auto" "${ARGS[@]}" "$CTX"; then
    ok "$engine: auto builds"
    check "$engine: the builder named the packages" step_ran "$engine-auto" "runtime packages (auto): core"
    check "$engine: the check scanned the auto image's venv" step_ran "$engine-auto" "scan: runtime libraries: core"
    out=$($docker run --rm "$IMG:$engine-auto" python -c 'import psycopg2; print(psycopg2.__libpq_version__)' 2>&1)
    assert_eq "$engine: psycopg2 imports in the auto image" "yes" "$([[ "$out" =~ ^[0-9]+$ ]] && echo yes || echo "no: $out")"
    # What auto added over the base: libpq5 (and what it depends on), no -dev package.
    added=$(comm -13 <($docker run --rm "$BASE" dpkg-query -W -f '${Package}\n' | sort) \
      <($docker run --rm "$IMG:$engine-auto" dpkg-query -W -f '${Package}\n' | sort) | tr '\n' ' ')
    assert_contains "$engine: auto installed libpq5" "$added" "libpq5 "
    assert_not_contains "$engine: auto added no -dev package" "$added" "-dev "
  else
    fail "$engine: auto builds: $(tail -n 15 "$E2E_WORK/logs/$engine-auto.log")"
  fi

  echo "== $engine: the worker as it is, then a no-op rebuild"
  spec=$(spec_as "$engine-as-is" "$syntax" "$RUNTIME") || { fail "$engine: no spec"; return; }
  if $build "$engine-as-is" -f "$spec" --target minimal -t "$IMG:$engine-as-is" "${ARGS[@]}" "$CTX" \
    && $build "$engine-noop" -f "$spec" --target minimal -t "$IMG:$engine-as-is" "${ARGS[@]}" "$CTX"; then
    ok "$engine: the worker builds with the check, twice"
    # The verdict reads the report by its contents: after an empty report as before, it
    # is found CACHED even when the scan ran.
    check "$engine: the check scanned this run's venv" step_ran "$engine-as-is" "scan: runtime libraries: core"
    check "$engine: the scan is CACHED on a no-op rebuild" step_cached "$engine-noop" "scan: runtime libraries: core"
    check "$engine: the verdict is CACHED on a no-op rebuild" step_cached "$engine-noop" "check: runtime libraries: core"
    echo "  $engine, the check's steps when they ran: scan $(step_secs "$engine-as-is" "scan: runtime libraries"), verdict $(step_secs "$engine-as-is" "check: runtime libraries"); on a no-op rebuild: scan $(step_secs "$engine-noop" "scan: runtime libraries"), verdict $(step_secs "$engine-noop" "check: runtime libraries")" >&2
  else
    fail "$engine: the worker builds: $(tail -n 15 "$E2E_WORK/logs/$engine-as-is.log" "$E2E_WORK/logs/$engine-noop.log" 2>/dev/null)"
  fi
}

d20() { dbuild "$@"; }
cases docker20 "$FRONTEND" d20 "$DOCKER"

# Docker 28: its own client and buildx, the frontend from its registry.
D28=docker28
if engine_frontend "$D28" "${FRONTEND##*:}"; then
  F28=$ENGINE_FRONTEND
  (
    trap 'echo "PASSED=$PASSED FAILED=$FAILED" >"$E2E_WORK/$D28.counts"' EXIT
    eval "$(scripts/engine.sh env "$D28")" || { fail "$D28: env"; exit 1; }
    d28() {
      local log="$E2E_WORK/logs/$1.log" start=$SECONDS rc
      shift
      docker buildx build --progress=plain --load "$@" >"$log" 2>&1
      rc=$?
      echo "  ..   build $(basename "$log" .log): exit $rc in $((SECONDS - start)) s" >&2
      return $rc
    }
    cases "$D28" "$F28" d28 docker
  )
  # The subshell's counts join this run's.
  if [ -s "$E2E_WORK/$D28.counts" ]; then
    eval "$(sed 's/PASSED=/P28=/; s/FAILED=/F28C=/' "$E2E_WORK/$D28.counts")"
    PASSED=$P28 FAILED=$F28C
  fi
fi

finish
