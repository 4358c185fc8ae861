#!/usr/bin/env bash
# kiln against the hand-written multi-stage Dockerfiles it replaces (bench/peer/), built
# from the same context on the same engine in the same run. One command:
#
#   bench/run.sh [--runs N] [--quick | --smoke]
#
#   --runs N   runs per docker scenario (default 3); each row shows min and median
#   --quick    1 run, warm scenarios only (no cold builds, no apt or uv row, minimal image only)
#   --smoke    1 run, only the no-op rebuild and the frontend-cost rows (tests/e2e/bench_smoke.sh)
#
# Starts the engine (scripts/engine.sh up), builds the frontend image, runs every scenario
# from a state it sets up itself, then prints one table (scenario, kiln min/median, peer
# min/median, kiln/peer of the medians) plus what is inside the images and notes read
# from the progress logs. The same text goes to bench/results/latest.md; the logs of every
# build stay in the work directory named at the end. Cold rows prune BuildKit's whole
# cache (`docker builder prune -af`, cache mounts included) on this engine.
# Only ratios from one run mean much: the network (Debian, PyPI) and the machine are noisy.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$HOME/.cargo/bin:$PATH"
export DOCKER_BUILDKIT=1

RUNS=3
MODE=full
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="${2:-}"; shift 2 || true ;;
    --runs=*) RUNS="${1#--runs=}"; shift ;;
    --quick) MODE=quick; shift ;;
    --smoke) MODE=smoke; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done
[ "$MODE" = full ] || RUNS=1
case "$RUNS" in ''|*[!0-9]*|0) echo "bench: --runs wants a positive number" >&2; exit 2 ;; esac

DOCKER=/usr/bin/docker
BASE=kiln-local/python:3.11
FRONTEND=kiln/frontend:bench
CA=${KILN_BENCH_CA:-/etc/ssl/certs/ca-certificates.crt}
DLOG=${KILN_DOCKERD_LOG:-/var/log/kiln-dockerd.log}
KILN_BIN="$ROOT/target/$(uname -m)-unknown-linux-gnu/release/kiln"
W="$(mktemp -d /tmp/kiln-bench.XXXXXX)"
LOGS="$W/logs"
mkdir -p "$LOGS" "$ROOT/bench/results"
T_START=$(date +%s)

say() { echo "bench [$(( $(date +%s) - T_START ))s]: $*" >&2; }
die() { say "$*"; exit 1; }

say "mode $MODE, $RUNS run(s) per docker scenario, work dir $W"
scripts/engine.sh up || die "the engine did not start"
scripts/frontend-image.sh "$FRONTEND" >/dev/null || die "cannot build the frontend image"
[ -x "$KILN_BIN" ] || die "no release binary at $KILN_BIN"
[ -s "$CA" ] || die "no CA bundle at $CA (set KILN_BENCH_CA)"

# Private copies: the scenarios edit the context, the spec and the Dockerfiles.
CTX="$W/ctx"
cp -r examples/worker "$CTX"
cp -r examples/worker "$W/ctx.orig"
SPEC="$W/worker.yaml"
{ echo "# syntax=$FRONTEND"; tail -n +2 specs/worker.yaml; } >"$SPEC"
PEER_minimal="$W/Dockerfile.minimal"
PEER_cuda="$W/Dockerfile.cuda"
cp bench/peer/Dockerfile.worker.minimal "$PEER_minimal"
cp bench/peer/Dockerfile.worker "$PEER_cuda"
COMMON=(--build-arg "PYTHON_IMAGE=$BASE" --secret "id=pipca,src=$CA")
KILN_ARGS=(--build-arg PYTHON_VERSION=3.11)

ROWS=()   # table rows
NOTES=()  # lines under the table
FAILED_BUILDS=()

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# Builds of other users on this engine (and CPU load) disturb every number here: each
# build looks for docker builds that are not ours (ours all name the work dir) and the
# scenario's note says how many it met.
DISTURBED=0
others_now() { pgrep -af '^/usr/bin/docker build' 2>/dev/null | grep -vc -- "$W" || true; }
scenario() { # name: start a scenario
  DISTURBED=0
  say "== $1 (load $(cut -d' ' -f1-3 /proc/loadavg))"
}
disturbed_note() { # name: a note when other builds ran during the scenario
  [ "$DISTURBED" -gt 0 ] && NOTES+=("Disturbed: $1: $DISTURBED of its builds started while someone else's docker build ran on this engine.")
  return 0
}

