//! The shape of the graph: what reaches the final image, what is shared, what is isolated.

use std::collections::{BTreeMap, BTreeSet};

use kiln::llb::{self, pb};
use kiln::plan::lower::{LowerOpts, lower};
use kiln::plan::{AptRole, Plan, StageKind};
use kiln::spec::{LoadOptions, Spec, load_file};
use prost::Message;

fn spec(path: &str) -> Spec {
    let p = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    load_file(&p, &LoadOptions::default()).unwrap().spec
}

struct Graph {
    ops: BTreeMap<String, pb::Op>,
    root: String,
}

fn graph(def: &pb::Definition) -> Graph {
    let mut ops = BTreeMap::new();
    let mut last = None;
    for bytes in &def.def {
        let op = pb::Op::decode(bytes.as_slice()).unwrap();
        last = Some(op.clone());
        ops.insert(llb::digest_of(bytes), op);
    }
    let root = last.unwrap().inputs[0].digest.clone();
    Graph { ops, root }
}

fn exec_script(op: &pb::Op) -> Option<String> {
    match &op.op {
        Some(pb::op::Op::Exec(e)) => Some(e.meta.as_ref().unwrap().args.join(" ")),
        _ => None,
    }
}

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
                if root.input >= 0 {
                    todo.push(op.inputs[root.input as usize].digest.clone());
                }
            }
            Some(pb::op::Op::File(f)) => {
                if f.actions[0].input >= 0 && (f.actions[0].input as usize) < op.inputs.len() {
                    todo.push(op.inputs[f.actions[0].input as usize].digest.clone());
                }
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

fn built(spec: &Spec, target: &str, merge: bool) -> pb::Definition {
    let mut opts = LowerOpts::offline(llb::platform("linux", "amd64", ""));
    opts.merge = merge;
    kiln::plan::lower::build(spec, Some(target), &opts)
        .unwrap()
        .def
}

#[test]
fn no_build_package_in_any_runtime_branch() {
    let s = spec("specs/worker.yaml");
    for target in ["minimal", "cuda"] {
        for merge in [false, true] {
            let g = graph(&built(&s, target, merge));
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

#[test]
fn requirement_sources_never_include_app_files() {
    let s = spec("specs/worker.yaml");
    let g = graph(&built(&s, "cuda", false));
    let mut install_sources = 0;
    for op in g.ops.values() {
        let Some(pb::op::Op::Exec(e)) = &op.op else {
            continue;
        };
        for m in e.mounts.iter().filter(|m| m.dest == "/kiln/req") {
            let src = &g.ops[&op.inputs[m.input as usize].digest];
            let Some(pb::op::Op::Source(so)) = &src.op else {
                panic!("requirements mount is not a source")
            };
            let include: Vec<String> =
                serde_json::from_str(&so.attrs["local.includepattern"]).unwrap();
            assert!(
                include.iter().all(|p| p.starts_with("requirements/")),
                "{include:?}"
            );
            assert!(m.readonly);
            install_sources += 1;
        }
    }
    assert_eq!(
        install_sources, 2,
        "one requirements source per group (core, ml)"
    );
}

#[test]
fn shared_group_is_installed_once_for_both_variants() {
    let s = spec("specs/worker.yaml");
    let plan = Plan::new(&s, &["minimal".into(), "cuda".into()]).unwrap();
    let installs: Vec<&str> = plan
        .stages
        .iter()
        .filter_map(|st| match &st.kind {
            StageKind::Install { group, .. } => Some(group.as_str()),
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
                StageKind::Apt {
                    role: AptRole::Build,
                    ..
                }
            )
        })
        .count();
    assert_eq!(apts, 1);

    // And in LLB: one graph holding both images has one core install op.
    let lowered = lower(
        &s,
        &plan,
        &LowerOpts::offline(llb::platform("linux", "amd64", "")),
    );
    let both = llb::merge(
        &[
            lowered.images["minimal"].clone(),
            lowered.images["cuda"].clone(),
        ],
        Default::default(),
    );
    let g = graph(&llb::marshal(&both, &s.files));
    let core = g
        .ops
        .values()
        .filter_map(exec_script)
        .filter(|s| s.contains("requirements/core.txt"))
        .count();
    let ml = g
        .ops
        .values()
        .filter_map(exec_script)
        .filter(|s| s.contains("requirements/ml.txt"))
        .count();
    assert_eq!((core, ml), (1, 1));
    // The ml install builds on the core install's output.
    let ml_op = g
        .ops
        .values()
        .find(|o| exec_script(o).is_some_and(|s| s.contains("requirements/ml.txt")))
        .unwrap();
    let parent = &g.ops[&ml_op.inputs[0].digest];
    assert!(
        exec_script(parent)
            .unwrap()
            .contains("requirements/core.txt")
    );
}

#[test]
fn caches_and_secrets_are_mounts_not_layers() {
    let s = spec("specs/worker.yaml");
    let def = built(&s, "minimal", false);
    let g = graph(&def);
    let mut seen = BTreeMap::new();
    for op in g.ops.values() {
        let Some(pb::op::Op::Exec(e)) = &op.op else {
            continue;
        };
        for m in &e.mounts {
            if let Some(c) = &m.cache_opt {
                seen.insert(m.dest.clone(), (c.id.clone(), c.sharing));
                assert_eq!(m.output, -1, "cache mounts produce no layer");
            }
            if let Some(sec) = &m.secret_opt {
                let want = match m.dest.as_str() {
                    "/run/secrets/kiln-ca.pem" => "pipca",
                    "/root/.netrc" => "netrc",
                    other => panic!("unexpected secret mount {other}"),
                };
                assert_eq!(sec.id, want);
                assert!(sec.optional);
                assert_eq!(m.output, -1, "secret mounts produce no layer");
            }
        }
    }
    assert_eq!(seen["/var/cache/apt"].1, pb::CacheSharingOpt::Locked as i32);
    assert_eq!(
        seen["/var/lib/apt/lists"].1,
        pb::CacheSharingOpt::Locked as i32
    );
    assert_eq!(
        seen["/root/.cache/pip"].1,
        pb::CacheSharingOpt::Shared as i32
    );
    // No secret bytes or paths on the host side end up in the definition.
    let bytes = def.encode_to_vec();
    assert!(!String::from_utf8_lossy(&bytes).contains("BEGIN CERTIFICATE"));
}

#[test]
fn uv_is_on_path_in_every_step_that_uses_it() {
    let s = spec("specs/api.yaml");
    let g = graph(&built(&s, "default", false));
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
    let g = graph(&built(&spec("specs/worker.yaml"), "minimal", false));
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

#[test]
fn a_uv_venv_gets_no_pip_and_a_pip_venv_gets_the_pinned_pip() {
    let venv_script = |path: &str, target: &str| {
        let g = graph(&built(&spec(path), target, false));
        g.ops
            .values()
            .filter_map(exec_script)
            .find(|s| s.contains(" -m venv"))
            .unwrap()
    };
    let uv = venv_script("specs/worker.yaml", "minimal");
    assert!(uv.contains("-m venv --without-pip /opt/venv"), "{uv}");
    let pip = venv_script("specs/batch.yaml", "pdf");
    assert!(
        pip.contains("-m venv /opt/venv") && pip.contains("pip==25.1.1"),
        "{pip}"
    );
}

#[test]
fn image_config_carries_base_and_spec() {
    let s = spec("specs/worker.yaml");
    let v = s.variant("cuda").unwrap();
    let base = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8", "PYTHON_VERSION=3.12.8"], "Cmd": ["python3"], "Labels": {"from.base": "yes"}}, "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]}});
    let cfg = kiln::plan::config::image_config(
        &s,
        v,
        &base,
        &llb::platform("linux", "amd64", ""),
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

/// One target as the frontend gets it: image definition plus verify definitions.
fn built_with_verify(path: &str, target: &str) -> kiln::plan::lower::Built {
    kiln::plan::lower::build(
        &spec(path),
        Some(target),
        &LowerOpts::offline(llb::platform("linux", "amd64", "")),
    )
    .unwrap()
}

#[test]
fn verify_steps_follow_the_image_in_spec_order() {
    let built = built_with_verify("specs/worker.yaml", "minimal");
    let cmds: Vec<&str> = built.verify.iter().map(|(c, _)| c.v.as_str()).collect();
    assert_eq!(
        cmds,
        [
            "python -m app.health",
            "python -c 'import arq, fastapi, psycopg2, PIL, mcp'"
        ]
    );
    let g = graph(&built.verify[0].1);
    let Some(pb::op::Op::Exec(e)) = &g.ops[&g.root].op else {
        panic!()
    };
    let meta = e.meta.as_ref().unwrap();
    assert_eq!(meta.user, "10001:10001");
    assert_eq!(meta.cwd, "/app");
}

#[test]
fn each_verify_step_stands_on_the_image_alone() {
    // Not chained: the frontend solves them at once, and one failing names only itself.
    let built = built_with_verify("specs/worker.yaml", "minimal");
    let image = graph(&built.def).root;
    assert_eq!(built.verify.len(), 2);
    for (cmd, def) in &built.verify {
        let g = graph(def);
        let verify = &g.ops[&g.root];
        assert_eq!(verify.inputs.len(), 1, "{}", cmd.v);
        assert_eq!(
            verify.inputs[0].digest, image,
            "{} runs on the image",
            cmd.v
        );
    }
}

#[test]
fn the_venv_is_made_beside_the_build_packages_not_after_them() {
    // The Python stage stands on the base, so BuildKit runs it while apt installs the
    // build packages; the first install gets the venv by a copy into the builder.
    for path in ["specs/worker.yaml", "specs/api.yaml"] {
        let s = spec(path);
        let plan = Plan::new(&s, &[]).unwrap();
        for t in &plan.targets {
            let py: Vec<_> = plan
                .stages
                .iter()
                .filter(|st| matches!(st.kind, StageKind::Python { .. }))
                .collect();
            assert!(!py.is_empty());
            for p in &py {
                assert_eq!(p.parent, Some(t.base), "{path}: python stage on the base");
            }
            let first = plan
                .stages
                .iter()
                .find(|st| matches!(st.kind, StageKind::Install { .. }))
                .unwrap();
            let parent = plan.stage(first.parent.unwrap());
            if matches!(
                parent.kind,
                StageKind::Apt {
                    role: AptRole::Build,
                    ..
                }
            ) {
                assert_eq!(first.deps, vec![py[0].id], "{path}: venv copied in");
            } else {
                assert!(matches!(parent.kind, StageKind::Python { .. }), "{path}");
            }
        }
    }
    // In the LLB: the python exec and the build apt exec share the base as their root.
    let def = built(&spec("specs/worker.yaml"), "minimal", false);
    let g = graph(&def);
    let root_input = |pred: &dyn Fn(&str) -> bool| {
        g.ops
            .values()
            .find(|op| exec_script(op).is_some_and(|s| pred(&s)))
            .map(|op| op.inputs[0].digest.clone())
            .unwrap()
    };
    let py = root_input(&|s| s.contains("-m venv"));
    let apt = root_input(&|s| s.contains("build-essential"));
    assert_eq!(py, apt, "python and build apt both start from the base");
    assert!(matches!(g.ops[&py].op, Some(pb::op::Op::Source(_))));
}

#[test]
fn moving_spec_lines_changes_no_op() {
    // Positions live in metadata and source maps, never in op bytes (the cache keys).
    let path = format!("{}/specs/worker.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let shifted = text.replacen("version: 1\n", "# a new comment\n\nversion: 1\n", 1);
    let opts = LowerOpts::offline(llb::platform("linux", "amd64", ""));
    for target in ["minimal", "cuda"] {
        let a = kiln::spec::load_str("worker.yaml", &text, &LoadOptions::default())
            .unwrap()
            .spec;
        let b = kiln::spec::load_str("other-name.yaml", &shifted, &LoadOptions::default())
            .unwrap()
            .spec;
        let da = kiln::plan::lower::build(&a, Some(target), &opts)
            .unwrap()
            .def;
        let db = kiln::plan::lower::build(&b, Some(target), &opts)
            .unwrap()
            .def;
        assert_eq!(
            da.def, db.def,
            "{target}: op bytes depend on spec positions"
        );
        assert_ne!(da.source, db.source, "source maps do follow the lines");
    }
}
