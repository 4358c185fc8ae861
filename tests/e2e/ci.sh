#!/usr/bin/env bash
# The CI jobs of docs/usage.md ("In CI"), taken from the doc's own text so that the doc
# cannot drift from what runs, on Docker 28 (its BuildKit, its registry on localhost:5000
# inside its container, which stands in for the CI registry):
#   - the GitLab job: its `variables:`, then the pipeline's own values (the registry, the
#     frontend and base made here, the CA bundle), then its `script:` as written: buildctl
#     with kiln through gateway.v0, the image pushed, the registry cache exported with
#     mode=max. `buildctl-daemonless.sh` (a buildkitd of the job's own) is `buildctl`
#     here, pointed at Docker 28's BuildKit through its daemon's /grpc endpoint (the
#     connection buildx's docker driver makes). Needs a `buildctl` on PATH (or BUILDCTL):
#     Debian packages none and the project builds none, so without one the job is reported
#     as not run (neither passed nor failed);
#   - the bake step: its `env:` and `set:` lines (the doc's registry.example.com/team
#     replaced by the engine's registry) through `docker buildx bake --push`, as the
#     action runs it (`--allow fs=*`);
#   - the zstd bake command ("Large images: zstd layers"): every layer of the pushed image
#     zstd (its manifest's media types), and the image runs.
# Checks: each job exits 0; the images are in the registry and run; each cache ref holds
# more layers than its image (mode=max: the builder stages too). Not checked here: a fresh
# runner importing that cache (it needs the shared engine's build cache pruned;
# engines.sh and locked.sh do that), and `sbom: true` (left out of the bake run).
# About 5 minutes with buildctl on a busy machine (GitLab job 126 s, bake 2.5 min).
# Environment: KILN_E2E_CI_ENGINE (default docker28), KILN_E2E_CI_TAG (the frontend's
# tag, default e2e-ci), BUILDCTL (default: buildctl on PATH).
# Ends with "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