# The engine can go away under a run: BuildKit 0.8 in Docker 20.10 panics now and then
# ("failed to get edge", moby/moby#42414), and others may restart it. A build that finds
# it gone keeps dockerd's log (its start truncates it), starts it again and runs once more.
RESTARTS=0
engine_ok() { "$DOCKER" version >/dev/null 2>&1; }
ensure_engine() {
  engine_ok && return 0
  RESTARTS=$((RESTARTS + 1))
  [ -r "$DLOG" ] && cp "$DLOG" "$LOGS/dockerd-before-restart-$RESTARTS.log"
  local why; why=$(grep -a -m1 '^panic:' "$DLOG" 2>/dev/null)
  NOTES+=("The engine was down and was started again (${why:-no panic in its log}); its log is in $LOGS/dockerd-before-restart-$RESTARTS.log.")
  say "the engine is down (${why:-no panic in its log}); starting it again"
  scripts/engine.sh up >&2
}
# Pruning under someone else's running build corrupts BuildKit 0.8's cache index ("index
# pointing to missing record") and can panic the daemon: wait (up to 5 minutes) until no
# other build runs. Cold rows check afterwards that their heavy step really ran.
prune() {
  local waited=0
  while [ "$(others_now)" -gt 0 ] && [ $waited -lt 300 ]; do
    [ $waited = 0 ] && say "waiting for other builds on this engine to end before pruning"
    sleep 5; waited=$((waited + 5))
  done
  [ $waited -gt 0 ] && NOTES+=("A prune waited ${waited} s for someone else's builds to end.")
  ensure_engine
  "$DOCKER" builder prune -af >/dev/null 2>&1 || say "warning: builder prune failed"
}

# dbuild NAME args...: one docker build, progress in $LOGS/NAME.log. Sets MS (wall time).
# When the engine died during the build: start it, run $RETRY_PREP (e.g. prune), retry once.
MS=0
RETRY_PREP=:
dbuild() {
  local name="$1" t0 rc try; shift
  for try in 1 2; do
    ensure_engine
    [ "$(others_now)" -gt 0 ] && DISTURBED=$((DISTURBED + 1))
    t0=$(now_ms)
    "$DOCKER" build --progress=plain "$@" >"$LOGS/$name.log" 2>&1
    rc=$?
    MS=$(( $(now_ms) - t0 ))
    [ $rc -eq 0 ] && break
    engine_ok && break
    cp "$LOGS/$name.log" "$LOGS/$name.engine-died.log"
    say "build $name: the engine died under it"
    [ $try = 1 ] && { ensure_engine; $RETRY_PREP; }
  done
  if [ $rc -ne 0 ]; then
    FAILED_BUILDS+=("$name")
    say "build $name FAILED (exit $rc); last lines of $LOGS/$name.log:"
    tail -n 12 "$LOGS/$name.log" | sed 's/^/    /' >&2
  else
    say "build $name: $MS ms"
  fi
  return $rc
}
# cold_ok LOG STEP: the step ran (a build after a prune may still find records that
# someone else's build kept alive); otherwise the sample is dropped with a note.
# turns I: who builds first in run I (they alternate, so neither always gets the warmer machine).
turns() { if [ $(($1 % 2)) = 1 ]; then echo "kiln peer"; else echo "peer kiln"; fi; }
# was_cached LOG STEP: the progress shows that step as CACHED.
was_cached() {
  local id
  for id in $(grep -F -- "$2" "$1" | sed -n 's/^#\([0-9]*\) .*/\1/p' | sort -u); do
    grep -qx "#$id CACHED" "$1" && return 0
  done
  return 1
}
cold_ok() {
  if was_cached "$1" "$2"; then
    NOTES+=("Dropped $(basename "$1" .log): after the prune its step [$2] was still CACHED.")
    say "dropping $(basename "$1" .log): [$2] was CACHED after the prune"
    return 1
  fi
  return 0
}
# cold_pair LOG_A LOG_B STEP: two builds started together share the step, so one of them
# runs it and the other one shows it CACHED; it must have run in one of them.
cold_pair() {
  { ! was_cached "$1" "$3" || ! was_cached "$2" "$3"; } && return 0
  cold_ok "$1" "$3"
}
KILN_HEAVY="uv install: core"
KILN_HEAVY_PIP="pip install: core"
PEER_HEAVY="pip install --no-cache-dir --timeout=1000 --retries=5 -r requirements/core.txt"
# kiln NAME VARIANT [SPEC] [docker build args...]
kiln() {
  local name="$1" v="$2" spec="${3:-$SPEC}"
  shift 3 2>/dev/null || shift $#
  dbuild "$name" -f "$spec" --target "$v" -t "bench/kiln:$v" "${KILN_ARGS[@]}" "${COMMON[@]}" "$@" "$CTX"
}
# peer NAME VARIANT [DOCKERFILE]
peer() {
  local name="$1" v="$2" df
  df="${3:-}"
  if [ -z "$df" ]; then df="PEER_$v"; df="${!df}"; fi
  dbuild "$name" -f "$df" -t "bench/peer:$v" "${COMMON[@]}" "$CTX"
}

