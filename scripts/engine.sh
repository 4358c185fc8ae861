#!/usr/bin/env bash
# The engine kiln builds on: Docker's embedded BuildKit, plus a local Python base image
# (no registry is reachable here). Idempotent; run as root on Debian.
#   scripts/engine.sh up       install docker.io + debootstrap if missing, start dockerd,
#                              make kiln-local/python:3.11 (default)
#   scripts/engine.sh status   what runs and which images exist
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=/usr/bin/docker
CACHE=${KILN_ENGINE_CACHE:-/var/cache/kiln}
LOG=${KILN_DOCKERD_LOG:-/var/log/kiln-dockerd.log}
BASE_OS=kiln-local/debian:bookworm
BASE_PY=kiln-local/python:3.11
say() { echo "engine: $*" >&2; }

install_packages() {
  local need=()
  [ -x "$DOCKER" ] || need+=(docker.io)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  [ ${#need[@]} -eq 0 ] && return
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
}

start_dockerd() {
  if "$DOCKER" version >/dev/null 2>&1; then return; fi
  say "starting dockerd (log: $LOG)"
  mkdir -p "$(dirname "$LOG")"
  setsid nohup dockerd >"$LOG" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    if "$DOCKER" version >/dev/null 2>&1; then say "dockerd is up"; return; fi
    sleep 1
  done
  say "dockerd did not answer within 60 s; last lines of $LOG:"
  tail -n 30 "$LOG" >&2 || true
  exit 1
}

make_base() {
  # Rebuilt when scripts/base/Dockerfile changes (its hash is a label on the image).
  local want have
  want=$(sha256sum scripts/base/Dockerfile | cut -c1-16)
  have=$("$DOCKER" image inspect -f '{{index .Config.Labels "dev.kiln.base"}}' "$BASE_PY" 2>/dev/null || true)
  if [ "$want" = "$have" ]; then return; fi
  if ! "$DOCKER" image inspect "$BASE_OS" >/dev/null 2>&1; then
    local tarball="$CACHE/bookworm-minbase.tar"
    if [ ! -s "$tarball" ]; then
      say "debootstrap bookworm (about a minute)"
      local root; root="$(mktemp -d)"
      debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$CACHE.debootstrap.log" 2>&1 \
        || { tail -n 20 "$CACHE.debootstrap.log" >&2; exit 1; }
      mkdir -p "$CACHE"
      tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
      rm -rf "$root"
    fi
    say "importing $BASE_OS"
    "$DOCKER" import "$tarball" "$BASE_OS" >/dev/null
  fi
  say "building $BASE_PY (Debian's Python, standing in for python:3.x-slim)"
  DOCKER_BUILDKIT=1 "$DOCKER" build -q -t "$BASE_PY" --build-arg BASE="$BASE_OS" --label "dev.kiln.base=$want" scripts/base >/dev/null
}

case "${1:-up}" in
  up)
    install_packages
    start_dockerd
    make_base
    say "ready: $("$DOCKER" version --format 'Docker {{.Server.Version}}'), base $BASE_PY"
    ;;
  status)
    "$DOCKER" version --format 'Docker {{.Server.Version}}' || { echo "dockerd is not running"; exit 1; }
    "$DOCKER" image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^kiln' || true
    ;;
  *) echo "usage: $0 [up|status]" >&2; exit 2 ;;
esac
