#!/usr/bin/env bash
# End-to-end: hostile build contexts on the real engine (Docker 20.10's BuildKit).
# Also: a result over BuildKit's gateway message limit.
# Each context tries to make pip or uv read the netrc secret through a path that a
# context file names (a symlink, an include, a constraints or lock file, pip's ${VAR}
# expansion); the netrc holds a marker that must never appear in the build output.
# Needs the engine (scripts/engine.sh up) and builds the frontend image.
#   KILN_E2E_FRONTEND=kiln/frontend:e2e   the frontend image tag to build and use
# Ends with "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

FRONTEND="${KILN_E2E_FRONTEND:-kiln/frontend:e2e}"
BASE=kiln-local/python:3.11
CA=/etc/ssl/certs/ca-certificates.crt
engine_up
scripts/frontend-image.sh "$FRONTEND" >/dev/null || { echo "cannot build the frontend image"; exit 1; }

MARKER="kiln-netrc-marker-$(date +%s%N)"
NETRC="$E2E_WORK/netrc"
printf 'machine index.example.invalid login kiln password %s\n' "$MARKER" >"$NETRC"

# trick NAME INSTALLER SETUP GROUP [PIP]: a context made by the shell snippet SETUP (run in
# the context directory), a spec whose `core` group is GROUP (YAML flow) and whose `pip`
# section is PIP; built with the netrc secret. The marker must not be in the output, and
# nothing may be exported. With DECOY=1 the build may succeed: kiln reads a link inside
# the context as BuildKit resolves it there (to the context's own `root/.netrc`, which
# holds `six`), and the installer gets only what kiln read; then the image has six.
trick() {
  local name="$1" installer="$2" setup="$3" group="$4" pip="${5:-{\}}"
  local ctx="$E2E_WORK/$name-$installer" tag="kiln-e2e-hostile/$name:$installer"
  rm -rf "$ctx"
  mkdir -p "$ctx"
  (cd "$ctx" && echo 'print("ok")' >app.py && eval "$setup")
  cat >"$ctx/kiln.yaml" <<EOF
# syntax=$FRONTEND
version: 1
name: hostile
python: {base: "$BASE", installer: $installer}
requirements:
  core: $group
pip: $pip
build_secrets: {netrc: netrc, ca_bundle: pipca}
app: {src: [app.py]}
cmd: [python, app.py]
EOF
  "$DOCKER" image rm "$tag" >/dev/null 2>&1
  dbuild "$name-$installer" -f "$ctx/kiln.yaml" -t "$tag" --secret "id=netrc,src=$NETRC" --secret "id=pipca,src=$CA" "$ctx"
  local rc=$? out
  out=$(log_of "$name-$installer")
  assert_not_contains "$name ($installer): the netrc's marker is not in the build output" "$out" "$MARKER"
  if [ "${DECOY:-}" = 1 ] && [ "$rc" = 0 ]; then
    check "$name ($installer): the image installed what kiln read (the context's decoy, six)" \
      "$DOCKER" run --rm "$tag" /opt/venv/bin/python -c 'import six'
    "$DOCKER" image rm "$tag" >/dev/null 2>&1
    return
  fi
  if [ "$rc" = 0 ]; then fail "$name ($installer): the build succeeded"; else ok "$name ($installer): the build failed (exit $rc)"; fi
  check "$name ($installer): nothing exported" bash -c "! $DOCKER image inspect $tag"
}

