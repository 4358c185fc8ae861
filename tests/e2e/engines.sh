#!/usr/bin/env bash
# End-to-end on modern engines: for each engine (default docker26 and docker28, both with
# the containerd image store), `scripts/engine.sh up NAME`, the frontend pushed to the
# engine's registry, then real builds of the example worker through that engine's own
# docker client and buildx after `eval "$(scripts/engine.sh env NAME)"`:
# `docker buildx build --load` of both variants via `# syntax=localhost:5000/...`, the
# images run (health, uid), and `docker buildx bake` with the repository's docker-bake.hcl.
# `--call targets|outline|check` (buildx 0.29) or `--print targets|outline` (0.13) must
# be decoded by buildx itself; a failing step must show its spec line's snippet.
# Environment: KILN_E2E_ENGINES (engines to test, default "docker26 docker28"),
# KILN_E2E_FRESH=1 (`down NAME --purge` first: times `up` from nothing).
# Time on 2 busy cores: from nothing (KILN_E2E_FRESH=1) 13 to 15 minutes for both engines
# (786 and 884 s measured; each `up` 3 to 5 minutes: debootstrap and apt in a chroot; the
# first builds about 3), with the engines and their build caches kept about 1.5 (95 s).
# Ends with "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

ENGINES_UNDER_TEST=${KILN_E2E_ENGINES:-docker26 docker28}
TAG=e2e-engines
BASE=kiln-local/python:3.11
CA=/etc/ssl/certs/ca-certificates.crt
IMG=kiln-e2e-engines/worker
KNOWN="$E2E_WORK/known-failures.txt"
: >"$KNOWN"
rm -f "$E2E_WORK"/*.up "$E2E_WORK"/*.counts

secs() { echo $(( $(date +%s) - $1 )); }
known() { echo "  known failure: $*" | tee -a "$KNOWN"; }

engine_up || exit 1

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
    assert_contains "$name: containerd image store" "$(docker info --format '{{json .DriverStatus}}' 2>&1)" "io.containerd.snapshotter"
    check "$name: $BASE is in the engine" docker image inspect "$BASE"

    spec="$E2E_WORK/$name-spec/worker.yaml"
    mkdir -p "$(dirname "$spec")"
    { echo "# syntax=$frontend"; tail -n +2 specs/worker.yaml; } >"$spec"
    for variant in minimal cuda; do
      log="$E2E_WORK/logs/$name-$variant.log"
      start=$(date +%s)
      if docker buildx build --progress=plain --load -f "$spec" --target "$variant" -t "$IMG:$variant" \
          --build-arg "PYTHON_IMAGE=$BASE" --build-arg PYTHON_VERSION=3.11 \
          --secret "id=pipca,src=$CA" examples/worker >"$log" 2>&1; then
        ok "$name: buildx build --load $variant ($(secs "$start") s)"
        assert_contains "$name: $variant: the frontend came from the registry" "$(cat "$log")" "docker-image://$frontend"
        check "$name: $variant: joined with MergeOp (BuildKit >= 0.10)" grep -qE "^#[0-9]+ \[image\] merge" "$log"
        assert_contains "$name: $variant runs: python -m app.health" "$(docker run --rm "$IMG:$variant" python -m app.health 2>&1)" "healthy"
        assert_eq "$name: $variant runs as uid 10001" 10001 "$(docker run --rm "$IMG:$variant" id -u 2>&1)"
      else
        fail "$name: buildx build --load $variant: $(tail -n 15 "$log")"
      fi
    done

    # The repository's bake file as it is; its variables from the environment, the
    # frontend by BUILDKIT_SYNTAX (the spec's own `# syntax=` names a local image).
    # Newer buildx asks for reading the CA bundle outside the working directory.
    allow=()
    docker buildx bake --help 2>&1 | grep -q -- '--allow' && allow=(--allow "fs.read=$CA")
    log="$E2E_WORK/logs/$name-bake.log"
    start=$(date +%s)
    if PYTHON_IMAGE=$BASE PYTHON_VERSION=3.11 TAG=$TAG docker buildx bake --progress=plain "${allow[@]}" \
        --set "*.args.BUILDKIT_SYNTAX=$frontend" >"$log" 2>&1; then
      ok "$name: buildx bake, docker-bake.hcl ($(secs "$start") s)"
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
