#!/usr/bin/env bash
# Build kiln on this machine as one static binary and load it into the local Docker
# engine as a frontend image (no registry needed): the `prebuilt` stage of
# Dockerfile.frontend. Usage: scripts/frontend-image.sh [IMAGE]   (default kiln/frontend:latest,
# the reference every spec in specs/, the README, the docs and docker-bake.hcl name)
set -euo pipefail
cd "$(dirname "$0")/.."
image="${1:-kiln/frontend:latest}"
triple="$(uname -m)-unknown-linux-gnu"
echo "kiln: building a static frontend binary ($triple)" >&2
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$triple" >&2
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "target/$triple/release/kiln" "$ctx/kiln"
DOCKER_BUILDKIT=1 /usr/bin/docker build -q -f Dockerfile.frontend --target prebuilt -t "$image" "$ctx" >&2
echo "kiln: frontend image $image ready" >&2
echo "$image"
