#!/usr/bin/env bash
# The engines kiln builds on, and the local Python base image (no registry is reachable
# here). Idempotent; run as root on Debian; needs no stdin. One `up` at a time (flock).
#   scripts/engine.sh up [NAME]       start engine NAME (default docker20), installing what it
#                                     needs; every engine gets kiln-local/python:3.11
#   scripts/engine.sh env NAME        shell settings for NAME's client: eval "$(scripts/engine.sh env NAME)"
#                                     (DOCKER_HOST, DOCKER_CONFIG with its buildx, PATH)
#   scripts/engine.sh frontend NAME TAG   build the frontend (scripts/frontend-image.sh
#                                     kiln/frontend:TAG) and make it pullable on NAME; prints
#                                     the name for `# syntax=` (localhost:5000/kiln/frontend:TAG)
#   scripts/engine.sh base-arm64      the arm64 Python rootfs (debootstrap --foreign, second stage
#                                     under qemu-user-static; 6 to 13 minutes once, then cached);
#                                     prints its tarball's path
#   scripts/engine.sh multiarch NAME  a linux/amd64+linux/arm64 Python base in NAME's registry
#                                     (base-arm64 first when needed); prints localhost:5000/kiln-local/python:3.11
#   scripts/engine.sh status [NAME]   versions, images; without NAME docker20 and a line per engine
#   scripts/engine.sh down NAME [--volumes|--purge]   stop and remove NAME's container; its
#                                     volume (images, build cache) stays unless --volumes; --purge
#                                     also drops the cached rootfs, client and images (next up from nothing)
#   scripts/engine.sh reclaim         on every running engine: removes the images built on
#                                     kiln's local base (not the base) and trims the build cache
#                                     to KILN_RECLAIM_KEEP (default 2GB); prints what it freed
# Engines:
#   docker20              the host's dockerd: Debian bookworm docker.io 20.10 (BuildKit 0.8), no buildx
#   docker26              Debian trixie docker.io 26.1 + buildx 0.13, containerd image store
#   docker26-graphdriver  the same with the classic overlay2 image store
#   docker28              Debian sid docker.io 28.5 + buildx 0.29, containerd image store
#   docker28-graphdriver  the same with the classic overlay2 image store
#   docker20-dind         Debian bookworm docker.io 20.10 (the host's engine) in a container of
#                         its own, no buildx: for loads that may crash it (its BuildKit 0.8
#                         panics the whole dockerd, see docs/security.md "Engine faults")
# Every engine but docker20 runs in a container on docker20 (docker-in-docker, --restart
# unless-stopped) with a registry on its localhost:5000; its socket is /run/kiln/NAME/docker.sock.
# Environment: KILN_ENGINE_CACHE (default /var/cache/kiln: rootfs tarballs, clients, logs),
# KILN_DOCKERD_LOG (default /var/log/kiln-dockerd.log), KILN_DOCKERD_WAIT (seconds, default 60).
set -euo pipefail
CALLER_PATH=$PATH
ENGINE_ARGS="$*"
# Every plain "$DOCKER" call below means the host's dockerd, even from a shell where
# `eval "$(scripts/engine.sh env NAME)"` pointed DOCKER_HOST at an engine.
export DOCKER_HOST=unix:///var/run/docker.sock
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
ENGINES="docker20 docker20-dind docker26 docker26-graphdriver docker28 docker28-graphdriver"
RUN_DIR=/run/kiln
# The engine fetches HTTP sources itself (a lock's wheels): it trusts what this machine
# trusts, as a daemon behind a TLS-inspecting proxy must (TLS is intercepted here).
HOST_CA=/etc/ssl/certs/ca-certificates.crt

