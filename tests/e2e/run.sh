#!/usr/bin/env bash
# End-to-end: the kiln frontend on a real BuildKit (Docker's), building and running the
# example worker. Needs the engine (scripts/engine.sh up) and builds the frontend image.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

FRONTEND=kiln/frontend:e2e
BASE=kiln-local/python:3.11
scripts/frontend-image.sh "$FRONTEND" >/dev/null || { echo "cannot build the frontend image"; exit 1; }
build_progress_reader
"$DOCKER" image inspect "$BASE" >/dev/null 2>&1 || { echo "no $BASE: run scripts/engine.sh up"; exit 1; }

# A private copy of the context and spec, so the tests can edit them.
CTX="$E2E_WORK/ctx"; SPECDIR="$E2E_WORK/spec"
mkdir -p "$SPECDIR" && cp -r examples/worker "$CTX"
SPEC="$SPECDIR/worker.yaml"
RUN_ID="$(date +%s%N)"
# A cache mount's contents are never guaranteed (BuildKit's GC, or any --no-cache build,
# may start a fresh one), so the first build installs the core group for real, on this
# run's own base (run_base_dockerfile), and fills the caches that the "+1 requirement"
# and pip checks below read; the cuda build then shows that it reuses that install.
RUN_BASE="kiln-e2e/python:run-$RUN_ID"
run_base_dockerfile "$BASE" "$RUN_ID" | DOCKER_BUILDKIT=1 "$DOCKER" build -q -t "$RUN_BASE" - >/dev/null \
  || { echo "cannot make this run's base image from $BASE"; exit 1; }
trap '"$DOCKER" rmi "$RUN_BASE" >/dev/null 2>&1 || true' EXIT
{ echo "# syntax=$FRONTEND"; tail -n +2 specs/worker.yaml; } >"$SPEC"
# The machine's CA bundle plus a marker line (PEM readers skip text between blocks):
# the marker must not appear in any layer, config or history.
MARKER="kiln-e2e-secret-$(date +%s%N)"
CA="$E2E_WORK/ca.pem"
{ cat /etc/ssl/certs/ca-certificates.crt; echo "$MARKER"; } >"$CA"
# A netrc for an index that does not exist: pip never uses it, but its bytes are looked for too.
NETRC="$E2E_WORK/netrc"
printf 'machine index.example.invalid login kiln password %s-netrc\n' "$MARKER" >"$NETRC"
ARGS=(--build-arg "PYTHON_IMAGE=$RUN_BASE" --build-arg PYTHON_VERSION=3.11 --secret "id=pipca,src=$CA" --secret "id=netrc,src=$NETRC")
IMG=kiln-e2e/worker

