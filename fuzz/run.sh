#!/usr/bin/env bash
# Fuzz parse + validate + lower. Usage: fuzz/run.sh [SECONDS]   (default 600)
# Needs cargo-fuzz (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP lets it use the
# sanitizer flags on the stable toolchain this project builds with.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-600}"
mkdir -p corpus/spec_to_llb
cp ../specs/*.yaml ../specs/platform/*.yaml corpus/spec_to_llb/ 2>/dev/null || true
RUSTC_BOOTSTRAP=1 cargo fuzz run spec_to_llb corpus/spec_to_llb -- \
  -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
