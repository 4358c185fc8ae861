#!/usr/bin/env bash
# kiln against the hand-written Dockerfiles it replaces (bench/peer/), on the same engine
# in the same run. Prints one table (kiln min/median, peer min/median, kiln/peer) and
# writes it to bench/results/latest.md. Only ratios from one run mean anything here.
#   bench/run.sh [--runs N] [--quick]     --quick: 1 run, warm scenarios and LLB rows only
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=3; QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --quick) QUICK=1; RUNS=1; shift ;;
    *) echo "usage: $0 [--runs N] [--quick]" >&2; exit 2 ;;
  esac
done

DOCKER=/usr/bin/docker
BASE=kiln-local/python:3.11
FRONTEND=kiln/frontend:bench
W="$(mktemp -d /tmp/kiln-bench.XXXXXX)"
LOGS="$W/logs"; mkdir -p "$LOGS" bench/results
say() { echo "bench: $*" >&2; }

scripts/engine.sh up || exit 1
scripts/frontend-image.sh "$FRONTEND" >/dev/null || exit 1
KILN_BIN="target/$(uname -m)-unknown-linux-gnu/release/kiln"

# Private copies: scenarios edit the context, the spec and the Dockerfiles.
cp -r examples/worker "$W/ctx"
{ echo "# syntax=$FRONTEND"; tail -n +2 specs/worker.yaml; } >"$W/worker.yaml"
cp bench/peer/Dockerfile.worker.minimal "$W/Dockerfile.minimal"
cp bench/peer/Dockerfile.worker "$W/Dockerfile.cuda"
COMMON=(--build-arg "PYTHON_IMAGE=$BASE" --secret id=pipca,src=/etc/ssl/certs/ca-certificates.crt)

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# build LOG args...: one docker build; prints its wall time in ms, fails loudly.
build() {
  local log="$LOGS/$1.log" t0; shift
  t0=$(now_ms)
  if ! DOCKER_BUILDKIT=1 "$DOCKER" build --progress=plain "$@" >"$log" 2>&1; then
    say "build failed, see $log"; tail -n 20 "$log" >&2; exit 1
  fi
  echo $(($(now_ms) - t0))
}
kiln() { # variant log [spec] [more build args]
  build "$2" -f "${3:-$W/worker.yaml}" --target "$1" -t "bench/kiln:$1" --build-arg PYTHON_VERSION=3.11 "${COMMON[@]}" "${@:4}" "$W/ctx"
}
# The peer has no verify step; warm rows compare like with like, and one row shows verify's cost.
NOVERIFY=(--build-arg KILN_SKIP_VERIFY=1)
peer() { # variant log
  build "$2" -f "$W/Dockerfile.$1" -t "bench/peer:$1" "${COMMON[@]}" "$W/ctx"
}
prune() { "$DOCKER" builder prune -af >/dev/null 2>&1; }

