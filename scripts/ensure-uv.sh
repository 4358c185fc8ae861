#!/usr/bin/env bash
# Prints a directory whose `uv` is uv 0.9.7, for `kiln lock`'s tests
# (tests/integration/lock.rs run the real uv). The uv on PATH when it is that version;
# else one installed from PyPI into its own venv (Debian's Python refuses `pip install`
# outside a venv, and only package registries are reachable: no standalone installer),
# with the system CA bundle when there is one (TLS interception). Installs python3-venv
# with apt when missing (as root).
set -euo pipefail
want=0.9.7
prefix="${KILN_UV_PREFIX:-/opt/kiln-test-uv}"
say() { echo "ensure-uv: $*" >&2; }
if command -v uv >/dev/null && [ "$(uv --version 2>/dev/null | cut -d' ' -f2)" = "$want" ]; then
  dirname "$(command -v uv)"
  exit 0
fi
if [ "$("$prefix/bin/uv" --version 2>/dev/null | cut -d' ' -f2)" != "$want" ]; then
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    [ "$(id -u)" = 0 ] || { say "python3-venv missing and not root"; exit 1; }
    say "installing python3-venv (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null </dev/null
  fi
  say "installing uv $want from PyPI into $prefix"
  rm -rf "$prefix"
  python3 -m venv "$prefix"
  cert=()
  [ -f /etc/ssl/certs/ca-certificates.crt ] && cert=(--cert /etc/ssl/certs/ca-certificates.crt)
  "$prefix/bin/pip" install --quiet --disable-pip-version-check "${cert[@]}" "uv==$want" >&2
fi
echo "$prefix/bin"
