#!/usr/bin/env bash
# End-to-end on modern engines: for each engine (default docker26 and docker28 with the
# containerd image store, and docker28-graphdriver with the classic one), `scripts/engine.sh
# up NAME`, the frontend pushed to the engine's registry, then real builds of the example
# worker through that engine's own docker client and buildx after
# `eval "$(scripts/engine.sh env NAME)"`.
# containerd store: `docker buildx build --load` of both variants via `# syntax=localhost:5000/...`
# and via `--build-arg BUILDKIT_SYNTAX` (the spec's own line naming no image), the images run
# (health, uid); `docker buildx bake` with the repository's docker-bake.hcl; `--call
# targets|outline|check` (buildx 0.29) or `--print targets|outline` (0.13) decoded by buildx
# itself; a failing step shows its spec line's snippet; a registry cache (`--cache-to
# type=registry,mode=max`, `builder prune -af`, `--cache-from`: every apt and install step
# CACHED); `--push` (the manifest in the registry), `--output type=oci` (an OCI layout);
# `--provenance=mode=max` naming the spec; linux/amd64+linux/arm64 on a multi-platform base
# (`scripts/engine.sh multiarch`), each image running its own architecture; an amd64-only
# base asked for linux/arm64 fails at `python.base`.
# graphdriver store (no MergeOp): the copy path builds, with no `[image] merge`, the same
# image config as the containerd store's MergeOp build; buildx refuses cache export and OCI
# output there, and says so.
# Environment: KILN_E2E_ENGINES (engines to test, default "docker26 docker28
# docker28-graphdriver"), KILN_E2E_MULTIPLATFORM (engines that build amd64+arm64, default
# "docker28": each costs about 3.5 min, and CI's budget is 60), KILN_E2E_TAG (frontend
# tag and registry refs, default e2e-engines), KILN_E2E_FRESH=1 (`down NAME --purge`
# first: times `up` from nothing;
# the arm64 base is kept: `rm /var/cache/kiln/python-arm64-*.tar` to time it too).
# Time on 2 busy cores. Before issue 12's checks: from nothing (KILN_E2E_FRESH=1) 13 to 15
# minutes for docker26 and docker28 (each `up` 3 to 5 minutes: debootstrap and apt in a
# chroot; the first builds about 3), cached about 1.5. Issue 12's checks add, per engine
# from cold: the registry-cache pair 2 to 3 min (a real build of this run's base, 30-60 s
# of it the mode=max export, then ~10 s from the registry), the multi-platform build about
# 3.5 min (the arm64 venv step alone ~2.5 min under qemu), push/OCI/provenance under a
# minute; docker28-graphdriver 36 s to come up (the sid engine image exists) and 91 s for
# its first build. Measured whole runs: 31 min with the arm64 base made from nothing
# beside it (1321 s of emulated dpkg on contended cores; docker26 waited 531 s for it),
# 25 min with everything but the registry-cache pair's and multi-platform builds cached.
# The arm64 base runs in the background from the start (scripts/test.sh starts it earlier).
# Ends with "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