# min and median of numbers on stdin ("- -" when there are none)
stats() {
  sort -g | awk '{a[NR] = $1}
    END { if (NR == 0) { print "- -"; exit }
          m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
          print a[1], m }'
}
fmt() { # value unit -> text
  case "$1" in -) echo "-"; return ;; esac
  case "$2" in
    s) awk -v v="$1" 'BEGIN { printf "%.1f s", v / 1000 }' ;;
    ms) awk -v v="$1" 'BEGIN { printf "%.0f ms", v }' ;;
    msf) awk -v v="$1" 'BEGIN { printf "%.2f ms", v }' ;;
    MB) awk -v v="$1" 'BEGIN { printf "%.0f MB", v }' ;;
  esac
}
# row_mm NAME UNIT "kmin kmed" "pmin pmed": one table row from ready min/median pairs.
row_mm() {
  local name="$1" unit="$2" kmin kmed pmin pmed ratio kcell pcell
  read -r kmin kmed <<<"$3"
  read -r pmin pmed <<<"$4"
  ratio=$(awk -v a="$kmed" -v b="$pmed" 'BEGIN { if (a == "-" || b == "-" || b + 0 <= 0) print "-"; else printf "%.2f", a / b }')
  if [ "$unit" = MB ]; then
    kcell=$(fmt "$kmed" MB); pcell=$(fmt "$pmed" MB)
  else
    kcell="$(fmt "$kmin" "$unit") / $(fmt "$kmed" "$unit")"
    pcell="$(fmt "$pmin" "$unit") / $(fmt "$pmed" "$unit")"
    [ "$kmin" = - ] && kcell="-"
    [ "$pmin" = - ] && pcell="-"
  fi
  ROWS+=("| $name | $kcell | $pcell | $ratio |")
  disturbed_note "$name"; DISTURBED=0
  say "row: $name | $kcell | $pcell | $ratio"
}
# row NAME UNIT "kiln samples" "peer samples" (samples in ms, or MB)
row() {
  row_mm "$1" "$2" "$(tr ' ' '\n' <<<"$3" | grep . | stats)" "$(tr ' ' '\n' <<<"$4" | grep . | stats)"
}
median() { tr ' ' '\n' <<<"$1" | grep . | stats | cut -d' ' -f2; }

