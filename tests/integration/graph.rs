//! The shape of the graph: what reaches the final image, what is shared, what is isolated.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;

use crate::common::{
    AptRole, AptStep, CheckKind, Graph, ROOT, Role, StageKind, TEST_CA_PEM, build, definition,
    exec_script, graph, image_config, images_in_one_definition, kiln_command, load, ops, pb,
    pem_fragments, plan, spec, stub_pin, temp_tree, written_at_req,
};

/// The ops whose filesystem becomes the image: follow root mounts and file-op bases
/// (and every merge input), never the source side of a copy or a read-only mount.
fn image_lineage(g: &Graph) -> Vec<&pb::Op> {
    let mut out = vec![];
    let mut todo = vec![g.root.clone()];
    let mut seen = BTreeSet::new();
    while let Some(d) = todo.pop() {
        if !seen.insert(d.clone()) {
            continue;
        }
        let op = &g.ops[&d];
        out.push(op);
        match &op.op {
            Some(pb::op::Op::Exec(e)) => {
                let root = &e.mounts[0];
                assert_eq!(root.dest, "/", "the root mount comes first");
                if root.input >= 0 {
                    todo.push(op.inputs[root.input as usize].digest.clone());
                }
            }
            // The first action's base is an input of the op (or scratch, -1).
            Some(pb::op::Op::File(f)) if f.actions[0].input >= 0 => {
                todo.push(op.inputs[f.actions[0].input as usize].digest.clone());
            }
            Some(pb::op::Op::Merge(m)) => {
                for i in &m.inputs {
                    todo.push(op.inputs[i.input as usize].digest.clone());
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn no_build_package_in_any_runtime_branch() {
    let s = spec("specs/worker.yaml");
    for target in ["minimal", "cuda"] {
        for merge in [false, true] {
            let g = graph(&definition(&s, target, merge));
            let lineage = image_lineage(&g);
            let scripts: Vec<String> = lineage.iter().filter_map(|o| exec_script(o)).collect();
            assert!(
                scripts.iter().any(|s| s.contains("libpq5")),
                "runtime apt step is in the image"
            );
            for pkg in &s.variant(target).unwrap().build_packages {
                for script in &scripts {
                    assert!(
                        !script.contains(&pkg.v),
                        "{target}: build package {} reaches the image via {script}",
                        pkg.v
                    );
                }
            }
            assert!(
                !scripts.iter().any(|s| s.contains("pip install")),
                "{target}: an install step is in the image lineage"
            );
            // But the builder exists in the graph, and its venv is copied in.
            assert!(
                g.ops
                    .values()
                    .filter_map(exec_script)
                    .any(|s| s.contains("build-essential"))
            );
        }
    }
}

/// Issue 21: an install reads no context file, only what kiln wrote from what it read.
#[test]
fn installs_read_only_the_files_kiln_wrote() {
    let s = spec("specs/worker.yaml");
    let g = graph(&definition(&s, "cuda", false));
    let mut installs = vec![];
    for op in g.ops.values() {
        let Some(pb::op::Op::Exec(e)) = &op.op else {
            continue;
        };
        for m in e.mounts.iter().filter(|m| m.dest == "/kiln/req") {
            let written = written_at_req(&g, op).expect("a FileOp of kiln's files at /kiln/req");
            assert!(m.readonly);
            installs.push(written);
        }
        for m in &e.mounts {
            let src = &g.ops[&op.inputs[m.input.max(0) as usize].digest];
            if let Some(pb::op::Op::Source(so)) = &src.op {
                assert!(
                    !so.identifier.starts_with("local://") || m.dest != "/kiln/req",
                    "a context source mounted into an install: {so:?}"
                );
            }
        }
    }
    installs.sort();
    assert_eq!(
        installs,
        [
            vec![(
                "/requirements.txt".to_string(),
                format!("{}\n", stub_pin("requirements/core.txt"))
            )],
            vec![(
                "/requirements.txt".to_string(),
                format!("{}\n", stub_pin("requirements/ml.txt"))
            )],
        ],
        "one set of written files per group (core, ml)"
    );
}

#[test]
fn shared_group_is_installed_once_for_both_variants() {
    let s = spec("specs/worker.yaml");
    let plan = plan(&s, &["minimal", "cuda"]);
    let installs: Vec<&str> = plan
        .stages
        .iter()
        .filter_map(|st| match &st.kind {
            StageKind::Install(step) => Some(step.group.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(installs, ["core", "ml"]);
    let apts = plan
        .stages
        .iter()
        .filter(|st| {
            matches!(
                st.kind,
                StageKind::Apt(AptStep {
                    role: AptRole::Build,
                    ..
                })
            )
        })
        .count();
    assert_eq!(apts, 1);

    // And in LLB: one graph holding both images has one core install op.
    let g = graph(&images_in_one_definition(&s, &["minimal", "cuda"]));
    let installs = |file: &str| -> Vec<&pb::Op> {
        g.ops
            .values()
            .filter(|o| {
                written_at_req(&g, o)
                    .is_some_and(|w| w.iter().any(|(_, t)| t.contains(&stub_pin(file))))
            })
            .collect()
    };
    let (core, ml) = (
        installs("requirements/core.txt"),
        installs("requirements/ml.txt"),
    );
    assert_eq!((core.len(), ml.len()), (1, 1));
    // The ml install builds on the core install's output.
    assert_eq!(ml[0].inputs[0].digest, digest_of_op(&g, core[0]));
}

/// The digest under which `op` is in `g`.
fn digest_of_op(g: &Graph, op: &pb::Op) -> String {
    g.ops
        .iter()
        .find(|(_, o)| std::ptr::eq(*o, op))
        .map(|(d, _)| d.clone())
        .expect("op of the graph")
}

const CA_PATH: &str = "/run/secrets/kiln-ca.pem";
const NETRC_PATH: &str = "/root/.netrc";

/// The secret mounts of an exec op, as (mount path, secret id).
fn secret_mounts(op: &pb::Op) -> BTreeSet<(String, String)> {
    match &op.op {
        Some(pb::op::Op::Exec(e)) => e
            .mounts
            .iter()
            .filter_map(|m| {
                m.secret_opt
                    .as_ref()
                    .map(|s| (m.dest.clone(), s.id.clone()))
            })
            .collect(),
        _ => BTreeSet::new(),
    }
}

#[test]
fn caches_and_secrets_are_mounts_not_layers() {
    let s = spec("specs/worker.yaml");
    let g = graph(&definition(&s, "cuda", false));
    let sharing = BTreeMap::from([
        ("/var/cache/apt", pb::CacheSharingOpt::Locked),
        ("/var/lib/apt/lists", pb::CacheSharingOpt::Locked),
        ("/root/.cache/uv", pb::CacheSharingOpt::Shared),
    ]);
    let mut cache_dests = BTreeSet::new();
    let mut secret_steps = vec![];
    for op in g.ops.values() {
        let Some(pb::op::Op::Exec(e)) = &op.op else {
            continue;
        };
        for m in &e.mounts {
            if let Some(c) = &m.cache_opt {
                // Every cache mount, not only the last one seen per path.
                assert_eq!(m.mount_type, pb::MountType::Cache as i32, "{}", m.dest);
                assert_eq!(m.output, -1, "cache mounts produce no layer");
                let want = sharing.get(m.dest.as_str()).map(|s| *s as i32);
                assert_eq!(Some(c.sharing), want, "{} ({})", m.dest, c.id);
                cache_dests.insert(m.dest.as_str());
            }
            if let Some(sec) = &m.secret_opt {
                let (id, mode) = match m.dest.as_str() {
                    CA_PATH => ("pipca", 0o444),
                    NETRC_PATH => ("netrc", 0o400),
                    other => panic!("unexpected secret mount {other}"),
                };
                assert_eq!(m.mount_type, pb::MountType::Secret as i32);
                assert_eq!((sec.id.as_str(), sec.mode), (id, mode), "{}", m.dest);
                assert_eq!((sec.uid, sec.gid), (0, 0), "{}", m.dest);
                assert!(sec.optional);
                assert_eq!(m.output, -1, "secret mounts produce no layer");
            }
        }
        let secrets = secret_mounts(op);
        if !secrets.is_empty() {
            secret_steps.push((exec_script(op).unwrap(), secrets));
        }
    }
    assert_eq!(
        cache_dests,
        sharing.keys().copied().collect(),
        "every cache is mounted somewhere"
    );
    // Both secrets are mounted on every step that downloads packages (each install: core
    // and ml), and nowhere else: the venv step unpacks uv from the wheel the engine
    // fetched, offline.
    let both = BTreeSet::from([
        (CA_PATH.to_string(), "pipca".to_string()),
        (NETRC_PATH.to_string(), "netrc".to_string()),
    ]);
    assert_eq!(secret_steps.len(), 2, "{secret_steps:#?}");
    for (script, secrets) in &secret_steps {
        assert_eq!(secrets, &both, "{script}");
        assert!(
            script.contains("uv pip install"),
            "a secret on a step that downloads nothing: {script}"
        );
    }
}

#[test]
fn secret_files_are_only_read_where_they_are_mounted() {
    // The bytes of a secret could reach a layer by a step that copies the mounted file
    // (into the venv, a pip config or a system CA store). Steps may only test the file
    // (`[ -s PATH ]`) and point tools at it (`VAR=PATH`), in the step that mounts it.
    let s = spec("specs/worker.yaml");
    for target in ["minimal", "cuda"] {
        for merge in [false, true] {
            let mut uses_of_ca = 0;
            let built = build(&s, target, merge);
            let g = graph(&built.def);
            for op in g.ops.values() {
                let mounted = secret_mounts(op);
                let text = match &op.op {
                    Some(pb::op::Op::Exec(e)) => {
                        let meta = e.meta.as_ref().unwrap();
                        format!("{}\n{}", meta.args.join(" "), meta.env.join("\n"))
                    }
                    Some(pb::op::Op::File(f)) => format!("{f:?}"),
                    Some(pb::op::Op::Source(so)) => format!("{so:?}"),
                    _ => String::new(),
                };
                for path in [CA_PATH, NETRC_PATH] {
                    if !text.contains(path) {
                        continue;
                    }
                    uses_of_ca += usize::from(path == CA_PATH);
                    assert!(
                        mounted.iter().any(|(dest, _)| dest == path),
                        "{target}: {path} used by a step that does not mount it:\n{text}"
                    );
                    let rest = text
                        .replace(&format!("[ -s {path} ]"), "")
                        .replace(&format!("={path}"), "");
                    assert!(
                        !rest.contains(path),
                        "{target}: {path} used other than tested or pointed at:\n{text}"
                    );
                }
            }
            // The check above ran on real uses: each install uses the CA.
            let installs = if target == "cuda" { 2 } else { 1 };
            assert_eq!(uses_of_ca, installs, "{target}");
            let config = built.config.to_string();
            assert!(
                !config.contains("/run/secrets") && !config.contains(".netrc"),
                "{target}: the image config refers to a secret: {config}"
            );
        }
    }
}

#[test]
fn secret_bytes_given_to_kiln_reach_no_definition() {
    // The definition holds secret ids and mount paths only. Feed a real certificate
    // through the inputs `kiln llb` has besides the spec (an undeclared build arg, the
    // environment variables tools read CAs and credentials from, and a file in the
    // context inside the app's source), and check no part of it comes out.
    let dir = temp_tree(
        "secret",
        &[
            ("app/ca.pem", TEST_CA_PEM),
            ("requirements/core.txt", "arq==0.26.1\n"),
            (".dockerignore", "*.tmp\n"),
            (
                "svc.yaml",
                "version: 1\nname: svc\npython: {base: python:3.12-slim, installer: uv}\n\
                 requirements: {core: [requirements/core.txt]}\n\
                 build_secrets: {ca_bundle: pipca, netrc: netrc}\napp: {src: [app]}\n",
            ),
        ],
    );
    let pem_path = dir.join("app").join("ca.pem");
    let spec_path = dir.join("svc.yaml");
    let pem_arg = format!("CA_PEM={TEST_CA_PEM}");
    let pem_file = pem_path.to_str().unwrap();
    let args = |format: &str| {
        let mut c = kiln_command(&[
            "llb",
            spec_path.to_str().unwrap(),
            "--platform",
            "linux/amd64",
            "--format",
            format,
            "--build-arg",
            &pem_arg,
            "--context",
            dir.to_str().unwrap(),
        ]);
        for var in ["PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NETRC"] {
            c.env(var, pem_file);
        }
        c.env("KILN_CA_PEM", TEST_CA_PEM);
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let pb_bytes = args("pb");
    let json = String::from_utf8(args("json")).unwrap();
    let def = pb::Definition::decode(pb_bytes.as_slice()).unwrap();
    let pb_text = String::from_utf8_lossy(&pb_bytes);
    for fragment in pem_fragments() {
        assert!(!pb_text.contains(fragment), "in the definition: {fragment}");
        assert!(
            !json.contains(fragment),
            "in the JSON view or config: {fragment}"
        );
    }
    assert!(!pb_text.contains(pem_file) && !json.contains(pem_file));
    // What the definition does hold: each secret's id at its mount path.
    let mounted: BTreeSet<_> = ops(&def).iter().flat_map(secret_mounts).collect();
    assert_eq!(
        mounted,
        BTreeSet::from([
            (CA_PATH.to_string(), "pipca".to_string()),
            (NETRC_PATH.to_string(), "netrc".to_string()),
        ])
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn uv_is_on_path_in_every_step_that_uses_it() {
    let s = spec("specs/api.yaml");
    let g = graph(&definition(&s, "default", false));
    let mut uv_steps = 0;
    for op in g.ops.values() {
        let Some(pb::op::Op::Exec(e)) = &op.op else {
            continue;
        };
        let meta = e.meta.as_ref().unwrap();
        if meta.args.join(" ").contains("uv ") {
            uv_steps += 1;
            let path = meta.env.iter().find(|e| e.starts_with("PATH=")).unwrap();
            assert!(path.starts_with("PATH=/opt/kiln-uv/bin:"), "{path}");
        }
    }
    assert!(uv_steps >= 2, "uv is installed and then used");
}

#[test]
fn the_two_apt_steps_lock_separate_caches() {
    // Locked per role: the build branch never queues behind the runtime branch's apt.
    let g = graph(&definition(&spec("specs/worker.yaml"), "minimal", false));
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for op in g.ops.values() {
        let Some(pb::op::Op::Exec(e)) = &op.op else {
            continue;
        };
        let script = e.meta.as_ref().unwrap().args.join(" ");
        if !script.contains("apt-get install") {
            continue;
        }
        let role = if script.contains("build-essential") {
            "build"
        } else {
            "runtime"
        };
        for m in &e.mounts {
            if let Some(c) = &m.cache_opt {
                assert_eq!(c.sharing, pb::CacheSharingOpt::Locked as i32, "{}", c.id);
                ids.entry(role.into()).or_default().push(c.id.clone());
            }
        }
    }
    assert_eq!(
        ids["build"],
        ["kiln-apt-cache-build", "kiln-apt-lists-build"]
    );
    assert_eq!(
        ids["runtime"],
        ["kiln-apt-cache-runtime", "kiln-apt-lists-runtime"]
    );
}

/// Issue 24: the installer comes as a locked wheel (fetched by the engine by its sha256)
/// and the venv step runs with no network: uv unpacked from its wheel into a venv with no
/// pip, the pinned pip installed from its wheel into a pip venv.
#[test]
fn a_uv_venv_gets_no_pip_and_a_pip_venv_gets_the_pinned_pip() {
    let venv_step = |path: &str, target: &str| -> (String, i32, Vec<String>) {
        let g = graph(&definition(&spec(path), target, false));
        let op = g
            .ops
            .values()
            .find(|o| exec_script(o).is_some_and(|s| s.contains(" -m venv")))
            .unwrap();
        let Some(pb::op::Op::Exec(e)) = &op.op else {
            unreachable!()
        };
        let fetched = op
            .inputs
            .iter()
            .filter_map(|i| match &g.ops[&i.digest].op {
                Some(pb::op::Op::Source(s)) if s.identifier.starts_with("https://") => {
                    Some(s.attrs["http.checksum"].clone())
                }
                _ => None,
            })
            .collect();
        (exec_script(op).unwrap(), e.network, fetched)
    };
    let (uv, network, fetched) = venv_step("specs/worker.yaml", "minimal");
    assert!(uv.contains("-m venv --without-pip /opt/venv"), "{uv}");
    assert!(
        uv.contains("-m zipfile -e /kiln/installer/uv-0.9.7-"),
        "{uv}"
    );
    assert!(!uv.contains("pip install"), "{uv}");
    assert_eq!(network, pb::NetMode::None as i32);
    assert_eq!(
        fetched,
        ["sha256:8cf6bc2482d1293cc630f66b862b494c09acda9b7faff7307ef52667a2b3ad49"]
    );
    let (pip, network, _) = venv_step("specs/batch.yaml", "pdf");
    assert!(
        pip.contains("-m venv /opt/venv")
            && pip
                .contains("--no-index --no-cache-dir /kiln/installer/pip-25.1.1-py3-none-any.whl"),
        "{pip}"
    );
    assert_eq!(network, pb::NetMode::None as i32);
}

#[test]
fn image_config_carries_base_and_spec() {
    let s = spec("specs/worker.yaml");
    let base = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8", "PYTHON_VERSION=3.12.8"], "Cmd": ["python3"], "Labels": {"from.base": "yes"}}, "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]}});
    let cfg = image_config(
        &s,
        "cuda",
        &base,
        &BTreeMap::from([("team".into(), "ml".into())]),
    );
    let c = &cfg["config"];
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(env[0], "PATH=/opt/venv/bin:/usr/local/bin:/usr/bin");
    assert!(env.contains(&"LANG=C.UTF-8") && env.contains(&"PYTHON_VERSION=3.12.8"));
    assert!(env.contains(&"NVIDIA_VISIBLE_DEVICES=all"));
    assert_eq!(c["User"], "10001:10001");
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["arq", "app.worker.WorkerSettings"])
    );
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "python", "-m", "app.health"])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 30_000_000_000u64);
    assert_eq!(c["Labels"]["from.base"], "yes");
    assert_eq!(c["Labels"]["team"], "ml");
    assert_eq!(c["Labels"]["org.opencontainers.image.title"], "worker");
    assert_eq!(c["ExposedPorts"], serde_json::json!({"8000/tcp": {}}));
    assert_eq!(c["StopSignal"], "SIGTERM");
}

/// Issue 10, 6: every check (the verify commands in spec order, then the health check)
/// runs in one exec, standing on the image itself, as the image's user and workdir.
#[test]
fn verify_runs_every_check_in_one_container_on_the_image() {
    let built = build(&spec("specs/worker.yaml"), "minimal", false);
    let run = built.verify.as_ref().expect("worker.yaml verifies");
    let cmds: Vec<&str> = run.checks.iter().map(|c| c.v.command.as_str()).collect();
    // The health check is `python -m app.health`, which the first command already runs.
    assert_eq!(
        cmds,
        [
            "python -m app.health",
            "python -c 'import arq, fastapi, psycopg2, PIL, mcp'",
        ]
    );
    assert!(run.checks.iter().all(|c| c.v.timeout_s == 300));
    // A different probe is checked too, last, with its own timeout.
    let other = load(
        "t.yaml",
        "version: 1\nname: w\npython: {base: python:3}\nverify: [\"true\"]\n\
         healthcheck: {cmd: [curl, -f, \"http://localhost/\"], timeout: 5s}\n",
    )
    .unwrap()
    .spec;
    let built_other = build(&other, "default", false);
    let checks = &built_other.verify.as_ref().unwrap().checks;
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[1].v.kind, CheckKind::Healthcheck);
    assert_eq!(checks[1].v.command, "curl -f http://localhost/");
    assert_eq!(checks[1].v.timeout_s, 5);
    assert_eq!(checks[1].loc.line, 5);
    let g = graph(&run.def);
    let Some(pb::op::Op::Exec(e)) = &g.ops[&g.root].op else {
        panic!()
    };
    let meta = e.meta.as_ref().unwrap();
    assert_eq!(meta.user, "10001:10001");
    assert_eq!(meta.cwd, "/app");
    let script = &meta.args[2];
    assert_eq!(script.matches("\ncheck ").count(), 2, "{script}");
    let image = graph(&built.def).root;
    let verify = &g.ops[&g.root];
    assert_eq!(verify.inputs.len(), 1);
    assert_eq!(verify.inputs[0].digest, image, "verify runs on the image");
    assert_eq!(
        g.ops
            .values()
            .filter(|o| matches!(o.op, Some(pb::op::Op::Exec(_))))
            .count(),
        g_execs(&built.def) + 1,
        "one exec more than the image: all checks in one container"
    );
}

fn g_execs(def: &pb::Definition) -> usize {
    graph(def)
        .ops
        .values()
        .filter(|o| matches!(o.op, Some(pb::op::Op::Exec(_))))
        .count()
}

#[test]
fn the_venv_is_made_beside_the_build_packages_not_after_them() {
    // The Python stage stands on the base, so BuildKit runs it while apt installs the
    // build packages; the first install gets the venv by a copy into the builder.
    // Each target is checked on its own chain (batch.yaml has a variant on another base).
    let is_build_apt = |k: &StageKind| {
        matches!(
            k,
            StageKind::Apt(AptStep {
                role: AptRole::Build,
                ..
            })
        )
    };
    let mut checked = 0;
    for path in ["specs/worker.yaml", "specs/api.yaml", "specs/batch.yaml"] {
        let s = spec(path);
        let plan = plan(&s, &[]);
        assert!(!plan.targets.is_empty());
        for t in &plan.targets {
            let at = format!("{path} {}", t.variant);
            // Down the venv chain to this target's first install.
            let mut first = plan.stage(t.venv.expect("no layers without a context"));
            assert!(matches!(first.kind, StageKind::Install(_)), "{at}");
            while let Some(p) = first.parent.map(|p| plan.stage(p))
                && matches!(p.kind, StageKind::Install(_))
            {
                first = p;
            }
            let parent = plan.stage(first.parent.unwrap());
            let py = if is_build_apt(&parent.kind) {
                assert_eq!(parent.parent, Some(t.base), "{at}: build apt on the base");
                assert_eq!(first.inputs.len(), 1, "{at}: venv copied in");
                plan.stage(first.input(Role::Toolchain).expect("the venv copied in"))
            } else {
                assert!(first.inputs.is_empty(), "{at}");
                parent
            };
            assert!(
                matches!(py.kind, StageKind::Python(_)),
                "{at}: {:?}",
                py.kind
            );
            assert_eq!(py.parent, Some(t.base), "{at}: python stage on the base");
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        2 + 1 + 3,
        "worker: minimal, cuda; api: default; batch: 3"
    );
    // In the LLB: the python exec and the build apt exec share the base as their root.
    let def = definition(&spec("specs/worker.yaml"), "minimal", false);
    let g = graph(&def);
    let root_input = |pred: &dyn Fn(&str) -> bool| {
        let op = g
            .ops
            .values()
            .find(|op| exec_script(op).is_some_and(|s| pred(&s)))
            .unwrap();
        let Some(pb::op::Op::Exec(e)) = &op.op else {
            unreachable!()
        };
        assert_eq!(e.mounts[0].dest, "/");
        op.inputs[e.mounts[0].input as usize].digest.clone()
    };
    let py = root_input(&|s| s.contains("-m venv"));
    let apt = root_input(&|s| s.contains("build-essential"));
    assert_eq!(py, apt, "python and build apt both start from the base");
    assert!(matches!(g.ops[&py].op, Some(pb::op::Op::Source(_))));
}

#[test]
fn moving_spec_lines_changes_no_op() {
    // Positions live in metadata and source maps, never in op bytes (the cache keys).
    let path = format!("{ROOT}/specs/worker.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let shifted = text.replacen("version: 1\n", "# a new comment\n\nversion: 1\n", 1);
    let a = load("worker.yaml", &text).unwrap().spec;
    let b = load("other-name.yaml", &shifted).unwrap().spec;
    for target in ["minimal", "cuda"] {
        let da = definition(&a, target, false);
        let db = definition(&b, target, false);
        assert_eq!(
            da.def, db.def,
            "{target}: op bytes depend on spec positions"
        );
        // The source maps do follow: every op's line moves down by the two new lines.
        let (la, lb) = (&da.source.unwrap().locations, &db.source.unwrap().locations);
        assert!(!la.is_empty());
        assert_eq!(la.keys().collect::<Vec<_>>(), lb.keys().collect::<Vec<_>>());
        for (digest, loc) in la {
            let line = |l: &pb::Locations| l.locations[0].ranges[0].start.unwrap().line;
            assert_eq!(line(&lb[digest]), line(loc) + 2, "{target}: {digest}");
        }
    }
}

/// `pip.build_constraints`, `index_strategy` and `no_build_isolation` reach each
/// installer in its own terms, and the build constraints file is mounted with the group.
#[test]
fn installer_options_reach_pip_and_uv() {
    for installer in ["uv", "pip"] {
        let yaml = format!(
            "version: 1\nname: w\npython: {{base: python:3, installer: {installer}}}\n\
             requirements: {{core: [req.txt]}}\n\
             pip: {{build_constraints: build.txt, no_build_isolation: [flash-attn]{}}}\n",
            if installer == "uv" {
                ", index_strategy: unsafe-best-match"
            } else {
                ""
            }
        );
        let loaded = load("t.yaml", &yaml).unwrap();
        let g = graph(&definition(&loaded.spec, "default", false));
        let install = g
            .ops
            .values()
            .find(|o| written_at_req(&g, o).is_some())
            .expect("the install step");
        let script = exec_script(install).unwrap();
        let want: &[&str] = if installer == "uv" {
            &[
                "--build-constraints /kiln/req/build-constraints.txt",
                "--index-strategy unsafe-best-match",
                "--no-build-isolation-package flash-attn",
            ]
        } else {
            &[
                "PIP_CONSTRAINT=/kiln/req/build-constraints.txt",
                "--no-build-isolation",
            ]
        };
        for w in want {
            assert!(script.contains(w), "{installer}: {w} in {script}");
        }
        // The build constraints as kiln read them, written beside the requirements.
        let written = written_at_req(&g, install).unwrap();
        assert!(
            written.contains(&(
                "/build-constraints.txt".to_string(),
                format!("{}\n", stub_pin("build.txt"))
            )),
            "{installer}: {written:?}"
        );
    }
    let err = load(
        "t.yaml",
        "version: 1\nname: w\npython: {base: python:3}\npip: {index_strategy: unsafe-best-match}\n",
    )
    .unwrap_err();
    assert!(
        err.render().contains("pip.index_strategy is uv's"),
        "{}",
        err.render()
    );
}

/// A uv lock group: one step exports the group's exact set (with the project files
/// mounted), the install reads only that export, at the path the export wrote.
#[test]
fn a_uv_lock_group_installs_exactly_what_its_export_wrote() {
    let s = spec("specs/uv-project.yaml");
    let g = graph(&definition(&s, "ml", false));
    let scripts: Vec<String> = g.ops.values().filter_map(exec_script).collect();
    for group in [
        "--extra ml --group gpu",
        "--no-default-groups --output-file",
    ] {
        let export = scripts
            .iter()
            .find(|s| s.contains("uv export") && s.contains(group))
            .unwrap_or_else(|| panic!("an export with {group}"));
        assert!(export.contains("--locked --format pylock.toml"), "{export}");
        let out = export
            .split("--output-file ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        assert!(
            scripts.iter().any(|s| s.contains(&format!(
                "UV_PREVIEW_FEATURES=pylock uv pip install --python /opt/venv/bin/python -r {out}"
            ))),
            "an install reads {out}"
        );
    }
    // The export step is the only one that sees pyproject.toml and uv.lock.
    let installs = scripts
        .iter()
        .filter(|s| s.contains("uv pip install") && s.contains("/kiln/export/"))
        .count();
    assert_eq!(installs, 2);
}

/// Issue 22: a Poetry group's install mounts only what `poetry export` wrote for it (no
/// context file: a lock edit that leaves the group's set alone leaves the install's
/// inputs alone), installs it with hashes checked and nothing resolved, with either
/// installer, and both steps are named after Poetry.
#[test]
fn a_poetry_group_installs_exactly_what_poetry_exported() {
    let path = format!("{ROOT}/specs/poetry-project.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    for (installer, install) in [
        (
            "uv",
            "uv pip install --python /opt/venv/bin/python --require-hashes --no-deps -r /kiln/export/requirements.txt",
        ),
        (
            "pip",
            "/opt/venv/bin/python -m pip install --require-hashes --no-deps -r /kiln/export/requirements.txt",
        ),
    ] {
        let yaml = text.replace("installer: uv", &format!("installer: {installer}"));
        let s = load("poetry-project.yaml", &yaml).unwrap().spec;
        let def = definition(&s, "worker", false);
        let g = graph(&def);
        let name_of = |digest: &str| {
            def.metadata[digest].description["llb.customname"]
                .split(" (")
                .next()
                .unwrap()
                .to_string()
        };
        let mut seen = vec![];
        for (digest, op) in &g.ops {
            let Some(pb::op::Op::Exec(e)) = &op.op else {
                continue;
            };
            let script = exec_script(op).unwrap();
            if !script.contains(install) {
                continue;
            }
            assert!(
                !e.mounts.iter().any(|m| m.dest == "/kiln/req"),
                "{installer}: the install mounts no context files"
            );
            for m in e.mounts.iter().filter(|m| m.input >= 0) {
                let src = &g.ops[&op.inputs[m.input as usize].digest];
                if let Some(pb::op::Op::Source(so)) = &src.op {
                    assert!(
                        !so.identifier.starts_with("local://"),
                        "{installer}: a context source mounted into the install: {so:?}"
                    );
                }
            }
            let export_mount = e
                .mounts
                .iter()
                .find(|m| m.dest == "/kiln/export")
                .expect("the export mounted");
            assert!(
                export_mount.readonly,
                "{installer}: read-only, keyed by content"
            );
            let input = &op.inputs[export_mount.input as usize];
            let export = &g.ops[&input.digest];
            let Some(pb::op::Op::Exec(x)) = &export.op else {
                panic!("{installer}: the export is an exec's output")
            };
            // The install reads the output the export wrote to /kiln/export.
            let written = x
                .mounts
                .iter()
                .find(|m| m.output == input.index)
                .expect("the export's output");
            assert_eq!(written.dest, "/kiln/export");
            let export_script = exec_script(export).unwrap();
            let group = name_of(&input.digest)
                .strip_prefix("poetry export: ")
                .unwrap_or_else(|| panic!("{installer}: {}", name_of(&input.digest)))
                .to_string();
            assert!(
                export_script.contains(&format!(
                    "/opt/kiln-poetry/bin/poetry export --no-interaction --no-ansi --format requirements.txt --only {group} --output /kiln/export/requirements.txt"
                )),
                "{installer}: {export_script}"
            );
            assert_eq!(name_of(digest), format!("poetry install: {group}"));
            // The export alone reads the project's files, and only those two.
            let req = x.mounts.iter().find(|m| m.dest == "/kiln/req").unwrap();
            let Some(pb::op::Op::Source(so)) = &g.ops[&export.inputs[req.input as usize].digest].op
            else {
                panic!("{installer}: the export reads a context source")
            };
            assert_eq!(
                so.attrs["local.includepattern"],
                r#"["pyproject.toml","poetry.lock"]"#
            );
            seen.push(group);
        }
        seen.sort();
        assert_eq!(seen, ["main", "worker"], "{installer}");
    }
}

/// Package caches are scoped by base and platform: a wheel built against one base's
/// libraries is never offered to another base, while variants on one base share.
#[test]
fn package_caches_are_scoped_by_base() {
    let cache_ids = |path: &str, target: &str| -> BTreeSet<String> {
        graph(&definition(&spec(path), target, false))
            .ops
            .values()
            .filter_map(|op| match &op.op {
                Some(pb::op::Op::Exec(e)) => Some(e.mounts.clone()),
                _ => None,
            })
            .flatten()
            .filter_map(|m| m.cache_opt.map(|c| c.id))
            .filter(|id| id.starts_with("kiln-pip-") || id.starts_with("kiln-uv-"))
            .collect()
    };
    let (minimal, cuda) = (
        cache_ids("specs/worker.yaml", "minimal"),
        cache_ids("specs/worker.yaml", "cuda"),
    );
    assert!(!minimal.is_empty());
    assert_eq!(minimal, cuda, "one base: one scope");
    let (pdf, bookworm) = (
        cache_ids("specs/batch.yaml", "pdf"),
        cache_ids("specs/batch.yaml", "slim-bookworm"),
    );
    assert!(!pdf.is_empty() && !bookworm.is_empty());
    assert!(pdf.is_disjoint(&bookworm), "{pdf:?} vs {bookworm:?}");
}

/// Issue 21: a step's cache ids are one per spec (by name), step and directory: `a` with
/// `/b/c` and `a-b` with `/c` once both mounted `kiln-step-a-b-c`, and two specs on one
/// engine shared a step's cache by its name alone.
#[test]
fn step_cache_ids_are_injective_and_scoped_to_the_spec() {
    let step_caches = |yaml: &str| -> Vec<String> {
        let s = load("t.yaml", yaml).unwrap().spec;
        let mut ids: Vec<String> = graph(&definition(&s, "default", false))
            .ops
            .values()
            .filter_map(|op| match &op.op {
                Some(pb::op::Op::Exec(e)) => Some(e.mounts.clone()),
                _ => None,
            })
            .flatten()
            .filter_map(|m| m.cache_opt.map(|c| c.id))
            .filter(|id| id.starts_with("kiln-step-"))
            .collect();
        ids.sort();
        ids
    };
    let spec = |name: &str, steps: &str| {
        format!("version: 1\nname: {name}\npython: {{base: python:3}}\nsteps:\n{steps}")
    };
    let steps = "  - {name: a, in: image, run: x, cache: [/b/c]}\n  - {name: a-b, in: image, run: yy, cache: [/c]}\n";
    let one = step_caches(&spec("w", steps));
    assert_eq!(one.len(), 2, "{one:?}");
    assert_ne!(one[0], one[1]);
    assert!(
        one.iter().all(|id| id.starts_with("kiln-step-w-a")),
        "{one:?}"
    );
    let other = step_caches(&spec("v", steps));
    assert!(
        one.iter().all(|id| !other.contains(id)),
        "{one:?} {other:?}"
    );
    // The same spec, step and directory (however written) is the same cache.
    let again = step_caches(&spec(
        "w",
        "  - {name: a, in: image, run: z, cache: [/b//c/]}\n  - {name: a-b, in: image, run: yy, cache: [/./c]}\n",
    ));
    assert_eq!(one, again);
}

/// Issue 13: each variant runs its own process (cmd, user, health check, stop signal,
/// ports on top of the spec-wide ones); `init` puts tini in front and in the runtime apt
/// step; `volumes` are declared; the spec-wide values reach the variants that keep them.
#[test]
fn each_variant_runs_its_own_process() {
    let s = spec("specs/service.yaml");
    let base = serde_json::json!({"config": {"Env": ["PATH=/usr/bin"], "Cmd": ["python3"]}});
    let none = BTreeMap::new();
    let worker = image_config(&s, "worker", &base, &none);
    let c = &worker["config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/bin/tini", "--"]));
    assert_eq!(c["Cmd"], serde_json::json!(["python", "-m", "app.worker"]));
    assert_eq!(c["User"], "10002:10002");
    assert_eq!(c["Volumes"], serde_json::json!({"/var/lib/svc": {}}));
    assert!(c["Healthcheck"].is_object());
    let noinit = image_config(&s, "noinit", &base, &none);
    assert!(noinit["config"].get("Entrypoint").is_none(), "{noinit}");
    let gpu = image_config(&s, "gpu", &base, &none);
    let c = &gpu["config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/bin/tini", "--"]));
    assert_eq!(c["Cmd"], serde_json::json!(["python", "-m", "app.jobs"]));
    assert_eq!(c["User"], "10003:10003");
    assert!(
        c.get("Healthcheck").is_none(),
        "healthcheck: null removes it"
    );
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(c["ExposedPorts"], serde_json::json!({"9000/tcp": {}}));
    // tini comes from the runtime apt step; no init, no apt step at all.
    let scripts = |target| -> Vec<String> {
        ops(&definition(&s, target, false))
            .iter()
            .filter_map(exec_script)
            .collect()
    };
    assert!(
        scripts("worker")
            .iter()
            .any(|e| e.contains("--no-install-recommends tini\n")),
        "tini installed by the runtime apt step"
    );
    assert!(!scripts("noinit").iter().any(|e| e.contains("apt-get")));
    // The user step makes the owned directories; the gpu user owns them in its image.
    let user_step = scripts("gpu")
        .into_iter()
        .find(|e| e.contains("useradd"))
        .unwrap();
    assert!(
        user_step.contains("chown 10003:10003 /var/cache/svc"),
        "{user_step}"
    );
    assert!(
        user_step.contains("chown 10003:10003 /var/lib/svc"),
        "{user_step}"
    );
}