echo "== minimal, frontend chosen by the # syntax line"
if dbuild minimal -f "$SPEC" --target minimal -t "$IMG:minimal" --label e2e.label=yes "${ARGS[@]}" "$CTX"; then
  ok "minimal builds"
  check "the core group installed for real in this run" step_ran minimal "uv install: core"
  assert_eq "runs as uid 10001" "10001" "$("$DOCKER" run --rm "$IMG:minimal" id -u)"
  out=$("$DOCKER" run --rm "$IMG:minimal" python -m app.health 2>&1)
  assert_contains "core stack imports (python -m app.health)" "$out" "healthy: python 3.11"
  assert_eq "health check in the config" '["CMD","python","-m","app.health"]' "$(config "$IMG:minimal" '{{json .Config.Healthcheck.Test}}')"
  assert_eq "--label lands in the image" "yes" "$(config "$IMG:minimal" '{{index .Config.Labels "e2e.label"}}')"
  assert_eq "--build-arg overrides the args default" "$RUN_BASE" "$(config "$IMG:minimal" '{{index .Config.Labels "org.opencontainers.image.base.name"}}')"
  assert_eq "cmd from the spec" '["arq","app.worker.WorkerSettings"]' "$(config "$IMG:minimal" '{{json .Config.Cmd}}')"
  assert_not_contains "no NVIDIA env in minimal" "$(config "$IMG:minimal" '{{json .Config.Env}}')" "NVIDIA"
  check "no ML group in minimal" bash -c "! $DOCKER run --rm $IMG:minimal python -c 'import numpy'"
  assert_eq "no compiler in the image" "" "$("$DOCKER" run --rm "$IMG:minimal" sh -c 'command -v gcc cc c++ make || true')"
  added=$(comm -13 <("$DOCKER" run --rm "$BASE" dpkg-query -W -f '${Package}\n' | sort) <("$DOCKER" run --rm "$IMG:minimal" dpkg-query -W -f '${Package}\n' | sort) | tr '\n' ' ')
  assert_contains "runtime library installed" "$added" "libpq5"
  assert_not_contains "no -dev package added" "$added" "-dev "
  assert_not_contains "no build-essential added" "$added" "build-essential"
  caches='ls -A /root/.cache/pip /root/.cache/uv 2>/dev/null; ls /var/cache/apt/archives/ /var/lib/apt/lists/ 2>/dev/null'
  assert_eq "no package cache or apt lists added to the image" "$("$DOCKER" run --rm -u 0 "$BASE" sh -c "$caches")" "$("$DOCKER" run --rm -u 0 "$IMG:minimal" sh -c "$caches")"
  cid=$("$DOCKER" run -d --health-interval 1s --health-start-period 0s "$IMG:minimal" sleep 120)
  status=starting
  for _ in $(seq 1 30); do
    status=$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$cid"); [ "$status" = starting ] || break; sleep 1
  done
  "$DOCKER" rm -f "$cid" >/dev/null
  assert_eq "the health check passes in a running container" "healthy" "$status"
else
  fail "minimal builds: $(tail -n 15 "$E2E_WORK/logs/minimal.log")"
fi

echo "== cuda, frontend chosen by the BUILDKIT_SYNTAX build arg"
tail -n +2 "$SPEC" >"$SPECDIR/plain.yaml"
if dbuild cuda -f "$SPECDIR/plain.yaml" --target cuda -t "$IMG:cuda" --build-arg "BUILDKIT_SYNTAX=$FRONTEND" "${ARGS[@]}" "$CTX"; then
  ok "cuda builds"
  env=$(config "$IMG:cuda" '{{json .Config.Env}}')
  assert_contains "NVIDIA env in cuda" "$env" "NVIDIA_VISIBLE_DEVICES=all"
  assert_contains "venv first on PATH" "$env" "PATH=/opt/venv/bin:"
  out=$("$DOCKER" run --rm "$IMG:cuda" python -m app.gpu 2>&1)
  assert_contains "ML group present (numpy, CUDA runtime wheel)" "$out" "libcudart"
  check "core stack in cuda" "$DOCKER" run --rm "$IMG:cuda" python -m app.health
  assert_eq "cuda runs as uid 10001" "10001" "$("$DOCKER" run --rm "$IMG:cuda" id -u)"
  assert_eq "no compiler in cuda" "" "$("$DOCKER" run --rm "$IMG:cuda" sh -c 'command -v gcc cc make || true')"
  check "the shared core install was reused (CACHED) by the second variant" step_cached cuda "uv install: core"
else
  fail "cuda builds: $(tail -n 15 "$E2E_WORK/logs/cuda.log")"
fi

echo "== app-only change reruns no install step"
# Unique per run: the engine's cache outlives a run, and an edit seen before is a cache hit.
echo "# touched by the e2e test $RUN_ID" >>"$CTX/app/api.py"
# .dockerignore (and app.exclude) keep these out; a symlink out of the context stays a link.
mkdir -p "$CTX/app/__pycache__" && echo junk >"$CTX/app/__pycache__/api.cpython-311.pyc"
echo "notes" >"$CTX/app/NOTES.md"
ln -sf /etc/shadow "$CTX/app/escape"
if dbuild app-change -f "$SPEC" --target minimal -t "$IMG:minimal" "${ARGS[@]}" "$CTX"; then
  for step in "apt build:" "apt runtime:" "python: 3.11 check" "uv install: core"; do
    check "[$step] CACHED after an app edit" step_cached app-change "$step"
  done
  check "the app layer was rebuilt" step_ran app-change "[image] app"
  check "the edit is in the image" "$DOCKER" run --rm "$IMG:minimal" grep -q "touched by the e2e test $RUN_ID" /app/app/api.py
  assert_eq "app files owned by root (app.owner default)" "0:0" "$("$DOCKER" run --rm "$IMG:minimal" stat -c %u:%g /app/app/api.py)"
  assert_eq ".dockerignore honoured (no *.md, no __pycache__)" "" "$("$DOCKER" run --rm "$IMG:minimal" sh -c 'ls /app/app/NOTES.md /app/app/__pycache__ 2>/dev/null')"
  assert_eq "a symlink out of the context is copied as a link, not followed" "/etc/shadow" "$("$DOCKER" run --rm "$IMG:minimal" readlink /app/app/escape)"