echo "== the netrc secret is out of reach of every path a context file names"
DECOY='mkdir root; echo six >root/.netrc; '
for inst in pip uv; do
  trick symlinked-file "$inst" 'ln -s /root/.netrc core.txt' '[core.txt]'
  trick symlinked-include "$inst" 'echo "-r inc.txt" >core.txt; ln -s /root/.netrc inc.txt' '[core.txt]'
  trick absolute-include "$inst" 'echo "-r /root/.netrc" >core.txt' '[core.txt]'
  trick dotdot-include "$inst" 'echo "-r ../../../../root/.netrc" >core.txt' '[core.txt]'
  # pip and uv expand ${VAR} in requirement files: `${HOME}/.netrc` is /root/.netrc for
  # them, while the context has a harmless file at that literal path.
  trick env-include "$inst" 'mkdir "\${HOME}"; echo "six" >"\${HOME}/.netrc"; echo "-r \${HOME}/.netrc" >core.txt' '[core.txt]'
  trick env-constraint "$inst" 'mkdir "\${HOME}"; echo "six" >"\${HOME}/.netrc"; printf "six\n-c \${HOME}/.netrc\n" >core.txt' '[core.txt]'
  trick symlinked-dir "$inst" 'ln -s /root reqs' '[reqs/.netrc]'
  trick symlinked-constraints "$inst" 'echo six >core.txt; ln -s /root/.netrc c.txt' '[core.txt]' '{constraints: c.txt}'
  trick symlinked-build-constraints "$inst" 'echo six >core.txt; ln -s /root/.netrc bc.txt' '[core.txt]' '{build_constraints: bc.txt}'
  # The context also has a harmless `root/.netrc`: kiln's own reads (inside the context)
  # find that one, while pip and uv, in the step, would follow the link to the secret.
  DECOY=1 trick decoy-symlinked-file "$inst" "$DECOY"'ln -s /root/.netrc core.txt' '[core.txt]'
  DECOY=1 trick decoy-symlinked-include "$inst" "$DECOY"'echo "-r inc.txt" >core.txt; ln -s /root/.netrc inc.txt' '[core.txt]'
  DECOY=1 trick decoy-symlinked-constraints "$inst" "$DECOY"'echo six >core.txt; ln -s /root/.netrc c.txt' '[core.txt]' '{constraints: c.txt}'
  DECOY=1 trick decoy-relative-link "$inst" "$DECOY"'mkdir r; ln -s ../../../../../root/.netrc r/core.txt' '[r/core.txt]'
  # Issue 21: where pip or uv would read a file differently from kiln. Each is refused
  # at its file:line before any step runs; none reaches an installer.
  trick cr-include "$inst" 'printf "six\r-r /root/.netrc\n" >core.txt' '[core.txt]'
  trick vt-include "$inst" 'printf "six\v-r /root/.netrc\n" >core.txt' '[core.txt]'
  trick abbreviated-constraint "$inst" 'printf "six\n--constr /root/.netrc\n" >core.txt' '[core.txt]'
  # An include after the first MiB: a reader that stops there never sees it.
  trick over-limit "$inst" '{ head -c 1100000 /dev/zero | tr "\0" "#"; printf "\n-r /root/.netrc\n"; } >core.txt' '[core.txt]'
done
trick decoy-symlinked-pylock uv "$DECOY"'ln -s /root/.netrc pylock.toml' '{lock: pylock.toml}'
trick decoy-symlinked-uv-lock uv "$DECOY"'printf "[project]\nname = \"x\"\nversion = \"0\"\nrequires-python = \">=3.8\"\n" >pyproject.toml; ln -s /root/.netrc uv.lock' '{lock: uv.lock}'
trick symlinked-pylock uv 'ln -s /root/.netrc pylock.toml' '{lock: pylock.toml}'
trick symlinked-uv-lock uv 'printf "[project]\nname = \"x\"\nversion = \"0\"\nrequires-python = \">=3.8\"\n" >pyproject.toml; ln -s /root/.netrc uv.lock' '{lock: uv.lock}'
trick symlinked-pyproject uv 'touch uv.lock; ln -s /root/.netrc pyproject.toml' '{lock: uv.lock}'

echo "== a result over BuildKit's 4 MiB gateway message limit is named, not a bare exit code"
big="$E2E_WORK/big"
mkdir -p "$big"
echo 'print("ok")' >"$big/app.py"
# 0.9 MB of spec; `${X}` expanded 4000 times makes a 4.7 MiB image config.
{
  echo "# syntax=$FRONTEND"
  echo "version: 1"
  echo "name: big"
  printf 'args: {X: "%s"}\n' "$(head -c 1000 /dev/zero | tr '\0' x)"
  printf 'env: {A: "%s", B: "%s"}\n' "$(for _ in $(seq 4000); do printf '${X}'; done)" "$(head -c 900000 /dev/zero | tr '\0' y)"
  echo "python: {base: \"$BASE\"}"
  echo "build_secrets: {ca_bundle: pipca}"
  echo "app: {src: [app.py]}"
  echo "cmd: [python, app.py]"
} >"$big/kiln.yaml"
"$DOCKER" image rm kiln-e2e-hostile/big >/dev/null 2>&1
if dbuild big -f "$big/kiln.yaml" -t kiln-e2e-hostile/big --secret "id=pipca,src=$CA" "$big"; then
  fail "a 4.7 MiB image config: the build succeeded"
else
  assert_contains "a 4.7 MiB image config: the error says what was too large" "$(log_of big)" "over the 4.0 MiB BuildKit accepts from a frontend in one message; make the spec's largest values smaller"
  assert_contains "a 4.7 MiB image config: ... and names the image config" "$(log_of big)" "the largest part is \`containerimage.config\`"
fi
check "a 4.7 MiB image config: nothing exported" bash -c "! $DOCKER image inspect kiln-e2e-hostile/big"

finish
