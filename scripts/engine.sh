#!/usr/bin/env bash
# The engine kiln builds on: Docker's embedded BuildKit, plus a local Python base image
# (no registry is reachable here). Idempotent; run as root on Debian; needs no stdin.
#   scripts/engine.sh [up]     install docker.io + debootstrap if missing, start dockerd,
#                              make kiln-local/python:3.11 (the default command)
#   scripts/engine.sh status   docker version and which kiln-local images exist
# Environment: KILN_ENGINE_CACHE (default /var/cache/kiln: debootstrap tarball, logs),
# KILN_DOCKERD_LOG (default /var/log/kiln-dockerd.log), KILN_DOCKERD_WAIT (seconds, default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
# debootstrap and dockerd live in sbin, which a CI shell's PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive

DOCKER=/usr/bin/docker
CACHE=${KILN_ENGINE_CACHE:-/var/cache/kiln}
LOG=${KILN_DOCKERD_LOG:-/var/log/kiln-dockerd.log}
BASE_OS=kiln-local/debian:bookworm
BASE_PY=kiln-local/python:3.11
BASE_DOCKERFILE=scripts/base/Dockerfile.python
MIRROR=http://deb.debian.org/debian
WAIT_S=${KILN_DOCKERD_WAIT:-60}

say() { echo "engine: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
answers() { "$DOCKER" version >/dev/null 2>&1; }

install_packages() {
  local need=()
  { [ -x "$DOCKER" ] && command -v dockerd >/dev/null; } || need+=(docker.io)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  [ ${#need[@]} -eq 0 ] && return
  [ "$(id -u)" = 0 ] || die "${need[*]} missing and not root: cannot apt-get install"
  say "installing ${need[*]} (apt-get)"
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null </dev/null \
    || die "apt-get install ${need[*]} failed"
  [ -x "$DOCKER" ] || die "docker.io installed but $DOCKER is missing"
}

start_dockerd() {
  answers && return
  local pid=""
  [ -s /var/run/docker.pid ] && pid=$(cat /var/run/docker.pid)
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
    say "dockerd (pid $pid) is running but not answering yet; waiting"
  else
    say "starting dockerd (log: $LOG)"
    mkdir -p "$(dirname "$LOG")"
    # setsid + nohup: dockerd outlives this script and its session; fd 9 (our lock) closed.
    # -w: should setsid need to fork, $! still lives exactly as long as dockerd.
    setsid -w nohup dockerd >>"$LOG" 2>&1 </dev/null 9>&- &
    pid=$!
  fi
  local waited=0
  until answers; do
    if [ "$waited" -ge "$WAIT_S" ]; then
      say "dockerd did not answer within ${WAIT_S} s; last lines of $LOG:"
      tail -n 40 "$LOG" >&2 2>/dev/null || true
      die "no Docker engine"
    fi
    if ! kill -0 "$pid" 2>/dev/null && ! answers; then
      say "dockerd exited; last lines of $LOG:"
      tail -n 40 "$LOG" >&2 2>/dev/null || true
      die "dockerd exited during startup"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  say "dockerd answers after ${waited} s"
}

# The Debian rootfs, made once and kept as a tarball: a rerun imports it in seconds.
debian_rootfs() {
  local tarball="$CACHE/bookworm-minbase.tar" root
  if [ ! -s "$tarball" ]; then
    say "debootstrap --variant=minbase bookworm (about a minute; log $CACHE/debootstrap.log)"
    root=$(mktemp -d /tmp/kiln-rootfs.XXXXXX)
    if ! debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
      tail -n 20 "$CACHE/debootstrap.log" >&2
      rm -rf "$root"
      die "debootstrap failed"
    fi
    tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  echo "$tarball"
}

make_base() {
  # The Python image is rebuilt when its Dockerfile changes: a hash of it labels the image.
  local want have tarball
  want=$(sha256sum "$BASE_DOCKERFILE" | cut -c1-16)
  have=$("$DOCKER" image inspect -f '{{index .Config.Labels "dev.kiln.base"}}' "$BASE_PY" 2>/dev/null || true)
  [ "$want" = "$have" ] && return
  if ! "$DOCKER" image inspect "$BASE_OS" >/dev/null 2>&1; then
    tarball=$(debian_rootfs)
    say "importing $BASE_OS"
    "$DOCKER" import "$tarball" "$BASE_OS" >/dev/null || die "docker import failed"
  fi
  say "building $BASE_PY from $BASE_DOCKERFILE (Debian's Python, standing in for python:3.x-slim)"
  if ! DOCKER_BUILDKIT=1 "$DOCKER" build --progress=plain -f "$BASE_DOCKERFILE" -t "$BASE_PY" \
      --build-arg "BASE=$BASE_OS" --label "dev.kiln.base=$want" scripts/base \
      >"$CACHE/base-build.log" 2>&1 </dev/null; then
    tail -n 25 "$CACHE/base-build.log" >&2
    die "building $BASE_PY failed (log $CACHE/base-build.log)"
  fi
}

status() {
  local rc=0 img
  echo "client: $("$DOCKER" version --format '{{.Client.Version}}' 2>/dev/null || echo "missing ($DOCKER)")"
  if answers; then
    echo "server: $("$DOCKER" version --format 'Docker {{.Server.Version}}, API {{.Server.APIVersion}}')"
  else
    echo "server: not answering (start it with: $0 up)"
    return 1
  fi
  for img in "$BASE_OS" "$BASE_PY"; do
    if "$DOCKER" image inspect "$img" >/dev/null 2>&1; then
      echo "image: $img $("$DOCKER" image inspect -f '{{.Id}} {{.Size}}' "$img" | awk '{ printf "%.19s %d MB", $1, $2 / 1000000 }')"
    else
      echo "image: $img missing"; rc=1
    fi
  done
  "$DOCKER" image ls --format '{{.Repository}}:{{.Tag}}' | grep -E '^kiln' | grep -vxF -e "$BASE_OS" -e "$BASE_PY" \
    | sed 's/^/other: /' || true
  return $rc
}

case "${1:-up}" in
  up)
    install_packages
    mkdir -p "$CACHE"
    # One `up` at a time (CI jobs, tests and the benchmark may all call it).
    exec 9>"$CACHE/engine.lock"
    flock 9
    start_dockerd
    make_base
    say "ready: $("$DOCKER" version --format 'Docker {{.Server.Version}}'), base image $BASE_PY"
    ;;
  status) status ;;
  -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) echo "usage: $0 [up|status]" >&2; exit 2 ;;
esac