/// Issue 13: the code is root-owned by default (`app.owner: user` gives it to the user);
/// `files` are copied with their mode, owned by root or the user.
#[test]
fn code_is_root_owned_and_files_keep_their_mode() {
    let copies = |s: &kiln::spec::Spec| -> Vec<pb::FileActionCopy> {
        ops(&definition(s, "worker", false))
            .into_iter()
            .filter_map(|op| match op.op {
                Some(pb::op::Op::File(f)) => Some(f.actions),
                _ => None,
            })
            .flatten()
            .filter_map(|a| match a.action {
                Some(pb::file_action::Action::Copy(c)) => Some(c),
                _ => None,
            })
            .collect()
    };
    let s = spec("specs/service.yaml");
    let all = copies(&s);
    let app = all.iter().find(|c| c.dest == "/app/app").unwrap();
    assert!(app.owner.is_none(), "the code is root's: {app:?}");
    let toml = all.iter().find(|c| c.dest == "/etc/svc/svc.toml").unwrap();
    assert_eq!((toml.src.as_str(), toml.mode), ("/config/svc.toml", 0o640));
    assert!(toml.owner.is_some());
    let motd = all.iter().find(|c| c.dest == "/etc/svc/motd").unwrap();
    assert_eq!((motd.mode, motd.owner.is_none()), (0o644, true));
    let yaml = std::fs::read_to_string(format!("{ROOT}/specs/service.yaml"))
        .unwrap()
        .replace("  src: [app]\n", "  src: [app]\n  owner: user\n");
    let s = load("service.yaml", &yaml).unwrap().spec;
    let app = copies(&s)
        .into_iter()
        .find(|c| c.dest == "/app/app")
        .unwrap();
    assert!(app.owner.is_some(), "app.owner: user");
}

