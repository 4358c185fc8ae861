#!/usr/bin/env bash
# Regenerates the uv-worker fixture's locks with the real uv (0.9.7, scripts/ensure-uv.sh):
#   uv-worker/uv.lock                       `uv lock` of uv-worker/pyproject.toml
#   uv-worker/requirements/{core,api}.txt   `uv export` of that lock (the pip peer's input)
#   uv-worker.plus/NAME/                    the same four files after `uv add NAME` on a copy
#                                           (one more dependency; every other pin kept)
# The bench reads only the committed files: run this after editing uv-worker/pyproject.toml
# and commit the result. Needs PyPI (UV_NATIVE_TLS=1: the system's CA store).
set -euo pipefail
cd "$(dirname "$0")"
uv_dir=$(../../scripts/ensure-uv.sh)
export PATH="$uv_dir:$PATH" UV_NATIVE_TLS=1
# One package per run of the "+1 dependency" rows (bench/src/scenarios/uv.rs, PLUS).
PLUS=(humanize tabulate toolz)

export_reqs() { # DIR: requirements/core.txt and requirements/api.txt from DIR's lock
  mkdir -p "$1/requirements"
  (cd "$1" && uv export --quiet --frozen --no-emit-project --no-dev --format requirements-txt \
      --no-header -o requirements/core.txt \
    && uv export --quiet --frozen --no-emit-project --no-dev --extra api --format requirements-txt \
      --no-header -o requirements/api.txt)
}

(cd uv-worker && uv lock --quiet)
export_reqs uv-worker
rm -rf uv-worker.plus
for name in "${PLUS[@]}"; do
  tmp=$(mktemp -d)
  cp -r uv-worker/pyproject.toml uv-worker/uv.lock uv-worker/.python-version uv-worker/src "$tmp/"
  (cd "$tmp" && uv add --quiet --no-sync "$name")
  export_reqs "$tmp"
  mkdir -p "uv-worker.plus/$name/requirements"
  cp "$tmp/pyproject.toml" "$tmp/uv.lock" "uv-worker.plus/$name/"
  cp "$tmp/requirements/core.txt" "$tmp/requirements/api.txt" "uv-worker.plus/$name/requirements/"
  rm -rf "$tmp"
done
echo "locked: uv-worker and ${PLUS[*]}" >&2
