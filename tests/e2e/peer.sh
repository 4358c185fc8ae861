#!/usr/bin/env bash
# The benchmark peer on the real engine: builds bench/peer/Dockerfile.worker.minimal and
# bench/peer/Dockerfile.worker (context examples/worker, the CA bundle as the `pipca`
# build secret) and checks what the images promise: the core stack imports, the ML group
# is there in the full image, a non-root uid 10001, HEALTHCHECK and CMD, the NVIDIA env,
# no compiler and no CA bundle copy in the runtime image. Prints build times and sizes.
# Ends with "N passed, N failed"; exits non-zero on any failure.
#   tests/e2e/peer.sh [--no-cache]    --no-cache: every step runs (cold build times)
#   env KILN_PEER_TAG: image name, default kiln-peer/worker
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

EXTRA=()
case "${1:-}" in
  --no-cache) EXTRA=(--no-cache) ;;
  "") ;;
  *) echo "usage: $0 [--no-cache]" >&2; exit 2 ;;
esac

engine_up

TAG=${KILN_PEER_TAG:-kiln-peer/worker}
CA=/etc/ssl/certs/ca-certificates.crt
BASE=kiln-local/python:3.11
SUMMARY=()

# run_in IMG CMD...: the command's output (stdout and stderr) in a throwaway container.
run_in() { local img="$1"; shift; "$DOCKER" run --rm "$img" "$@" 2>&1; }

for v in minimal cuda; do
  df=bench/peer/Dockerfile.worker
  [ "$v" = minimal ] && df=bench/peer/Dockerfile.worker.minimal
  img="$TAG:$v"
  echo "== $img ($df)"
  if ! dbuild "peer-$v" -f "$df" -t "$img" --build-arg "PYTHON_IMAGE=$BASE" \
      --secret "id=pipca,src=$CA" "${EXTRA[@]}" examples/worker; then
    fail "build $img: see $E2E_WORK/logs/peer-$v.log"
    tail -n 15 "$E2E_WORK/logs/peer-$v.log" | sed 's/^/       /'
    continue
  fi
  ok "build $img"
  size=$("$DOCKER" image inspect -f '{{.Size}}' "$img")
  SUMMARY+=("$img: built in $((DBUILD_MS / 1000)).$((DBUILD_MS % 1000 / 100)) s, $((size / 1000000)) MB")

  out=$(run_in "$img" python -m app.health); rc=$?
  assert_eq "$v: python -m app.health exits 0 ($out)" 0 "$rc"
  assert_contains "$v: app.health says healthy" "$out" "healthy"
  assert_eq "$v: runs as uid 10001" 10001 "$(run_in "$img" id -u)"
  assert_eq "$v: HEALTHCHECK runs app.health" "[CMD python -m app.health]" \
    "$(config "$img" '{{.Config.Healthcheck.Test}}')"
  assert_eq "$v: CMD runs arq" "[arq app.worker.WorkerSettings]" "$(config "$img" '{{.Config.Cmd}}')"
  assert_eq "$v: no compiler in the runtime image" "" \
    "$(run_in "$img" sh -c 'command -v gcc cc make 2>/dev/null')"
  # Built from source: the extension links the system libpq (a -binary wheel bundles its own).
  assert_contains "$v: psycopg2 links Debian's libpq" "$(run_in "$img" sh -c \
    'ldd "$(python -c "import psycopg2._psycopg as m; print(m.__file__)")"')" "libpq.so.5 => /"
  # The CA bundle was a build secret: no file in the image has its bytes.
  sum=$(sha256sum "$CA" | cut -d' ' -f1)
  hits=$("$DOCKER" run --rm -u 0 "$img" sh -c \
    "find / -xdev -type f -size $(stat -c %s "$CA")c -exec sha256sum {} + 2>/dev/null | grep -c $sum")
  assert_eq "$v: no copy of the build-time CA bundle in the image" 0 "${hits:-0}"

  if [ "$v" = cuda ]; then
    out=$(run_in "$img" python -m app.gpu); rc=$?
    assert_eq "cuda: python -m app.gpu exits 0 ($out)" 0 "$rc"
    env=$(config "$img" '{{range .Config.Env}}{{println .}}{{end}}')
    assert_contains "cuda: NVIDIA_VISIBLE_DEVICES=all" "$env" "NVIDIA_VISIBLE_DEVICES=all"
    assert_contains "cuda: NVIDIA_DRIVER_CAPABILITIES" "$env" "NVIDIA_DRIVER_CAPABILITIES=compute,utility"
  else
    out=$(run_in "$img" python -c 'import numpy' ); rc=$?
    assert_eq "minimal: no ML group (numpy absent)" 1 "$rc"
  fi
done

echo
printf '  %s\n' "${SUMMARY[@]}" "base $BASE: $(( $(config "$BASE" '{{.Size}}') / 1000000 )) MB"
finish
