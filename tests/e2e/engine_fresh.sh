#!/usr/bin/env bash
# scripts/engine.sh on a fresh Debian 12 machine: a near-privileged container made from
# kiln-local/debian:bookworm (no docker.io, no debootstrap, nothing started), the repo
# mounted read-only, CI=true and no stdin. Checks the loud failures first (a dockerd that
# dies, with a second `up` started while the first installs: it waits, saying for whom;
# one that never answers), then a real `up` (apt-get install, dockerd, debootstrap, base
# image), then that a second `up` is a quick no-op, and the named-engine commands that
# need no second engine. About 4 to 4.5 minutes (246 and 267 s measured, 2 busy cores);
# needs the host engine (engine_up) and network to deb.debian.org. Leaves nothing behind.
# Ends with "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

engine_up

NAME=kiln-fresh-$$
VOL=kiln-fresh-docker-$$
cleanup() {
  "$DOCKER" rm -f "$NAME" >/dev/null 2>&1
  "$DOCKER" volume rm -f "$VOL" >/dev/null 2>&1
}
trap cleanup EXIT

# The machine: sleeps until told otherwise; /var/lib/docker on a volume (overlay2 cannot
# sit on the container's own overlay root).
# Not --privileged: this VM's root lacks CAP_SYS_RESOURCE, so runc cannot grant it; every
# other capability, no seccomp/AppArmor filter, and the cgroup tree writable instead.
"$DOCKER" run -d --name "$NAME" -e CI=true \
  --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined \
  --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
  -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
  -v "$E2E_ROOT:/repo:ro" -v "$VOL:/var/lib/docker" \
  kiln-local/debian:bookworm sleep infinity >/dev/null || { fail "start the fresh machine"; finish; exit 1; }
on() { "$DOCKER" exec -i "$NAME" bash -c "$1" </dev/null 2>&1; }

assert_eq "fresh machine has no docker client" "no" "$(on '[ -x /usr/bin/docker ] && echo yes || echo no')"

