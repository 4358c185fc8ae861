#!/usr/bin/env bash
# End-to-end: the example projects built from their lock files by the kiln frontend on a
# real BuildKit (Docker's): examples/uv-project (uv.lock, app.project), examples/poetry-project
# (poetry.lock, app.project) and examples/pylock-service (PEP 751 pylock.toml, app.src).
# The project is a layer of its own: after an app edit the image's new layers are a few
# KB, on Docker 20.10 (copies) and on Docker 28 (MergeOp, pushed to its registry).
# Needs the engines (scripts/engine.sh up; up docker28) and builds the frontend image.
#   KILN_E2E_FRONTEND=kiln/frontend:e2e   the frontend image tag to build and use
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh
build_progress_reader

FRONTEND="${KILN_E2E_FRONTEND:-kiln/frontend:e2e}"
BASE=kiln-local/python:3.11
scripts/frontend-image.sh "$FRONTEND" >/dev/null || { echo "cannot build the frontend image"; exit 1; }
build_progress_reader
"$DOCKER" image inspect "$BASE" >/dev/null 2>&1 || { echo "no $BASE: run scripts/engine.sh up"; exit 1; }

RUN_ID="$(date +%s%N)"
# This run's own base (run_base_dockerfile): no step comes from build history.
RUN_BASE="kiln-e2e/python:projects-$RUN_ID"
run_base_dockerfile "$BASE" "$RUN_ID" \
  | DOCKER_BUILDKIT=1 "$DOCKER" build -q -t "$RUN_BASE" - >/dev/null \
  || { echo "cannot make this run's base image from $BASE"; exit 1; }
trap '"$DOCKER" rmi "$RUN_BASE" >/dev/null 2>&1 || true' EXIT
ARGS=(--build-arg "PYTHON_IMAGE=$RUN_BASE" --build-arg PYTHON_VERSION=3.11 --secret "id=pipca,src=/etc/ssl/certs/ca-certificates.crt")
IMG=kiln-e2e/projects
VENV=/opt/venv
# The install steps' names as kiln prints them: "{tool} install: {group}", the tool being
# the one that decides what is installed (uv, pip, or poetry for a poetry.lock group).
install_step() { echo "$1 install: $2"; }

# prepare NAME [COPY]: a private copy of examples/NAME at $E2E_WORK/COPY (default NAME) and
# of specs/NAME.yaml at $E2E_WORK/specs/COPY.yaml with this run's `# syntax=` line.
mkdir -p "$E2E_WORK/specs"
prepare() {
  local name="$1" copy="${2:-$1}"
  rm -rf "${E2E_WORK:?}/$copy"
  cp -r "examples/$name" "$E2E_WORK/$copy"
  { echo "# syntax=$FRONTEND"; tail -n +2 "specs/$name.yaml"; } >"$E2E_WORK/specs/$copy.yaml"
}

drun() { "$DOCKER" run --rm "$@" 2>&1; }
# What a push of an image after an app edit moves must stay under this many bytes: the
# project's layer and the app's, never the venv (21 MB here, 90 MB with numpy).
EDIT_MAX_BYTES=$((100 * 1024))
# saved_layers IMAGE: "diff-id bytes" per layer of IMAGE in this engine (uncompressed,
# from `docker save`).
saved_layers() {
  "$DOCKER" save "$1" | python3 -c '
import hashlib, io, json, sys, tarfile
img = tarfile.open(fileobj=io.BytesIO(sys.stdin.buffer.read()))
for path in json.load(img.extractfile("manifest.json"))[0]["Layers"]:
    data = img.extractfile(path).read()
    print("sha256:" + hashlib.sha256(data).hexdigest(), len(data))
'
}
# new_layers BEFORE AFTER: the lines of AFTER ("digest bytes") not in BEFORE, and then
# "N new, B bytes" on the last line.
new_layers() {
  local new
  new=$(grep -vxF -f <(cat <<<"$1") <<<"$2")
  printf '%s\n' "$new"
  echo "$(grep -c . <<<"$new") new, $(awk '{s += $2} END {print s + 0}' <<<"$new") bytes"
}
# untag IMAGE: before a build that must fail, so that "nothing exported" means this run.
untag() { "$DOCKER" image rm "$1" >/dev/null 2>&1 || true; }

