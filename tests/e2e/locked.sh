#!/usr/bin/env bash
# A PEP 751 lock's files as content-addressed sources, on a modern engine (MergeOp and
# DiffOp: a layer per package) through its own buildx:
#   - every file the lock names is fetched by the engine, once, from the lock's URL (a
#     local file server here, which logs each request), and each install step runs with
#     no network (the definition says so, and the image works);
#   - a fresh runner (builder pruned, cache imported from the registry, mode=max) after
#     one package was added to the lock downloads that one file and nothing else, and
#     runs only that package's install;
#   - the image after "+1 package" shares every layer of the image before but the new
#     package's and the tiny ones whose inputs changed: what a push moves is measured.
# Environment: KILN_E2E_LOCKED_ENGINE (default docker28).
# Ends with "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

NAME=${KILN_E2E_LOCKED_ENGINE:-docker28}
TAG=e2e-locked
BASE=kiln-local/python:3.11
CA=/etc/ssl/certs/ca-certificates.crt
RUN_ID="$(date +%s)-$$"
engine_up || exit 1
build_progress_reader
secs() { echo $(( $(date +%s) - $1 )); }
in_engine() { DOCKER_HOST=unix:///var/run/docker.sock "$DOCKER" exec "kiln-engine-$NAME" "$@"; }

echo "== $NAME: a lock's files fetched by the engine, a layer per package"
engine_frontend "$NAME" "$TAG" || { finish; exit 1; }
FRONTEND=$ENGINE_FRONTEND

# Four small wheels of the example lock, served over http on the docker0 address (the
# engine's dockerd fetches them from its container); each request is logged.
FILES="$E2E_WORK/files"; CTX="$E2E_WORK/ctx"; mkdir -p "$FILES" "$CTX/app"
HOST_IP=$(ip -4 -o addr show docker0 | awk '{print $4}' | cut -d/ -f1)
PORT=$((20000 + RANDOM % 20000))
python3 - examples/pylock-service/pylock.toml "$FILES/index.tsv" <<'PY'
import sys, tomllib
lock = tomllib.load(open(sys.argv[1], "rb"))
want = ["idna", "h11", "annotated-types", "certifi", "httpcore", "typing-extensions"]
with open(sys.argv[2], "w") as out:
    for p in lock["packages"]:
        if p["name"] in want:
            w = p["wheels"][0]
            out.write(f'{p["name"]}\t{p["version"]}\t{w["url"]}\t{w["hashes"]["sha256"]}\n')
PY
while IFS=$'\t' read -r _ _ url sha; do
  curl -fsS -o "$FILES/$(basename "$url")" "$url" || fail "download $(basename "$url")"
  echo "$sha  $FILES/$(basename "$url")" | sha256sum -c --quiet - || fail "sha256 of $(basename "$url")"
done <"$FILES/index.tsv"
python3 -u -m http.server "$PORT" --bind "$HOST_IP" --directory "$FILES" >"$E2E_WORK/logs/files-http.log" 2>&1 &
http_pid=$!
trap 'kill $http_pid 2>/dev/null' EXIT

# pylock.toml with the packages of index.tsv named, their URLs on the local server. Sizes
# as uv writes them: these wheels are small, so they share layers by set (certifi and
# httpcore land in one set, the others in sets of their own).
lock_with() {
  { echo 'lock-version = "1.0"'; echo 'created-by = "kiln e2e"'; echo 'requires-python = ">=3.11"'
    while IFS=$'\t' read -r name version url sha; do
      case " $* " in *" $name "*) ;; *) continue ;; esac
      printf '\n[[packages]]\nname = "%s"\nversion = "%s"\nwheels = [{ url = "http://%s:%s/%s", size = %s, hashes = { sha256 = "%s" } }]\n' \
        "$name" "$version" "$HOST_IP" "$PORT" "$(basename "$url")" "$(stat -c %s "$FILES/$(basename "$url")")" "$sha"
    done <"$FILES/index.tsv"; } >"$CTX/pylock.toml"
}
FIRST="annotated-types certifi h11 httpcore idna"
# Requests for wheels the server has answered so far, one file name per line.
fetched() { grep -o 'GET /[^ ]*\.whl' "$E2E_WORK/logs/files-http.log" | sed 's|GET /||' | sort; }