say() { echo "engine: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
answers() { "$DOCKER" version >/dev/null 2>&1; }

# flock FD on FILE (opened for appending on FD, so that no waiter empties it), saying first
# what it waits for when another process holds it: the holder writes its pid and command
# line into FILE once it has the lock.
wait_lock() { # wait_lock FD FILE WHAT
  local fd=$1 file=$2 what=$3 holder start=$SECONDS
  if ! flock -n "$fd"; then
    holder=$(head -c 300 "$file" 2>/dev/null | head -n 1) || true
    say "waiting for $what${holder:+ ($holder)} to finish: one at a time (lock $file)"
    flock "$fd"
    say "lock $file free after $((SECONDS - start)) s"
  fi
  printf 'pid %s: %s\n' "$$" "$0 $ENGINE_ARGS" >"$file"
}

# apt-get install on this machine, one engine.sh at a time (an `up` and `base-arm64` may
# both install); the install also waits up to 5 minutes for dpkg's lock
# (DPkg::Lock::Timeout) should another apt or dpkg on the machine hold it.
apt_install() { # apt_install PACKAGE...
  [ "$(id -u)" = 0 ] || die "$* missing and not root: cannot apt-get install"
  mkdir -p "$CACHE"
  exec 7>>"$CACHE/apt.lock"
  wait_lock 7 "$CACHE/apt.lock" "another scripts/engine.sh installing packages"
  say "installing $* (apt-get)"
  apt-get update -qq || die "apt-get update failed"
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$@" >/dev/null </dev/null \
    || die "apt-get install $* failed"
  exec 7>&-
}

install_packages() {
  local need=()
  { [ -x "$DOCKER" ] && command -v dockerd >/dev/null; } || need+=(docker.io)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  [ ${#need[@]} -eq 0 ] && return
  apt_install "${need[@]}"
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

host_up() {
  mkdir -p "$CACHE"
  # One `up` at a time (CI jobs, tests and the benchmark may all call it), from before
  # anything is installed: a second `up` waits for the first, then finds it all there.
  exec 9>>"$CACHE/engine.lock"
  wait_lock 9 "$CACHE/engine.lock" "another scripts/engine.sh up"
  install_packages
  start_dockerd
  make_base
}

# ---- engines in containers: Docker from a Debian suite, in a container on docker20 ----

known_engine() {
  case " $ENGINES " in *" $1 "*) ;; *) die "unknown engine '$1' (engines: $ENGINES)" ;; esac
}
suite_of() { case "$1" in docker20-dind) echo bookworm ;; docker26*) echo trixie ;; docker28*) echo sid ;; esac; }
# 20.10 has only the classic store.
store_of() { case "$1" in *-graphdriver|docker20-dind) echo graphdriver ;; *) echo containerd ;; esac; }
# The major.minor the name promises: a suite that moved on fails `up` instead of lying.
want_version() { case "$1" in docker20-dind) echo 20.10 ;; docker26*) echo 26.1 ;; docker28*) echo 28.5 ;; esac; }
packages_of() { # packages_of SUITE
  # git: BuildKit's git sources. qemu-user-static joins this list with arm64 (its binfmt
  # registration goes in init.sh). bookworm's docker.io holds its CLI and has no buildx.
  case "$1" in
    bookworm) echo "docker.io containerd runc tini iptables docker-registry git" ;;
    *) echo "docker.io docker-cli docker-buildx containerd runc tini iptables docker-registry git" ;;
  esac
}
container_of() { echo "kiln-engine-$1"; }
volume_of() { echo "kiln-engine-$1"; }
sock_of() { echo "$RUN_DIR/$1/docker.sock"; }
# The rootfs recipe's identity: a change to the suite or the package list makes a new one.
rootfs_key() { printf 'v1 %s %s' "$1" "$(packages_of "$1")" | sha256sum | cut -c1-12; }
# The engine image's identity: its rootfs plus the files scripts/engines adds.
image_key() {
  { rootfs_key "$1"; cat scripts/engines/Dockerfile scripts/engines/init.sh scripts/engines/registry.yml; } \
    | sha256sum | cut -c1-12
}
inner() { # inner NAME docker-args...: the host's client, talking to NAME's dockerd
  local name=$1; shift
  "$DOCKER" -H "unix://$(sock_of "$name")" "$@"
}
inner_answers() { inner "$1" version >/dev/null 2>&1; }