ROWS=()
stats() { sort -n | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; if (NR%2==0) m=(a[NR/2]+a[NR/2+1])/2; printf "%d %d", a[1], m}'; }
# row NAME UNIT "kiln samples" "peer samples"
row() {
  local k p; k=$(tr ' ' '\n' <<<"$3" | grep . | stats); p=$(tr ' ' '\n' <<<"$4" | grep . | stats)
  local kmed=${k#* } pmed=${p#* }
  local ratio; ratio=$(awk -v a="$kmed" -v b="$pmed" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
  ROWS+=("| $1 | ${k% *} / $kmed $2 | ${p% *} / $pmed $2 | $ratio |")
  say "$1: kiln $k, peer $p ($2), ratio $ratio"
}

uniq_id() { date +%s%N; }

if [ "$QUICK" = 0 ]; then
  for v in minimal cuda; do
    ks=""; ps=""
    for _ in $(seq "$RUNS"); do
      prune; ks+=" $(kiln "$v" "cold-kiln-$v")"
      prune; ps+=" $(peer "$v" "cold-peer-$v")"
    done
    row "cold build, $v" s "$(for x in $ks; do echo $((x / 1000)); done)" "$(for x in $ps; do echo $((x / 1000)); done)"
  done
  ks=""; ps=""
  for _ in $(seq "$RUNS"); do
    prune; t0=$(now_ms)
    kiln minimal both-kiln-minimal >/dev/null & a=$!
    kiln cuda both-kiln-cuda >/dev/null & b=$!
    wait $a && wait $b || exit 1
    ks+=" $((($(now_ms) - t0) / 1000))"
    prune; t0=$(now_ms)
    peer minimal both-peer-minimal >/dev/null; peer cuda both-peer-cuda >/dev/null
    ps+=" $((($(now_ms) - t0) / 1000))"
  done
  row "both variants from cold" s "$ks" "$ps"
fi

# Warm scenarios (minimal). Make sure both are built once.
kiln minimal warm-kiln >/dev/null; peer minimal warm-peer >/dev/null
ks=""; ps=""
for i in $(seq "$RUNS"); do
  ks+=" $(kiln minimal noop-kiln-$i "$W/worker.yaml" "${NOVERIFY[@]}")"; ps+=" $(peer minimal noop-peer-$i)"
done
row "no-op rebuild" ms "$ks" "$ps"
front=$(grep -a "kiln: frontend start to Return" /var/log/kiln-dockerd.log | tail -n "$RUNS" | awk '{print $(NF-1)}' | tr '\n' ' ')

ks=""; ps=""; vs=""
for i in $(seq "$RUNS"); do
  echo "# edit $(uniq_id)" >>"$W/ctx/app/api.py"
  ks+=" $(kiln minimal app-kiln-$i "$W/worker.yaml" "${NOVERIFY[@]}")"; ps+=" $(peer minimal app-peer-$i)"
  echo "# edit $(uniq_id)" >>"$W/ctx/app/api.py"
  vs+=" $(kiln minimal app-verify-kiln-$i)"
done
row "app-code change" ms "$ks" "$ps"
row "app-code change, kiln with verify" ms "$vs" "$ps"

if [ "$QUICK" = 0 ]; then
  ks=""; ps=""
  for i in $(seq "$RUNS"); do
    echo "humanize==4.12.3  # bench $(uniq_id)" >>"$W/ctx/requirements/core.txt"
    ks+=" $(kiln minimal req-kiln-$i)"; ps+=" $(peer minimal req-peer-$i)"
    sed -i '/^humanize==/d' "$W/ctx/requirements/core.txt"
  done
  row "one requirement added" s "$(for x in $ks; do echo $((x / 1000)); done)" "$(for x in $ps; do echo $((x / 1000)); done)"

  ks=""; ps=""; pkgs=(less file bzip2 jq xz-utils)
  for i in $(seq "$RUNS"); do
    pkg=${pkgs[$(((i - 1) % ${#pkgs[@]}))]}
    sed "s/^  runtime: \[libpq5, libjpeg62-turbo\]$/  runtime: [libpq5, libjpeg62-turbo, $pkg]/" "$W/worker.yaml" >"$W/apt.yaml"
    sed "s/install -y --no-install-recommends libpq5 libjpeg62-turbo/install -y --no-install-recommends libpq5 libjpeg62-turbo $pkg/" "$W/Dockerfile.minimal" >"$W/Dockerfile.apt"
    ks+=" $(kiln minimal apt-kiln-$i "$W/apt.yaml")"
    ps+=" $(build apt-peer-$i -f "$W/Dockerfile.apt" -t bench/peer:apt "${COMMON[@]}" "$W/ctx")"
  done
  row "one apt package added" ms "$ks" "$ps"

  # installer: uv against installer: pip, both kiln, cold.
  sed 's/^  installer: pip$/  installer: uv/' "$W/worker.yaml" >"$W/uv.yaml"
  ks=""; ps=""
  for i in $(seq "$RUNS"); do
    prune; ks+=" $(($(kiln minimal uv-$i "$W/uv.yaml") / 1000))"
    prune; ps+=" $(($(kiln minimal pip-$i) / 1000))"
  done
  ROWS+=("| *kiln uv (left) vs kiln pip (right)* | | | |")
  row "cold minimal, uv vs pip" s "$ks" "$ps"

  for v in minimal cuda; do
    kiln "$v" size-kiln-$v >/dev/null; peer "$v" size-peer-$v >/dev/null
    row "image size, $v" MB "$(($("$DOCKER" image inspect -f '{{.Size}}' "bench/kiln:$v") / 1000000))" "$(($("$DOCKER" image inspect -f '{{.Size}}' "bench/peer:$v") / 1000000))"
  done
fi

# What is inside the images.
inside() {
  "$DOCKER" run --rm -u 0 --entrypoint sh "$1" -c '
    gcc=$(command -v gcc cc make | head -1); echo "compiler=${gcc:-none}"
    echo "pip_cache=$(du -sm /root/.cache/pip 2>/dev/null | cut -f1)MB"
    echo "pyc=$(find /opt/venv -name "*.pyc" | wc -l)"
    echo "dev_pkgs=$(dpkg-query -W -f "\${Package}\n" | grep -c -- -dev$)"' | tr '\n' ' '
}
INSIDE=("kiln minimal: $(inside bench/kiln:minimal)" "peer minimal: $(inside bench/peer:minimal)" "base: dev_pkgs=$("$DOCKER" run --rm "$BASE" sh -c 'dpkg-query -W -f "\${Package}\n" | grep -c -- -dev$')")

# The frontend's own cost, and LLB generation as the spec grows.
ks=""; ps=""
for _ in $(seq 20); do
  t0=$(date +%s%N); "$KILN_BIN" llb specs/worker.yaml --target cuda >/dev/null; ks+=" $((($(date +%s%N) - t0) / 1000))"
  t0=$(date +%s%N); /bin/true; ps+=" $((($(date +%s%N) - t0) / 1000))"
done
ROWS+=("| *kiln process (left) vs /bin/true (right)* | | | |")
row "kiln llb worker.yaml (process)" us "$ks" "$ps"
[ -n "$front" ] && row "frontend start to Return (cached build)" ms "$front" "$front"
gen() { # lines variants
  { printf 'version: 1\nname: synth\npython: {base: python:3.12-slim}\nrequirements:\n  g:\n    packages:\n'
    for i in $(seq "$1"); do printf '      - "pkg%d==1.0.%d"\n' "$i" "$i"; done
    printf 'variants:\n'
    for i in $(seq "$2"); do printf '  v%d: {env: {N: "%d"}}\n' "$i" "$i"; done; } >"$W/synth-$1-$2.yaml"
}
for size in "10 1" "100 1" "1000 1" "10 10" "10 50"; do
  set -- $size; gen "$1" "$2"
  ks=""
  for _ in $(seq 10); do
    t0=$(date +%s%N); "$KILN_BIN" llb "$W/synth-$1-$2.yaml" --target v1 >/dev/null; ks+=" $((($(date +%s%N) - t0) / 1000))"
  done
  row "llb: $1 requirement lines, $2 variants" us "$ks" "$ps"
done

{
  echo "| scenario | kiln min / median | peer min / median | kiln/peer (median) |"
  echo "|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  printf -- '- %s\n' "${INSIDE[@]}"
  echo
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $("$DOCKER" version --format 'Docker {{.Server.Version}}'), $(date -u +%Y-%m-%d), runs per row: $RUNS. Logs: $LOGS"
} | tee bench/results/latest.md
