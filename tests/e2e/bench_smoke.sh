#!/usr/bin/env bash
# Smoke test of the benchmark harness: `bench/run.sh --smoke` (one run: no-op rebuild,
# app-code change, frontend cost and LLB generation; no cold builds, no prune) must finish
# and print its table with numbers in every cell it promises. Under a minute on a warm
# engine (after tests/e2e/run.sh); up to three when the frontend and the harness (kiln-bench) must compile first. Ends with "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

out="$E2E_WORK/logs/bench-smoke.out"
start=$(date +%s)
bench/run.sh --smoke >"$out" 2>"$E2E_WORK/logs/bench-smoke.err"
rc=$?
took=$(( $(date +%s) - start ))
assert_eq "bench/run.sh --smoke exits 0" "0" "$rc"
[ "$rc" = 0 ] || tail -n 25 "$E2E_WORK/logs/bench-smoke.err"
# Not a check: the first run on a machine compiles the frontend and warms the cache.
echo "  ..   bench/run.sh --smoke took ${took} s"
table=$(cat "$out")

assert_contains "table header" "$table" "| scenario | kiln min / median | peer min / median | kiln/peer (medians) |"
NUM='[0-9]+(\.[0-9]+)? (s|ms|MB)'
# row_has "scenario text" kiln-cell peer-cell: the row exists, with numbers where wanted.
row_has() {
  local name="$1" want_peer="$2" line re
  line=$(grep -F "| $name" <<<"$table" | head -n 1)
  if [ -z "$line" ]; then fail "row [$name] missing"; return; fi
  if [ "$want_peer" = yes ]; then
    re="^\| .+ \| $NUM / $NUM \| $NUM / $NUM \| [0-9]+\.[0-9]{2} \|$"
  else
    re="^\| .+ \| $NUM / $NUM \| - \| - \|$"
  fi
  if grep -qE "$re" <<<"$line"; then ok "row [$name] has numbers"; else fail "row [$name] malformed: $line"; fi
}
row_has "no-op rebuild" yes
row_has "app-code change" yes
row_has "\`kiln llb specs/worker.yaml --target cuda\`" yes
row_has "kiln frontend, start to Return on a no-op build" no
row_has "kiln frontend, definition of the example made" no
for size in "10 requirement lines, 1 variant" "100 requirement lines, 1 variant" \
            "1000 requirement lines, 1 variant" "10 requirement lines, 10 variant" \
            "10 requirement lines, 50 variant"; do
  row_has "\`kiln llb\`, $size" yes
done
assert_contains "machine line" "$table" "Machine: "
assert_not_contains "no failed builds" "$table" "FAILED:"
check "bench/results/latest.md written with the same table" cmp -s "$out" bench/results/latest.md
finish