# project_checks LABEL IMAGE: what any app.project image must show a user.
project_checks() {
  local label="$1" image="$2" out
  out=$(drun "$image" svc-health)
  assert_contains "$label: the console script runs (svc-health)" "$out" "healthy: svc 0.1.0"
  assert_eq "$label: runs as uid 10001" "10001" "$(drun "$image" id -u)"
  assert_eq "$label: svc-health is on PATH, from the venv" "$VENV/bin/svc-health" "$(drun "$image" sh -c 'command -v svc-health')"
  assert_eq "$label: svc-serve is on PATH, from the venv" "$VENV/bin/svc-serve" "$(drun "$image" sh -c 'command -v svc-serve')"
  assert_not_contains "$label: no PYTHONPATH in the image config" "$(config "$image" '{{json .Config.Env}}')" "PYTHONPATH"
  out=$(drun -w / "$image" python -c 'import svc; print(svc.__file__)')
  assert_eq "$label: import svc from / finds the installed package" "$VENV/lib/python3.11/site-packages/svc/__init__.py" "$out"
  out=$(drun "$image" python -c 'import importlib.metadata as m; print(m.distribution("svc").read_text("direct_url.json") or "no direct_url")')
  assert_not_contains "$label: the project is not an editable install" "$out" '"editable": true'
  assert_eq "$label: no copy of src/ in the image, only the installed package" "" \
    "$(drun -u 0 "$image" sh -c "find / -xdev -path '*/svc/health.py' ! -path '$VENV/lib/*' 2>/dev/null")"
  assert_eq "$label: nothing in the venv is world-writable (uv's .lock was)" "" \
    "$(drun -u 0 "$image" find "$VENV" -perm -o+w ! -type l)"
  check "$label: no dev-group package (pytest)" bash -c "! $DOCKER run --rm $image python -c 'import pytest'"
  assert_eq "$label: cmd is the console script" '["svc-serve"]' "$(config "$image" '{{json .Config.Cmd}}')"
  assert_eq "$label: health check is the console script" '["CMD","svc-health"]' "$(config "$image" '{{json .Config.Healthcheck.Test}}')"
}

# bump_lock FILE: a comment line unique to this run (TOML; uv and Poetry accept it and
# still see the lock as up to date), so that the first build installs for real: the
# engine's cache outlives a run.
bump_lock() { echo "# e2e run $RUN_ID" >>"$1"; }

# tamper_hash FILE PACKAGE-WHEEL-PREFIX: replace the sha256 of one wheel with another
# (valid-looking) digest.
tamper_hash() {
  local file="$1" wheel="$2" old new
  old=$(grep -F -- "$wheel" "$file" | grep -oE '[0-9a-f]{64}' | head -n 1)
  new=$(printf 'tampered %s' "$RUN_ID" | sha256sum | cut -c1-64)
  [ -n "$old" ] && sed -i "s/$old/$new/" "$file"
}

# ---------------------------------------------------------------------------------------
echo "== uv project: minimal (core = the project's default dependencies)"
prepare uv-project uv
CTX="$E2E_WORK/uv"; SPEC="$E2E_WORK/specs/uv.yaml"
bump_lock "$CTX/uv.lock"
if dbuild uv-minimal -f "$SPEC" --target minimal -t "$IMG-uv:minimal" "${ARGS[@]}" "$CTX"; then
  ok "uv: minimal builds"
  check "uv: the core group installed for real in this run" step_ran uv-minimal "$(install_step uv core)"
  project_checks "uv minimal" "$IMG-uv:minimal"
  check "uv minimal: no ml extra (numpy)" bash -c "! $DOCKER run --rm $IMG-uv:minimal python -c 'import numpy'"
  check "uv minimal: no gpu group (tabulate)" bash -c "! $DOCKER run --rm $IMG-uv:minimal python -c 'import tabulate'"
  # The default cmd (svc-serve) runs, reports healthy and stops cleanly on `docker stop`.
  cid=$("$DOCKER" run -d --health-interval 1s --health-start-period 0s -e SVC_INTERVAL=1 "$IMG-uv:minimal")
  status=starting
  for _ in $(seq 1 30); do
    status=$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$cid"); [ "$status" = starting ] || break; sleep 1
  done
  assert_eq "uv minimal: the health check passes while svc-serve runs" "healthy" "$status"
  "$DOCKER" stop -t 10 "$cid" >/dev/null
  assert_eq "uv minimal: svc-serve exits 0 on SIGTERM" "0" "$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$cid")"
  assert_contains "uv minimal: svc-serve logged its heartbeat and its stop" "$("$DOCKER" logs "$cid" 2>&1)" "svc: stopped"
  "$DOCKER" rm -f "$cid" >/dev/null
