# Helpers for the end-to-end scripts: real builds on the local Docker engine.
# Source it; call `finish` last (prints "N passed, N failed", removes the run's work files but its
# logs, exits non-zero on failures).
#   engine_up                          scripts/engine.sh up (dockerd + base image), or exit 1
#   dbuild LOGNAME args...             DOCKER_BUILDKIT=1 docker build --progress=plain args...
#   build_progress_reader; step_cached / step_ran LOGNAME "step"   what the progress log shows
#   run_base_dockerfile BASE RUN_ID    a Dockerfile for this run's own base (see below)
#   engine_frontend NAME TAG           engine NAME up and its frontend made (ENGINE_FRONTEND)
#   assert_eq / assert_contains / assert_not_contains / check / ok / fail
# The client is /usr/bin/docker (20.10, from docker.io): a newer `docker` on PATH may lack
# buildx and refuse BuildKit builds.

DOCKER=/usr/bin/docker
E2E_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PASSED=0
FAILED=0
E2E_WORK="${E2E_WORK:-$(mktemp -d /tmp/kiln-e2e.XXXXXX)}"
mkdir -p "$E2E_WORK/logs"

ok() { PASSED=$((PASSED + 1)); echo "  ok   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "  FAIL $*"; }

# check "description" command...: passes when the command succeeds.
check() {
  local what="$1"; shift
  if "$@" >>"$E2E_WORK/logs/checks.log" 2>&1; then ok "$what"; else fail "$what"; fi
}

assert_eq() { # what expected actual
  if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected [$2], got [$3]"; fi
}

assert_contains() { # what haystack needle
  if grep -qF -- "$3" <<<"$2"; then ok "$1"; else fail "$1: [$3] not found in: $(tail -c 600 <<<"$2")"; fi
}

assert_not_contains() { # what haystack needle
  if grep -qF -- "$3" <<<"$2"; then fail "$1: [$3] found"; else ok "$1"; fi
}

# dbuild LOGNAME args...: a BuildKit build with plain progress; output in $E2E_WORK/logs/LOGNAME.log,
# wall time in DBUILD_MS. Returns docker build's exit status.
DBUILD_MS=0
dbuild() {
  local log="$E2E_WORK/logs/$1.log"; shift
  local start ms rc
  start=$(date +%s%N)
  DOCKER_BUILDKIT=1 "$DOCKER" build --progress=plain "$@" >"$log" 2>&1
  rc=$?
  ms=$((($(date +%s%N) - start) / 1000000))
  DBUILD_MS=$ms
  echo "  ..   build $(basename "$log" .log): exit $rc in $((ms / 1000)).$((ms % 1000 / 100)) s" >&2
  return $rc
}

# engine_up: the engine and the base image, set up by the project's own script; a test
# never runs without them (no skipping).
engine_up() {
  if ! "$E2E_ROOT/scripts/engine.sh" up; then
    echo "e2e: the engine did not come up (scripts/engine.sh up failed)" >&2
    exit 1
  fi
}

# A Dockerfile (on stdout) for a base of this run's own: BASE plus one small layer naming
# the run. Its layers differ from every earlier run's, so no step (nor a package cache:
# their ids follow the base) comes from build history, while builds within the run still
# share. A LABEL alone is not enough: BuildKit keys a local image by its layers (Docker
# 20.10) or by its rootfs (Docker 28), and a label changes neither; and a comment in a
# requirement file or a lock changes nothing either, since kiln passes on what it read.
run_base_dockerfile() { printf 'FROM %s\nRUN echo %s >/etc/kiln-e2e-run\n' "$1" "$2"; }

# engine_frontend NAME TAG: starts the engine NAME of scripts/engine.sh and makes kiln's
# frontend image in its registry, whose name it leaves in ENGINE_FRONTEND. On a failure:
# a `fail` naming the step with its log's tail, and status 1 (not in a subshell, so that
# the failure counts).
engine_frontend() {
  local name=$1 tag=$2 log="$E2E_WORK/logs/$1"
  ENGINE_FRONTEND=
  scripts/engine.sh up "$name" >"$log-up.log" 2>&1 \
    || { fail "$name: up: $(tail -n 5 "$log-up.log")"; return 1; }
  ENGINE_FRONTEND=$(scripts/engine.sh frontend "$name" "$tag" 2>"$log-frontend.log") \
    || { fail "$name: frontend: $(tail -n 5 "$log-frontend.log")"; return 1; }
}

log_of() { cat "$E2E_WORK/logs/$1.log"; }

# "Was this step cached / did it run" has one reader: kiln-bench's progress parser
# (bench/src/progress.rs), which the benchmark uses too. build_progress_reader builds it
# once per run; call it before the first step_cached/step_ran.
KILN_BENCH="${CARGO_TARGET_DIR:-$E2E_ROOT/target}/release/kiln-bench"
build_progress_reader() {
  if ! (cd "$E2E_ROOT" && cargo build --release --locked -q -p kiln-bench); then
    echo "e2e: cannot build kiln-bench (the progress log reader)" >&2
    exit 1
  fi
}

# step_cached LOGNAME "step name": the progress shows a step with that name as CACHED.
step_cached() { "$KILN_BENCH" progress "$E2E_WORK/logs/$1.log" --step "$2" --cached; }

# step_ran LOGNAME "step name": such a step ran in that build, and none was CACHED.
step_ran() { "$KILN_BENCH" progress "$E2E_WORK/logs/$1.log" --step "$2" --ran; }

config() { "$DOCKER" image inspect -f "$2" "$1"; }

finish() {
  echo
  echo "e2e: logs in $E2E_WORK/logs"
  echo "$PASSED passed, $FAILED failed"
  # Only the logs stay: saved images and contexts are up to a GB a run, and CI's disk is
  # finite (a run once failed with "No space left on device"). E2E_KEEP=1 keeps them.
  [ -n "${E2E_KEEP:-}" ] || find "$E2E_WORK" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
  [ "$FAILED" -eq 0 ]
}
