#!/usr/bin/env bash
# End-to-end: how a kiln image runs (issue 13), with specs/service.yaml on
# examples/service. On Docker 20.10: `init` (docker stop of a worker without a SIGTERM
# handler, under tini and as PID 1), a named volume and a `writable` dir owned by the
# user, root-owned code, `files` with mode and owner, a variant with its own cmd, user,
# health check, stop signal and ports, SOURCE_DATE_EPOCH as `created`. On Docker 28
# (containerd store, buildx): two --no-cache builds with SOURCE_DATE_EPOCH and
# rewrite-timestamp=true give one image digest.
# Needs scripts/engine.sh up (and up docker28, which it runs). Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

FRONTEND=${KILN_E2E_FRONTEND:-kiln/frontend:e2e-13}
TAG=${FRONTEND##*:}
BASE=kiln-local/python:3.11
CA=/etc/ssl/certs/ca-certificates.crt
IMG=kiln-e2e-13/service
EPOCH=1700000000
RUN_ID="$(date +%s%N)"
started=$(date +%s)

engine_up
build_progress_reader
scripts/frontend-image.sh "$FRONTEND" >/dev/null || { echo "cannot build the frontend image"; exit 1; }
SPEC="$E2E_WORK/spec/service.yaml"
mkdir -p "$(dirname "$SPEC")"
{ echo "# syntax=$FRONTEND"; tail -n +2 specs/service.yaml; } >"$SPEC"
ARGS=(--build-arg "PYTHON_IMAGE=$BASE" --secret "id=pipca,src=$CA")

last_line() { grep -v '^[[:space:]]*$' "$E2E_WORK/logs/$1.log" | tail -n 1; }

# stop_time IMAGE [docker stop args]: seconds (to 0.1) that `docker stop` took, and the
# exit code, once the worker has said it is up.
stop_time() {
  local img=$1 cid start ms; shift
  cid=$("$DOCKER" run -d "$img")
  for _ in $(seq 1 50); do "$DOCKER" logs "$cid" 2>&1 | grep -q " up" && break; sleep 0.2; done
  start=$(date +%s%N)
  "$DOCKER" stop "$@" "$cid" >/dev/null
  ms=$((($(date +%s%N) - start) / 1000000))
  echo "$((ms / 1000)).$((ms % 1000 / 100)) $("$DOCKER" inspect -f '{{.State.ExitCode}}' "$cid")"
  "$DOCKER" rm -f "$cid" >/dev/null
}

echo "== worker (init: true) and noinit, on Docker 20.10"
if dbuild worker -f "$SPEC" --target worker -t "$IMG:worker" --build-arg "SOURCE_DATE_EPOCH=$EPOCH" "${ARGS[@]}" examples/service \
  && dbuild noinit -f "$SPEC" --target noinit -t "$IMG:noinit" "${ARGS[@]}" examples/service; then
  ok "worker and noinit build (the health check verified in the build)"
  assert_eq "init: tini is the entrypoint" '["/usr/bin/tini","--"]' "$(config "$IMG:worker" '{{json .Config.Entrypoint}}')"
  read -r t_init code_init <<<"$(stop_time "$IMG:worker")"
  read -r t_pid1 code_pid1 <<<"$(stop_time "$IMG:noinit" -t 3)"
  echo "  ..   docker stop: ${t_init} s (exit $code_init) under tini; ${t_pid1} s (exit $code_pid1) as PID 1 with -t 3"
  assert_eq "under tini, docker stop takes under 1 s" yes "$([ "${t_init%.*}" -lt 1 ] && echo yes || echo "no: $t_init s")"
  assert_eq "under tini, the worker ends by SIGTERM (143)" 143 "$code_init"
  assert_eq "as PID 1 it ignores SIGTERM and is killed (137)" 137 "$code_pid1"

  vol="kiln-e2e-13-$RUN_ID"
  out=$("$DOCKER" run --rm -v "$vol:/var/lib/svc" "$IMG:worker" sh -c 'echo x >/var/lib/svc/state && stat -c %u:%g /var/lib/svc' 2>&1)
  assert_eq "a named volume on a declared volume is writable by the user" "10002:10002" "$out"
  out=$("$DOCKER" run --rm -v "$vol-2:/var/lib/other" "$IMG:worker" sh -c 'echo x >/var/lib/other/state' 2>&1)
  assert_contains "(one on an undeclared directory is not: the pain it answers)" "$out" "Permission denied"
  "$DOCKER" volume rm -f "$vol" "$vol-2" >/dev/null
  assert_eq "volumes in the config" '{"/var/lib/svc":{}}' "$(config "$IMG:worker" '{{json .Config.Volumes}}')"
  check "a writable dir is writable by the user" "$DOCKER" run --rm "$IMG:worker" touch /var/cache/svc/x
  assert_eq "the code is root-owned" "0:0" "$("$DOCKER" run --rm "$IMG:worker" stat -c %u:%g /app/app/worker.py)"
  check "the user cannot rewrite the code" bash -c "! $DOCKER run --rm $IMG:worker touch /app/app/worker.py"
  assert_eq "files: mode 0640, owner user" "640 10002:10002" "$("$DOCKER" run --rm "$IMG:worker" stat -c '%a %u:%g' /etc/svc/svc.toml)"
  assert_eq "files: default mode 0644, owner root" "644 0:0" "$("$DOCKER" run --rm "$IMG:worker" stat -c '%a %u:%g' /etc/svc/motd)"
  assert_eq "SOURCE_DATE_EPOCH is the created label" "2023-11-14T22:13:20Z" "$(config "$IMG:worker" '{{index .Config.Labels "org.opencontainers.image.created"}}')"
  echo "  ..   image Created on Docker 20.10: $(config "$IMG:worker" '{{.Created}}')"
else
  fail "worker/noinit build: $(tail -n 15 "$E2E_WORK/logs/worker.log" "$E2E_WORK/logs/noinit.log" 2>/dev/null)"
fi

echo "== gpu: a variant's own cmd, user, health check, stop signal and ports"
if dbuild gpu -f "$SPEC" --target gpu -t "$IMG:gpu" "${ARGS[@]}" examples/service; then
  ok "gpu builds"
  assert_eq "gpu: its own cmd" '["python","-m","app.jobs"]' "$(config "$IMG:gpu" '{{json .Config.Cmd}}')"
  assert_eq "gpu: its own user" "10003:10003" "$(config "$IMG:gpu" '{{.Config.User}}')"
  assert_eq "gpu: healthcheck: null removes it" "null" "$(config "$IMG:gpu" '{{json .Config.Healthcheck}}')"
  assert_eq "gpu: stop signal" "SIGINT" "$(config "$IMG:gpu" '{{.Config.StopSignal}}')"
  assert_eq "gpu: ports" '{"9000/tcp":{}}' "$(config "$IMG:gpu" '{{json .Config.ExposedPorts}}')"
  assert_eq "gpu: spec-wide init kept" '["/usr/bin/tini","--"]' "$(config "$IMG:gpu" '{{json .Config.Entrypoint}}')"
  read -r t_gpu code_gpu <<<"$(stop_time "$IMG:gpu")"
  assert_eq "gpu: the job runner stops by SIGINT under 1 s" yes "$([ "${t_gpu%.*}" -lt 1 ] && echo yes || echo "no: $t_gpu s, exit $code_gpu")"
  assert_eq "gpu: the volume belongs to its user" "10003:10003" "$("$DOCKER" run --rm "$IMG:gpu" stat -c %u:%g /var/lib/svc)"
else
  fail "gpu builds: $(tail -n 15 "$E2E_WORK/logs/gpu.log")"
fi

echo "== steps: a builder step's output, rerun only by its inputs; an image step"
SCTX="$E2E_WORK/ctx-steps"; cp -r examples/service "$SCTX"
echo "# e2e run $RUN_ID" >>"$SCTX/assets/banner.txt"
if dbuild steps-1 -f "$SPEC" --target worker -t "$IMG:steps" "${ARGS[@]}" "$SCTX"; then
  check "the builder step ran" step_ran steps-1 "step banner (builder)"
  assert_contains "its declared output is in the image" "$("$DOCKER" run --rm "$IMG:steps" cat /usr/share/svc/banner.txt 2>&1)" "SVC: STATE IN A VOLUME"
  assert_eq "nothing else of the builder step is" "" "$("$DOCKER" run --rm "$IMG:steps" sh -c 'ls -d /out /kiln 2>/dev/null')"
  assert_eq "the image step compiled the code (root-owned __pycache__)" "0" "$("$DOCKER" run --rm "$IMG:steps" stat -c %u /app/app/__pycache__ 2>&1)"
  echo "# app edit $RUN_ID" >>"$SCTX/app/worker.py"
  if dbuild steps-2 -f "$SPEC" --target worker -t "$IMG:steps" "${ARGS[@]}" "$SCTX"; then
    check "an app edit leaves the builder step CACHED" step_cached steps-2 "step banner (builder)"
    check "and reruns the image step (it stands on the app)" step_ran steps-2 "step bytecode (image)"
  else
    fail "steps: rebuild after an app edit: $(tail -n 15 "$E2E_WORK/logs/steps-2.log")"
  fi
  echo "edited $RUN_ID" >>"$SCTX/assets/banner.txt"
  if dbuild steps-3 -f "$SPEC" --target worker -t "$IMG:steps" "${ARGS[@]}" "$SCTX"; then
    check "an input edit reruns the builder step" step_ran steps-3 "step banner (builder)"
    assert_contains "and the new output is in the image" "$("$DOCKER" run --rm "$IMG:steps" cat /usr/share/svc/banner.txt 2>&1)" "EDITED $RUN_ID"
  else
    fail "steps: rebuild after an input edit: $(tail -n 15 "$E2E_WORK/logs/steps-3.log")"
  fi
  sed 's|^    run: mkdir -p /out .*|    run: echo making the banner; exit 3|' "$SPEC" >"$E2E_WORK/spec/badstep.yaml"
  line=$(grep -n '^  - name: banner' "$E2E_WORK/spec/badstep.yaml" | cut -d: -f1)
  if dbuild steps-bad -f "$E2E_WORK/spec/badstep.yaml" --target worker "${ARGS[@]}" "$SCTX"; then
    fail "a failing step must fail the build"
  else
    assert_contains "a failing step is named with its spec line" "$(last_line steps-bad)" "badstep.yaml:$line: step \`step banner (builder)\` failed: exit code: 3"
  fi
else
  fail "steps: build: $(tail -n 15 "$E2E_WORK/logs/steps-1.log")"
fi

echo "== system.repositories: a package from a repository added by its key"
# A flat apt repository made here (one .deb, signed by a throwaway key) and served over
# http on the docker0 address, as a vendor's would be; the key goes in the context.
REPO="$E2E_WORK/repo"; CTX="$E2E_WORK/ctx-repo"; export GNUPGHOME="$E2E_WORK/gnupg"
mkdir -p "$REPO" "$GNUPGHOME" && chmod 700 "$GNUPGHOME" && cp -r examples/service "$CTX" && mkdir -p "$CTX/keys"
pkg="$E2E_WORK/pkg"; mkdir -p "$pkg/DEBIAN" "$pkg/usr/share/kiln-e2e-hello"
echo "hello from $RUN_ID" >"$pkg/usr/share/kiln-e2e-hello/hello.txt"
printf 'Package: kiln-e2e-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: kiln e2e <e2e@kiln.invalid>\nDescription: a package only this repository has\n' >"$pkg/DEBIAN/control"
HOST_IP=$(ip -4 -o addr show docker0 | awk '{print $4}' | cut -d/ -f1)
PORT=$((20000 + RANDOM % 20000))
if dpkg-deb --build "$pkg" "$REPO/kiln-e2e-hello_1.0_all.deb" >/dev/null \
  && (cd "$REPO" && dpkg-scanpackages --multiversion . /dev/null >Packages 2>/dev/null) \
  && { printf 'Origin: kiln-e2e\nLabel: kiln-e2e\nSuite: ./\nDate: %s\nSHA256:\n' "$(date -Ru)"
       printf ' %s %s Packages\n' "$(sha256sum "$REPO/Packages" | cut -d' ' -f1)" "$(stat -c %s "$REPO/Packages")"; } >"$REPO/Release" \
  && gpg --batch -q --passphrase '' --quick-gen-key "kiln e2e <e2e@kiln.invalid>" ed25519 sign never 2>/dev/null \
  && gpg --batch -q --yes --clearsign -o "$REPO/InRelease" "$REPO/Release" \
  && gpg --batch -q --armor --export >"$CTX/keys/e2e.asc"; then
  python3 -m http.server "$PORT" --bind "$HOST_IP" --directory "$REPO" >"$E2E_WORK/logs/repo-http.log" 2>&1 &
  http_pid=$!
  { echo "# syntax=$FRONTEND"; tail -n +2 specs/service.yaml; } | sed "s|^init: true.*|init: true\nsystem:\n  runtime: [kiln-e2e-hello]\n  repositories:\n    - {name: e2e, url: \"http://$HOST_IP:$PORT\", suite: ./, key: keys/e2e.asc}|" >"$E2E_WORK/spec/repo.yaml"
  sleep 1
  if dbuild repo -f "$E2E_WORK/spec/repo.yaml" --target worker -t "$IMG:repo" "${ARGS[@]}" "$CTX"; then
    ok "a build with system.repositories"
    assert_eq "the repository's package is installed" "hello from $RUN_ID" "$("$DOCKER" run --rm "$IMG:repo" cat /usr/share/kiln-e2e-hello/hello.txt 2>&1)"
    # (BuildKit 0.8 leaves the empty mount point /kiln/apt-keys; no file.)
    assert_eq "the source and its key are not left in the image" "" "$("$DOCKER" run --rm "$IMG:repo" sh -c 'ls /etc/apt/sources.list.d/kiln-* 2>/dev/null; find /kiln -type f 2>/dev/null')"
  else
    fail "a build with system.repositories: $(tail -n 15 "$E2E_WORK/logs/repo.log")"
  fi
  # The same archive at another URL (so no verified lists are in the apt cache) with
  # another key: apt refuses it and the build fails at that step.
  mkdir -p "$REPO/mirror" && cp "$REPO"/InRelease "$REPO"/Release "$REPO"/Packages "$REPO"/*.deb "$REPO/mirror/"
  gpg --batch -q --passphrase '' --quick-gen-key "other <other@kiln.invalid>" ed25519 sign never 2>/dev/null
  gpg --batch -q --armor --export "other@kiln.invalid" >"$CTX/keys/e2e.asc"
  sed -i "s|url: \"http://$HOST_IP:$PORT\"|url: \"http://$HOST_IP:$PORT/mirror\"|" "$E2E_WORK/spec/repo.yaml"
  if dbuild repo-badkey -f "$E2E_WORK/spec/repo.yaml" --target worker "${ARGS[@]}" "$CTX"; then
    fail "a repository signed by another key was accepted"
  else
    line=$(grep -n 'kiln-e2e-hello' "$E2E_WORK/spec/repo.yaml" | head -n 1 | cut -d: -f1)
    assert_contains "a repository signed by another key is refused at the apt step and its line" "$(last_line repo-badkey)" "repo.yaml:$line: step \`apt runtime: kiln-e2e-hello tini\` failed"
  fi
  kill "$http_pid" 2>/dev/null
else
  fail "cannot make the test apt repository"
fi

echo "== reproducible: two cold builds, one digest (Docker 28, containerd store)"
if scripts/engine.sh up docker28 >"$E2E_WORK/logs/docker28-up.log" 2>&1 \
  && remote=$(scripts/engine.sh frontend docker28 "$TAG" 2>"$E2E_WORK/logs/docker28-frontend.log"); then
  (
    trap 'echo "PASSED=$PASSED FAILED=$FAILED" >"$E2E_WORK/docker28.counts"' EXIT
    eval "$(scripts/engine.sh env docker28)" || { fail "docker28: env"; exit 1; }
    spec="$E2E_WORK/spec28/service.yaml"
    mkdir -p "$(dirname "$spec")"
    { echo "# syntax=$remote"; tail -n +2 specs/service.yaml; } >"$spec"
    digests=()
    for n in 1 2; do
      meta="$E2E_WORK/repro-$n.json"
      start=$(date +%s)
      # An OCI tar: the image exporter of the containerd store unpacks, which conflicts
      # with rewrite-timestamp; no provenance (it records the build's own times).
      if SOURCE_DATE_EPOCH=$EPOCH docker buildx build --progress=plain --no-cache --provenance=false \
          --metadata-file "$meta" --output "type=oci,dest=$E2E_WORK/repro-$n.tar,rewrite-timestamp=true" \
          -f "$spec" --target worker --build-arg "PYTHON_IMAGE=$BASE" --secret "id=pipca,src=$CA" \
          examples/service >"$E2E_WORK/logs/repro-$n.log" 2>&1; then
        digests+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["containerimage.digest"])' "$meta")")
        echo "  ..   cold build $n: $(( $(date +%s) - start )) s, ${digests[-1]}"
      else
        fail "docker28: cold build $n: $(tail -n 15 "$E2E_WORK/logs/repro-$n.log")"
      fi
    done
    if [ "${#digests[@]}" = 2 ]; then
      assert_eq "two --no-cache builds give one image digest" "${digests[0]}" "${digests[1]}"
      created=$(python3 - "$E2E_WORK/repro-1.tar" <<'PY'
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
blob = lambda d: json.load(t.extractfile("blobs/sha256/" + d.split(":")[1]))
m = blob(json.load(t.extractfile("index.json"))["manifests"][0]["digest"])
c = blob(m["config"]["digest"])
print(c["created"], c["history"][-1].get("created"), c["config"]["Labels"].get("org.opencontainers.image.revision"))
PY
)
      read -r created last revision <<<"$created"
      assert_eq "created and the last history entry are SOURCE_DATE_EPOCH" "2023-11-14T22:13:20Z 2023-11-14T22:13:20Z" "$created $last"
      # buildx sends the checkout's commit (vcs:revision); kiln makes it the OCI label.
      assert_contains "the revision label is the checkout's commit (buildx git metadata)" "$revision" "$(git rev-parse HEAD)"
    fi
  )
  [ -f "$E2E_WORK/docker28.counts" ] && . "$E2E_WORK/docker28.counts"
else
  fail "docker28: up or frontend: $(tail -n 5 "$E2E_WORK/logs/docker28-up.log" "$E2E_WORK/logs/docker28-frontend.log")"
fi

echo "service.sh: $(( $(date +%s) - started )) s"
finish