else
  fail "uv: minimal builds: $(tail -n 15 "$E2E_WORK/logs/uv-minimal.log")"
fi

echo "== uv project: ml (core + the ml extra + the gpu group)"
if dbuild uv-ml -f "$SPEC" --target ml -t "$IMG-uv:ml" "${ARGS[@]}" "$CTX"; then
  ok "uv: ml builds"
  check "uv ml: the shared core install was reused (CACHED)" step_cached uv-ml "$(install_step uv core)"
  check "uv ml: the ml group installed" step_ran uv-ml "$(install_step uv ml)"
  out=$(drun "$IMG-uv:ml" svc-health)
  assert_contains "uv ml: numpy (the ml extra) present" "$out" "numpy 2."
  assert_contains "uv ml: tabulate (the gpu group) present" "$out" "tabulate 0."
  check "uv ml: no dev-group package (pytest)" bash -c "! $DOCKER run --rm $IMG-uv:ml python -c 'import pytest'"
  assert_eq "uv ml: runs as uid 10001" "10001" "$(drun "$IMG-uv:ml" id -u)"
else
  fail "uv: ml builds: $(tail -n 15 "$E2E_WORK/logs/uv-ml.log")"
fi

echo "== uv project: an app-only edit reruns no dependency install, and changes a few KB of the image"
before=$(saved_layers "$IMG-uv:minimal")
echo "# touched by the e2e test $RUN_ID" >>"$CTX/src/svc/health.py"
if dbuild uv-app-edit -f "$SPEC" --target minimal -t "$IMG-uv:minimal" "${ARGS[@]}" "$CTX"; then
  check "uv app edit: [$(install_step uv core)] CACHED" step_cached uv-app-edit "$(install_step uv core)"
  check "uv app edit: [wheel from project: .] ran" step_ran uv-app-edit "wheel from project: ."
  check "uv app edit: [uv install: project .] ran" step_ran uv-app-edit "uv install: project ."
  check "uv app edit: [check: project .] CACHED (its metadata did not change)" step_cached uv-app-edit "check: project ."
  moved=$(new_layers "$before" "$(saved_layers "$IMG-uv:minimal")")
  echo "  Docker 20.10, after an app edit: $(tail -n 1 <<<"$moved") (uncompressed) of $(awk '{s += $2} END {print s}' <<<"$before") bytes" >&2
  assert_eq "uv app edit (Docker 20.10): two new layers (the project, the app copied after it)" "2" "$(tail -n 1 <<<"$moved" | cut -d' ' -f1)"
  check "uv app edit (Docker 20.10): the new layers sum to less than $EDIT_MAX_BYTES bytes" \
    test "$(tail -n 1 <<<"$moved" | cut -d' ' -f3)" -lt "$EDIT_MAX_BYTES"
  check "uv app edit: the edit is in the installed package" "$DOCKER" run --rm "$IMG-uv:minimal" \
    sh -c "grep -q 'touched by the e2e test $RUN_ID' $VENV/lib/python3.11/site-packages/svc/health.py"
  assert_contains "uv app edit: still healthy" "$(drun "$IMG-uv:minimal" svc-health)" "healthy: svc"
else
  fail "uv: rebuild after an app edit: $(tail -n 15 "$E2E_WORK/logs/uv-app-edit.log")"
fi

