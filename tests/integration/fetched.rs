//! PEP 751 groups whose files the engine fetches: the definitions `kiln llb --context`
//! makes for examples/pylock-service (the frontend compiles the same way).

use kiln::llb::pb;
use serde_json::Value;

use crate::common::{kiln_ok, temp_tree};

const SPEC: &str = "specs/pylock-service.yaml";
const LOCK: &str = "examples/pylock-service/pylock.toml";

/// `kiln llb SPEC --context DIR ARGS... --format json`, parsed.
fn llb(context: &str, args: &[&str]) -> Value {
    let mut all = vec!["llb", SPEC, "--context", context, "--format", "json"];
    all.extend_from_slice(args);
    serde_json::from_slice(&kiln_ok(&all)).expect("kiln llb prints JSON")
}

fn ops(def: &Value) -> &Vec<Value> {
    def["ops"].as_array().expect("ops")
}

fn name(op: &Value) -> &str {
    op["metadata"]["description"]["llb.customname"]
        .as_str()
        .unwrap_or("")
}

/// The image's gates (`gates` in `kiln llb --format json`): each `pip check`, then the
/// runtime-library scans, each a definition of its own.
fn gates(def: &Value) -> &Vec<Value> {
    def["gates"].as_array().expect("gates")
}

/// The exec ops whose name starts with `prefix`.
fn execs<'d>(def: &'d Value, prefix: &str) -> Vec<&'d Value> {
    ops(def)
        .iter()
        .filter(|o| !o["op"]["exec"].is_null() && name(o).starts_with(prefix))
        .collect()
}