/// Issue 13: `SOURCE_DATE_EPOCH` (build arg, or the spec's arg) is the config's
/// `created` and its OCI label, and the clock of every build step; without it nothing
/// time-dependent enters the definition or the config.
#[test]
fn source_date_epoch_sets_created_and_the_steps_clock() {
    let base = serde_json::json!({"created": "2020-01-01T00:00:00Z", "config": {}});
    let none = BTreeMap::new();
    let s = spec("specs/service.yaml");
    let cfg = image_config(&s, "worker", &base, &none);
    assert!(cfg.get("created").is_none(), "{cfg}");
    let with_epoch = |args: &[(&str, &str)]| {
        crate::common::load_with_args(
            "service.yaml",
            &std::fs::read_to_string(format!("{ROOT}/specs/service.yaml")).unwrap(),
            args,
        )
        .unwrap()
        .spec
    };
    let s = with_epoch(&[("SOURCE_DATE_EPOCH", "1700000000")]);
    let cfg = image_config(&s, "worker", &base, &none);
    assert_eq!(cfg["created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        cfg["config"]["Labels"]["org.opencontainers.image.created"],
        "2023-11-14T22:13:20Z"
    );
    let execs: Vec<pb::Op> = ops(&definition(&s, "worker", false))
        .into_iter()
        .filter(|op| matches!(op.op, Some(pb::op::Op::Exec(_))))
        .collect();
    assert!(!execs.is_empty());
    for op in execs {
        let Some(pb::op::Op::Exec(e)) = op.op else {
            unreachable!()
        };
        let env = &e.meta.as_ref().unwrap().env;
        assert!(
            env.contains(&"SOURCE_DATE_EPOCH=1700000000".to_string()),
            "{env:?}"
        );
    }
}

/// Issue 13: a `system.repositories` entry reaches both apt steps of its variant as a
/// source trusted only through its key (mounted from the context, never copied), which
/// is taken out again before the step ends; other variants' apt steps do not see it.
#[test]
fn apt_repositories_are_added_by_key_for_their_variant_only() {
    let yaml = "version: 1\nname: w\npython: {base: python:3}\n\
                requirements: {core: {packages: [psycopg2]}}\n\
                system: {build: [gcc], runtime: [libpq5]}\n\
                variants:\n\
                \x20 plain: {}\n\
                \x20 pg:\n\
                \x20   system:\n\
                \x20     runtime: [postgresql-client-17]\n\
                \x20     repositories:\n\
                \x20       - {name: pgdg, url: http://apt.postgresql.org/pub/repos/apt, suite: bookworm-pgdg, components: [main], key: keys/pgdg.asc}\n";
    let s = load("t.yaml", yaml).unwrap().spec;
    let apt_ops = |target| -> Vec<pb::Op> {
        ops(&definition(&s, target, false))
            .into_iter()
            .filter(|op| exec_script(op).is_some_and(|e| e.contains("apt-get install")))
            .collect()
    };
    assert!(
        apt_ops("plain")
            .iter()
            .all(|op| !exec_script(op).unwrap().contains("pgdg"))
    );
    let pg = apt_ops("pg");
    assert_eq!(pg.len(), 2, "both apt steps");
    let g = graph(&definition(&s, "pg", false));
    for op in &pg {
        let script = exec_script(op).unwrap();
        let line = "'deb [signed-by=/kiln/apt-keys/keys/pgdg.asc] http://apt.postgresql.org/pub/repos/apt bookworm-pgdg main' >/etc/apt/sources.list.d/kiln-pgdg.list";
        assert!(script.contains(line), "{script}");
        let (added, update, removed) = (
            script.find(line).unwrap(),
            script.find("apt-get update").unwrap(),
            script
                .find("rm -f /etc/apt/sources.list.d/kiln-pgdg.list")
                .unwrap(),
        );
        assert!(added < update && update < removed, "{script}");
        let Some(pb::op::Op::Exec(e)) = &op.op else {
            unreachable!()
        };
        let keys = e
            .mounts
            .iter()
            .find(|m| m.dest == "/kiln/apt-keys")
            .expect("the keys' mount");
        assert!(keys.readonly && keys.output == -1, "{keys:?}");
        let src = &g.ops[&op.inputs[keys.input as usize].digest];
        let Some(pb::op::Op::Source(source)) = &src.op else {
            panic!("the keys come from a context source")
        };
        assert_eq!(source.attrs["local.includepattern"], r#"["keys/pgdg.asc"]"#);
    }
}

/// Issue 13: a builder step stands on the venv, mounts only its declared inputs (so only
/// they invalidate it), has the network it asks for, and reaches the image only through
/// its outputs; an image step runs as root on the finished image, before verify.
#[test]
fn custom_steps_run_where_declared_and_reach_the_image_by_outputs_only() {
    let s = spec("specs/service.yaml");
    let def = definition(&s, "worker", false);
    let g = graph(&def);
    let step = |name: &str| {
        g.ops
            .values()
            .find(|op| exec_script(op).is_some_and(|e| e.contains(name)))
            .unwrap_or_else(|| panic!("{name}"))
            .clone()
    };
    let banner = step("tr a-z A-Z");
    let Some(pb::op::Op::Exec(e)) = &banner.op else {
        unreachable!()
    };
    assert_eq!(e.network, pb::NetMode::None as i32);
    assert_eq!(e.meta.as_ref().unwrap().cwd, "/kiln/inputs");
    let inputs = e.mounts.iter().find(|m| m.dest == "/kiln/inputs").unwrap();
    let src = &g.ops[&banner.inputs[inputs.input as usize].digest];
    let Some(pb::op::Op::Source(source)) = &src.op else {
        panic!("inputs come from a context source")
    };
    assert_eq!(source.attrs["local.includepattern"], r#"["assets"]"#);
    // From the step's filesystem, only /out/banner.txt is copied into the image.
    let mut copies_from_step: Vec<(String, String)> = vec![];
    for op in g.ops.values() {
        let Some(pb::op::Op::File(f)) = &op.op else {
            continue;
        };
        for a in &f.actions {
            if let Some(pb::file_action::Action::Copy(c)) = &a.action
                && a.secondary_input >= 0
                && g.ops[&op.inputs[a.secondary_input as usize].digest] == banner
            {
                copies_from_step.push((c.src.clone(), c.dest.clone()));
            }
        }
    }
    assert_eq!(
        copies_from_step,
        [(
            "/out/banner.txt".to_string(),
            "/usr/share/svc/banner.txt".to_string()
        )]
    );
    // The image step is the image's last op, on everything else.
    let root = &g.ops[&g.root];
    assert!(exec_script(root).unwrap().contains("compileall"));
    let Some(pb::op::Op::Exec(e)) = &root.op else {
        unreachable!()
    };
    assert_eq!(e.meta.as_ref().unwrap().user, "", "as root");
    // Verify runs on the image after its steps.
    let built = build(&s, "worker", false);
    let v = built.verify.unwrap();
    let vg = graph(&v.def);
    let on = &vg.ops[&vg.ops[&vg.root].inputs[0].digest];
    assert!(exec_script(on).unwrap().contains("compileall"));
}