echo "== uv project: a dependency added to the gpu group and re-locked reruns only that group"
# Realistic, so done with the real uv (the version the example was locked with, from
# PyPI into this run's own venv): edit pyproject.toml, `uv lock`, rebuild.
UV_HOST="$E2E_WORK/uv-venv/bin/uv"
if ! { python3 -m venv "$E2E_WORK/uv-venv" && "$E2E_WORK/uv-venv/bin/pip" install -q uv==0.9.7; } >"$E2E_WORK/logs/uv-install.log" 2>&1; then
  fail "uv re-lock: cannot install uv 0.9.7 on the host: $(tail -n 5 "$E2E_WORK/logs/uv-install.log")"
elif ! sed -i 's/^gpu = \["tabulate>=0.9"\]$/gpu = ["tabulate>=0.9", "humanize>=4"]/' "$CTX/pyproject.toml" \
  || ! grep -q humanize "$CTX/pyproject.toml"; then
  fail "uv re-lock: could not add humanize to the gpu group in pyproject.toml"
elif ! (cd "$CTX" && SSL_CERT_FILE="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" UV_PYTHON_DOWNLOADS=never "$UV_HOST" lock) >"$E2E_WORK/logs/uv-relock.log" 2>&1; then
  fail "uv re-lock: \`uv lock\` failed: $(tail -n 5 "$E2E_WORK/logs/uv-relock.log")"
else
  if dbuild uv-relock-ml -f "$SPEC" --target ml -t "$IMG-uv:ml" "${ARGS[@]}" "$CTX"; then
    check "uv re-lock: [$(install_step uv core)] CACHED" step_cached uv-relock-ml "$(install_step uv core)"
    check "uv re-lock: [$(install_step uv ml)] ran again" step_ran uv-relock-ml "$(install_step uv ml)"
    check "uv re-lock: the new gpu-group package is installed" "$DOCKER" run --rm "$IMG-uv:ml" python -c 'import humanize'
    check "uv re-lock: numpy still there" "$DOCKER" run --rm "$IMG-uv:ml" python -c 'import numpy'
  else
    fail "uv re-lock: ml builds: $(tail -n 15 "$E2E_WORK/logs/uv-relock-ml.log")"
  fi
fi

echo "== uv project: a stale lock (a dependency added without \`uv lock\`) fails the build"
prepare uv-project uv-stale
sed -i 's/^    "httpx>=0.28",$/    "httpx>=0.28",\n    "humanize>=4",/' "$E2E_WORK/uv-stale/pyproject.toml"
untag "$IMG-uv:stale"
if ! grep -q humanize "$E2E_WORK/uv-stale/pyproject.toml"; then
  fail "uv stale lock: could not edit pyproject.toml"
elif dbuild uv-stale -f "$E2E_WORK/specs/uv-stale.yaml" --target minimal -t "$IMG-uv:stale" "${ARGS[@]}" "$E2E_WORK/uv-stale"; then
  fail "uv stale lock: the build must fail"
else
  # kiln reads the lock itself and refuses it at its spec line, as `uv export --locked` would.
  assert_contains "uv stale lock: refused at the lock's line, saying to run uv lock" "$(log_of uv-stale)" "uv-stale.yaml:16:14: error: cannot use the lock \`uv.lock\`: it is out of date with pyproject.toml (its dependencies): run \`uv lock\`"
  check "uv stale lock: nothing exported" bash -c "! $DOCKER image inspect $IMG-uv:stale"
fi

echo "== uv project: a tampered hash in uv.lock fails the build"
prepare uv-project uv-hash
tamper_hash "$E2E_WORK/uv-hash/uv.lock" "anyio-4.16.0-py3-none-any.whl" || fail "uv hash: no anyio wheel hash in uv.lock"
untag "$IMG-uv:hash"
if dbuild uv-hash -f "$E2E_WORK/specs/uv-hash.yaml" --target minimal -t "$IMG-uv:hash" "${ARGS[@]}" "$E2E_WORK/uv-hash"; then
  fail "uv hash: a wrong hash in uv.lock must fail the build"
else
  # The engine fetches the lock's files itself: the file's digest is checked as it arrives.
  assert_contains "uv hash: the engine's fetch reports a digest mismatch at the group's line" "$(log_of uv-hash)" "uv-hash.yaml:15: step \`fetch anyio-4.16.0-py3-none-any.whl\` failed: digest mismatch"