/// The lock's files the definition fetches: (URL, checksum attribute). The installer's
/// own wheel (uv's, fetched for the Python stage) is not the lock's, and left out.
fn fetched(def: &Value) -> Vec<(String, String)> {
    ops(def)
        .iter()
        .filter_map(|o| {
            let s = &o["op"]["source"];
            let url = s["identifier"].as_str()?;
            let installer = url.contains("/uv-0.9.7-py3-none-") || url.contains("/pip-25.1.1-");
            (url.starts_with("https://") && !installer).then(|| {
                (
                    url.to_string(),
                    s["attrs"]["http.checksum"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
        })
        .collect()
}

/// Every install step runs with no network, mounts no secret and no context files: only
/// the fetched files.
fn assert_offline(steps: &[&Value]) {
    assert!(!steps.is_empty());
    for s in steps {
        let e = &s["op"]["exec"];
        assert_eq!(e["network"], "NONE", "{}", name(s));
        for m in e["mounts"].as_array().unwrap() {
            assert_ne!(m["type"], "SECRET", "{}", name(s));
            assert_ne!(m["type"], "CACHE", "{}", name(s));
        }
        let script = e["meta"]["args"][2].as_str().unwrap();
        assert!(
            script.contains("--offline --no-index --no-deps"),
            "{script}"
        );
    }
}

#[test]
fn each_locked_file_is_fetched_by_its_sha256_and_installed_offline_as_its_own_layer() {
    let def = llb("examples/pylock-service", &["--merge"]);
    let files = fetched(&def);
    let lock = std::fs::read_to_string(LOCK).unwrap();
    assert_eq!(files.len(), 11, "one file per package: {files:?}");
    for (url, checksum) in &files {
        let sha = checksum.strip_prefix("sha256:").expect("a sha256 checksum");
        assert!(
            lock.contains(url) && lock.contains(sha),
            "{url} {sha} from the lock"
        );
    }
    // CPython 3.12 on linux/amd64: the cp312 manylinux wheel of the one binary package.
    assert!(files.iter().any(|(u, _)| u.ends_with(
        "pydantic_core-2.50.5-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
    )));
    let installs = execs(&def, "uv install: core: ");
    assert_offline(&installs);
    // pydantic-core's wheel (about 2 MB) is a layer of its own; the ten small ones share
    // the sets their names hash to (six of them here).
    let names: Vec<&str> = installs.iter().map(|o| name(o)).collect();
    assert_eq!(installs.len(), 7, "{names:?}");
    assert!(names.contains(&"uv install: core: pydantic-core 2.50.5"));
    assert!(names.contains(&"uv install: core: annotated-types 0.8.0, anyio 4.16.0"));
    for package in [
        "annotated-types",
        "anyio",
        "certifi",
        "h11",
        "httpcore",
        "httpx",
        "idna",
        "pydantic",
        "pydantic-core",
        "typing-extensions",
        "typing-inspection",
    ] {
        let with = |n: &&&str| {
            n.trim_start_matches("uv install: core: ")
                .split(", ")
                .any(|p| p.split(' ').next() == Some(package))
        };
        assert_eq!(
            names.iter().filter(with).count(),
            1,
            "{package} in {names:?}"
        );
    }
    let diffs = ops(&def)
        .iter()
        .filter(|o| !o["op"]["diff"].is_null())
        .count();
    assert_eq!(diffs, 7, "a layer per install");
    // The image: user, the empty venv, 7 package layers, the app.
    let image = ops(&def)
        .iter()
        .find(|o| name(o) == "[image] merge")
        .unwrap();
    assert_eq!(image["op"]["merge"]["inputs"].as_array().unwrap().len(), 10);
    // The group's check gates the image: a definition of its own, not an input.
    assert_eq!(execs(&def, "check: core").len(), 0);
    let checks: Vec<&Value> = gates(&def)
        .iter()
        .flat_map(|g| execs(g, "check: core"))
        .collect();
    assert_eq!(checks.len(), 1);
}

#[test]
fn without_mergeop_the_group_installs_in_one_offline_step() {
    let def = llb("examples/pylock-service", &[]);
    assert_eq!(fetched(&def).len(), 11);
    let installs = execs(&def, "uv install: core");
    assert_eq!(installs.len(), 1);
    assert_offline(&installs);
    assert!(ops(&def).iter().all(|o| o["op"]["diff"].is_null()));
}

#[test]
fn the_platform_picks_the_wheels() {
    let def = llb(
        "examples/pylock-service",
        &["--merge", "--platform", "linux/arm64"],
    );
    let files = fetched(&def);
    assert!(
        files.iter().any(|(u, _)| u.ends_with(
            "pydantic_core-2.50.5-cp312-cp312-manylinux2014_aarch64.manylinux_2_17_aarch64.whl"
        )),
        "{files:?}"
    );
    assert!(!files.iter().any(|(u, _)| u.contains("x86_64")));
}

/// One package more in the lock: every install it does not join is the same op (so
/// BuildKit finds it cached), and the one it joins (its own, or its set's) is the only
/// new install.
#[test]
fn adding_a_package_leaves_every_other_install_unchanged() {
    // h11 has a set of its own here; typing-inspection joins certifi and httpcore.
    for (package, joins) in [
        ("h11", "uv install: core: h11 0.16.0"),
        (
            "typing-inspection",
            "uv install: core: certifi 2026.10.19.post1, httpcore 1.0.9, typing-inspection 0.4.5",
        ),
    ] {
        let (before, after) = without_and_with(package);
        let digests = |d: &Value| -> Vec<String> {
            execs(d, "uv install: core: ")
                .iter()
                .map(|o| o["digest"].as_str().unwrap().to_string())
                .collect()
        };
        let (b, a) = (digests(&before), digests(&after));
        let new: Vec<_> = execs(&after, "uv install: core: ")
            .into_iter()
            .filter(|o| !b.contains(&o["digest"].as_str().unwrap().to_string()))
            .map(name)
            .collect();
        assert_eq!(new, [joins], "{package}");
        let kept = a.iter().filter(|d| b.contains(d)).count();
        assert_eq!(
            kept,
            a.len() - 1,
            "{package}: every other install is unchanged"
        );
    }
}

/// The example's definition (`--merge`) without `package` in its lock, and with it.
fn without_and_with(package: &str) -> (Value, Value) {
    let full = std::fs::read_to_string(LOCK).unwrap();
    let mut fewer = String::new();
    for (i, block) in full.split("\n[[packages]]\n").enumerate() {
        if i > 0 && block.starts_with(&format!("name = \"{package}\"")) {
            continue;
        }
        if i > 0 {
            fewer.push_str("\n[[packages]]\n");
        }
        fewer.push_str(block);
    }
    assert!(fewer.len() < full.len(), "{package} is in the lock");
    let app = std::fs::read_to_string("examples/pylock-service/app/serve.py").unwrap_or_default();
    let dir = temp_tree(
        &format!("fetched-without-{package}"),
        &[("pylock.toml", &fewer), ("app/serve.py", &app)],
    );
    let before = llb(dir.to_str().unwrap(), &["--merge"]);
    let _ = std::fs::remove_dir_all(dir);
    (before, llb("examples/pylock-service", &["--merge"]))
}

/// A lock kiln cannot fetch (no sha256) keeps the in-step install, with a warning.
#[test]
fn a_lock_without_hashes_installs_in_step_and_says_why() {
    let lock = "lock-version = \"1.0\"\n[[packages]]\nname = \"six\"\nversion = \"1.17.0\"\nwheels = [{ url = \"https://files.pythonhosted.org/p/six-1.17.0-py2.py3-none-any.whl\" }]\n";
    let dir = temp_tree("fetched-nohash", &[("pylock.toml", lock), ("app/x.py", "")]);
    let out = crate::common::kiln(&[
        "llb",
        SPEC,
        "--context",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("KilnLockInStep")
            && stderr.contains("no sha256 for https://files.pythonhosted.org/p/six"),
        "{stderr}"
    );
    let def: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(fetched(&def).is_empty());
    let install = execs(&def, "uv install: core");
    assert_eq!(install.len(), 1);
    let script = install[0]["op"]["exec"]["meta"]["args"][2]
        .as_str()
        .unwrap();
    assert!(script.contains("-r /kiln/req/pylock.toml"), "{script}");
    // uv's "`--pylock` is experimental" warning, off for this command alone.
    assert!(
        script.contains("UV_PREVIEW_FEATURES=pylock uv pip install --python /opt/venv/bin/python -r /kiln/req/pylock.toml"),
        "{script}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A `--no-cache` build's ops get digests of their own (BuildKit's solver mishandles a
/// vertex shared by a `--no-cache` build and a cached one): the fetches too, which stand
/// on no base.
#[test]
fn a_build_with_vertices_of_its_own_fetches_with_its_own_digests() {
    let spec = crate::common::spec(SPEC);
    let mut gather = kiln::context::Gather::new(&spec);
    loop {
        let wanted = gather.wanted();
        if wanted.is_empty() {
            break;
        }
        for path in wanted {
            let bytes = std::fs::read(format!("examples/pylock-service/{path}")).ok();
            gather.give(&path, bytes.as_deref());
        }
    }
    let context = gather.finish().expect("the example's context is fine");
    let variant = spec.target(None).unwrap();
    let sources = |own: Option<&str>| -> Vec<pb::SourceOp> {
        let mut opts = kiln::plan::lower::LowerOpts::offline(crate::common::amd64());
        opts.own_vertices = own.map(str::to_string);
        let def = kiln::plan::compile(&spec, variant, &context, &opts)
            .expect("compiles")
            .def;
        crate::common::ops(&def)
            .into_iter()
            .filter_map(|o| match o.op {
                Some(pb::op::Op::Source(s)) if s.identifier.starts_with("https://") => Some(s),
                _ => None,
            })
            .collect()
    };
    // The lock's 11 files and uv's own wheel: every fetch is a vertex of its own.
    let shared = sources(None);
    let own = sources(Some("session-1"));
    assert_eq!(shared.len(), 12);
    assert!(shared.iter().all(|s| !s.attrs.contains_key("kiln.build")));
    assert_eq!(own.len(), 12);
    assert!(
        own.iter()
            .all(|s| s.attrs.get("kiln.build").map(String::as_str) == Some("session-1"))
    );
}

/// With build packages in the spec, a package's install stands on the Python stage, not on
/// the builder: it needs no compiler, so it runs beside the apt step (and a fresh runner
/// adding one pulls the small venv stage). With every file a wheel, nothing needs the
/// builder, so the build packages are not in the image's graph at all.
#[test]
fn package_installs_stand_on_the_python_stage_not_the_builder() {
    let spec = std::fs::read_to_string(SPEC).unwrap().replace(
        "requirements:",
        "system: {build: [gcc, libc6-dev]}\nrequirements:",
    );
    let dir = temp_tree("fetched-builder", &[("spec.yaml", &spec)]);
    let spec = dir.join("spec.yaml");
    let def: Value = serde_json::from_slice(&kiln_ok(&[
        "llb",
        spec.to_str().unwrap(),
        "--context",
        "examples/pylock-service",
        "--merge",
        "--format",
        "json",
    ]))
    .unwrap();
    // Every op `op` of definition `def` stands on, itself included.
    let ancestry = |def: &Value, op: &Value| -> Vec<String> {
        let by_digest: std::collections::HashMap<&str, &Value> = ops(def)
            .iter()
            .map(|o| (o["digest"].as_str().unwrap(), o))
            .collect();
        let (mut seen, mut todo) = (vec![], vec![op]);
        while let Some(o) = todo.pop() {
            seen.push(name(o).to_string());
            for i in o["inputs"].as_array().unwrap() {
                todo.push(by_digest[i["digest"].as_str().unwrap()]);
            }
        }
        seen
    };
    let installs = execs(&def, "uv install: core: ");
    assert_eq!(installs.len(), 7);
    let mut checked: Vec<(&Value, &Value)> = gates(&def)
        .iter()
        .flat_map(|g| execs(g, "check: core").into_iter().map(move |op| (g, op)))
        .collect();
    assert_eq!(checked.len(), 1);
    checked.extend(installs.into_iter().map(|op| (&def, op)));
    for (def, op) in checked {
        let names = ancestry(def, op);
        assert!(
            names.iter().any(|n| n.starts_with("python")),
            "{}: {names:?}",
            name(op)
        );
        assert!(
            !names.iter().any(|n| n.contains("into the builder")),
            "{} stands on the builder: {names:?}",
            name(op)
        );
    }
    let graph = serde_json::to_string(&def["ops"]).unwrap();
    assert!(!graph.contains("libc6-dev"), "no builder in the graph");
    let _ = std::fs::remove_dir_all(dir);
}

/// The image stacks its package layers largest first: an engine unpacks again every
/// layer above one that changed, so a new small package must not sit under the large ones.
#[test]
fn the_image_stacks_package_layers_largest_first() {
    let def = llb("examples/pylock-service", &["--merge"]);
    let entries = kiln::context::pylock::read(&std::fs::read_to_string(LOCK).unwrap()).unwrap();
    let size = |label: &str| -> u64 {
        label
            .split(", ")
            .map(|p| {
                let name = p.split(' ').next().unwrap();
                let e = entries.iter().find(|e| e.package.name == name).unwrap();
                e.package
                    .wheels
                    .iter()
                    .map(|w| w.size.unwrap())
                    .max()
                    .unwrap()
            })
            .sum()
    };
    let by_digest: std::collections::HashMap<&str, &Value> = ops(&def)
        .iter()
        .map(|o| (o["digest"].as_str().unwrap(), o))
        .collect();
    let image = ops(&def)
        .iter()
        .find(|o| name(o) == "[image] merge")
        .unwrap();
    let inputs: Vec<&str> = image["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| name(by_digest[i["digest"].as_str().unwrap()]))
        .collect();
    assert_eq!(inputs.first(), Some(&"[image] user svc 10001:10001"));
    assert_eq!(inputs.last(), Some(&"[image] app"));
    let layers: Vec<&str> = inputs
        .iter()
        .filter_map(|n| n.strip_prefix("layer: "))
        .collect();
    assert_eq!(layers.len(), 7);
    assert_eq!(layers[0], "pydantic-core 2.50.5");
    let sizes: Vec<u64> = layers.iter().map(|l| size(l)).collect();
    assert!(
        sizes.windows(2).all(|w| w[0] >= w[1]),
        "{layers:?} {sizes:?}"
    );
}

/// `kiln graph --context` shows the graph the engine gets (issue 20): with the lock read,
/// a stage per fetched file and per layer, and nothing the definition lacks; without
/// MergeOp, the fetches and the one install step.
#[test]
fn graph_with_the_context_shows_the_fetched_files_and_layers_the_definition_has() {
    for merge in [true, false] {
        let mut args = vec![
            "--context",
            "examples/pylock-service",
            "--platform",
            "linux/amd64",
        ];
        if merge {
            args.push("--merge");
        }
        let mut graph_args = vec!["graph", SPEC, "--format", "dot"];
        graph_args.extend_from_slice(&args);
        let dot = String::from_utf8(kiln_ok(&graph_args)).unwrap();
        let labels: Vec<&str> = dot
            .lines()
            .filter_map(|l| {
                l.split_once("[label=\"")?
                    .1
                    .split_once("\", shape=")
                    .map(|(l, _)| l)
            })
            .collect();
        let def = llb("examples/pylock-service", &args[2..]);
        let names: Vec<&str> = ops(&def)
            .iter()
            .chain(gates(&def).iter().flat_map(ops))
            .map(name)
            .collect();
        // Every stage is in the definition or its gates', by its progress name (the
        // image's ops are `[image] ...`; verify is a definition of its own).
        for label in labels.iter().filter(|l| !l.starts_with("verify ")) {
            let label = if label.starts_with("image ") {
                "[image]"
            } else {
                label
            };
            assert!(
                names.iter().any(|n| n.starts_with(label)),
                "merge {merge}: stage `{label}` has no op in {names:#?}"
            );
        }
        let count = |prefix: &str| labels.iter().filter(|l| l.starts_with(prefix)).count();
        // The lock's files, and uv's own wheel for the Python stage.
        assert_eq!(count("fetch uv-0.9.7-"), 1, "merge {merge}: {labels:#?}");
        let lock_fetches = count("fetch ") - 1;
        assert_eq!(
            lock_fetches,
            fetched(&def).len(),
            "merge {merge}: a stage per fetch"
        );
        assert_eq!(lock_fetches, 11, "merge {merge}: {labels:#?}");
        let diffs = ops(&def)
            .iter()
            .filter(|o| !o["op"]["diff"].is_null())
            .count();
        let layers = count("uv install: core: ");
        assert_eq!(layers, diffs, "merge {merge}: a stage per layer");
        assert_eq!(count("check: core"), usize::from(merge));
        if merge {
            assert_eq!(layers, 7, "{labels:#?}");
            // The group's venv merge is read by nothing: not a stage.
            assert!(!labels.contains(&"uv install: core"), "{labels:#?}");
        } else {
            assert_eq!(count("uv install: core"), 1, "{labels:#?}");
        }
    }
}

/// A PEP 751 lock of `n` packages, each only a sdist at `base/NAME-1.0.tar.gz`.
fn sdist_lock(n: usize, base: &str) -> String {
    let mut lock = String::from("lock-version = \"1.0\"\ncreated-by = \"kiln test\"\n");
    for i in 0..n {
        lock.push_str(&format!(
            "\n[[packages]]\nname = \"pkg{i}\"\nversion = \"1.0\"\nsdist = {{ url = \"{base}/pkg{i}-1.0.tar.gz\", size = 2000000, hashes = {{ sha256 = \"{:064x}\" }} }}\n",
            i + 1
        ));
    }
    lock
}

/// `kiln llb` of `spec` (text) on a context of `files`, as JSON.
fn llb_of(name: &str, spec: &str, files: &[(&str, &str)], args: &[&str]) -> Value {
    let mut all_files = vec![("spec.yaml", spec)];
    all_files.extend_from_slice(files);
    let dir = temp_tree(name, &all_files);
    let path = dir.join("spec.yaml");
    let mut all = vec![
        "llb",
        path.to_str().unwrap(),
        "--context",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ];
    all.extend_from_slice(args);
    let def = serde_json::from_slice(&kiln_ok(&all)).expect("kiln llb prints JSON");
    let _ = std::fs::remove_dir_all(dir);
    def
}

const SDIST_SPEC: &str = "version: 1\nname: s\npython: {base: python:3.12-slim, version: \"3.12\", installer: uv}\nsystem: {build: [gcc]}\nbuild_secrets: {netrc: netrc, ca_bundle: pipca}\nrequirements: {core: {lock: pylock.toml}}\n";

/// Issue 21: whatever the lock, the image stays within the layer budget: 130 sdists (each
/// a wheel built in the builder) share the sets instead of making 130 layers, past
/// overlay2's 128.
#[test]
fn an_image_stays_within_the_layer_budget_whatever_the_lock() {
    let lock = sdist_lock(130, "https://files.pythonhosted.org/packages");
    let def = llb_of(
        "fetched-budget",
        SDIST_SPEC,
        &[("pylock.toml", &lock)],
        &["--merge"],
    );
    let diffs = ops(&def)
        .iter()
        .filter(|o| !o["op"]["diff"].is_null())
        .count();
    assert!((1..=16).contains(&diffs), "{diffs} package layers");
    let image = ops(&def)
        .iter()
        .find(|o| name(o) == "[image] merge")
        .unwrap();
    let layers = image["op"]["merge"]["inputs"].as_array().unwrap().len();
    assert!(
        layers <= 3 + kiln::plan::MAX_PACKAGE_LAYERS,
        "{layers} image layers"
    );
    assert_eq!(
        execs(&def, "wheel from sdist: ").len(),
        130,
        "every sdist built"
    );
}

/// Issue 21: the wheel build runs the sdist's own build backend, so it gets the CA for
/// the index and never the netrc.
#[test]
fn a_wheel_build_never_mounts_the_netrc() {
    let lock = sdist_lock(2, "https://files.pythonhosted.org/packages");
    for merge in [&["--merge"][..], &[]] {
        let def = llb_of(
            "fetched-netrc",
            SDIST_SPEC,
            &[("pylock.toml", &lock)],
            merge,
        );
        let builds = execs(&def, "wheel from sdist: ");
        assert_eq!(builds.len(), 2);
        for b in builds {
            let secrets: Vec<&str> = b["op"]["exec"]["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["type"] == "SECRET")
                .map(|m| m["dest"].as_str().unwrap())
                .collect();
            assert_eq!(secrets, ["/run/secrets/kiln-ca.pem"], "{}", name(b));
        }
    }
}

/// Issue 22: the steps that may compile a sdist (each wheel build, an in-step install)
/// run their command through the build hints' wrapper, so a missing system package ends
/// with its hint; the offline installs of built wheels build nothing and are left alone.
#[test]
fn steps_that_may_build_from_source_end_with_a_hint() {
    use kiln::plan::build_hints::MARKER;
    let script = |o: &Value| {
        o["op"]["exec"]["meta"]["args"][2]
            .as_str()
            .unwrap()
            .to_string()
    };
    let lock = sdist_lock(2, "https://files.pythonhosted.org/packages");
    let def = llb_of("fetched-hints", SDIST_SPEC, &[("pylock.toml", &lock)], &[]);
    let builds = execs(&def, "wheel from sdist: ");
    assert_eq!(builds.len(), 2);
    for b in builds {
        assert!(script(b).contains(MARKER), "{}", name(b));
    }
    let installs = execs(&def, "uv install: core");
    assert!(!installs.is_empty());
    for i in installs {
        assert!(!script(i).contains(MARKER), "{}", name(i));
    }
    // A lock the engine cannot fetch installs in its step, from the index: wrapped.
    let spec = "version: 1\nname: s\npython: {base: python:3.12-slim, version: \"3.12\", installer: uv}\nrequirements: {core: {lock: pylock.toml}}\n";
    let lock = sdist_lock(1, "https://localhost/x");
    let def = llb_of(
        "fetched-hints-in-step",
        spec,
        &[("pylock.toml", &lock)],
        &[],
    );
    let installs = execs(&def, "uv install: core");
    assert_eq!(installs.len(), 1);
    assert!(script(installs[0]).contains(MARKER));
}

/// Issue 21: the engine fetches HTTP sources from its own host's network, so a lock's
/// file at a loopback or link-local address, or over plain http, is not fetched by it
/// (the group installs in its step, with the warning) unless the spec names that host as
/// an index.
#[test]
fn the_engine_fetches_no_file_from_its_own_host_unless_the_spec_names_it() {
    let spec = "version: 1\nname: s\npython: {base: python:3.12-slim, version: \"3.12\", installer: uv}\nrequirements: {core: {lock: pylock.toml}}\n";
    for base in [
        "http://169.254.169.254/latest",
        "https://127.0.0.1:2375/v1.41",
        "https://[::1]/x",
        "https://[fe80::1]/x",
        "https://localhost/x",
        "http://files.example.com/x",
    ] {
        let lock = sdist_lock(1, base);
        let def = llb_of("fetched-ssrf", spec, &[("pylock.toml", &lock)], &[]);
        let fetches = ops(&def)
            .iter()
            .filter(|o| name(o).starts_with("fetch ") && !name(o).starts_with("fetch uv-"))
            .count();
        assert_eq!(fetches, 0, "{base}");
        assert_eq!(
            execs(&def, "uv install: core").len(),
            1,
            "{base}: installs in its step"
        );
    }
    // The spec's own index on a local address: the user's mirror, fetched by the engine.
    let lock = sdist_lock(1, "http://10.0.0.5:8080/files");
    let named = format!("{spec}pip: {{extra_index_urls: [\"http://10.0.0.5:8080/simple\"]}}\n");
    let def = llb_of("fetched-named", &named, &[("pylock.toml", &lock)], &[]);
    let fetches = ops(&def)
        .iter()
        .filter(|o| name(o).starts_with("fetch ") && !name(o).starts_with("fetch uv-"))
        .count();
    assert_eq!(fetches, 1);
}

/// Issue 21: without MergeOp the group is one step whatever its size: its script names the
/// files by one glob, so 1,500 wheels stay far below the kernel's 128 KiB per argument.
#[test]
fn one_install_step_names_its_files_in_a_short_script() {
    let mut lock = String::from("lock-version = \"1.0\"\ncreated-by = \"kiln test\"\n");
    for i in 0..1500 {
        lock.push_str(&format!(
            "\n[[packages]]\nname = \"package-with-a-long-name-{i}\"\nversion = \"1.0\"\nwheels = [{{ url = \"https://files.pythonhosted.org/packages/package_with_a_long_name_{i}-1.0-py3-none-any.whl\", size = 1000, hashes = {{ sha256 = \"{:064x}\" }} }}]\n",
            i + 1
        ));
    }
    let spec = "version: 1\nname: s\npython: {base: python:3.12-slim, version: \"3.12\", installer: uv}\nrequirements: {core: {lock: pylock.toml}}\n";
    let def = llb_of("fetched-many", spec, &[("pylock.toml", &lock)], &[]);
    let install = execs(&def, "uv install: core");
    assert_eq!(install.len(), 1);
    let script = install[0]["op"]["exec"]["meta"]["args"][2]
        .as_str()
        .unwrap();
    assert!(script.len() < 1024, "{} bytes", script.len());
    assert_eq!(
        install[0]["op"]["exec"]["mounts"].as_array().unwrap().len(),
        1501
    );
}

/// Issue 22: offline, kiln cannot read the base's interpreter, so it says what the choice
/// of a lock's files took on trust, and the Python stage checks it against the base: the
/// patch releases that choose the same packages, and the packages whose markers read it.
#[test]
fn offline_the_python_stage_checks_what_the_choice_assumed() {
    let lock = "lock-version = \"1.0\"\n\n[[packages]]\nname = \"async-timeout\"\nversion = \"4.0.3\"\nmarker = \"python_full_version < '3.11.3'\"\nwheels = [{ url = \"https://files.pythonhosted.org/packages/a/async_timeout-4.0.3-py3-none-any.whl\", hashes = { sha256 = \"7405140ff1230c310e51dc27b3145b9092d659ce68ff733fb0cefe3ee42be028\" } }]\n";
    let spec = "version: 1\nname: s\npython: {base: python:3.11-slim, version: \"3.11\", installer: uv}\nrequirements: {core: {lock: pylock.toml}}\n";
    let def = llb_of("fetched-assumed", spec, &[("pylock.toml", lock)], &[]);
    let python = ops(&def)
        .iter()
        .find(|o| name(o).starts_with("python: 3.11"))
        .unwrap();
    let script = python["op"]["exec"]["meta"]["args"][2].as_str().unwrap();
    assert!(
        script.contains("case \"$have\" in 3.11.0|3.11.1|3.11.2)"),
        "{script}"
    );
    assert!(
        script.contains("the markers of async-timeout read it"),
        "{script}"
    );
    // A lock whose markers read nothing the guess left open: no check.
    let plain = lock.replace("marker = \"python_full_version < '3.11.3'\"\n", "");
    let def = llb_of(
        "fetched-assumed-plain",
        spec,
        &[("pylock.toml", &plain)],
        &[],
    );
    let python = ops(&def)
        .iter()
        .find(|o| name(o).starts_with("python: 3.11"))
        .unwrap();
    let script = python["op"]["exec"]["meta"]["args"][2].as_str().unwrap();
    assert!(!script.contains("case \"$have\""), "{script}");
}

/// Issue 22: a `uv.lock` group takes the fetched path: kiln reads the lock, each file the
/// group installs for the interpreter is an HTTP source with the lock's sha256, and the
/// install runs with no network (as layers where the engine merges); the dev group and
/// the project itself are not installed from the lock.
#[test]
fn a_uv_lock_group_is_fetched_by_the_engine_and_installed_offline() {
    let lock = std::fs::read_to_string("examples/uv-project/uv.lock").unwrap();
    for merge in [&[][..], &["--merge"]] {
        let mut args = vec![
            "llb",
            "specs/uv-project.yaml",
            "--context",
            "examples/uv-project",
            "--target",
            "ml",
            "--platform",
            "linux/amd64",
            "--format",
            "json",
        ];
        args.extend_from_slice(merge);
        let def: Value = serde_json::from_slice(&kiln_ok(&args)).unwrap();
        let files = fetched(&def);
        assert!(files.len() >= 13, "{files:?}");
        for (url, checksum) in &files {
            let sha = checksum.strip_prefix("sha256:").unwrap();
            assert!(lock.contains(url) && lock.contains(sha), "{url}");
        }
        let numpy: Vec<&String> = files
            .iter()
            .map(|(u, _)| u)
            .filter(|u| u.contains("/numpy-"))
            .collect();
        // CPython 3.11 (the project's .python-version): numpy 2.4.6, never 2.5.5.
        assert_eq!(numpy.len(), 1, "{numpy:?}");
        assert!(numpy[0].contains("numpy-2.4.6-cp311"), "{numpy:?}");
        assert!(
            files.iter().all(|(u, _)| !u.contains("/pytest-")),
            "no dev group"
        );
        assert_offline(&execs(&def, "uv install: core"));
        assert!(
            execs(&def, "uv export").is_empty(),
            "nothing exported in a step"
        );
    }
}
