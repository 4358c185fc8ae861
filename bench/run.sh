#!/usr/bin/env bash
# kiln against the hand-written multi-stage Dockerfiles it replaces (bench/peer/): the
# harness is the kiln-bench crate (bench/src/); this stays the one entry point for the
# docs and tests/e2e/bench_smoke.sh. It starts the engine itself (scripts/engine.sh up).
#
#   bench/run.sh [--runs N] [--quick | --smoke | --locked | --uv]   (--help: what each mode runs)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
exec cargo run --release --locked -q -p kiln-bench -- "$@"
