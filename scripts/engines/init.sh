#!/bin/sh
# The main process of a kiln engine container (docker-in-docker), started by
# scripts/engine.sh up NAME under `docker run --init`; runs again at every container start.
# Environment: KILN_ENGINE (the engine's name), KILN_STORE (containerd | graphdriver).
set -eu
name=${KILN_ENGINE:?KILN_ENGINE not set}
store=${KILN_STORE:-containerd}

mkdir -p /etc/docker /run/kiln
case "$store" in
  containerd) echo '{"features": {"containerd-snapshotter": true}}' ;;
  graphdriver) echo '{"features": {"containerd-snapshotter": false}}' ;;
  *) echo "kiln-engine: unknown KILN_STORE $store" >&2; exit 2 ;;
esac >/etc/docker/daemon.json

# arm64 (a later step): register qemu-aarch64-static in binfmt_misc here, with flags POF;
# the registration does not survive a restart, which is why it belongs in this script.

# The registry on 127.0.0.1:5000, restarted should it exit.
(
  while :; do
    docker-registry serve /etc/kiln/registry.yml 2>&1 | sed -u 's/^/registry: /'
    echo "kiln-engine: registry exited; restarting in 1 s" >&2
    sleep 1
  done
) &

# dockerd: the usual socket for clients inside the container, and /run/kiln/docker.sock,
# a directory the host bind-mounts (/run/kiln/NAME), for clients on the host. Its
# containers' cgroups go under kiln-NAME, apart from the host engine's.
# After a crash (BuildKit 0.8 panics take dockerd down) the container restarts with the old
# pid files in place: a stale containerd.pid made dockerd wait about 35 s for a containerd
# that is gone.
rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid /run/kiln/docker.sock
exec dockerd --host=unix:///var/run/docker.sock --host=unix:///run/kiln/docker.sock \
  --cgroup-parent="/kiln-$name"