echo "print('ok')" >"$CTX/app/main.py"
cat >"$CTX/kiln.yaml" <<EOF
# syntax=$FRONTEND
version: 1
name: locked
python: {base: "kiln-e2e-locked/python:run-$RUN_ID", version: "3.11", installer: uv}
requirements: {core: {lock: pylock.toml}}
# The local file server is plain http: named as an index, it is the user's own mirror,
# which the engine may fetch from (an unnamed one would install in the step).
pip: {extra_index_urls: ["http://$HOST_IP:$PORT/"]}
build_secrets: {ca_bundle: pipca}
app: {src: [app], workdir: /app}
user: {name: app, uid: 10001}
cmd: [python, main.py]
verify:
  - python -c "import idna, h11, annotated_types, certifi, httpcore; print('imports ok')"
  - python -c "import importlib.metadata as m; print(sorted(d.metadata['Name'] for d in m.distributions()))"
EOF
lock_with $FIRST

# No network in an install step: each one's exec says so in the definition the frontend
# makes (the same code path; kiln llb needs no engine).
# (the binary the frontend image was just made from)
defn=$("target/$(uname -m)-unknown-linux-gnu/release/kiln" llb "$CTX/kiln.yaml" --context "$CTX" --merge --format json)
nets=$(python3 -c '
import json, sys
d = json.load(sys.stdin)
for o in d["ops"]:
    name = ((o.get("metadata") or {}).get("description") or {}).get("llb.customname", "")
    e = (o.get("op") or {}).get("exec")
    if e and name.startswith("uv install: core"):
        print(name, e.get("network"))
' <<<"$defn")
assert_eq "an install step per layer: 3 packages alone, certifi and httpcore in one set" 4 "$(grep -c . <<<"$nets")"
assert_eq "certifi and httpcore share an install" 1 "$(grep -cE '^uv install: core: certifi [^,]+, httpcore [^,]+ NONE$' <<<"$nets")"
assert_eq "every install step has network NONE" "" "$(grep -v ' NONE$' <<<"$nets")"

(
  eval "$(scripts/engine.sh env "$NAME")" || exit 1
  # This run's own base: nothing of an earlier run is reused for the first build.
  printf 'FROM %s\nRUN echo %s >/etc/kiln-e2e-run\n' "$BASE" "$RUN_ID" \
    | docker buildx build -q --load -t "kiln-e2e-locked/python:run-$RUN_ID" - >"$E2E_WORK/logs/run-base.log" 2>&1 \
    || { echo "FAIL base"; exit 1; }
  # A fetch's cache key is its sha256 alone, whatever the URL or base: an earlier build
  # of these wheels on this engine would serve them. Start from an empty build cache.
  docker builder prune -af >/dev/null 2>&1
  cache="localhost:5000/kiln-e2e-cache:locked-$TAG-$RUN_ID"
  args=(--progress=plain -f "$CTX/kiln.yaml" --secret "id=pipca,src=$CA" --provenance=false)
  start=$(date +%s)
  docker buildx build "${args[@]}" --cache-to "type=registry,ref=$cache,mode=max" \
    --output "type=image,name=localhost:5000/kiln-e2e-locked/app:one,push=true" "$CTX" >"$E2E_WORK/logs/first.log" 2>&1 \
    && echo "first $(secs "$start")" >"$E2E_WORK/first.ok"
  docker builder prune -af >/dev/null 2>&1
  lock_with $FIRST typing-extensions
  cp "$E2E_WORK/logs/files-http.log" "$E2E_WORK/before.log"
  start=$(date +%s)
  docker buildx build "${args[@]}" --cache-from "type=registry,ref=$cache" \
    --output "type=image,name=localhost:5000/kiln-e2e-locked/app:two,push=true" "$CTX" >"$E2E_WORK/logs/fresh.log" 2>&1 \
    && echo "fresh $(secs "$start")" >"$E2E_WORK/fresh.ok"
  docker rmi "kiln-e2e-locked/python:run-$RUN_ID" >/dev/null 2>&1
  exit 0
) || fail "$NAME: buildx env"

if [ -f "$E2E_WORK/first.ok" ]; then
  ok "first build, cache exported to the registry ($(cut -d' ' -f2 "$E2E_WORK/first.ok") s)"
  # (the server's log as the first build left it; the second build appends to it)
  first_fetch=$(grep -o 'GET /[^ ]*\.whl' "$E2E_WORK/before.log" | sed 's|GET /||' | sort)
  assert_eq "each of the lock's five files fetched once" 5 "$(grep -c . <<<"$first_fetch")"
  assert_eq "no file fetched twice" "" "$(uniq -d <<<"$first_fetch")"
  assert_contains "the verify commands ran in the image: imports" "$(log_of first)" "imports ok"
  for p in idna h11 annotated-types "certifi "; do check "first: [uv install: core: $p] ran" step_ran first "uv install: core: $p"; done
else
  fail "first build: $(tail -n 20 "$E2E_WORK/logs/first.log")"
fi
if [ -f "$E2E_WORK/fresh.ok" ]; then
  ok "+1 package on a fresh runner (pruned, --cache-from) ($(cut -d' ' -f2 "$E2E_WORK/fresh.ok") s)"
  new=$(diff <(grep -o 'GET /[^ ]*\.whl' "$E2E_WORK/before.log" | sed 's|GET /||' | sort) <(fetched) | sed -n 's/^> //p')
  assert_eq "the fresh runner downloaded the one new wheel and nothing else" \
    "$(basename "$(grep '^typing-extensions' "$FILES/index.tsv" | cut -f3)")" "$new"
  for p in idna h11 annotated-types "certifi "; do check "fresh: [uv install: core: $p] CACHED" step_cached fresh "uv install: core: $p"; done
  check "fresh: [uv install: core: typing-extensions] ran" step_ran fresh "uv install: core: typing-extensions"
  assert_contains "the new package is in the image" "$(log_of fresh)" "'typing_extensions'"
  # What a push after +1 package moves: the layers of :two that :one does not have.
  layers() { in_engine docker buildx imagetools inspect --raw "localhost:5000/kiln-e2e-locked/app:$1" \
    | python3 -c 'import json,sys; [print(l["digest"], l["size"]) for l in json.load(sys.stdin)["layers"]]'; }
  one=$(layers one); two=$(layers two)
  total=$(awk '{s += $2} END {print s}' <<<"$two")
  moved=$(grep -vxF -f <(cat <<<"$one") <<<"$two" | awk '{s += $2} END {print s + 0}')
  echo "  pushed after +1 package: $moved of $total bytes (compressed layers), $(grep -vxF -f <(cat <<<"$one") <<<"$two" | grep -c .) new layers of $(grep -c . <<<"$two")"
  check "the image has a layer per package or set (more than 6 layers)" test "$(grep -c . <<<"$two")" -gt 6
  # A package's layer is what its install wrote into the venv, and nothing else (no mount
  # point, cache or bytecode outside /opt/venv).
  outside=$(in_engine sh -c "docker pull -q localhost:5000/kiln-e2e-locked/app:two >/dev/null && docker save localhost:5000/kiln-e2e-locked/app:two" \
    | python3 -c '
import io, json, sys, tarfile
img = tarfile.open(fileobj=io.BytesIO(sys.stdin.buffer.read()))
layers = json.load(img.extractfile("manifest.json"))[0]["Layers"]
for path in layers:
    names = tarfile.open(fileobj=img.extractfile(path)).getnames()
    if any(n.startswith("opt/venv/lib/") for n in names):
        print(*sorted({n for n in names if n not in ("opt", "opt/venv") and not n.startswith("opt/venv/")}))
')
  assert_eq "the package layers hold only files under /opt/venv" "" "$(tr -d '\n' <<<"$outside")"
  check "a push after +1 package moves at most 2% of the image" test $((moved * 50)) -le "$total"
else
  fail "+1 package on a fresh runner: $(tail -n 20 "$E2E_WORK/logs/fresh.log")"
fi

echo "== $NAME: a lock's markers decided by the base's own Python (its patch release)"
# Two pure wheels made here; the lock installs one below 3.11.2 and the other from it on.
# The second base is the first with a .pth line that makes its interpreter report
# 3.11.1 (no other 3.11 patch release can be had here): kiln must take what the base says.
python3 - "$FILES" <<'PY'
import base64, hashlib, sys, zipfile
for name in ("kiln_e2e_below", "kiln_e2e_from"):
    files = {f"{name}/__init__.py": b"",
             f"{name}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
             f"{name}-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: kiln-e2e\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}\n" for p, d in files.items())
    files[f"{name}-1.0.dist-info/RECORD"] = (record + f"{name}-1.0.dist-info/RECORD,,\n").encode()
    with zipfile.ZipFile(f"{sys.argv[1]}/{name}-1.0-py3-none-any.whl", "w") as z:
        for p, d in files.items():
            z.writestr(zipfile.ZipInfo(p, (2020, 1, 1, 0, 0, 0)), d)
PY
MCTX="$E2E_WORK/markers"; mkdir -p "$MCTX/app"; echo "print('ok')" >"$MCTX/app/main.py"
{ echo 'lock-version = "1.0"'; echo 'created-by = "kiln e2e"'
  for pair in "kiln_e2e_below:python_full_version < '3.11.2'" "kiln_e2e_from:python_full_version >= '3.11.2'"; do
    n=${pair%%:*}; m=${pair#*:}; f="$n-1.0-py3-none-any.whl"
    printf '\n[[packages]]\nname = "%s"\nversion = "1.0"\nmarker = "%s"\nwheels = [{ url = "http://%s:%s/%s", size = %s, hashes = { sha256 = "%s" } }]\n' \
      "$n" "$m" "$HOST_IP" "$PORT" "$f" "$(stat -c %s "$FILES/$f")" "$(sha256sum "$FILES/$f" | cut -d' ' -f1)"
  done; } >"$MCTX/pylock.toml"
(
  eval "$(scripts/engine.sh env "$NAME")" || exit 1
  patched="kiln-e2e-locked/python-3.11.1:run-$RUN_ID"
  # A .pth line (run by site for every interpreter start): Debian's own sitecustomize in
  # /usr/lib/python3.11 comes first on sys.path, so one in dist-packages is never read.
  printf 'FROM %s\nRUN d=/usr/local/lib/python3.11/dist-packages && mkdir -p $d && printf "import platform; platform.python_version = lambda: \\"3.11.1\\"\\n" >$d/kiln-e2e-3111.pth && test "$(python3 -c "import platform; print(platform.python_version())")" = 3.11.1\n' "$BASE" \
    | docker buildx build -q --load -t "$patched" - >"$E2E_WORK/logs/markers-base-image.log" 2>&1 || { echo "FAIL patched base"; exit 1; }
  for which in base patched; do
    base=$BASE; [ "$which" = patched ] && base=$patched
    cat >"$MCTX/kiln.yaml" <<SPEC
# syntax=$FRONTEND
version: 1
name: markers
python: {base: "$base", version: "3.11", installer: uv}
requirements: {core: {lock: pylock.toml}}
pip: {extra_index_urls: ["http://$HOST_IP:$PORT/"]}
build_secrets: {ca_bundle: pipca}
app: {src: [app], workdir: /app}
cmd: [python, main.py]
SPEC
    out="kiln-e2e-locked/markers:$which"
    if docker buildx build --progress=plain -f "$MCTX/kiln.yaml" --secret "id=pipca,src=$CA" --provenance=false --load -t "$out" "$MCTX" \
      >"$E2E_WORK/logs/markers-$which.log" 2>&1; then
      docker run --rm "$out" python -c 'import importlib.metadata as m; print(sorted(d.metadata["Name"] for d in m.distributions() if d.metadata["Name"].startswith("kiln")))' \
        >"$E2E_WORK/markers-$which.txt" 2>&1
      docker rmi "$out" >/dev/null 2>&1
    fi
  done
  docker rmi "$patched" >/dev/null 2>&1
  exit 0
) || fail "$NAME: markers"
assert_eq "base Python 3.11.2: the lock's package for >= 3.11.2 only" "['kiln_e2e_from']" "$(cat "$E2E_WORK/markers-base.txt" 2>&1)"
assert_eq "base Python reporting 3.11.1: the package for < 3.11.2 only" "['kiln_e2e_below']" "$(cat "$E2E_WORK/markers-patched.txt" 2>&1)"
assert_contains "the frontend read the base's Python before planning" "$(log_of markers-base)" "read the base's Python"
finish