# Seconds of one vertex in a plain progress log: the DONE line of the vertex named NAME.
step_secs() { # log name
  local ids id t
  ids=$(sed -n "s/^#\([0-9]*\) $2.*/\1/p" "$1" | sort -u)
  for id in $ids; do
    t=$(sed -n "s/^#$id DONE \([0-9.]*\)s$/\1/p" "$1" | tail -n 1)
    [ -n "$t" ] && { echo "$t"; return; }
  done
  echo 0
}
# The slowest vertices of a build: "name (N.Ns); ..." (what a miss is made of).
slowest() { # log [count]
  awk -v n="${2:-3}" '
    /^#[0-9]+ / && !($2 ~ /^(DONE|CACHED|ERROR|sha256:|[0-9.]+$)/) && !(substr($0, 1, index($0, " ")) in name) {
      id = substr($0, 1, index($0, " ") - 1); name[id " "] = substr($0, index($0, " ") + 1) }
    /^#[0-9]+ DONE [0-9.]+s$/ { id = $1; sub(/s$/, "", $3); t[id] = $3 }
    END { for (id in t) printf "%s\t%s\n", t[id], name[id " "] }' "$1" |
    sort -gr | head -n "${2:-3}" |
    awk -F'\t' '{ n = $2; gsub(/[ \t]+/, " ", n); if (length(n) > 70) n = substr(n, 1, 67) "..."
                  printf "%s%s (%.1f s)", (NR > 1 ? "; " : ""), n, $1 }'
}
# Lines the kiln frontend wrote to dockerd's log since line N (its stderr goes there).
dlog_lines() { [ -r "$DLOG" ] && wc -l <"$DLOG" || echo 0; }
dlog_since() { # N pattern
  [ -r "$DLOG" ] && tail -n +"$(( $1 + 1 ))" "$DLOG" | grep -a "$2"
}
export_ms() { awk -v s="$(step_secs "$1" "exporting to image")" 'BEGIN { printf "%d", s * 1000 }'; }

restore_ctx() { rm -rf "$CTX" && cp -r "$W/ctx.orig" "$CTX"; }
UNIQ=0
edit_app() { UNIQ=$((UNIQ + 1)); echo "# bench edit $UNIQ $(date +%s%N)" >>"$CTX/app/api.py"; }

# ---------------------------------------------------------------- cold builds
COLD_KILN_minimal=""
if [ "$MODE" = full ]; then
  RETRY_PREP=prune
  for v in minimal cuda; do
    scenario "cold build, $v"
    ks=""; ps=""
    for i in $(seq "$RUNS"); do
      # Alternate who goes first, so neither always meets a warmer network.
      for who in $(turns "$i"); do
        prune
        if [ "$who" = kiln ]; then kiln "cold-kiln-$v-$i" "$v" && cold_ok "$LOGS/cold-kiln-$v-$i.log" "$KILN_HEAVY" && ks+=" $MS"
        else peer "cold-peer-$v-$i" "$v" && cold_ok "$LOGS/cold-peer-$v-$i.log" "$PEER_HEAVY" && ps+=" $MS"; fi
      done
    done
    row "cold build, $v" s "$ks" "$ps"
    [ "$v" = minimal ] && COLD_KILN_minimal="$ks"
    NOTES+=("cold $v, slowest steps of the last run: kiln: $(slowest "$LOGS/cold-kiln-$v-$RUNS.log"); peer: $(slowest "$LOGS/cold-peer-$v-$RUNS.log")")
  done

  # Both variants from nothing: kiln's two builds at once (BuildKit runs the shared
  # vertices once), the peer's two Dockerfiles one after the other.
  scenario "both variants from cold"
  RETRY_PREP=:
  ks=""; ps=""
  for i in $(seq "$RUNS"); do
    for who in $(turns "$i"); do
      prune
      t0=$(now_ms)
      if [ "$who" = kiln ]; then
        [ "$(others_now)" -gt 0 ] && DISTURBED=$((DISTURBED + 1))
        kiln "both-kiln-minimal-$i" minimal & a=$!
        kiln "both-kiln-cuda-$i" cuda & b=$!
        wait $a; ra=$?; wait $b; rb=$?
        [ $ra = 0 ] || FAILED_BUILDS+=("both-kiln-minimal-$i")
        [ $rb = 0 ] || FAILED_BUILDS+=("both-kiln-cuda-$i")
        [ $ra = 0 ] && [ $rb = 0 ] && cold_pair "$LOGS/both-kiln-minimal-$i.log" "$LOGS/both-kiln-cuda-$i.log" "$KILN_HEAVY" &&
          ks+=" $(( $(now_ms) - t0 ))"
      else
        peer "both-peer-minimal-$i" minimal && peer "both-peer-cuda-$i" cuda &&
          cold_ok "$LOGS/both-peer-minimal-$i.log" "$PEER_HEAVY" && ps+=" $(( $(now_ms) - t0 ))"
      fi
    done
  done
  row "both variants from cold" s "$ks" "$ps"
  NOTES+=("both variants, slowest steps of the last run: kiln minimal: $(slowest "$LOGS/both-kiln-minimal-$RUNS.log" 2); kiln cuda: $(slowest "$LOGS/both-kiln-cuda-$RUNS.log" 2); peer cuda (after minimal): $(slowest "$LOGS/both-peer-cuda-$RUNS.log" 2)")