ENGINES_UNDER_TEST=${KILN_E2E_ENGINES:-docker26 docker28 docker28-graphdriver}
# The containerd engines that build linux/amd64+linux/arm64 (about 3.5 min each from cold,
# the arm64 steps under qemu); the amd64-only-base refusal runs on every one regardless.
MULTIPLATFORM=${KILN_E2E_MULTIPLATFORM:-docker28}
# The frontend's tag, and the registry refs' (cache, pushed images): one per concurrent user.
TAG=${KILN_E2E_TAG:-e2e-engines}
RUN_ID=$(date +%s%N)
SUITE_START=$(date +%s)
BASE=kiln-local/python:3.11
CA=/etc/ssl/certs/ca-certificates.crt
IMG=kiln-e2e-engines/worker
KNOWN="$E2E_WORK/known-failures.txt"
: >"$KNOWN"
rm -f "$E2E_WORK"/*.up "$E2E_WORK"/*.counts "$E2E_WORK"/*.config "$E2E_WORK"/*.done

secs() { echo $(( $(date +%s) - $1 )); }
known() { echo "  known failure: $*" | tee -a "$KNOWN"; }
# in_engine CMD...: CMD inside engine $name's container (its registry is on the container's
# localhost:5000), through the host's dockerd whatever DOCKER_HOST says.
in_engine() { DOCKER_HOST=unix:///var/run/docker.sock "$DOCKER" exec "kiln-engine-$name" "$@"; }

engine_up || exit 1
build_progress_reader

# The arm64 Python base (debootstrap --foreign + a second stage under qemu: minutes, once
# per machine) starts now, beside the engines' setup; `multiarch NAME` waits for it.
(
  start=$(date +%s)
  scripts/engine.sh base-arm64 >"$E2E_WORK/logs/base-arm64.log" 2>&1
  echo "$? $(secs "$start")" >"$E2E_WORK/base-arm64.done"
) &

# Every engine's `up`, in order, in one background job: the first engine's builds overlap
# the next engine's setup (debootstrap and apt are mostly waiting on the network).
(
  for name in $ENGINES_UNDER_TEST; do
    [ "${KILN_E2E_FRESH:-}" = 1 ] && scripts/engine.sh down "$name" --purge >"$E2E_WORK/logs/$name-down.log" 2>&1
    start=$(date +%s)
    scripts/engine.sh up "$name" >"$E2E_WORK/logs/$name-up.log" 2>&1
    echo "$? $(secs "$start")" >"$E2E_WORK/$name.up"
  done
) &
ups=$!

for name in $ENGINES_UNDER_TEST; do
  echo "== $name"
  until [ -s "$E2E_WORK/$name.up" ] || ! kill -0 "$ups" 2>/dev/null; do sleep 2; done
  read -r rc took <"$E2E_WORK/$name.up" 2>/dev/null || { rc=1; took=?; }
  if [ "$rc" != 0 ]; then
    fail "$name: up: $(tail -n 15 "$E2E_WORK/logs/$name-up.log")"
    continue
  fi
  ok "$name: up ($took s$(grep -q debootstrap "$E2E_WORK/logs/$name-up.log" && echo ", from nothing"))"

  frontend=$(scripts/engine.sh frontend "$name" "$TAG" 2>"$E2E_WORK/logs/$name-frontend.log")
  assert_eq "$name: frontend pushed to the engine's registry" "localhost:5000/kiln/frontend:$TAG" "$frontend"

  # The engine's own client, in a subshell so that the next engine starts clean.
  (
    trap 'echo "PASSED=$PASSED FAILED=$FAILED" >"$E2E_WORK/$name.counts"' EXIT
    if ! eval "$(scripts/engine.sh env "$name")"; then fail "$name: env"; exit 1; fi
    assert_eq "$name: docker on PATH is the engine's client" "/var/cache/kiln/engines/$name/bin/docker" "$(command -v docker)"
    case "$name" in docker26*) want=26.1.; bx=0.13. ;; docker28*) want=28.5.; bx=0.29. ;; esac
    assert_contains "$name: DOCKER_HOST reaches Docker $want" "$(docker version --format '{{.Server.Version}}' 2>&1)" "$want"
    assert_contains "$name: buildx $bx" "$(docker buildx version 2>&1)" "$bx"
    case "$name" in
      *-graphdriver)
        store=graphdriver
        assert_eq "$name: classic image store (overlay2)" overlay2 "$(docker info --format '{{.Driver}}' 2>&1)"
        assert_not_contains "$name: no containerd snapshotter" "$(docker info --format '{{json .DriverStatus}}' 2>&1)" "io.containerd.snapshotter" ;;
      *)
        store=containerd
        assert_contains "$name: containerd image store" "$(docker info --format '{{json .DriverStatus}}' 2>&1)" "io.containerd.snapshotter" ;;
    esac
    check "$name: $BASE is in the engine" docker image inspect "$BASE"

    spec="$E2E_WORK/$name-spec/worker.yaml"
    mkdir -p "$(dirname "$spec")"
    { echo "# syntax=$frontend"; tail -n +2 specs/worker.yaml; } >"$spec"
    ARGS=(--build-arg "PYTHON_IMAGE=$BASE" --build-arg PYTHON_VERSION=3.11 --secret "id=pipca,src=$CA")
    variants="minimal cuda"
    [ "$store" = graphdriver ] && variants=minimal
    for variant in $variants; do
      log="$E2E_WORK/logs/$name-$variant.log"
      start=$(date +%s)
      if docker buildx build --progress=plain --load -f "$spec" --target "$variant" -t "$IMG:$variant" \
          "${ARGS[@]}" examples/worker >"$log" 2>&1; then
        ok "$name: buildx build --load $variant ($(secs "$start") s)"
        assert_contains "$name: $variant: the frontend came from the registry" "$(cat "$log")" "docker-image://$frontend"
        if [ "$store" = containerd ]; then
          check "$name: $variant: joined with MergeOp (BuildKit >= 0.10)" grep -qE "^#[0-9]+ \[image\] merge" "$log"
        else
          # Docker's graphdriver store disables the mergeop cap: kiln copies instead.
          check "$name: $variant: copies, no MergeOp (cap disabled)" bash -c "! grep -qE '^#[0-9]+ \[image\] merge' '$log' && grep -qE '^#[0-9]+ \[image\] venv' '$log'"
        fi
        assert_contains "$name: $variant runs: python -m app.health" "$(docker run --rm "$IMG:$variant" python -m app.health 2>&1)" "healthy"
        assert_eq "$name: $variant runs as uid 10001" 10001 "$(docker run --rm "$IMG:$variant" id -u 2>&1)"
        docker image inspect --format '{{json .Config}}' "$IMG:$variant" >"$E2E_WORK/$name-$variant.config" 2>&1
      else
        fail "$name: buildx build --load $variant: $(tail -n 15 "$log")"
      fi
    done

    if [ "$store" = graphdriver ]; then
      # The copy path against the MergeOp path of the same Docker: the same image config.
      pair=${name%-graphdriver}
      if [ -s "$E2E_WORK/$pair-minimal.config" ]; then
        assert_eq "$name: minimal's image config equals $pair's (MergeOp) build" \
          "$(cat "$E2E_WORK/$pair-minimal.config")" "$(cat "$E2E_WORK/$name-minimal.config" 2>/dev/null)"
      else
        fail "$name: no image config of $pair's minimal build to compare with (test $pair first, in the same run)"
      fi
      # What buildx's docker driver refuses on this store: said, not silently dropped.
      log="$E2E_WORK/logs/$name-cache-to.log"
      if docker buildx build --progress=plain -f "$spec" --target minimal "${ARGS[@]}" \
          --cache-to "type=registry,ref=localhost:5000/kiln-e2e-cache:worker-$TAG,mode=max" \
          examples/worker >"$log" 2>&1; then
        fail "$name: cache export accepted on the graphdriver store (expected buildx to refuse it)"
      else
        assert_contains "$name: buildx refuses cache export here" "$(cat "$log")" "Cache export is not supported"
      fi
      log="$E2E_WORK/logs/$name-oci.log"
      if docker buildx build --progress=plain -f "$spec" --target minimal "${ARGS[@]}" \
          --output "type=oci,dest=$E2E_WORK/$name-oci.tar" examples/worker >"$log" 2>&1; then
        fail "$name: OCI output accepted on the graphdriver store (expected buildx to refuse it)"
      else
        assert_contains "$name: buildx refuses OCI output here" "$(cat "$log")" "not supported"
      fi
      log="$E2E_WORK/logs/$name-multiplatform.log"
      if docker buildx build --progress=plain --platform linux/amd64,linux/arm64 -f "$spec" --target minimal \
          "${ARGS[@]}" examples/worker >"$log" 2>&1; then
        fail "$name: a multi-platform build accepted on the graphdriver store (expected buildx to refuse it)"
      else
        assert_contains "$name: buildx refuses multi-platform here" "$(cat "$log")" "not supported"
      fi
      log="$E2E_WORK/logs/$name-provenance.log"
      if docker buildx build --progress=plain -f "$spec" --target minimal "${ARGS[@]}" \
          --provenance=mode=max -t "$IMG:provenance" examples/worker >"$log" 2>&1; then
        fail "$name: provenance accepted on the graphdriver store (expected buildx to refuse it)"
      else
        assert_contains "$name: buildx refuses attestations here" "$(cat "$log")" "not supported"
      fi
      docker rmi "$IMG:minimal" >/dev/null 2>&1
      exit 0
    fi

    # BUILDKIT_SYNTAX picks the frontend: the spec's own line names an image that exists
    # nowhere, so only the build arg can make these builds work (the first check says so).
    nosyntax="$E2E_WORK/$name-spec/nosyntax.yaml"
    { echo "# syntax=localhost:5000/kiln-e2e/no-such-frontend:$TAG"; tail -n +2 specs/worker.yaml; } >"$nosyntax"
    log="$E2E_WORK/logs/$name-nosyntax.log"
    if docker buildx build --progress=plain -f "$nosyntax" --target minimal "${ARGS[@]}" examples/worker >"$log" 2>&1; then
      fail "$name: the spec's own # syntax= (no such image) built anyway"
    else
      assert_contains "$name: without BUILDKIT_SYNTAX, the spec's missing frontend fails" "$(cat "$log")" "no-such-frontend"
    fi
    for variant in minimal cuda; do
      log="$E2E_WORK/logs/$name-syntax-$variant.log"
      start=$(date +%s)
      if docker buildx build --progress=plain --load -f "$nosyntax" --target "$variant" -t "$IMG:syntax-$variant" \
          "${ARGS[@]}" --build-arg "BUILDKIT_SYNTAX=$frontend" examples/worker >"$log" 2>&1; then
        ok "$name: buildx build --build-arg BUILDKIT_SYNTAX $variant ($(secs "$start") s)"
        assert_contains "$name: $variant: BUILDKIT_SYNTAX's frontend ran" "$(cat "$log")" "docker-image://$frontend"
        assert_contains "$name: $variant (BUILDKIT_SYNTAX) runs" "$(docker run --rm "$IMG:syntax-$variant" python -m app.health 2>&1)" "healthy"
      else
        fail "$name: buildx build --build-arg BUILDKIT_SYNTAX $variant: $(tail -n 15 "$log")"
      fi
    done
    # The repository's bake file as it is; its variables from the environment, the
    # frontend by its KILN_FRONTEND (BUILDKIT_SYNTAX; the spec's own line names a local image).
    # Newer buildx asks for reading the CA bundle outside the working directory.
    allow=()
    docker buildx bake --help 2>&1 | grep -q -- '--allow' && allow=(--allow "fs.read=$CA")
    log="$E2E_WORK/logs/$name-bake.log"
    start=$(date +%s)
    if PYTHON_IMAGE=$BASE PYTHON_VERSION=3.11 TAG=$TAG KILN_FRONTEND=$frontend \
        docker buildx bake --progress=plain "${allow[@]}" >"$log" 2>&1; then
      ok "$name: buildx bake, docker-bake.hcl ($(secs "$start") s)"
      assert_contains "$name: bake's frontend is its KILN_FRONTEND" "$(cat "$log")" "docker-image://$frontend"
      for variant in minimal cuda; do
        assert_contains "$name: bake's $variant runs" "$(docker run --rm "worker:$variant-$TAG" python -m app.health 2>&1)" "healthy"
      done
    else
      fail "$name: buildx bake: $(tail -n 15 "$log")"
    fi

    # Subrequests, decoded by buildx's own Go types.
    if docker buildx build --help 2>&1 | grep -q -- '--call'; then
      calls="targets outline check"; flag=--call
    else
      calls="targets outline"; flag=--print
    fi
    for what in $calls; do
      log="$E2E_WORK/logs/$name-$what.log"
      BUILDX_EXPERIMENTAL=1 docker buildx build "$flag" "$what" -f "$spec" \
        --build-arg "PYTHON_IMAGE=$BASE" examples/worker >"$log" 2>&1; rc=$?
      case "$what" in
        targets) want="cuda" ;;
        outline) want="PYTHON_IMAGE" ;;
        check) want="" ;;
      esac
      if [ "$rc" = 0 ] || { [ "$what" = check ] && ! grep -q "cannot unmarshal\|illegal base64" "$log"; }; then
        assert_contains "$name: buildx $flag $what decodes kiln's answer" "$(cat "$log")" "$want"
      else
        fail "$name: buildx $flag $what: exit $rc: $(grep -E '^ERROR|^error' "$log" | tail -n 1)"
      fi
    done

    # A failing step shows its spec line: a bad apt package, snippet from the spec.
    bad="$E2E_WORK/$name-bad.yaml"
    sed 's/runtime: \[libpq5/runtime: [kiln-no-such-package, libpq5/' "$spec" >"$bad"
    log="$E2E_WORK/logs/$name-bad.log"
    if docker buildx build --progress=plain -f "$bad" --target minimal --build-arg "PYTHON_IMAGE=$BASE" \
        --build-arg PYTHON_VERSION=3.11 --secret "id=pipca,src=$CA" examples/worker >"$log" 2>&1; then
      fail "$name: a missing apt package fails the build"
    else
      assert_contains "$name: the failing step is named with its spec line" "$(cat "$log")" "step \`apt runtime: kiln-no-such-package"
      assert_contains "$name: buildx shows the spec snippet" "$(cat "$log")" ">>>"
    fi

    # --push with max provenance: the manifest in the registry (read by the buildx inside
    # the engine's container, where localhost:5000 is), the provenance naming the spec.
    ref="localhost:5000/kiln-e2e-engines/worker:minimal-$TAG"
    log="$E2E_WORK/logs/$name-push.log"
    if docker buildx build --progress=plain -f "$spec" --target minimal "${ARGS[@]}" --push \
        --provenance=mode=max -t "$ref" examples/worker >"$log" 2>&1; then
      ok "$name: buildx build --push --provenance=mode=max"
      inspect=$(in_engine docker buildx imagetools inspect "$ref" 2>&1)
      assert_contains "$name: imagetools inspect shows the pushed image" "$inspect" "Name:      $ref"
      assert_contains "$name: ... an index with the image and its attestation" "$inspect" "attestation-manifest"
      # Compact JSON (buildx 0.13 indents it, 0.29 does not).
      prov=$(in_engine docker buildx imagetools inspect "$ref" --format '{{json .Provenance}}' 2>&1 \
        | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin), separators=(",", ":")))' 2>&1)
      echo "$prov" >"$E2E_WORK/logs/$name-provenance.json"
      # SLSA v0.2 (both engines' default): the spec is the config source's entry point
      # (the `filename` frontend attr), the frontend the `source` arg; mode=max adds the
      # spec's own text as a source (kiln's source map).
      assert_contains "$name: the provenance names the spec file (entryPoint)" "$prov" '"entryPoint":"worker.yaml"'
      assert_contains "$name: the provenance names the frontend (source)" "$prov" "\"source\":\"$frontend\""
      assert_contains "$name: the provenance carries the spec as a source (mode=max)" "$prov" '"filename":"worker.yaml"'
    else
      fail "$name: buildx build --push: $(tail -n 15 "$log")"
    fi

    # --output type=oci: an OCI image layout in a tarball.
    oci="$E2E_WORK/$name-oci.tar"
    log="$E2E_WORK/logs/$name-oci.log"
    if docker buildx build --progress=plain -f "$spec" --target minimal "${ARGS[@]}" \
        --output "type=oci,dest=$oci" examples/worker >"$log" 2>&1; then
      ok "$name: buildx build --output type=oci"
      check "$name: the OCI tarball is a layout: oci-layout, index.json, its manifest and config blobs" \
        python3 - "$oci" <<'PY'
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
names = set(n.lstrip("./") for n in t.getnames())
blob = lambda d: json.load(t.extractfile(next(m for m in t.getmembers() if m.name.lstrip("./") == "blobs/sha256/" + d.split(":")[1])))
assert json.load(t.extractfile(next(m for m in t.getmembers() if m.name.lstrip("./") == "oci-layout")))["imageLayoutVersion"] == "1.0.0"
index = json.load(t.extractfile(next(m for m in t.getmembers() if m.name.lstrip("./") == "index.json")))
desc = index["manifests"][0]
doc = blob(desc["digest"])
if "manifests" in doc:  # an index (image + attestations): its image manifest
    desc = next(m for m in doc["manifests"] if m.get("platform", {}).get("architecture") != "unknown")
    doc = blob(desc["digest"])
config = blob(doc["config"]["digest"])
assert config["config"]["User"] == "10001:10001" or config["config"]["User"].startswith("worker"), config["config"]["User"]
for layer in doc["layers"]:
    assert "blobs/sha256/" + layer["digest"].split(":")[1] in names, layer
print("ok", desc["digest"], len(doc["layers"]), "layers")
PY
    else
      fail "$name: buildx build --output type=oci: $(tail -n 15 "$log")"
    fi
    rm -f "$oci"

    # Several platforms on a real multi-platform base: linux/arm64 runs under qemu.
    plat="$E2E_WORK/$name-spec/plat.yaml"
    mkdir -p "$E2E_WORK/plat-ctx"
    cat >"$plat" <<YAML
# syntax=$frontend
version: 1
name: plat
args: {PYTHON_IMAGE: python:3.11-slim}
python: {base: "\${PYTHON_IMAGE}", version: "3.11"}
requirements:
  core: {packages: ["six==1.16.0"]}
build_secrets: {ca_bundle: pipca}
user: {name: app, uid: 10001}
cmd: [python, -c, "import platform; print(platform.machine())"]
verify: ["python -c 'import six'"]
variants:
  default: {requirements: [core]}
YAML
    if [[ " $MULTIPLATFORM " == *" $name "* ]]; then
      start=$(date +%s)
      if multi=$(scripts/engine.sh multiarch "$name" 2>"$E2E_WORK/logs/$name-multiarch.log"); then
        ok "$name: multi-platform base $multi ($(secs "$start") s$(grep -q debootstrap "$E2E_WORK/logs/$name-multiarch.log" && echo ", arm64 rootfs made"))"
        ref="localhost:5000/kiln-e2e-engines/plat:$TAG"
        log="$E2E_WORK/logs/$name-multiplatform.log"
        start=$(date +%s)
        if docker buildx build --progress=plain --platform linux/amd64,linux/arm64 -f "$plat" \
            --build-arg "PYTHON_IMAGE=$multi" --secret "id=pipca,src=$CA" --push -t "$ref" \
            "$E2E_WORK/plat-ctx" >"$log" 2>&1; then
          ok "$name: buildx build --platform linux/amd64,linux/arm64 --push ($(secs "$start") s)"
          check "$name: the arm64 steps ran as such ([linux/arm64] ...)" grep -qE "\[linux/arm64\] (pip|uv) install: core" "$log"
          inspect=$(in_engine docker buildx imagetools inspect "$ref" 2>&1)
          assert_contains "$name: the pushed index has linux/amd64" "$inspect" "Platform:    linux/amd64"
          assert_contains "$name: the pushed index has linux/arm64" "$inspect" "Platform:    linux/arm64"
          assert_eq "$name: the linux/amd64 image runs x86_64" x86_64 "$(docker run --rm --pull always --platform linux/amd64 "$ref" 2>&1 | tail -n 1)"
          assert_eq "$name: the linux/arm64 image runs aarch64" aarch64 "$(docker run --rm --pull always --platform linux/arm64 "$ref" 2>&1 | tail -n 1)"
        else
          fail "$name: multi-platform build: $(tail -n 15 "$log")"
        fi
      else
        fail "$name: scripts/engine.sh multiarch $name: $(tail -n 10 "$E2E_WORK/logs/$name-multiarch.log")"
      fi
    else
      echo "  ..   $name: multi-platform build not run here (KILN_E2E_MULTIPLATFORM=$MULTIPLATFORM)"
    fi

    # A base without the requested platform (the local amd64-only base, asked for arm64):
    # an error at python.base, never an "arm64" image of amd64 binaries.
    log="$E2E_WORK/logs/$name-wrong-platform.log"
    if docker buildx build --progress=plain --platform linux/arm64 -f "$plat" --build-arg "PYTHON_IMAGE=$BASE" \
        --secret "id=pipca,src=$CA" "$E2E_WORK/plat-ctx" >"$log" 2>&1; then
      fail "$name: an amd64-only base built for linux/arm64 (a wrong image)"
    else
      check "$name: an amd64-only base for linux/arm64 fails at python.base (plat.yaml:5)" \
        grep -qE 'plat\.yaml:5:[0-9]+: error: the `python\.base` image `kiln-local/python:3\.11` has no linux/arm64 image' "$log"
    fi

    # Registry cache, last: its `builder prune -af` empties the engine's whole build cache
    # (the next run's first builds are cold again). This run's own base makes the first
    # build run every step for real, so what the rebuild finds came from this run. It
    # needs a layer of its own: BuildKit keys an image by its layers (a label-only copy
    # hits the steps cached by earlier runs).
    run_base="kiln-e2e-engines/python:run-$RUN_ID"
    cache="localhost:5000/kiln-e2e-cache:worker-$TAG"
    RUN_ARGS=(--build-arg "PYTHON_IMAGE=$run_base" --build-arg PYTHON_VERSION=3.11 --secret "id=pipca,src=$CA")
    steps=("apt build:" "apt runtime:" "python: 3.11 check" "uv install: core")
    if run_base_dockerfile "$BASE" "$RUN_ID" \
        | docker buildx build -q --load -t "$run_base" - >"$E2E_WORK/logs/$name-run-base.log" 2>&1; then
      log="$E2E_WORK/logs/$name-cache-to.log"
      start=$(date +%s)
      if docker buildx build --progress=plain -f "$spec" --target minimal "${RUN_ARGS[@]}" \
          --cache-to "type=registry,ref=$cache,mode=max" examples/worker >"$log" 2>&1; then
        ok "$name: build with --cache-to type=registry,mode=max ($(secs "$start") s)"
        for step in "${steps[@]}"; do check "$name: cache-to build ran [$step]" step_ran "$name-cache-to" "$step"; done
        check "$name: the cache was exported to the registry" grep -q "exporting cache to registry" "$log"
        check "$name: docker builder prune -af" docker builder prune -af
        log="$E2E_WORK/logs/$name-cache-from.log"
        start=$(date +%s)
        if docker buildx build --progress=plain -f "$spec" --target minimal "${RUN_ARGS[@]}" \
            --cache-from "type=registry,ref=$cache" examples/worker >"$log" 2>&1; then
          ok "$name: rebuild after prune with --cache-from ($(secs "$start") s)"
          for step in "${steps[@]}"; do check "$name: cache-from: [$step] CACHED" step_cached "$name-cache-from" "$step"; done
        else
          fail "$name: rebuild with --cache-from: $(tail -n 15 "$log")"
        fi
      else
        fail "$name: build with --cache-to: $(tail -n 15 "$log")"
      fi
      docker rmi "$run_base" >/dev/null 2>&1
    else
      fail "$name: this run's base: $(tail -n 5 "$E2E_WORK/logs/$name-run-base.log")"
    fi

    docker rmi "$IMG:syntax-minimal" "$IMG:syntax-cuda" "localhost:5000/kiln-e2e-engines/worker:minimal-$TAG" \
      "localhost:5000/kiln-e2e-engines/plat:$TAG" >/dev/null 2>&1
    docker rmi "$IMG:minimal" "$IMG:cuda" "worker:minimal-$TAG" "worker:cuda-$TAG" >/dev/null 2>&1
  )
  # The subshell's counts back into this shell.
  . "$E2E_WORK/$name.counts"
done
wait "$ups"

echo "== up again"
for name in $ENGINES_UNDER_TEST; do
  start=$(date +%s)
  out=$(scripts/engine.sh up "$name" 2>&1); rc=$?; took=$(secs "$start")
  if [ "$rc" = 0 ] && [ "$took" -le 15 ]; then ok "$name: up again (cached) in $took s"; else fail "$name: up again: exit $rc in $took s: $out"; fi
  assert_not_contains "$name: up again makes nothing" "$out" "copying"
done

if [ -s "$KNOWN" ]; then
  echo
  echo "known failures (not counted):"
  cat "$KNOWN"
fi
finish