NAME=${KILN_E2E_CI_ENGINE:-docker28}
TAG=${KILN_E2E_CI_TAG:-e2e-ci}
BASE=kiln-local/python:3.11
CA=/etc/ssl/certs/ca-certificates.crt
RUN_ID="$(date +%s)-$$"
REGISTRY=localhost:5000
REPO="$REGISTRY/kiln-e2e-ci-$TAG"
engine_up || exit 1
in_engine() { DOCKER_HOST=unix:///var/run/docker.sock "$DOCKER" exec "kiln-engine-$NAME" "$@"; }
engine_frontend "$NAME" "$TAG" || { finish; exit 1; }
FRONTEND=$ENGINE_FRONTEND
SOCK=$(eval "$(scripts/engine.sh env "$NAME")" && echo "${DOCKER_HOST#unix://}")

# The doc's jobs, as shell: job-gitlab.sh (the job's variables, the pipeline's values,
# its script), bake.env / bake.set (the bake step's env and set lines) and zstd.args (the
# zstd bake command's target, then its --set values).
python3 - docs/usage.md "$E2E_WORK" "$REPO/bake" <<'PY' || { fail "docs/usage.md: the CI jobs cannot be read"; finish; exit 1; }
import re, sys
doc, out, repo = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
blocks = re.findall(r"^```yaml\n(.*?)^```", doc, re.S | re.M)
gitlab = next(b for b in blocks if b.startswith("# .gitlab-ci.yml"))
bake = next(b for b in blocks if "docker/bake-action@" in b)
zstd = next(b for b in re.findall(r"^```sh\n(.*?)^```", doc, re.S | re.M) if "compression=zstd" in b)

def section(text, key, indent):
    """The lines under `key:` indented deeper than `indent` spaces, as written."""
    lines, inside = [], False
    for line in text.splitlines():
        if inside and line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        if inside:
            lines.append(line)
        elif line == " " * indent + key + ":" or line == " " * indent + key + ": |":
            inside = True
    assert lines, f"no `{key}:` at indent {indent}"
    return lines

variables = []
for line in section(gitlab, "variables", 2):
    name, value = line.strip().split(": ", 1)
    value = value.split("  #")[0].strip().strip('"')
    # GitLab expands $VAR in a variable's value: so does sh inside double quotes.
    variables.append(f'export {name}="{value}"')
script = section(gitlab, "script", 2)
assert script[0].strip() == "- |", script[0]
body = "\n".join(l[6:] for l in script[1:])
with open(f"{out}/job-gitlab.sh", "w") as f:
    f.write('set -e\n# GitLab\'s predefined variables\n. "$PREDEFINED_ENV"\n')
    f.write("# the job's variables\n" + "\n".join(variables) + "\n")
    f.write('# the pipeline\'s values (CI/CD variables win over the job\'s)\n. "$PIPELINE_ENV"\n')
    f.write("# the job's script\n" + body + "\n")

env = [l.strip().split(": ", 1) for l in section(bake, "env", 8)]
with open(f"{out}/bake.env", "w") as f:
    f.writelines(f"{k}={v}\n" for k, v in env)
sets = [l.strip() for l in section(bake, "set", 10)]
with open(f"{out}/bake.set", "w") as f:
    f.writelines(s.replace("registry.example.com/team", repo) + "\n" for s in sets)
# the zstd command: its target and --set values, in order
words = zstd.replace("\\\n", " ").split()
assert words[:3] == ["docker", "buildx", "bake"], words
zsets = re.findall(r"--set '([^']*)'", zstd)
with open(f"{out}/zstd.args", "w") as f:
    f.write(words[3] + "\n")
    f.writelines(s.replace("registry.example.com/team", repo) + "\n" for s in zsets)
PY

# Layers of an image or cache manifest in the engine's registry (read inside the engine's
# container, where localhost:5000 is); of an index (an image with its attestations), its
# linux/amd64 image's.
manifest() { # manifest REF: the registry's amd64 image manifest (JSON), or nothing
  local raw digest
  raw=$(in_engine docker buildx imagetools inspect --raw "$1") || return 0
  digest=$(python3 -c '
import json, sys
m = json.loads(sys.argv[1])
for d in m.get("manifests", []):
    if d.get("platform", {}).get("architecture") == "amd64":
        print(d["digest"]); break
' "$raw")
  [ -n "$digest" ] && raw=$(in_engine docker buildx imagetools inspect --raw "${1%:*}@$digest")
  printf '%s' "$raw"
}
layers() { # layers REF: how many layers its amd64 manifest lists
  python3 -c 'import json, sys; print(len(json.loads(sys.argv[1] or "{}").get("layers", [])))' "$(manifest "$1")"
}
layer_media() { # layer_media REF: the media types of its layers, each once
  python3 -c 'import json, sys; print(" ".join(sorted({l["mediaType"] for l in json.loads(sys.argv[1] or "{}").get("layers", [])})))' "$(manifest "$1")"
}
runs() { # runs IMAGE MODULES: the pushed image imports its groups' modules (comma-separated)
  in_engine sh -c "docker pull -q '$1' >/dev/null && docker run --rm '$1' python -c 'import $2; print(\"imports ok\")'; rc=\$?; docker rmi '$1' >/dev/null; exit \$rc" 2>&1
}

echo "== $NAME: the GitLab job (buildctl, gateway.v0)"
BUILDCTL=${BUILDCTL:-$(command -v buildctl || true)}
if [ -z "$BUILDCTL" ]; then
  echo "  not run: no buildctl on PATH (set BUILDCTL); the job is untested here"
else
  # dockerd serves BuildKit's control API on POST /grpc, upgraded to h2c: a unix socket
  # that makes that upgrade for each connection is a BuildKit address for buildctl.
  python3 -u - "$E2E_WORK/buildkit.sock" "$SOCK" >"$E2E_WORK/logs/grpc-proxy.log" 2>&1 <<'PY' &
import asyncio, os, sys
listen, docker = sys.argv[1], sys.argv[2]

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()

async def serve(client_r, client_w):
    r, w = await asyncio.open_unix_connection(docker)
    w.write(b"POST /grpc HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n")
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        print("dockerd refused the upgrade:", head, flush=True)
        client_w.close(); w.close()
        return
    await asyncio.gather(pipe(client_r, w), pipe(r, client_w))

async def main():
    server = await asyncio.start_unix_server(serve, listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
PY
  proxy=$!
  trap 'kill $proxy 2>/dev/null' EXIT
  for _ in $(seq 50); do grep -q ready "$E2E_WORK/logs/grpc-proxy.log" 2>/dev/null && break; sleep 0.1; done
  mkdir -p "$E2E_WORK/bin"
  printf '#!/bin/sh\nexec %q "$@"\n' "$BUILDCTL" >"$E2E_WORK/bin/buildctl-daemonless.sh"
  chmod +x "$E2E_WORK/bin/buildctl-daemonless.sh"
  echo "export CI_REGISTRY=$REGISTRY CI_REGISTRY_IMAGE=$REPO/gitlab" >"$E2E_WORK/predefined.env"
  echo "export KILN_FRONTEND=$FRONTEND PYTHON_IMAGE=$BASE PYTHON_VERSION=3.11 PIP_CA_BUNDLE=$CA" >"$E2E_WORK/pipeline.env"
  echo "  ..   $("$BUILDCTL" --version), BUILDKIT_HOST=unix://$E2E_WORK/buildkit.sock"
  start=$SECONDS
  if PREDEFINED_ENV="$E2E_WORK/predefined.env" PIPELINE_ENV="$E2E_WORK/pipeline.env" PATH="$E2E_WORK/bin:$PATH" \
      BUILDKIT_HOST="unix://$E2E_WORK/buildkit.sock" sh "$E2E_WORK/job-gitlab.sh" \
      >"$E2E_WORK/logs/gitlab.log" 2>&1 </dev/null; then
    ok "the GitLab job's script ran ($((SECONDS - start)) s)"
    assert_contains "its verify commands ran in the image" "$(log_of gitlab)" "verify cuda"
    image=$(layers "$REPO/gitlab/worker:cuda"); cache=$(layers "$REPO/gitlab/worker:cache-cuda")
    echo "  ..   $REPO/gitlab/worker:cuda: $image layers; its cache: $cache layers"
    check "the image is in the registry" test "${image:-0}" -gt 0
    check "the cache (mode=max) holds more layers than the image" test "${cache:-0}" -gt "${image:-0}"
    assert_contains "the pushed image runs, its groups installed" "$(runs "$REPO/gitlab/worker:cuda" "arq, numpy")" "imports ok"
  else
    fail "the GitLab job's script: $(tail -n 20 "$E2E_WORK/logs/gitlab.log")"
  fi
fi

echo "== $NAME: the bake step (docker buildx bake --push)"
mapfile -t sets <"$E2E_WORK/bake.set"
set_args=()
for s in "${sets[@]}"; do set_args+=(--set "$s"); done
(
  eval "$(scripts/engine.sh env "$NAME")" || exit 1
  set -a; . "$E2E_WORK/bake.env"; set +a
  # the pipeline's values again: this engine's frontend and base
  export KILN_FRONTEND=$FRONTEND PYTHON_IMAGE=$BASE PYTHON_VERSION=3.11 TAG=$RUN_ID
  exec docker buildx bake --progress=plain --allow 'fs=*' --push "${set_args[@]}"
) >"$E2E_WORK/logs/bake.log" 2>&1
rc=$?
if [ "$rc" = 0 ]; then
  ok "the bake step ran (${#sets[@]} set lines)"
  for t in minimal cuda; do
    image=$(layers "$REPO/bake/worker:$t"); cache=$(layers "$REPO/bake/worker:cache-$t")
    echo "  ..   $REPO/bake/worker:$t: $image layers; its cache: $cache layers"
    check "bake: $t is in the registry" test "${image:-0}" -gt 0
    check "bake: $t's cache (mode=max) holds more layers than the image" test "${cache:-0}" -gt "${image:-0}"
  done
  assert_contains "bake: the minimal image runs" "$(runs "$REPO/bake/worker:minimal" "arq, psycopg2")" "imports ok"
else
  fail "the bake step: exit $rc: $(tail -n 20 "$E2E_WORK/logs/bake.log")"
fi

echo "== $NAME: zstd layers (the bake command of \"Large images: zstd layers\")"
mapfile -t zargs <"$E2E_WORK/zstd.args"
ztarget=${zargs[0]}
zset_args=()
for s in "${zargs[@]:1}"; do zset_args+=(--set "$s"); done
(
  eval "$(scripts/engine.sh env "$NAME")" || exit 1
  export KILN_FRONTEND=$FRONTEND PYTHON_IMAGE=$BASE PYTHON_VERSION=3.11 TAG=$RUN_ID
  exec docker buildx bake --progress=plain --allow 'fs=*' "$ztarget" "${zset_args[@]}"
) >"$E2E_WORK/logs/zstd.log" 2>&1
rc=$?
if [ "$rc" = 0 ]; then
  ok "the zstd bake command ran"
  media=$(layer_media "$REPO/bake/worker:$ztarget")
  echo "  ..   $REPO/bake/worker:$ztarget: layer media types: ${media:-none}"
  assert_eq "every layer of the pushed image is zstd" "application/vnd.oci.image.layer.v1.tar+zstd" "$media"
  assert_contains "the zstd image runs" "$(runs "$REPO/bake/worker:$ztarget" "arq, numpy")" "imports ok"
else
  fail "the zstd bake command: exit $rc: $(tail -n 20 "$E2E_WORK/logs/zstd.log")"
fi
finish