# A dockerd that dies at once: `up` must fail loudly with the log's tail.
on 'mkdir -p /fake/dies /fake/hangs
    printf "#!/bin/sh\necho fake dockerd: cannot start >&2\nexit 3\n" >/fake/dies/dockerd
    printf "#!/bin/sh\necho fake dockerd: hanging >&2\necho \$\$ >/fake/hangs.pid\nexec sleep 1000\n" >/fake/hangs/dockerd
    chmod +x /fake/*/dockerd' >/dev/null
# Two `up`s at once on the machine with nothing installed: the second waits for the first
# (saying so) instead of failing on apt's lock, and finds the packages there.
on 'PATH=/fake/dies:$PATH /repo/scripts/engine.sh up >/tmp/up1.log 2>&1; echo $? >/tmp/up1.rc' >/dev/null &
first=$!
sleep 1
out2=$(on 'PATH=/fake/dies:$PATH /repo/scripts/engine.sh up'); rc2=$?
wait "$first"
out=$(on 'cat /tmp/up1.log'); rc=$(on 'cat /tmp/up1.rc')
echo "$out" | sed 's/^/       first: /'; echo "$out2" | sed 's/^/       second: /'
assert_eq "a dying dockerd: up exits non-zero" 1 "$rc"
assert_contains "a dying dockerd: says so" "$out" "dockerd exited during startup"
assert_contains "a dying dockerd: shows the log tail" "$out" "fake dockerd: cannot start"
assert_contains "packages installed on the way" "$(on 'ls /usr/bin/docker /usr/sbin/debootstrap')" "/usr/sbin/debootstrap"
assert_contains "the first up installed the packages" "$out" "installing docker.io debootstrap (apt-get)"
assert_contains "the second up said what it waited for" "$out2" "waiting for another scripts/engine.sh up (pid "
assert_not_contains "the second up installed nothing" "$out2" "installing"
assert_not_contains "the second up met no apt lock" "$out2" "apt-get"
assert_eq "the second up got as far as dockerd (exit 1)" 1 "$rc2"
assert_contains "the second up: its own dying dockerd" "$out2" "dockerd exited during startup"

# A dockerd that never answers: `up` gives up after KILN_DOCKERD_WAIT seconds.
on 'rm -f /var/run/docker.pid' >/dev/null
out=$(on 'PATH=/fake/hangs:$PATH KILN_DOCKERD_WAIT=3 /repo/scripts/engine.sh up'); rc=$?
assert_eq "a silent dockerd: up exits non-zero" 1 "$rc"
assert_contains "a silent dockerd: says so" "$out" "did not answer within 3 s"
on 'kill "$(cat /fake/hangs.pid)"; rm -f /var/run/docker.pid' >/dev/null

# The real thing.
start=$(date +%s)
out=$(on '/repo/scripts/engine.sh up'); rc=$?
took=$(( $(date +%s) - start ))
echo "$out" | sed 's/^/       /'
assert_eq "fresh up exits 0 (${took} s)" 0 "$rc"
assert_contains "fresh up ran debootstrap" "$out" "debootstrap --variant=minbase bookworm"
status=$(on '/repo/scripts/engine.sh status'); rc=$?
assert_eq "status exits 0" 0 "$rc"
assert_contains "status: server answers" "$status" "server: Docker 20.10"
assert_contains "status: debian image" "$status" "image: kiln-local/debian:bookworm sha256:"
assert_contains "status: python image" "$status" "image: kiln-local/python:3.11 sha256:"
probe=$(on 'docker run --rm kiln-local/python:3.11 sh -c "python --version; pip --version; python -m venv /tmp/v && echo venv-ok; ls /usr/include/python3.11/Python.h; ls /etc/ssl/certs/ca-certificates.crt"')
for want in "Python 3.11" "pip " "venv-ok" "Python.h" "ca-certificates.crt"; do
  assert_contains "python image has $want" "$probe" "$want"
done

# Again: nothing to do, quickly.
start=$(date +%s)
out=$(on '/repo/scripts/engine.sh up'); rc=$?
took=$(( $(date +%s) - start ))
assert_eq "second up exits 0" 0 "$rc"
assert_not_contains "second up builds nothing" "$out" "building"
if [ "$took" -le 10 ]; then ok "second up took ${took} s"; else fail "second up took ${took} s (want <= 10)"; fi

# Named engines: docker20 is this machine's dockerd; nothing may stop it; names are checked.
out=$(on '/repo/scripts/engine.sh env docker20'); rc=$?
assert_eq "env docker20 exits 0" 0 "$rc"
assert_contains "env docker20: the host's socket" "$out" "export DOCKER_HOST=unix:///var/run/docker.sock"
assert_eq "env docker20: /usr/bin/docker first on PATH" "/usr/bin/docker" "$(on 'eval "$(/repo/scripts/engine.sh env docker20)" && command -v docker')"
out=$(on '/repo/scripts/engine.sh down docker20'); rc=$?
assert_eq "down docker20 refuses" 1 "$rc"
assert_contains "down docker20 says why" "$out" "the host's dockerd"
check "the host dockerd still answers" on 'docker version'
out=$(on '/repo/scripts/engine.sh up docker99'); rc=$?
assert_eq "up of an unknown engine exits non-zero" 1 "$rc"
assert_contains "up of an unknown engine names the engines" "$out" "engines: docker20 docker20-dind docker26"

# Base images gone, rootfs tarball kept: rebuilt without a second debootstrap.
on 'docker rmi kiln-local/python:3.11 kiln-local/debian:bookworm' >/dev/null
out=$(on '/repo/scripts/engine.sh up'); rc=$?
assert_eq "up after rmi exits 0" 0 "$rc"
assert_not_contains "up after rmi reuses the rootfs tarball" "$out" "debootstrap --variant"
assert_contains "up after rmi imports it again" "$out" "importing kiln-local/debian:bookworm"

finish