fi

echo "== uv project: a project whose dependencies no group installs fails at app.project"
prepare uv-project uv-nodeps
sed -i 's/^    requirements: \[core\]$/    requirements: []/' "$E2E_WORK/specs/uv-nodeps.yaml"
untag "$IMG-uv:nodeps"
if ! grep -q 'requirements: \[\]' "$E2E_WORK/specs/uv-nodeps.yaml"; then
  fail "uv no dependencies: could not edit the spec"
elif dbuild uv-nodeps -f "$E2E_WORK/specs/uv-nodeps.yaml" --target minimal -t "$IMG-uv:nodeps" "${ARGS[@]}" "$E2E_WORK/uv-nodeps"; then
  fail "uv no dependencies: the build must fail"
else
  assert_contains "uv no dependencies: uv's check names the missing dependency" "$(log_of uv-nodeps)" 'The package `svc` requires `httpx'
  assert_contains "uv no dependencies: the failed step is the project's check, at app.project's line" "$(log_of uv-nodeps)" "check: project . (uv-nodeps.yaml:20)"
  check "uv no dependencies: nothing exported" bash -c "! $DOCKER image inspect $IMG-uv:nodeps"
fi

# ---------------------------------------------------------------------------------------
echo "== Poetry project: minimal (the main group)"
prepare poetry-project poetry
CTX="$E2E_WORK/poetry"; SPEC="$E2E_WORK/specs/poetry.yaml"
bump_lock "$CTX/poetry.lock"
if dbuild poetry-minimal -f "$SPEC" --target minimal -t "$IMG-poetry:minimal" "${ARGS[@]}" "$CTX"; then
  ok "poetry: minimal builds"
  check "poetry: the main group installed for real in this run" step_ran poetry-minimal "$(install_step poetry main)"
  project_checks "poetry minimal" "$IMG-poetry:minimal"
  assert_contains "poetry minimal: it is the Poetry build" "$(drun "$IMG-poetry:minimal" svc-health)" "(poetry)"
  check "poetry minimal: no worker group (tabulate)" bash -c "! $DOCKER run --rm $IMG-poetry:minimal python -c 'import tabulate'"
else
  fail "poetry: minimal builds: $(tail -n 15 "$E2E_WORK/logs/poetry-minimal.log")"
fi

echo "== Poetry project: worker (main + the worker group)"
if dbuild poetry-worker -f "$SPEC" --target worker -t "$IMG-poetry:worker" "${ARGS[@]}" "$CTX"; then
  ok "poetry: worker builds"
  check "poetry worker: the shared main install was reused (CACHED)" step_cached poetry-worker "$(install_step poetry main)"
  assert_contains "poetry worker: tabulate (the worker group) present" "$(drun "$IMG-poetry:worker" svc-health)" "tabulate 0."
  check "poetry worker: no dev-group package (pytest)" bash -c "! $DOCKER run --rm $IMG-poetry:worker python -c 'import pytest'"
else
  fail "poetry: worker builds: $(tail -n 15 "$E2E_WORK/logs/poetry-worker.log")"
fi

echo "== Poetry project: an app-only edit reruns no dependency install"
echo "# touched by the e2e test $RUN_ID" >>"$CTX/src/svc/serve.py"
if dbuild poetry-app-edit -f "$SPEC" --target worker -t "$IMG-poetry:worker" "${ARGS[@]}" "$CTX"; then
  check "poetry app edit: [$(install_step poetry main)] CACHED" step_cached poetry-app-edit "$(install_step poetry main)"
  check "poetry app edit: [$(install_step poetry worker)] CACHED" step_cached poetry-app-edit "$(install_step poetry worker)"
  check "poetry app edit: the edit is in the installed package" "$DOCKER" run --rm "$IMG-poetry:worker" \
    sh -c "grep -q 'touched by the e2e test $RUN_ID' $VENV/lib/python3.11/site-packages/svc/serve.py"
else
  fail "poetry: rebuild after an app edit: $(tail -n 15 "$E2E_WORK/logs/poetry-app-edit.log")"
fi

