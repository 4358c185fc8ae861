#!/usr/bin/env bash
# The whole test suite: unit, golden and fake-bridge tests (cargo), then end-to-end
# builds on a real BuildKit (Docker's), which this script installs and starts when needed.
# Fails, never skips, when the engine cannot start.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

echo "== cargo test" >&2
cargo test --workspace --locked 2>&1 | tee /tmp/kiln-cargo-test.log
echo "== engine" >&2
scripts/engine.sh up
echo "== end-to-end (real engine)" >&2
tests/e2e/run.sh
echo "== benchmark smoke test" >&2
tests/e2e/bench_smoke.sh