else
  fail "rebuild after an app edit: $(tail -n 15 "$E2E_WORK/logs/app-change.log")"
fi

echo "== one requirement added reuses the uv cache"
echo "humanize==4.12.3  # e2e run $RUN_ID" >>"$CTX/requirements/core.txt"
if dbuild add-req -f "$SPEC" --target minimal -t "$IMG:minimal" "${ARGS[@]}" "$CTX"; then
  check "the core install ran again" step_ran add-req "uv install: core"
  check "apt build step CACHED" step_cached add-req "apt build:"
  log=$(log_of add-req)
  assert_contains "uv installed the whole group" "$log" "Installed "
  assert_not_contains "psycopg2 not compiled again" "$log" "Building psycopg2"
  # uv prints "Prepared N packages" for what it had to download or build: at most the new one.
  prepared=$(grep -oE "Prepared [0-9]+ package" <<<"$log" | grep -oE "[0-9]+" | head -n 1)
  assert_eq "nothing but the new requirement fetched" "yes" "$([ "${prepared:-0}" -le 1 ] && echo yes || echo "no: prepared $prepared")"
  check "the new requirement is installed" "$DOCKER" run --rm "$IMG:minimal" python -c "import humanize"
else
  fail "rebuild after adding a requirement: $(tail -n 15 "$E2E_WORK/logs/add-req.log")"
fi

echo "== installer: pip builds the same image and reuses its wheel cache"
sed 's/^  installer: uv .*$/  installer: pip/' "$SPEC" >"$SPECDIR/pip.yaml"
if dbuild pip-1 -f "$SPECDIR/pip.yaml" --target minimal -t kiln-e2e/pip:1 "${ARGS[@]}" "$CTX"; then
  check "pip: the core group installed with pip" step_ran pip-1 "pip install: core"
  check "pip: the image is healthy" "$DOCKER" run --rm kiln-e2e/pip:1 python -m app.health
  assert_eq "pip: runs as uid 10001" "10001" "$("$DOCKER" run --rm kiln-e2e/pip:1 id -u)"
  # A comment changes nothing kiln passes on: the install stays cached. A requirement
  # added reruns it, and pip takes psycopg2's wheel from its cache mount.
  echo "# pip e2e run $RUN_ID" >>"$CTX/requirements/core.txt"
  if dbuild pip-1b -f "$SPECDIR/pip.yaml" --target minimal -t kiln-e2e/pip:1b "${ARGS[@]}" "$CTX"; then
    check "pip: a comment added to core.txt reruns no install" step_cached pip-1b "pip install: core"
  else
    fail "pip build after a comment: $(log_of pip-1b | tail -n 20)"
  fi
  echo "six==1.17.0" >>"$CTX/requirements/core.txt"
  if dbuild pip-2 -f "$SPECDIR/pip.yaml" --target minimal -t kiln-e2e/pip:2 "${ARGS[@]}" "$CTX"; then
    check "pip: the core install ran again" step_ran pip-2 "pip install: core"
    log=$(log_of pip-2)
    assert_contains "pip: psycopg2 wheel came from the cache mount" "$log" "Using cached psycopg2"
    assert_not_contains "pip: psycopg2 not compiled again" "$log" "Building wheel for psycopg2"
  else
    fail "pip: rebuild after a requirements edit: $(tail -n 15 "$E2E_WORK/logs/pip-2.log")"
  fi