fi

# ---------------------------------------------------------------- warm scenarios
scenario "no-op rebuild"
say "warming the cache (minimal, both tools)"
kiln warm-kiln minimal || die "the kiln build of the example fails"
peer warm-peer minimal || die "the peer build of the example fails"
DISTURBED=0

ks=""; ps=""; kexp=""; pexp=""; front=""; defs=""
for i in $(seq "$RUNS"); do
  mark=$(dlog_lines)
  kiln "noop-kiln-$i" minimal && { ks+=" $MS"; kexp+=" $(export_ms "$LOGS/noop-kiln-$i.log")"; }
  front+=" $(dlog_since "$mark" 'kiln: frontend start to Return:' | tail -n 1 | awk '{print $(NF-1)}')"
  defs+=" $(dlog_since "$mark" 'kiln: definition for' | tail -n 1 | awk '{print $(NF-1) / 1000}')"
  peer "noop-peer-$i" minimal && { ps+=" $MS"; pexp+=" $(export_ms "$LOGS/noop-peer-$i.log")"; }
done
row "no-op rebuild" ms "$ks" "$ps"
NOOP_K=$(median "$ks"); NOOP_KEXP=$(median "$kexp")
NOTES+=("no-op: kiln median $NOOP_K ms, of which exporting $NOOP_KEXP ms (peer: $(median "$ps") ms, exporting $(median "$pexp") ms); kiln's frontend process, start to Return (its own log line): $(median "$front") ms, the definition in it: $(median "$defs") ms; the rest of kiln's time (client, session, the engine starting and stopping the frontend's container, cache lookups): $(awk -v a="$NOOP_K" -v b="$(median "$front")" 'BEGIN { printf "%.0f", a - b }') ms")

scenario "app-code change"
ks=""; ps=""; ns=""; kexp=""
for i in $(seq "$RUNS"); do
  edit_app
  kiln "app-kiln-$i" minimal && { ks+=" $MS"; kexp+=" $(export_ms "$LOGS/app-kiln-$i.log")"; }
  peer "app-peer-$i" minimal && ps+=" $MS"
  edit_app
  kiln "app-kiln-noverify-$i" minimal "$SPEC" --build-arg KILN_SKIP_VERIFY=1 && ns+=" $MS"
done
row "app-code change" ms "$ks" "$ps"
NOTES+=("app-code change: kiln median $(median "$ks") ms, of which exporting $(median "$kexp") ms; slowest steps of kiln's last run: $(slowest "$LOGS/app-kiln-$RUNS.log"); with --build-arg KILN_SKIP_VERIFY=1 kiln takes $(median "$ns") ms (median)")

if [ "$MODE" != smoke ]; then
  row "app-code change, kiln with KILN_SKIP_VERIFY=1" ms "$ns" "$ps"

  # One requirement added to core.txt (a different one each run, so no run meets a
  # layer an earlier run made), from a warm cache of the unedited context.
  scenario "one requirement added"
  restore_ctx
  kiln warm2-kiln minimal; peer warm2-peer minimal; DISTURBED=0
  REQS=(humanize==4.12.3 tabulate==0.9.0 toolz==1.0.0)
  ks=""; ps=""
  for i in $(seq "$RUNS"); do
    restore_ctx
    # The comment makes the file new to the engine even if an earlier bench added the
    # same package (quick mode does not prune).
    echo "${REQS[$(( (i - 1) % ${#REQS[@]} ))]}  # bench $(date +%s%N)" >>"$CTX/requirements/core.txt"
    for who in $(turns "$i"); do
      if [ "$who" = kiln ]; then kiln "req-kiln-$i" minimal && ks+=" $MS"
      else peer "req-peer-$i" minimal && ps+=" $MS"; fi
    done
  done
  restore_ctx
  row "one requirement added" s "$ks" "$ps"
  NOTES+=("one requirement added, slowest steps of the last run: kiln: $(slowest "$LOGS/req-kiln-$RUNS.log"); peer: $(slowest "$LOGS/req-peer-$RUNS.log")")

