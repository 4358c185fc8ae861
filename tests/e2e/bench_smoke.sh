#!/usr/bin/env bash
# Keeps bench/run.sh from rotting: its quick mode must run and print a table of numbers.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh
out=$(bench/run.sh --quick 2>"$E2E_WORK/logs/bench.err")
rc=$?
assert_eq "bench/run.sh --quick exits 0" "0" "$rc"
for r in "no-op rebuild" "app-code change" "kiln llb worker.yaml (process)" "llb: 1000 requirement lines, 1 variants"; do
  line=$(grep -F "| $r |" <<<"$out")
  if grep -qE "\| [0-9]+ / [0-9.]+ [a-zM]+ \| [0-9]+ / [0-9.]+ [a-zM]+ \| [0-9.]+ \|" <<<"$line"; then ok "row: $r"; else fail "row: $r: [$line]"; fi
done
assert_contains "what is inside the images" "$out" "kiln minimal: compiler=none"
finish