else
  fail "pip: minimal builds: $(tail -n 15 "$E2E_WORK/logs/pip-1.log")"
fi

echo "== a failing verify command fails the build and names the spec line"
sed 's/^verify:$/verify:\n  - python -c "import not_installed_anywhere"/' "$SPEC" >"$SPECDIR/badverify.yaml"
line=$(grep -n "not_installed_anywhere" "$SPECDIR/badverify.yaml" | cut -d: -f1)
if dbuild bad-verify -f "$SPECDIR/badverify.yaml" --target minimal -t kiln-e2e/bad:verify "${ARGS[@]}" "$CTX"; then
  fail "a failing verify must fail the build"
else
  assert_contains "the error names the verify line" "$(log_of bad-verify)" "badverify.yaml:$line:5: error: verify command"
  check "nothing exported" bash -c "! $DOCKER image inspect kiln-e2e/bad:verify"
fi

echo "== a spec error is a readable build error"
sed 's/^  runtime: \[libpq5, libjpeg62-turbo\]$/  runtime: [libpq5, "Bad Pkg"]/' "$SPEC" >"$SPECDIR/badspec.yaml"
line=$(grep -n '"Bad Pkg"' "$SPECDIR/badspec.yaml" | cut -d: -f1)
if dbuild bad-spec -f "$SPECDIR/badspec.yaml" "${ARGS[@]}" "$CTX"; then
  fail "a bad spec must fail the build"
else
  log=$(log_of bad-spec)
  assert_contains "error with file:line:col" "$log" "badspec.yaml:$line:21: error: invalid apt package name \`Bad Pkg\`"
  assert_not_contains "no panic" "$log" "panicked"
fi

echo "== the Python version is checked against the base"
if dbuild py-version -f "$SPEC" --target minimal --build-arg "PYTHON_IMAGE=$BASE" --secret "id=pipca,src=$CA" "$CTX"; then
  fail "python 3.12 wanted on a 3.11 base must fail"
else
  assert_contains "clear version message" "$(log_of py-version)" "base has Python 3.11, spec wants 3.12"
fi

echo "== two builds at once share the apt and pip caches safely"
# --no-cache makes every step run; different runtime packages make the two apt steps
# distinct, so both run at the same time on the same (locked) apt cache mounts.
sed 's/^  runtime: \[libpq5, libjpeg62-turbo\]$/  runtime: [libpq5, libjpeg62-turbo, less]/' "$SPEC" >"$SPECDIR/para-a.yaml"
sed 's/^  runtime: \[libpq5, libjpeg62-turbo\]$/  runtime: [libpq5, libjpeg62-turbo, file]/' "$SPEC" >"$SPECDIR/para-b.yaml"
dbuild para-a --no-cache -f "$SPECDIR/para-a.yaml" --target minimal -t kiln-e2e/para:a "${ARGS[@]}" "$CTX" & pa=$!
dbuild para-b --no-cache -f "$SPECDIR/para-b.yaml" --target minimal -t kiln-e2e/para:b "${ARGS[@]}" "$CTX" & pb=$!
wait $pa; ra=$?; wait $pb; rb=$?
assert_eq "both concurrent builds succeed" "0 0" "$ra $rb"
check "build a has its package" "$DOCKER" run --rm kiln-e2e/para:a sh -c 'command -v less'
check "build b has its package" "$DOCKER" run --rm kiln-e2e/para:b sh -c 'command -v file'
check "both images are healthy" bash -c "$DOCKER run --rm kiln-e2e/para:a python -m app.health && $DOCKER run --rm kiln-e2e/para:b python -m app.health"