# Debian SUITE with Docker installed, as a tarball in the cache (made once per recipe).
engine_rootfs() {
  local suite=$1 key tarball root log
  key=$(rootfs_key "$suite")
  tarball="$CACHE/engines/rootfs-$suite-$key.tar"
  log="$CACHE/engines/rootfs-$suite.log"
  [ -s "$tarball" ] && { echo "$tarball"; return; }
  mkdir -p "$CACHE/engines"
  root=$(mktemp -d "/tmp/kiln-engine-$suite.XXXXXX")
  say "debootstrap --variant=minbase $suite, then $(packages_of "$suite" | wc -w) packages in a chroot (a few minutes; log $log)"
  if ! debootstrap --variant=minbase --include=ca-certificates "$suite" "$root" "$MIRROR" >"$log" 2>&1; then
    tail -n 20 "$log" >&2; rm -rf "$root"; die "debootstrap $suite failed (log $log)"
  fi
  # No service starts in the chroot (policy-rc.d 101). /proc is mounted for the maintainer
  # scripts but /proc/sys is read-only: a postinst applying sysctls must not reach the host.
  # Private mounts in their own namespace vanish with it. sid's Release file may be past
  # its Valid-Until on the mirror.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod +x "$root/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # shellcheck disable=SC2016
  if ! unshare --mount --propagation private sh -euc '
      root=$1; shift
      mount -t proc proc "$root/proc"
      mount --bind "$root/proc/sys" "$root/proc/sys"
      mount -o remount,bind,ro "$root/proc/sys" "$root/proc/sys"
      chroot "$root" apt-get -o Acquire::Check-Valid-Until=false update
      chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
      chroot "$root" apt-get clean
    ' sh "$root" $(packages_of "$suite") >>"$log" 2>&1 </dev/null; then
    tail -n 20 "$log" >&2; rm -rf "$root"; die "installing Docker in the $suite chroot failed (log $log)"
  fi
  rm -rf "$root"/var/lib/apt/lists/* "$root/usr/sbin/policy-rc.d"
  : >"$root/etc/resolv.conf"
  # shellcheck disable=SC2046
  chroot "$root" dpkg-query -W $(packages_of "$suite") >"$CACHE/engines/rootfs-$suite-$key.versions"
  tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  rm -rf "$root"
  echo "$tarball"
}

# The client side on the host: NAME's docker CLI and buildx plugin (when its suite has
# one), from its rootfs.
engine_client() {
  local name=$1 suite key dir tarball
  suite=$(suite_of "$name"); key=$(rootfs_key "$suite")
  dir="$CACHE/engines/client-$suite-$key"
  if [ ! -x "$dir/bin/docker" ]; then
    tarball=$(engine_rootfs "$suite")
    rm -rf "$dir.tmp"; mkdir -p "$dir.tmp/bin" "$dir.tmp/cli-plugins"
    tar -xOf "$tarball" ./usr/bin/docker >"$dir.tmp/bin/docker"
    chmod +x "$dir.tmp/bin/docker"
    if tar -tf "$tarball" ./usr/libexec/docker/cli-plugins/docker-buildx >/dev/null 2>&1; then
      tar -xOf "$tarball" ./usr/libexec/docker/cli-plugins/docker-buildx >"$dir.tmp/cli-plugins/docker-buildx"
      chmod +x "$dir.tmp/cli-plugins/docker-buildx"
    fi
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
  fi
  # Per engine: PATH directory and DOCKER_CONFIG (buildx keeps its state there).
  mkdir -p "$CACHE/engines/$name/config"
  ln -sfn "$dir/bin" "$CACHE/engines/$name/bin"
  ln -sfn "$dir/cli-plugins" "$CACHE/engines/$name/config/cli-plugins"
}

engine_image() {
  local name=$1 suite rkey ikey root img tarball have
  suite=$(suite_of "$name"); rkey=$(rootfs_key "$suite"); ikey=$(image_key "$suite")
  root="kiln-local/engine-root:$suite"; img="kiln-local/engine:$suite"
  have=$("$DOCKER" image inspect -f '{{index .Config.Labels "dev.kiln.engine"}}' "$img" 2>/dev/null || true)
  if [ "$have" != "$ikey" ]; then
    have=$("$DOCKER" image inspect -f '{{index .Config.Labels "dev.kiln.rootfs"}}' "$root" 2>/dev/null || true)
    if [ "$have" != "$rkey" ]; then
      tarball=$(engine_rootfs "$suite")
      say "importing $root"
      "$DOCKER" import -c "LABEL dev.kiln.rootfs=$rkey" "$tarball" "$root" >/dev/null || die "docker import $root failed"
    fi
    say "building $img"
    DOCKER_BUILDKIT=1 "$DOCKER" build -q --build-arg "ROOT=$root" --label "dev.kiln.engine=$ikey" \
      -t "$img" scripts/engines >/dev/null </dev/null || die "building $img failed"
  fi
  echo "$img"
}

engine_start() {
  local name=$1 img ikey c have state waited=0
  # "-ca1": containers made before the CA mount below are replaced once.
  img=$(engine_image "$name"); ikey="$(image_key "$(suite_of "$name")")-ca1"
  c=$(container_of "$name")
  have=$("$DOCKER" container inspect -f '{{index .Config.Labels "dev.kiln.engine"}}' "$c" 2>/dev/null || true)
  if [ -n "$have" ] && [ "$have" != "$ikey" ]; then
    say "$c runs an older engine image: replacing it (its volume $(volume_of "$name") stays)"
    "$DOCKER" rm -f "$c" >/dev/null
    have=""
  fi
  if [ -z "$have" ]; then
    say "starting $c ($(store_of "$name") image store; socket $(sock_of "$name"))"
    mkdir -p "$RUN_DIR/$name"
    # Docker in Docker without --privileged (refused here: no CAP_SYS_RESOURCE to grant):
    # every other capability, no seccomp/AppArmor filter, writable /proc/sys and cgroups.
    # /var/lib/docker on a volume: overlayfs cannot sit on the container's overlay root.
    "$DOCKER" run -d --name "$c" --hostname "kiln-$name" --init --restart unless-stopped \
      --label "dev.kiln.engine=$ikey" --label "dev.kiln.engine.name=$name" \
      --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined \
      --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
      -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
      -v "$(volume_of "$name"):/var/lib/docker" -v "$RUN_DIR/$name:/run/kiln" \
      -v "$HOST_CA:/etc/ssl/certs/ca-certificates.crt:ro" \
      -e "KILN_ENGINE=$name" -e "KILN_STORE=$(store_of "$name")" \
      "$img" >/dev/null || die "docker run $c failed"
  else
    state=$("$DOCKER" container inspect -f '{{.State.Status}}' "$c")
    if [ "$state" != running ]; then
      say "$c is $state: starting it"
      mkdir -p "$RUN_DIR/$name"
      "$DOCKER" start "$c" >/dev/null || die "docker start $c failed"
    fi
  fi
  until inner_answers "$name" && "$DOCKER" exec "$c" bash -c 'exec 3<>/dev/tcp/127.0.0.1/5000' 2>/dev/null; do
    if [ "$waited" -ge "$WAIT_S" ] || [ "$("$DOCKER" container inspect -f '{{.State.Running}}' "$c")" != true ]; then
      say "$name did not come up within ${waited} s; last lines of docker logs $c:"
      "$DOCKER" logs --tail 40 "$c" >&2 2>&1 || true
      die "no $name engine"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  local version
  version=$(inner "$name" version --format '{{.Server.Version}}')
  case "$version" in
    "$(want_version "$name")".*) ;;
    *) die "$name runs Docker $version, not $(want_version "$name").x: Debian's $(suite_of "$name") moved on; update engine.sh" ;;
  esac
}

# kiln-local/python:3.11 in NAME's image store, copied from the host when its id changed.
engine_base() {
  local name=$1 id mark
  id=$("$DOCKER" image inspect -f '{{.Id}}' "$BASE_PY")
  mark="$CACHE/engines/$name/base-id"
  if [ "$(cat "$mark" 2>/dev/null)" = "$id" ] && inner "$name" image inspect "$BASE_PY" >/dev/null 2>&1; then
    return
  fi
  say "copying $BASE_PY to $name (docker save | docker load)"
  "$DOCKER" save "$BASE_PY" | inner "$name" load -q >/dev/null || die "loading $BASE_PY into $name failed"
  echo "$id" >"$mark"
}

engine_up() {
  local name=$1 start=$SECONDS
  known_engine "$name"
  host_up
  if [ "$name" = docker20 ]; then
    say "ready: $("$DOCKER" version --format 'Docker {{.Server.Version}}'), base image $BASE_PY"
    return
  fi
  engine_client "$name"
  engine_start "$name"
  engine_base "$name"
  say "ready: $name, $(inner "$name" version --format 'Docker {{.Server.Version}}'), $(store_of "$name") store, base image $BASE_PY ($((SECONDS - start)) s)"
}

# ---- arm64: the Python base for linux/arm64, run under emulation (qemu-user-static) ----
# No arm64 machine or registry here: Debian's arm64 Python comes from `debootstrap --foreign`
# (first stage on the host) and its second stage run under qemu (6 to 13 minutes on 2 cores),
# kept as a tarball per recipe; `multiarch NAME` joins it with the amd64 base in NAME's registry.
ARM64_PACKAGES="python3 python3-venv python3-pip python3-dev python-is-python3 ca-certificates"
# Dockerfile.python's ENV and CMD, given to the arm64 import.
ARM64_CHANGES=(-c "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" -c "ENV LANG=C.UTF-8" -c 'CMD ["python3"]')
MULTIARCH_REF=localhost:5000/kiln-local/python:3.11
arm64_key() { printf 'v1 bookworm arm64 %s' "$ARM64_PACKAGES" | sha256sum | cut -c1-12; }

# qemu-aarch64 in the kernel's binfmt_misc, with F (the interpreter is opened now, so it
# works in every container and chroot). The registration is the kernel's: it does not
# survive a reboot, so every call checks it (cheap).
binfmt_arm64() {
  local conf=/usr/lib/binfmt.d/qemu-aarch64.conf dir=/proc/sys/fs/binfmt_misc
  [ -s "$conf" ] || apt_install qemu-user-static
  [ -e "$dir/register" ] || mount -t binfmt_misc binfmt_misc "$dir" || die "cannot mount binfmt_misc on $dir"
  if [ ! -e "$dir/qemu-aarch64" ]; then
    say "registering qemu-aarch64 in binfmt_misc"
    cat "$conf" >"$dir/register" || die "registering qemu-aarch64 in binfmt_misc failed"
  fi
  grep -qx enabled "$dir/qemu-aarch64" || die "qemu-aarch64 is registered but not enabled ($dir/qemu-aarch64)"
}

# The arm64 Python rootfs as a tarball in the cache (made once per recipe; its own lock,
# so that engines' `up` never waits for it). Prints its path.
arm64_rootfs() {
  local key tarball log root start=$SECONDS
  key=$(arm64_key)
  tarball="$CACHE/python-arm64-$key.tar"
  log="$CACHE/python-arm64.log"
  mkdir -p "$CACHE"
  exec 8>>"$CACHE/arm64.lock"
  wait_lock 8 "$CACHE/arm64.lock" "another scripts/engine.sh making the arm64 rootfs"
  if [ ! -s "$tarball" ]; then
    install_packages
    binfmt_arm64
    root=$(mktemp -d /tmp/kiln-arm64.XXXXXX)
    say "debootstrap --arch=arm64 --foreign bookworm + Python, then its second stage under qemu (6 to 13 minutes; log $log)"
    if ! debootstrap --arch=arm64 --foreign --variant=minbase --include="${ARM64_PACKAGES// /,}" \
        bookworm "$root" "$MIRROR" >"$log" 2>&1; then
      tail -n 20 "$log" >&2; rm -rf "$root"; die "debootstrap --arch=arm64 --foreign failed (log $log)"
    fi
    # The second stage mounts /proc in the chroot: in a mount namespace of its own.
    if ! unshare --mount --propagation private chroot "$root" /debootstrap/debootstrap --second-stage \
        >>"$log" 2>&1 </dev/null; then
      tail -n 20 "$log" >&2; rm -rf "$root"; die "the arm64 second stage failed (log $log)"
    fi
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
    chroot "$root" python3 -c 'import platform; print("arm64 rootfs: python", platform.python_version(), platform.machine())' >>"$log" 2>&1 \
      || { tail -n 5 "$log" >&2; rm -rf "$root"; die "python3 does not run in the arm64 rootfs (log $log)"; }
    tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
    say "arm64 Python rootfs made in $((SECONDS - start)) s: $tarball"
  fi
  exec 8>&-
  echo "$tarball"
}

# A multi-platform Python base (linux/amd64: kiln-local/python:3.11; linux/arm64: the
# rootfs above) in NAME's registry as $MULTIARCH_REF. Idempotent: redone only when either
# half changed or the registry lost it (a new engine container has an empty registry).
engine_multiarch() {
  local name=$1 c tarball want mark
  known_engine "$name"
  case "$name" in docker20*) die "$name has no buildx: use a modern engine (docker26, docker28)" ;; esac
  inner_answers "$name" || die "$name does not answer: run $0 up $name"
  c=$(container_of "$name")
  tarball=$(arm64_rootfs)
  binfmt_arm64
  want="$(inner "$name" image inspect -f '{{.Id}}' "$BASE_PY") $(arm64_key)"
  mark="$CACHE/engines/$name/multiarch"
  if [ "$(cat "$mark" 2>/dev/null)" = "$want" ] \
      && "$DOCKER" exec "$c" docker buildx imagetools inspect "$MULTIARCH_REF" >/dev/null 2>&1; then
    echo "$MULTIARCH_REF"; return
  fi
  say "pushing $MULTIARCH_REF (linux/amd64, linux/arm64) to $name's registry"
  inner "$name" tag "$BASE_PY" "$MULTIARCH_REF-amd64"
  inner "$name" import --platform linux/arm64 "${ARM64_CHANGES[@]}" - "$MULTIARCH_REF-arm64" <"$tarball" >/dev/null \
    || die "importing the arm64 rootfs into $name failed"
  inner "$name" push -q "$MULTIARCH_REF-amd64" >/dev/null || die "pushing $MULTIARCH_REF-amd64 in $name failed"
  inner "$name" push -q "$MULTIARCH_REF-arm64" >/dev/null || die "pushing $MULTIARCH_REF-arm64 in $name failed"
  "$DOCKER" exec "$c" docker buildx imagetools create -t "$MULTIARCH_REF" "$MULTIARCH_REF-amd64" "$MULTIARCH_REF-arm64" >&2 \
    || die "docker buildx imagetools create $MULTIARCH_REF in $name failed"
  inner "$name" rmi "$MULTIARCH_REF-amd64" "$MULTIARCH_REF-arm64" >/dev/null
  mkdir -p "$(dirname "$mark")"
  echo "$want" >"$mark"
  echo "$MULTIARCH_REF"
}

# PATH without the engine bin directories an earlier `env` put there.
caller_path() {
  local out="" dir
  local IFS=:
  for dir in $CALLER_PATH; do
    case "$dir" in "$CACHE"/engines/*/bin) continue ;; esac
    out="${out:+$out:}$dir"
  done
  echo "$out"
}