fi
if [ "$MODE" = full ]; then
  # One apt package added to the runtime packages (a different one each run). A spec
  # cannot carry a comment into the step the way a requirements file can, so this row
  # relies on the prune of the rows before it to start with no such step in the cache:
  # full mode only.
  scenario "one apt package added"
  APTS=(curl less file)
  ks=""; ps=""
  for i in $(seq "$RUNS"); do
    pkg=${APTS[$(( (i - 1) % ${#APTS[@]} ))]}
    sed "s/^  runtime: \[libpq5, libjpeg62-turbo\]\$/  runtime: [libpq5, libjpeg62-turbo, $pkg]/" "$SPEC" >"$W/apt.yaml"
    sed "s/--no-install-recommends libpq5 libjpeg62-turbo/& $pkg/" "$PEER_minimal" >"$W/Dockerfile.apt"
    if cmp -s "$SPEC" "$W/apt.yaml" || cmp -s "$PEER_minimal" "$W/Dockerfile.apt"; then
      die "the apt edit did not apply (spec or peer Dockerfile changed shape)"
    fi
    for who in $(turns "$i"); do
      if [ "$who" = kiln ]; then
        dbuild "apt-kiln-$i" -f "$W/apt.yaml" --target minimal -t bench/kiln:apt "${KILN_ARGS[@]}" "${COMMON[@]}" "$CTX" && ks+=" $MS"
      else
        dbuild "apt-peer-$i" -f "$W/Dockerfile.apt" -t bench/peer:apt "${COMMON[@]}" "$CTX" && ps+=" $MS"
      fi
    done
  done
  row "one apt package added (runtime)" s "$ks" "$ps"
  NOTES+=("one apt package added, slowest steps of the last run: kiln: $(slowest "$LOGS/apt-kiln-$RUNS.log"); peer: $(slowest "$LOGS/apt-peer-$RUNS.log")")
fi

if [ "$MODE" = full ]; then
  # installer: uv (the example's) against installer: pip, both kiln, cold, minimal. The
  # uv samples are the kiln cold-minimal builds of the first rows.
  scenario "uv vs pip"
  RETRY_PREP=prune
  sed 's/^  installer: uv .*$/  installer: pip/' "$SPEC" >"$W/pip.yaml"
  cmp -s "$SPEC" "$W/pip.yaml" && die "the installer edit did not apply"
  pips=""
  for i in $(seq "$RUNS"); do
    prune
    kiln "pip-kiln-$i" minimal "$W/pip.yaml" && cold_ok "$LOGS/pip-kiln-$i.log" "$KILN_HEAVY_PIP" && pips+=" $MS"
  done
  RETRY_PREP=:
  row "cold build, minimal: kiln \`installer: uv\` (left) vs kiln \`installer: pip\` (right)" s "$COLD_KILN_minimal" "$pips"
  NOTES+=("pip, slowest steps of the last run: $(slowest "$LOGS/pip-kiln-$RUNS.log")")
fi

# ---------------------------------------------------------------- images
INSIDE=()
if [ "$MODE" != smoke ]; then
  scenario "image size"
  restore_ctx
  VARIANTS=(minimal)
  [ "$MODE" = full ] && VARIANTS=(minimal cuda)
  BASE_PKGS="$W/base.pkgs"
  "$DOCKER" run --rm "$BASE" dpkg-query -W -f '${Package}\n' | sort >"$BASE_PKGS"
  # What an image holds that a lean runtime image should not.
  probe='c=$(command -v gcc cc c++ make 2>/dev/null | tr "\n" " "); echo "compiler=${c:-none}"
    if [ -e /root/.cache/pip ]; then echo "pipcache=$(du -sk /root/.cache/pip | cut -f1)KB"; else echo pipcache=absent; fi
    echo "debs=$(ls /var/cache/apt/archives/*.deb 2>/dev/null | wc -l)"
    echo "lists=$(find /var/lib/apt/lists -maxdepth 1 -type f ! -name lock 2>/dev/null | wc -l)"
    echo "pg_headers=$([ -d /usr/include/postgresql ] && echo yes || echo no)"
    echo "pyc=$(find /opt/venv /app -name "*.pyc" 2>/dev/null | wc -l)"'
  INSIDE+=("| image | size | compiler | -dev packages added to the base | /root/.cache/pip | .deb files / apt lists | libpq headers | .pyc files |")
  INSIDE+=("|---|---|---|---|---|---|---|---|")
  for v in "${VARIANTS[@]}"; do
    kiln "size-kiln-$v" "$v" >/dev/null; peer "size-peer-$v" "$v" >/dev/null
    sizes=()
    for tool in kiln peer; do
      img="bench/$tool:$v"
      sz=$("$DOCKER" image inspect -f '{{.Size}}' "$img" 2>/dev/null || echo 0)
      sizes+=("$(awk -v b="$sz" 'BEGIN { printf "%.1f", b / 1000000 }')")
      info=$("$DOCKER" run --rm -u 0 --entrypoint sh "$img" -c "$probe" 2>/dev/null)
      get() { sed -n "s/^$1=//p" <<<"$info"; }
      dev=$(comm -13 "$BASE_PKGS" <("$DOCKER" run --rm --entrypoint dpkg-query "$img" -W -f '${Package}\n' 2>/dev/null | sort) | grep -- '-dev$' | tr '\n' ' ')
      INSIDE+=("| $tool $v | $(fmt "${sizes[-1]}" MB) | $(get compiler) | ${dev:-none} | $(get pipcache) | $(get debs) / $(get lists) | $(get pg_headers) | $(get pyc) |")
    done
    row "image size, $v" MB "${sizes[0]}" "${sizes[1]}"
  done
  bsz=$("$DOCKER" image inspect -f '{{.Size}}' "$BASE")
  NOTES+=("The base image $BASE is $(awk -v b="$bsz" 'BEGIN { printf "%.0f", b / 1000000 }') MB.")
fi

# ---------------------------------------------------------------- frontend cost
# The frontend's own work, outside BuildKit: `kiln llb` (read, validate, plan, lower,
# marshal, write; process start included) against a process that does nothing.
if ! command -v hyperfine >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq hyperfine >/dev/null 2>&1 || true
fi
HF_RUNS=200
[ "$MODE" = smoke ] && HF_RUNS=30
# timeit OUT CMD...: "min median" in ms over many runs.
timeit() {
  local out="$1"; shift
  if command -v hyperfine >/dev/null; then
    # CSV columns: command,mean,stddev,median,user,system,min,max (seconds)
    hyperfine -N --warmup 10 --runs "$HF_RUNS" --export-csv "$out" "$*" >/dev/null 2>&1 &&
      awk -F, 'NR == 2 { print $7 * 1000, $4 * 1000 }' "$out" && return
  fi
  local xs="" t0 i
  for i in $(seq "$HF_RUNS"); do
    t0=$(date +%s%N); "$@" >/dev/null 2>&1; xs+=" $(( $(date +%s%N) - t0 ))"
  done
  tr ' ' '\n' <<<"$xs" | grep . | awk '{print $1 / 1000000}' | stats
}
TIMER=$(command -v hyperfine >/dev/null && echo "hyperfine -N, $HF_RUNS runs after 10 warm-ups" || echo "a date +%s%N loop, $HF_RUNS runs")
say "timing the frontend ($TIMER)"
TRUE_MM=$(timeit "$W/true.csv" /bin/true)
row_mm "\`kiln llb specs/worker.yaml --target cuda\` (left) vs \`/bin/true\` (right)" msf \
  "$(cd "$ROOT/examples/worker" && timeit "$W/llb-example.csv" "$KILN_BIN" llb "$ROOT/specs/worker.yaml" --target cuda)" "$TRUE_MM"
row_mm "kiln frontend, start to Return on a no-op build (its own log line)" msf "$(tr ' ' '\n' <<<"$front" | grep . | stats)" "- -"
row_mm "kiln frontend, definition of the example made (its own log line)" msf "$(tr ' ' '\n' <<<"$defs" | grep . | stats)" "- -"

# Synthetic specs of growing size: N inline requirement lines, V variants (each variant
# adds a group of its own on top of the shared one).
synth() { # lines variants file
  {
    printf 'version: 1\nname: synth\npython: {base: "python:3.12-slim", version: "3.12"}\n'
    printf 'system: {build: [build-essential, libpq-dev], runtime: [libpq5]}\n'
    printf 'requirements:\n  core:\n    packages:\n'
    for n in $(seq "$1"); do printf '      - "package-%d==1.%d.0"\n' "$n" "$n"; done
    for v in $(seq "$2"); do printf '  extra%d: {packages: ["extra-%d==0.%d"]}\n' "$v" "$v" "$v"; done
    printf 'app: {src: [app]}\nuser: {name: worker, uid: 10001}\ncmd: [python, -m, app]\n'
    printf 'verify: ["python -m app.health"]\nvariants:\n'
    for v in $(seq "$2"); do printf '  v%d: {requirements: [core, extra%d], env: {VARIANT: "v%d"}}\n' "$v" "$v" "$v"; done
    printf 'default_variant: v1\n'
  } >"$3"
}
SYN="$W/synth"; mkdir -p "$SYN/app"
LLB_NET=()
for size in "10 1" "100 1" "1000 1" "10 10" "10 50"; do
  read -r lines variants <<<"$size"
  f="$SYN/l$lines-v$variants.yaml"
  synth "$lines" "$variants" "$f"
  "$KILN_BIN" llb "$f" --target "v$variants" --context "$SYN" >/dev/null 2>"$LOGS/synth-$lines-$variants.err" ||
    { say "kiln llb failed on $f: $(head -n 5 "$LOGS/synth-$lines-$variants.err")"; FAILED_BUILDS+=("llb-$lines-$variants"); continue; }
  mm=$(timeit "$W/synth-$lines-$variants.csv" "$KILN_BIN" llb "$f" --target "v$variants" --context "$SYN")
  row_mm "\`kiln llb\`, $lines requirement lines, $variants variant(s) (left) vs \`/bin/true\` (right)" msf "$mm" "$TRUE_MM"
  LLB_NET+=("$lines lines/$variants variants: $(awk -v a="${mm#* }" -v b="${TRUE_MM#* }" 'BEGIN { printf "%.2f", a - b }') ms")
done
NOTES+=("kiln llb minus /bin/true (medians), the definition's own cost as the spec grows: $(printf '%s; ' "${LLB_NET[@]}" | sed 's/; $//')")

# ---------------------------------------------------------------- report
T_TOTAL=$(( $(date +%s) - T_START ))
{
  echo "| scenario | kiln min / median | peer min / median | kiln/peer (medians) |"
  echo "|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  if [ ${#INSIDE[@]} -gt 0 ]; then echo; printf '%s\n' "${INSIDE[@]}"; fi
  echo
  printf -- '- %s\n' "${NOTES[@]}"
  [ ${#FAILED_BUILDS[@]} -eq 0 ] || echo "- FAILED: ${FAILED_BUILDS[*]} (their samples are left out)"
  echo
  echo "Mode $MODE, $RUNS run(s) per docker scenario; frontend timings by $TIMER."
  echo "kiln: commit $(git rev-parse --short HEAD)$( [ -n "$(git status --porcelain -- src Cargo.toml Cargo.lock)" ] && echo ' plus uncommitted changes in src/')."
  echo "Machine: $(nproc) cores, $(free -m | awk '/^Mem:/ { printf "%.1f GiB", $2 / 1024 }'), $("$DOCKER" version --format 'Docker {{.Server.Version}}' 2>/dev/null), $(uname -r); $(date -u '+%Y-%m-%d %H:%M UTC'); bench took ${T_TOTAL} s. Logs: $LOGS"
} | tee "$ROOT/bench/results/latest.md"
[ ${#FAILED_BUILDS[@]} -eq 0 ]
