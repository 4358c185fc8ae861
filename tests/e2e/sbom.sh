#!/usr/bin/env bash
# Issue 23: `--sbom=true` gives kiln's own SPDX document, exact from what it knows, on a
# real engine through its buildx (Docker 28, containerd image store, pushed to its
# registry); no scanner image is pulled (none can be here, and none runs):
#   - the pylock service (examples/pylock-service) built with --sbom=true --push;
#   - `docker buildx imagetools inspect --format '{{json .SBOM}}'` holds the document:
#     every locked package with the sha256 the lock names for its file (read from the
#     lock here), every distribution of the image's venv, the image's dpkg packages with
#     the versions dpkg-query reports in the image, the venv's interpreter;
#   - in the registry: one SPDX in-toto statement whose subject is the image's manifest;
#   - the build shows kiln's SBOM step and no scanner's; the same build again gives the
#     same document;
#   - on Docker 20.10 (BuildKit 0.8, no attestations) the build stops before any step.
# Environment: KILN_E2E_SBOM_ENGINE (default docker28), KILN_E2E_SBOM_TAG (the frontend's
# tag, default e2e-sbom). Ends with "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

NAME=${KILN_E2E_SBOM_ENGINE:-docker28}
TAG=${KILN_E2E_SBOM_TAG:-e2e-sbom}
BASE=kiln-local/python:3.11
CA=/etc/ssl/certs/ca-certificates.crt
RUN_ID="$(date +%s)-$$"
engine_up || exit 1
in_engine() { DOCKER_HOST=unix:///var/run/docker.sock "$DOCKER" exec "kiln-engine-$NAME" "$@"; }
# ... with this script's stdin passed on (a program on a heredoc).
in_engine_stdin() { DOCKER_HOST=unix:///var/run/docker.sock "$DOCKER" exec -i "kiln-engine-$NAME" "$@"; }

echo "== $NAME: --sbom=true gives kiln's SPDX document"
engine_frontend "$NAME" "$TAG" || { finish; exit 1; }
FRONTEND=$ENGINE_FRONTEND
case "$FRONTEND" in localhost:5000/*) ;; *) fail "$NAME: frontend: no image name printed"; finish; exit 1 ;; esac

CTX="$E2E_WORK/ctx"; SPEC="$E2E_WORK/pylock-service.yaml"
cp -r examples/pylock-service "$CTX"
{ echo "# syntax=$FRONTEND"; tail -n +2 specs/pylock-service.yaml; } >"$SPEC"
IMAGE="localhost:5000/kiln-e2e-sbom/pylock:$RUN_ID"

(
  eval "$(scripts/engine.sh env "$NAME")" || exit 1
  args=(--progress=plain -f "$SPEC" --sbom=true --provenance=false
    --build-arg "PYTHON_IMAGE=$BASE" --build-arg PYTHON_VERSION=3.11 --secret "id=pipca,src=$CA")
  docker buildx build "${args[@]}" --output "type=image,name=$IMAGE,push=true" "$CTX" \
    >"$E2E_WORK/logs/sbom.log" 2>&1 && touch "$E2E_WORK/sbom.ok"
  docker buildx build "${args[@]}" --output "type=image,name=$IMAGE-again,push=true" "$CTX" \
    >"$E2E_WORK/logs/sbom-again.log" 2>&1 && touch "$E2E_WORK/sbom-again.ok"
  exit 0
) || fail "$NAME: buildx env"

if [ ! -f "$E2E_WORK/sbom.ok" ]; then
  fail "build with --sbom=true --push: $(tail -n 20 "$E2E_WORK/logs/sbom.log")"
  finish; exit 1
fi
ok "built with --sbom=true and pushed to the engine's registry"
assert_contains "kiln's SBOM step ran" "$(log_of sbom)" "sbom: SPDX document of default"
assert_not_contains "no scanner ran (BuildKit's 'generating sbom using')" "$(log_of sbom)" "generating sbom using"

sbom=$(in_engine docker buildx imagetools inspect "$IMAGE" --format '{{json .SBOM}}' 2>"$E2E_WORK/logs/inspect.err")
if ! python3 -c 'import json, sys; json.loads(sys.argv[1])["SPDX"]["packages"]' "$sbom" 2>/dev/null; then
  fail "imagetools inspect shows an SPDX document: $(head -c 600 <<<"$sbom") $(tail -n 5 "$E2E_WORK/logs/inspect.err")"
  finish; exit 1
fi
ok "imagetools inspect --format '{{json .SBOM}}' shows the SPDX document"
echo "$sbom" >"$E2E_WORK/sbom.json"

# What the image itself says: the venv's distributions, dpkg's versions, the interpreter.
in_engine docker run --rm "$IMAGE" python -c '
import importlib.metadata as m, platform
for d in m.distributions():
    print("dist", d.metadata["Name"], d.version)
print("python", platform.python_version())
' >"$E2E_WORK/image-dists.txt" 2>"$E2E_WORK/logs/run.err" || fail "run the image: $(tail -n 3 "$E2E_WORK/logs/run.err")"
in_engine docker run --rm "$IMAGE" dpkg-query -W -f '${Package} ${Version} ${Architecture}\n' \
  >"$E2E_WORK/image-debs.txt" 2>>"$E2E_WORK/logs/run.err" || fail "dpkg-query in the image"

# The document against the lock and the image: one line per finding.
python3 - "$E2E_WORK/sbom.json" "$CTX/pylock.toml" "$E2E_WORK/image-dists.txt" "$E2E_WORK/image-debs.txt" \
  >"$E2E_WORK/findings.txt" 2>&1 <<'PY'
import json, re, sys, tomllib
doc = json.load(open(sys.argv[1]))["SPDX"]
lock = tomllib.load(open(sys.argv[2], "rb"))
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
purl = lambda p: next((r["referenceLocator"] for r in p.get("externalRefs", []) if r["referenceType"] == "purl"), "")
pypi = {norm(p["name"]): p for p in doc["packages"] if purl(p).startswith("pkg:pypi/")}
debs = {p["name"]: p for p in doc["packages"] if purl(p).startswith("pkg:deb/")}
print("spdx", doc["spdxVersion"], doc["SPDXID"])
# httpx: the sha256 of the one wheel the lock names for it.
httpx = next(p for p in lock["packages"] if p["name"] == "httpx")
want = httpx["wheels"][0]["hashes"]["sha256"]
got = [c["checksumValue"] for c in pypi.get("httpx", {}).get("checksums", []) if c["algorithm"] == "SHA256"]
print("httpx-sha", "match" if got == [want] else f"want {want} got {got}")
print("httpx-source", pypi.get("httpx", {}).get("sourceInfo", ""))
# Every checksum the document gives a Python package is a file of the lock, of that package.
locked = {(norm(p["name"]), h["hashes"]["sha256"]) for p in lock["packages"]
          for h in p.get("wheels", []) + ([p["sdist"]] if "sdist" in p else [])}
bad = [n for n, p in pypi.items() for c in p.get("checksums", []) if (n, c["checksumValue"]) not in locked]
print("checksums-from-lock", "all" if not bad else bad)
unpinned = sorted(n for n, p in pypi.items() if not p.get("checksums"))
print("unpinned", unpinned)
# The venv's distributions, exactly.
image = {}
python = ""
for line in open(sys.argv[3]):
    kind, *rest = line.split()
    if kind == "dist":
        image[norm(rest[0])] = rest[1]
    elif kind == "python":
        python = rest[0]
print("dists", "same" if {n: p["versionInfo"] for n, p in pypi.items()} == image
      else f"sbom {sorted((n, p['versionInfo']) for n, p in pypi.items())} image {sorted(image.items())}")
interp = next((p for p in doc["packages"] if p["name"] == "python"), {})
print("python", "same" if interp.get("versionInfo") == python else f"sbom {interp.get('versionInfo')} image {python}")
# dpkg's packages and versions, exactly.
dpkg = {}
for line in open(sys.argv[4]):
    name, version, arch = line.split()
    dpkg[name] = version
print("debs", "same" if {n: p["versionInfo"] for n, p in debs.items()} == dpkg
      else f"sbom-only {sorted(set(debs) - set(dpkg))} image-only {sorted(set(dpkg) - set(debs))}")
print("libc6-purl", purl(debs.get("libc6", {})))
print("namespace", doc["documentNamespace"])
PY
finding() { sed -n "s/^$1 //p" "$E2E_WORK/findings.txt"; }
assert_eq "the document is SPDX 2.3" "SPDX-2.3 SPDXRef-DOCUMENT" "$(finding spdx)"
assert_eq "httpx's checksum is the sha256 pylock.toml names for its wheel" "match" "$(finding httpx-sha)"
assert_contains "httpx names the lock it came from" "$(finding httpx-source)" "Pinned by pylock.toml (group core)"
assert_eq "every Python checksum in the document is a file of the lock" "all" "$(finding checksums-from-lock)"
assert_eq "every Python package is pinned by the lock" "[]" "$(finding unpinned)"
assert_eq "the Python packages are the venv's distributions, at their versions" "same" "$(finding dists)"
assert_eq "the interpreter is the image's" "same" "$(finding python)"
assert_eq "the Debian packages are what dpkg-query lists in the image" "same" "$(finding debs)"
assert_contains "libc6 has its deb purl" "$(finding libc6-purl)" "pkg:deb/debian/libc6@"
grep -q '^namespace ' "$E2E_WORK/findings.txt" || fail "findings: $(tail -n 5 "$E2E_WORK/findings.txt")"

# The in-toto statement BuildKit made of it: SPDX's predicate type, the image as its
# subject (kiln names none; the exporter fills in the image manifest's digest). Read from
# the registry (on the engine's localhost) by the image's own Python.
subject=$(in_engine_stdin docker run --rm -i --network host "$IMAGE" python - "${IMAGE#localhost:5000/}" <<'PY' 2>&1
import json, sys, urllib.request
repo, tag = sys.argv[1].rsplit(":", 1)
def get(path, accept):
    req = urllib.request.Request(f"http://localhost:5000/v2/{repo}/{path}", headers={"Accept": accept})
    return json.loads(urllib.request.urlopen(req, timeout=10).read())
index = get(f"manifests/{tag}", "application/vnd.oci.image.index.v1+json")
kind = lambda m: (m.get("annotations") or {}).get("vnd.docker.reference.type")
image = [m for m in index["manifests"] if kind(m) is None]
att = [m for m in index["manifests"] if kind(m) == "attestation-manifest"]
layers = get(f"manifests/{att[0]['digest']}", "application/vnd.oci.image.manifest.v1+json")["layers"]
spdx = [l for l in layers if (l.get("annotations") or {}).get("in-toto.io/predicate-type") == "https://spdx.dev/Document"]
statement = get(f"blobs/{spdx[0]['digest']}", "*/*")
subjects = {"sha256:" + s["digest"]["sha256"] for s in statement["subject"]}
print(len(image), len(spdx), statement["predicateType"], subjects == {image[0]["digest"]})
PY
)
assert_eq "one image, one SPDX statement whose subject is the image's manifest" "1 1 https://spdx.dev/Document True" "$subject"

if [ -f "$E2E_WORK/sbom-again.ok" ]; then
  again=$(in_engine docker buildx imagetools inspect "$IMAGE-again" --format '{{json .SBOM}}' 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["SPDX"]["documentNamespace"])' 2>&1)
  assert_eq "the same build again gives the same document" "$(finding namespace)" "$again"
else
  fail "the second build: $(tail -n 10 "$E2E_WORK/logs/sbom-again.log")"
fi
echo "== docker20: an SBOM asked of an engine that cannot attach one stops the build at once"
# Docker 20.10 has no buildx; the build arg asks as --sbom does (BuildKit reads both). The
# host's store has the frontend image `scripts/engine.sh frontend` built.
{ echo "# syntax=kiln/frontend:$TAG"; tail -n +2 specs/pylock-service.yaml; } >"$E2E_WORK/d20.yaml"
if dbuild d20 -f "$E2E_WORK/d20.yaml" --build-arg BUILDKIT_ATTEST_SBOM=1 \
  --build-arg "PYTHON_IMAGE=$BASE" --build-arg PYTHON_VERSION=3.11 "$CTX"; then
  fail "docker20: a build with an SBOM asked for must fail"
else
  assert_contains "docker20: refused, naming the cap and the release that has it" "$(log_of d20)" \
    "an SBOM was asked for (attest:sbom, --sbom), but this BuildKit cannot attach attestations to an image (no \`reference.attestations\` gateway cap); use BuildKit >= 0.11 (Docker >= 24.0)"
  assert_not_contains "docker20: refused before any step ran" "$(log_of d20)" "apt runtime"
fi

# This run's images leave the engine's store (the registry keeps them).
in_engine docker rmi "$IMAGE" "$IMAGE-again" >/dev/null 2>&1
finish