echo "== Poetry project: a poetry.lock edit that leaves main's set alone reruns only the worker group"
# tabulate (the worker group's one package) loses its sdist's hash: the lock still matches
# pyproject.toml (\`poetry check --lock\` accepts it), main's export is byte for byte the
# same, worker's is one hash shorter (its wheel's hash is still checked).
sed -i '/"tabulate-0.10.0.tar.gz"/d' "$CTX/poetry.lock"
if grep -q 'tabulate-0.10.0.tar.gz' "$CTX/poetry.lock" || ! grep -q 'tabulate-0.10.0-py3-none-any.whl' "$CTX/poetry.lock"; then
  fail "poetry lock edit: could not drop tabulate's sdist from poetry.lock"
elif dbuild poetry-lock-edit -f "$SPEC" --target worker -t "$IMG-poetry:worker" "${ARGS[@]}" "$CTX"; then
  check "poetry lock edit: [poetry export: main] ran (the lock was read again)" step_ran poetry-lock-edit "poetry export: main"
  check "poetry lock edit: [$(install_step poetry main)] CACHED" step_cached poetry-lock-edit "$(install_step poetry main)"
  check "poetry lock edit: [$(install_step poetry worker)] ran again" step_ran poetry-lock-edit "$(install_step poetry worker)"
  assert_contains "poetry lock edit: tabulate still installed" "$(drun "$IMG-poetry:worker" svc-health)" "tabulate 0."
else
  fail "poetry: rebuild after a lock edit: $(tail -n 15 "$E2E_WORK/logs/poetry-lock-edit.log")"
fi

echo "== Poetry project: the same groups installed by pip (python.installer: pip)"
sed 's/^  installer: uv$/  installer: pip/' "$SPEC" >"$E2E_WORK/specs/poetry-pip.yaml"
if ! grep -q '^  installer: pip$' "$E2E_WORK/specs/poetry-pip.yaml"; then
  fail "poetry pip: could not switch the spec to pip"
elif dbuild poetry-pip -f "$E2E_WORK/specs/poetry-pip.yaml" --target worker -t "$IMG-poetry:pip" "${ARGS[@]}" "$CTX"; then
  check "poetry pip: [$(install_step poetry main)] ran, with pip" grep -q 'Collecting httpx==' "$E2E_WORK/logs/poetry-pip.log"
  assert_contains "poetry pip: tabulate (the worker group) present" "$(drun "$IMG-poetry:pip" svc-health)" "tabulate 0."
else
  fail "poetry pip: worker builds: $(tail -n 15 "$E2E_WORK/logs/poetry-pip.log")"
fi

echo "== Poetry project: a stale lock (a dependency added without \`poetry lock\`) fails the build"
prepare poetry-project poetry-stale
sed -i 's/^    "httpx>=0.28",$/    "httpx>=0.28",\n    "humanize>=4",/' "$E2E_WORK/poetry-stale/pyproject.toml"
untag "$IMG-poetry:stale"
if ! grep -q humanize "$E2E_WORK/poetry-stale/pyproject.toml"; then
  fail "poetry stale lock: could not edit pyproject.toml"
elif dbuild poetry-stale -f "$E2E_WORK/specs/poetry-stale.yaml" --target minimal -t "$IMG-poetry:stale" "${ARGS[@]}" "$E2E_WORK/poetry-stale"; then
  fail "poetry stale lock: the build must fail"
else
  assert_contains "poetry stale lock: Poetry's own message" "$(log_of poetry-stale)" "changed significantly since poetry.lock was last generated"
  check "poetry stale lock: nothing exported" bash -c "! $DOCKER image inspect $IMG-poetry:stale"
fi