echo "== the CA bundle and netrc secrets are in no layer, config or history"
# scan_layers DIR: "LAYERS HITS" for the layers of an unpacked `docker save`, in the
# legacy layout (*/layer.tar, Docker 20.10) or OCI (blobs/sha256/*, Docker 25+). GNU tar
# unpacks gzip layers by itself and refuses configs and manifests, which are blobs too;
# -type f skips layer.tar symlinks into blobs/, so no layer counts twice.
scan_layers() {
  local layers=0 hits=0 blob n
  while IFS= read -r -d '' blob; do
    tar -tf "$blob" >/dev/null 2>&1 || continue
    layers=$((layers + 1))
    # grep -c reads to the end: with -q, tar could die of SIGPIPE and pipefail hide the hit.
    n=$(tar -xOf "$blob" 2>/dev/null | grep -caF -- "$MARKER")
    [ "${n:-0}" -gt 0 ] && hits=$((hits + 1))
  done < <(find "$1" -type f \( -path '*/layer.tar' -o -path '*/blobs/sha256/*' \) -print0)
  echo "$layers $hits"
}
# The OCI path cannot come from this engine's `docker save`: a small OCI layout with a
# gzip layer that holds the marker and one that does not must give "2 1".
oci="$E2E_WORK/oci-scan"; mkdir -p "$oci/blobs/sha256" "$oci/l1" "$oci/l2"
echo "$MARKER" >"$oci/l1/f"; echo clean >"$oci/l2/f"; echo '{"config": 1}' >"$oci/blobs/sha256/c0"
tar -C "$oci/l1" -c f | gzip >"$oci/blobs/sha256/a1"; tar -C "$oci/l2" -c f >"$oci/blobs/sha256/a2"
rm -r "$oci/l1" "$oci/l2"
assert_eq "the layer scan reads OCI layouts (gzip and plain layers)" "2 1" "$(scan_layers "$oci")"
for tag in minimal cuda; do
  dir="$E2E_WORK/save-$tag"; mkdir -p "$dir"
  if "$DOCKER" save "$IMG:$tag" | tar -x -C "$dir"; then
    read -r layers hits < <(scan_layers "$dir")
    if [ "$layers" -eq 0 ]; then
      fail "$tag: secret in no layer: no layer found to search in the saved image"
    else
      assert_eq "$tag: secret in no layer ($layers layers searched)" "0" "$hits"
    fi
    check "$tag: secret not in config or manifest" bash -c "! grep -rqaF '$MARKER' '$dir' --include='*.json'"
    assert_not_contains "$tag: secret not in history" "$("$DOCKER" history --no-trunc "$IMG:$tag")" "$MARKER"
  else
    fail "docker save $IMG:$tag"
  fi
done

echo "== issue 10: failures name their step and spec line, warnings show, verify is one container"
# The error line docker build ends with (the last non-blank line of its output).
last_line() { grep -v '^[[:space:]]*$' "$E2E_WORK/logs/$1.log" | tail -n 1; }
# Each verify vertex that ran: a `#N verify ...` line whose vertex is not CACHED.
verify_vertices() { # LOGNAME
  local log="$E2E_WORK/logs/$1.log" ids id n=0
  ids=$(sed -n 's/^#\([0-9]*\) verify .*/\1/p' "$log" | sort -u)
  for id in $ids; do grep -qx "#$id CACHED" "$log" || n=$((n + 1)); done
  echo "$n"
}
assert_eq "app edit: verify ran as ONE container (all commands and the health check)" "1" "$(verify_vertices app-change)"
assert_contains "app edit: each check reported on its own line" "$(log_of app-change)" "kiln-verify: [2] 0: python -c 'import arq"

# 1. A failing apt step, with verify commands in the spec: the apt step and its line.
sed 's/^  runtime: \[libpq5, libjpeg62-turbo\]$/  runtime: [libpq5, kiln-no-such-package]/' "$SPEC" >"$SPECDIR/badapt.yaml"
line=$(grep -n 'kiln-no-such-package' "$SPECDIR/badapt.yaml" | cut -d: -f1)
if dbuild bad-apt -f "$SPECDIR/badapt.yaml" --target minimal "${ARGS[@]}" "$CTX"; then
  fail "a failing apt step must fail the build"
else
  assert_contains "the final error line names the apt step and its spec line" "$(last_line bad-apt)" "badapt.yaml:$line: step \`apt runtime: libpq5 kiln-no-such-package\` failed: exit code"
  assert_not_contains "an apt failure is not blamed on verify" "$(log_of bad-apt)" "verify command"
