#!/usr/bin/env bash
# The main job: build both images of the example worker (specs/worker.yaml, context
# examples/worker) through the kiln frontend, setting up the engine when none runs.
# Usage: scripts/build-example.sh [TAG_PREFIX]   (default kiln-example/worker)
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${1:-kiln-example/worker}"
export PATH="$HOME/.cargo/bin:$PATH"
scripts/engine.sh up
# The spec's first line names kiln/frontend:latest: made here, from this checkout.
scripts/frontend-image.sh >/dev/null
spec=specs/worker.yaml
for variant in minimal cuda; do
  echo "== $prefix:$variant" >&2
  DOCKER_BUILDKIT=1 /usr/bin/docker build --progress=plain \
    -f "$spec" --target "$variant" -t "$prefix:$variant" \
    --build-arg PYTHON_IMAGE=kiln-local/python:3.11 --build-arg PYTHON_VERSION=3.11 \
    --secret id=pipca,src=/etc/ssl/certs/ca-certificates.crt \
    examples/worker
done
/usr/bin/docker image ls "$prefix"