engine_env() {
  local name=$1
  known_engine "$name"
  echo "export DOCKER_BUILDKIT=1"
  if [ "$name" = docker20 ]; then
    echo "export DOCKER_HOST=unix:///var/run/docker.sock"
    case "${DOCKER_CONFIG:-}" in "$CACHE"/engines/*) echo "unset DOCKER_CONFIG" ;; esac
    printf 'export PATH=%q\n' "/usr/bin:$(caller_path)"
    return
  fi
  [ -x "$CACHE/engines/$name/bin/docker" ] || die "no client for $name yet: run $0 up $name"
  inner_answers "$name" || say "warning: $name does not answer (start it with: $0 up $name)"
  echo "export DOCKER_HOST=unix://$(sock_of "$name")"
  printf 'export DOCKER_CONFIG=%q\n' "$CACHE/engines/$name/config"
  printf 'export PATH=%q\n' "$CACHE/engines/$name/bin:$(caller_path)"
}

engine_frontend() {
  local name=$1 tag=$2 img ref
  known_engine "$name"
  img=$(scripts/frontend-image.sh "kiln/frontend:$tag")
  if [ "$name" = docker20 ]; then echo "$img"; return; fi
  inner_answers "$name" || die "$name does not answer: run $0 up $name"
  ref="localhost:5000/kiln/frontend:$tag"
  "$DOCKER" save "$img" | inner "$name" load -q >/dev/null || die "loading $img into $name failed"
  inner "$name" tag "$img" "$ref"
  inner "$name" push -q "$ref" >/dev/null || die "pushing $ref in $name failed"
  # Only the registry keeps it: a build resolves it there, as it would a user's registry.
  inner "$name" rmi "$img" "$ref" >/dev/null
  say "frontend $ref ready on $name"
  echo "$ref"
}

host_status() {
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

engine_line() { # one line about a modern engine; fails when it does not answer
  local name=$1 c state
  c=$(container_of "$name")
  state=$("$DOCKER" container inspect -f '{{.State.Status}}' "$c" 2>/dev/null || echo absent)
  if [ "$state" = running ] && inner_answers "$name"; then
    echo "engine: $name running, $(inner "$name" version --format 'Docker {{.Server.Version}}, API {{.Server.APIVersion}}'), storage $(inner "$name" info --format '{{.Driver}}'), socket $(sock_of "$name")"
  else
    echo "engine: $name $state (start it with: $0 up $name)"
    return 1
  fi
}

engine_status() {
  local name=$1 rc=0 buildx
  engine_line "$name" || return 1
  buildx=$("$CACHE/engines/$name/config/cli-plugins/docker-buildx" version 2>/dev/null || echo missing)
  echo "client: $("$CACHE/engines/$name/bin/docker" --version 2>/dev/null || echo missing), buildx: $buildx"
  if inner "$name" image inspect "$BASE_PY" >/dev/null 2>&1; then
    echo "image: $BASE_PY $(inner "$name" image inspect -f '{{.Id}}' "$BASE_PY" | cut -c1-19)"
  else
    echo "image: $BASE_PY missing"; rc=1
  fi
  inner "$name" image ls --format '{{.Repository}}:{{.Tag}}' | grep -E '^(localhost:5000/)?kiln' | grep -vxF "$BASE_PY" \
    | sed 's/^/other: /' || true
  return $rc
}

engine_down() {
  local name=$1 c
  known_engine "$name"
  [ "$name" = docker20 ] && die "docker20 is the host's dockerd, shared with everyone on this machine: not stopped by this script"
  c=$(container_of "$name")
  if "$DOCKER" container inspect "$c" >/dev/null 2>&1; then
    say "stopping and removing $c"
    "$DOCKER" rm -f "$c" >/dev/null
  fi
  case "${2:-}" in
    --volumes|--purge)
      "$DOCKER" volume rm -f "$(volume_of "$name")" >/dev/null
      rm -f "$CACHE/engines/$name/base-id"
      say "removed volume $(volume_of "$name")" ;;
    "") ;;
    *) usage ;;
  esac
  rm -rf "${RUN_DIR:?}/$name"
  [ "${2:-}" = --purge ] || return 0
  # Everything `up NAME` made, so that the next one starts from nothing; the suite's
  # rootfs, client and images stay while another engine of that suite has a container.
  local suite other
  suite=$(suite_of "$name")
  rm -rf "${CACHE:?}/engines/$name"
  for other in $ENGINES; do
    [ "$other" != "$name" ] && [ "$(suite_of "$other")" = "$suite" ] \
      && "$DOCKER" container inspect "$(container_of "$other")" >/dev/null 2>&1 \
      && { say "keeping the $suite rootfs and images: $other uses them"; return 0; }
  done
  "$DOCKER" rmi "kiln-local/engine:$suite" "kiln-local/engine-root:$suite" >/dev/null 2>&1 || true
  rm -rf "$CACHE/engines/rootfs-$suite-"* "$CACHE/engines/client-$suite-"*
  say "removed the $suite rootfs, client and images"
}

# What builds leave behind on one engine: the images made from kiln's local base (label
# dev.kiln.base, which they inherit; the base itself, kiln-local/*, stays), dangling or
# tagged, and the build cache beyond KILN_RECLAIM_KEEP (BuildKit drops the least recently
# used first). Never takes the `up` lock: a base-arm64 in the background would hold it for
# minutes, and what a running build uses is not removed.
engine_reclaim() {
  local name=$1 cli=("$DOCKER") images before after
  [ "$name" = docker20 ] || cli=("$DOCKER" -H "unix://$(sock_of "$name")")
  "${cli[@]}" version >/dev/null 2>&1 || return 0
  before=$(df -BM --output=avail /var/lib | tail -n 1)
  images=$("${cli[@]}" image ls --filter label=dev.kiln.base --format '{{.Repository}}:{{.Tag}} {{.ID}}' \
    | awk '$1 !~ /^(localhost:5000\/)?kiln-local\// { print ($1 == "<none>:<none>" ? $2 : $1) }' | sort -u)
  # One at a time: an image a container still runs is refused alone, not the whole batch.
  for image in $images; do "${cli[@]}" rmi "$image" >/dev/null 2>&1 || true; done
  "${cli[@]}" builder prune -f --keep-storage "$KEEP" >/dev/null 2>&1 || say "$name: builder prune failed"
  after=$(df -BM --output=avail /var/lib | tail -n 1)
  say "reclaimed $((${after%M} - ${before%M})) MB on $name ($(wc -w <<<"$images") images; build cache kept to $KEEP)"
}
KEEP=${KILN_RECLAIM_KEEP:-2GB}

usage() { echo "usage: $0 [up [NAME] | env NAME | frontend NAME TAG | base-arm64 | multiarch NAME | status [NAME] | down NAME [--volumes|--purge] | reclaim]" >&2; exit 2; }

case "${1:-up}" in
  up) engine_up "${2:-docker20}" ;;
  env) [ $# -eq 2 ] || usage; engine_env "$2" ;;
  frontend) [ $# -eq 3 ] || usage; engine_frontend "$2" "$3" ;;
  base-arm64) arm64_rootfs ;;
  multiarch) [ $# -eq 2 ] || usage; engine_multiarch "$2" ;;
  status)
    if [ -n "${2:-}" ] && [ "$2" != docker20 ]; then
      known_engine "$2"; engine_status "$2"
    else
      rc=0; host_status || rc=$?
      if [ -z "${2:-}" ]; then
        for name in $ENGINES; do
          [ "$name" = docker20 ] && continue
          "$DOCKER" container inspect "$(container_of "$name")" >/dev/null 2>&1 && { engine_line "$name" || true; }
        done
      fi
      exit $rc
    fi
    ;;
  down) [ $# -ge 2 ] || usage; engine_down "$2" "${3:-}" ;;
  reclaim) for name in $ENGINES; do engine_reclaim "$name"; done ;;
  -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
  *) usage ;;
esac