fi

# 2. Warnings on Docker 20.10 (no Warn RPC): a vertex named after each warning.
sed 's/^user: .*$/user: root/' "$SPEC" >"$SPECDIR/rootwarn.yaml"
line=$(grep -n '^user: root' "$SPECDIR/rootwarn.yaml" | cut -d: -f1)
if dbuild warnings -f "$SPECDIR/rootwarn.yaml" --target minimal -t kiln-e2e/warn:root --build-arg NOT_DECLARED=1 "${ARGS[@]}" "$CTX"; then
  log=$(log_of warnings)
  assert_contains "the root warning is in the build output, with its line" "$log" "WARNING KilnRootUser: the image runs as root (rootwarn.yaml:$line:7"
  assert_contains "an undeclared --build-arg is warned about" "$log" "WARNING KilnUndeclaredBuildArg: build arg \`NOT_DECLARED\` is not declared"
else
  fail "a spec with warnings builds: $(tail -n 15 "$E2E_WORK/logs/warnings.log")"
fi

# 3. Pre-flight: a requirement file that is not in the context, before any step runs.
sed 's#^  core: \[requirements/core.txt\]$#  core: [requirements/nope.txt]#' "$SPEC" >"$SPECDIR/noreq.yaml"
line=$(grep -n 'requirements/nope.txt' "$SPECDIR/noreq.yaml" | cut -d: -f1)
if dbuild no-req -f "$SPECDIR/noreq.yaml" --target minimal "${ARGS[@]}" "$CTX"; then
  fail "a missing requirement file must fail the build"
else
  assert_contains "the missing file is named at its spec line" "$(log_of no-req)" "noreq.yaml:$line:10: error: requirement file \`requirements/nope.txt\` is not in the build context"
  assert_not_contains "no step ran" "$(log_of no-req)" "apt-get"
fi

# 4. A missing base image names python.base and its line.
line=$(grep -n '^  base: ' "$SPEC" | cut -d: -f1)
if dbuild no-base -f "$SPEC" --target minimal --build-arg PYTHON_IMAGE=kiln-local/no-such-image:1 --build-arg PYTHON_VERSION=3.11 --secret "id=pipca,src=$CA" "$CTX"; then
  fail "a missing base image must fail the build"
else
  assert_contains "python.base named with its position" "$(log_of no-base)" "worker.yaml:$line:9: error: the \`python.base\` image \`kiln-local/no-such-image:1\` cannot be used"
fi

# 5. The Python version check fails at python.version's line.
line=$(grep -n '^  version: ' "$SPEC" | cut -d: -f1)
assert_contains "the python version failure names python.version's line" "$(last_line py-version)" "worker.yaml:$line: step \`python: 3.12 check"

# 6. verify: a command past its timeout is killed and named; the health check calling a
#    program the image lacks fails at the healthcheck line.
sed -e 's/^verify:$/verify:\n  - {run: "sleep 600", timeout: 3s}/' -e 's/^  cmd: \[python, -m, app.health\]$/  cmd: [curl, -f, http:\/\/localhost:8000\/]/' "$SPEC" >"$SPECDIR/verifyfail.yaml"
tline=$(grep -n 'sleep 600' "$SPECDIR/verifyfail.yaml" | cut -d: -f1)
started=$(date +%s)
if dbuild verify-fail -f "$SPECDIR/verifyfail.yaml" --target minimal "${ARGS[@]}" "$CTX"; then
  fail "a verify timeout and a failing health check must fail the build"
else
  log=$(log_of verify-fail)
  assert_contains "the timeout is named at its line" "$log" "verifyfail.yaml:$tline:11: error: verify command \`sleep 600\` failed on the minimal image: it did not finish within 3 s"
  assert_contains "the health check without curl fails" "$log" "the health check \`curl -f http://localhost:8000/\` failed on the minimal image: exit code 127 (command not found in the image)"
  assert_eq "the timeout did not hang the build" "yes" "$([ $(($(date +%s) - started)) -lt 300 ] && echo yes || echo no)"
fi

finish
