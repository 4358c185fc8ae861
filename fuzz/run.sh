#!/usr/bin/env bash
# Fuzz kiln's inputs. Usage: fuzz/run.sh [SECONDS] [TARGET...]   (default 600 s each, all targets)
#   spec_to_llb        spec bytes -> parse, validate, plan, lower, marshal
#   requirements       requirement files (includes, constraints, hashes, -e) walked from the context
#   lock_files         pyproject.toml / .python-version of uv, Poetry and PEP 751 lock projects
#   frontend_requests  frontend options, a base image's config JSON, a failed solve's details
#   dockerignore       .dockerignore patterns against context paths (matcher: no panic, bounded)
# Inputs reach the 1 MiB spec limit from the start (-max_len, -len_control=0). Needs
# cargo-fuzz (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP lets it use the sanitizer flags
# on the stable toolchain.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(spec_to_llb requirements lock_files frontend_requests dockerignore)
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  case "$t" in
    spec_to_llb) cp ../specs/*.yaml ../specs/platform/*.yaml "corpus/$t/" 2>/dev/null || true ;;
    requirements) cp ../examples/worker/requirements/*.txt "corpus/$t/" 2>/dev/null || true ;;
    dockerignore) for f in ../examples/*/.dockerignore; do { cat "$f"; printf '\0app/x.pyc\nREADME.md\n'; } >"corpus/$t/$(basename "$(dirname "$f")")"; done ;;
    lock_files) for f in ../examples/*/pyproject.toml; do { printf '\0'; cat "$f"; } >"corpus/$t/$(basename "$(dirname "$f")").toml"; done ;;
  esac
  echo "== $t ($secs s)"
  # A crash ends that target's run, not the others'; the exit status reports it.
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "corpus/$t" -- \
    -max_total_time="$secs" -max_len=1048576 -len_control=0 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    || { echo "== $t: a crash, kept in fuzz/artifacts/$t"; found=1; }
done
exit "${found:-0}"