# ---------------------------------------------------------------------------------------
echo "== uv project on Docker 28 (MergeOp): an app edit pushes the project's layer alone"
# Through the engine's buildx with the containerd image store, each image pushed to the
# engine's registry: what a push after the edit moves is the layers the second image has
# and the first has not (compressed sizes from the registry's manifests).
D28=docker28
if engine_frontend "$D28" "${FRONTEND##*:}"; then
  F28=$ENGINE_FRONTEND
  prepare uv-project uv28
  CTX="$E2E_WORK/uv28"; SPEC="$E2E_WORK/specs/uv28.yaml"
  sed -i "1s|.*|# syntax=$F28|" "$SPEC"
  bump_lock "$CTX/uv.lock"
  REG=localhost:5000/kiln-e2e-projects/uv
  (
    eval "$(scripts/engine.sh env "$D28")" || exit 1
    base28="kiln-e2e/python:projects-$RUN_ID"
    run_base_dockerfile "$BASE" "$RUN_ID" \
      | docker buildx build -q --load -t "$base28" - >"$E2E_WORK/logs/$D28-base.log" 2>&1 || exit 1
    args=(--progress=plain -f "$SPEC" --target minimal --provenance=false --build-arg "PYTHON_IMAGE=$base28" \
      --secret "id=pipca,src=/etc/ssl/certs/ca-certificates.crt")
    docker buildx build "${args[@]}" --output "type=image,name=$REG:one-$RUN_ID,push=true" "$CTX" \
      >"$E2E_WORK/logs/uv28-one.log" 2>&1 && touch "$E2E_WORK/uv28-one.ok"
    echo "# touched by the e2e test $RUN_ID" >>"$CTX/src/svc/health.py"
    docker buildx build "${args[@]}" --output "type=image,name=$REG:two-$RUN_ID,push=true" "$CTX" \
      >"$E2E_WORK/logs/uv28-two.log" 2>&1 && touch "$E2E_WORK/uv28-two.ok"
    docker rmi "$base28" >/dev/null 2>&1
    exit 0
  ) || fail "$D28: this run's base image: $(tail -n 5 "$E2E_WORK/logs/$D28-base.log")"
  in_d28() { DOCKER_HOST=unix:///var/run/docker.sock "$DOCKER" exec "kiln-engine-$D28" "$@"; }
  pushed_layers() { in_d28 docker buildx imagetools inspect --raw "$REG:$1-$RUN_ID" \
    | python3 -c 'import json,sys; [print(l["digest"], l["size"]) for l in json.load(sys.stdin)["layers"]]'; }
  if [ -f "$E2E_WORK/uv28-one.ok" ] && [ -f "$E2E_WORK/uv28-two.ok" ]; then
    ok "$D28: built and pushed before and after an app edit"
    check "$D28 app edit: [$(install_step uv core)] CACHED" step_cached uv28-two "$(install_step uv core)"
    check "$D28 app edit: [uv install: project .] ran" step_ran uv28-two "uv install: project ."
    check "$D28 app edit: [check: project .] CACHED (its metadata did not change)" step_cached uv28-two "check: project ."
    one=$(pushed_layers one); two=$(pushed_layers two)
    moved=$(new_layers "$one" "$two")
    echo "  Docker 28, after an app edit: $(tail -n 1 <<<"$moved") (compressed) of $(awk '{s += $2} END {print s}' <<<"$two") bytes" >&2
    assert_eq "$D28 app edit: one new layer (the project's)" "1" "$(tail -n 1 <<<"$moved" | cut -d' ' -f1)"
    check "$D28 app edit: the new layers sum to less than $EDIT_MAX_BYTES bytes" \
      test "$(tail -n 1 <<<"$moved" | cut -d' ' -f3)" -lt "$EDIT_MAX_BYTES"
  else
    fail "$D28: builds before and after an app edit: $(tail -n 15 "$E2E_WORK/logs/uv28-one.log" "$E2E_WORK/logs/uv28-two.log")"
  fi
fi

# ---------------------------------------------------------------------------------------
echo "== pylock service: builds from pylock.toml"
prepare pylock-service pylock
CTX="$E2E_WORK/pylock"; SPEC="$E2E_WORK/specs/pylock.yaml"
bump_lock "$CTX/pylock.toml"
if dbuild pylock -f "$SPEC" -t "$IMG-pylock:default" "${ARGS[@]}" "$CTX"; then
  ok "pylock: builds"
  check "pylock: the core group installed for real in this run" step_ran pylock "$(install_step uv core)"
  assert_contains "pylock: healthy (python -m app.health)" "$(drun "$IMG-pylock:default" python -m app.health)" "healthy: pylock-service"
  assert_eq "pylock: runs as uid 10001" "10001" "$(drun "$IMG-pylock:default" id -u)"
  assert_eq "pylock: the locked versions are installed" "0.28.1 2.14.4" \
    "$(drun "$IMG-pylock:default" python -c 'import importlib.metadata as m; print(m.version("httpx"), m.version("pydantic"))')"
  assert_eq "pylock: app code copied to /app, owned by root" "0:0" "$(drun "$IMG-pylock:default" stat -c %u:%g /app/app/health.py)"
else
  fail "pylock: builds: $(tail -n 15 "$E2E_WORK/logs/pylock.log")"
fi

echo "== pylock service: an app-only edit reruns no dependency install"
echo "# touched by the e2e test $RUN_ID" >>"$CTX/app/health.py"
if dbuild pylock-app-edit -f "$SPEC" -t "$IMG-pylock:default" "${ARGS[@]}" "$CTX"; then
  check "pylock app edit: [$(install_step uv core)] CACHED" step_cached pylock-app-edit "$(install_step uv core)"
  check "pylock app edit: the edit is in the image" "$DOCKER" run --rm "$IMG-pylock:default" grep -q "touched by the e2e test $RUN_ID" /app/app/health.py
else
  fail "pylock: rebuild after an app edit: $(tail -n 15 "$E2E_WORK/logs/pylock-app-edit.log")"
fi

echo "== pylock service: a tampered hash in pylock.toml fails the build"
prepare pylock-service pylock-hash
tamper_hash "$E2E_WORK/pylock-hash/pylock.toml" "anyio-4.16.0-py3-none-any.whl" || fail "pylock hash: no anyio wheel hash in pylock.toml"
untag "$IMG-pylock:hash"
if dbuild pylock-hash -f "$E2E_WORK/specs/pylock-hash.yaml" -t "$IMG-pylock:hash" "${ARGS[@]}" "$E2E_WORK/pylock-hash"; then
  fail "pylock hash: a wrong hash in pylock.toml must fail the build"
else
  # The engine checks each fetched file against the lock's sha256 before any step sees it.
  assert_contains "pylock hash: the engine's fetch of the wheel reports a digest mismatch" "$(log_of pylock-hash)" \
    "step \`fetch anyio-4.16.0-py3-none-any.whl\` failed: digest mismatch"
  check "pylock hash: nothing exported" bash -c "! $DOCKER image inspect $IMG-pylock:hash"
fi

# ---------------------------------------------------------------------------------------
echo "== build hints: psycopg2 from its sdist without libpq-dev fails saying what to add"
# psycopg2 publishes no Linux wheel: uv builds the sdist, whose setup.py stops at once
# when pg_config is missing (no compiler needed to get there).
HINT_CTX="$E2E_WORK/hint"; HINT_SPEC="$E2E_WORK/specs/hint.yaml"
mkdir -p "$HINT_CTX"
cat >"$HINT_SPEC" <<YAML
# syntax=$FRONTEND
version: 1
name: hint
args: {PYTHON_IMAGE: python:3.11-slim, PYTHON_VERSION: "3.11"}
python: {base: "\${PYTHON_IMAGE}", version: "\${PYTHON_VERSION}", installer: uv}
build_secrets: {ca_bundle: pipca}
requirements:
  core: {packages: ["psycopg2==2.9.10"]}
YAML
untag "$IMG-hint:default"
if dbuild hint -f "$HINT_SPEC" -t "$IMG-hint:default" "${ARGS[@]}" "$HINT_CTX"; then
  fail "build hints: psycopg2 without libpq-dev must fail"
else
  out=$(log_of hint)
  assert_contains "build hints: the step's own output shows psycopg2's error" "$out" "pg_config executable not found"
  assert_contains "build hints: the error names the step at the group's line and what to add" "$out" \
    "hint.yaml:8: step \`$(install_step uv core)\` failed: exit code: 100 (its output is in the build log above); kiln: psycopg2 needs pg_config (the PostgreSQL client library): add libpq-dev to system.build and libpq5 to system.runtime"
  check "build hints: nothing exported" bash -c "! $DOCKER image inspect $IMG-hint:default"
fi

finish
