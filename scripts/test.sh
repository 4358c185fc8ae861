#!/usr/bin/env bash
# The whole test suite: unit, golden, fake-bridge and `kiln lock` (real uv, installed
# when missing: scripts/ensure-uv.sh) tests (cargo), then end-to-end
# builds on real BuildKits: Docker 20.10 on this host (the example worker, the lock-file
# projects, kiln init's specs (also on 28), hostile contexts, how the image runs, the
# benchmark harness), then Docker 26
# and 28 with buildx (engines.sh), whose arm64 base is made in the background from the
# start, a lock's files fetched by the engine (locked.sh), kiln's SBOM (sbom.sh), the CI
# jobs docs/usage.md shows (ci.sh: buildctl where one is on PATH, and bake), and a load of
# concurrent builds
# on Docker 28 and on a 20.10 in a container of its own (stress.sh; never the host's
# dockerd). This script installs and starts every engine it needs. Fails, never skips,
# when an engine cannot start. Every suite runs even when an earlier one failed; the exit status says
# whether all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

failed=()
# Free space where the engines and the suites write (/var/lib: Docker's data, /tmp: the
# suites' work): CI's disk is finite, and a full one fails builds far from the cause.
disk_free() { df -h --output=avail /var/lib /tmp | tail -n +2 | paste -sd' ' | awk '{print $1 " free in /var/lib, " $2 " in /tmp"}'; }
suite() { # suite NAME command...
  local name="$1" start=$SECONDS
  shift
  echo "== $name" >&2
  if "$@"; then
    echo "== $name: passed in $((SECONDS - start)) s" >&2
  else
    echo "== $name: FAILED after $((SECONDS - start)) s" >&2
    failed+=("$name")
  fi
  # What the suite built is not read by the next one: a whole run leaves about 12 GB
  # otherwise (measured on 2026-12-06), more than some CI machines have free.
  scripts/engine.sh reclaim 2>&1 | sed 's/^/   /' >&2
  echo "== disk: $(disk_free)" >&2
}
echo "== disk: $(disk_free)" >&2

# kiln lock's tests run the real uv 0.9.7 (tests/integration/lock.rs): installed from
# PyPI when missing. UV_NATIVE_TLS: uv trusts the system's CAs (TLS interception), as pip
# does here.
uv_dir="$(scripts/ensure-uv.sh)" || { echo "uv could not be installed" >&2; exit 1; }
export PATH="$uv_dir:$PATH" UV_NATIVE_TLS="${UV_NATIVE_TLS:-1}" KILN_REQUIRE_UV=1
echo "== cargo test" >&2
# No incremental state and line tables only: about a GB less of target/ (CI's disk is finite).
CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=line-tables-only \
  cargo test --workspace --locked 2>&1 | tee /tmp/kiln-cargo-test.log
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("cargo test")
echo "== engine (Docker 20.10 on this host)" >&2
scripts/engine.sh up || { echo "the engine did not start" >&2; exit 1; }
scripts/engine.sh reclaim 2>&1 | sed 's/^/   /' >&2   # an earlier run's leftovers, if any
echo "== disk: $(disk_free)" >&2
# The arm64 Python base for engines.sh's multi-platform checks: once per machine, 6 to 22
# minutes of emulated dpkg on 2 cores, so it starts now and overlaps the Docker 20.10
# suites (engines.sh waits for it; a failure shows there).
arm64_start=$SECONDS
( scripts/engine.sh base-arm64 >/tmp/kiln-base-arm64.log 2>&1
  echo "== arm64 base: exit $? after $((SECONDS - arm64_start)) s (log /tmp/kiln-base-arm64.log)" >&2 ) &
suite "end-to-end, example worker (Docker 20.10)" tests/e2e/run.sh
suite "end-to-end, lock-file projects (Docker 20.10)" tests/e2e/projects.sh
suite "end-to-end, kiln init's specs built as written (Docker 20.10 and 28)" tests/e2e/init.sh
suite "end-to-end, hostile contexts and limits (Docker 20.10)" tests/e2e/hostile.sh
suite "end-to-end, how the image runs (Docker 20.10 and 28)" tests/e2e/service.sh
suite "benchmark smoke test" tests/e2e/bench_smoke.sh
suite "end-to-end, modern engines (Docker 26 and 28, buildx)" tests/e2e/engines.sh
suite "end-to-end, a lock's files fetched by the engine (Docker 28)" tests/e2e/locked.sh
suite "end-to-end, the runtime-library check and system.runtime: auto (Docker 20.10 and 28)" tests/e2e/runtime_libs.sh
suite "end-to-end, kiln's SBOM with --sbom=true (Docker 28)" tests/e2e/sbom.sh
suite "end-to-end, the CI jobs of docs/usage.md (Docker 28: buildctl, bake)" tests/e2e/ci.sh
suite "stress: ten builds at once on Docker 28 and 20.10 (in its own container)" tests/e2e/stress.sh
wait

if [ ${#failed[@]} -gt 0 ]; then
  printf 'failed suites: %s\n' "${failed[*]}" >&2
  exit 1
fi
echo "all suites passed" >&2
