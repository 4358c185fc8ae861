//! The app's project (`app.project`) in stages and a layer of its own: the definitions
//! `kiln llb --context` makes for examples/uv-project (and variations of it), read back
//! from the JSON dump.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::common::{Plan, Role, StageKind, kiln_ok, plan, spec, temp_tree};

const SPEC: &str = "specs/uv-project.yaml";
const CONTEXT: &str = "examples/uv-project";

/// `kiln llb SPEC --context DIR --target TARGET ARGS... --format json`, parsed.
fn llb(spec: &str, context: &str, target: &str, args: &[&str]) -> Def {
    let mut all = vec![
        "llb",
        spec,
        "--context",
        context,
        "--target",
        target,
        "--format",
        "json",
    ];
    all.extend_from_slice(args);
    Def(serde_json::from_slice(&kiln_ok(&all)).expect("kiln llb prints JSON"))
}

/// A definition's JSON dump, with lookups by step name and digest.
struct Def(Value);

impl Def {
    fn ops(&self) -> &Vec<Value> {
        self.0["ops"].as_array().expect("ops")
    }

    fn by_digest(&self) -> HashMap<&str, &Value> {
        self.ops()
            .iter()
            .map(|o| (o["digest"].as_str().unwrap(), o))
            .collect()
    }

    /// The one op named `name`.
    fn op(&self, name: &str) -> &Value {
        let found: Vec<&Value> = self
            .ops()
            .iter()
            .filter(|o| self::name(o) == name)
            .collect();
        assert_eq!(found.len(), 1, "one op named {name}: {:?}", self.names());
        found[0]
    }

    fn names(&self) -> Vec<&str> {
        self.ops().iter().map(name).collect()
    }

    /// The image's gates (`gates` in the dump): each check a definition of its own.
    fn gates(&self) -> Vec<Def> {
        self.0["gates"]
            .as_array()
            .expect("gates")
            .iter()
            .map(|g| Def(g.clone()))
            .collect()
    }

    /// The one gate with an op whose name starts with `name`.
    fn gate(&self, name: &str) -> Def {
        let mut found: Vec<Def> = self
            .gates()
            .into_iter()
            .filter(|g| g.names().iter().any(|n| n.starts_with(name)))
            .collect();
        assert_eq!(found.len(), 1, "one gate with {name}...");
        found.remove(0)
    }

    /// The op (and output index) that input `i` of `op` is.
    fn input(&self, op: &Value, i: usize) -> (&Value, u64) {
        let input = &op["inputs"][i];
        let digest = input["digest"].as_str().unwrap();
        (self.by_digest()[digest], input["index"].as_u64().unwrap())
    }

    /// The names of every op `op` stands on (itself included), through all its inputs.
    fn ancestry(&self, op: &Value) -> BTreeSet<String> {
        let by_digest = self.by_digest();
        let (mut seen, mut todo) = (BTreeSet::new(), vec![op]);
        while let Some(o) = todo.pop() {
            seen.insert(name(o).to_string());
            for i in o["inputs"].as_array().unwrap() {
                todo.push(by_digest[i["digest"].as_str().unwrap()]);
            }
        }
        seen
    }

    /// The names of the ops that read the context source named `source`, directly or
    /// through other ops: what an edit to its files changes.
    fn downstream_of(&self, source: &str) -> BTreeSet<String> {
        self.ops()
            .iter()
            .filter(|o| !name(o).is_empty() && name(o) != source)
            .filter(|o| self.ancestry(o).contains(source))
            .map(|o| name(o).to_string())
            .collect()
    }
}

fn name(op: &Value) -> &str {
    op["metadata"]["description"]["llb.customname"]
        .as_str()
        .unwrap_or("")
}

fn script(op: &Value) -> &str {
    op["op"]["exec"]["meta"]["args"][2]
        .as_str()
        .expect("an exec")
}

/// The exec's mount at `dest`.
fn mount<'v>(op: &'v Value, dest: &str) -> Option<&'v Value> {
    op["op"]["exec"]["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["dest"] == dest)
}

const WHEEL: &str = "wheel from project: . (specs/uv-project.yaml:20)";
const INSTALL: &str = "uv install: project . (specs/uv-project.yaml:20)";
const CHECK: &str = "check: project . (specs/uv-project.yaml:20)";
const RUNTIME_CHECK: &str =
    "check: runtime libraries: core, ml, project . (specs/uv-project.yaml:15)";
const PROJECT_SCAN: &str = "scan: runtime libraries: project . (specs/uv-project.yaml:15)";
const PROJECT_INTO_VENV: &str = "project into /opt/venv";

/// The stages of a plan a stage stands on, through its parent and its inputs.
fn ancestors(p: &Plan, id: usize) -> Vec<&StageKind> {
    let (mut out, mut todo) = (vec![], vec![id]);
    while let Some(i) = todo.pop() {
        let s = p.stage(i);
        out.push(&s.kind);
        todo.extend(s.parent);
        todo.extend(s.inputs.iter().map(|(_, i)| *i));
    }
    out
}

/// Issue 22: the project's wheel is built with no package of any group installed below
/// it (on the Python stage here; on the builder with the venv copied in when there are
/// build packages), so a dependency change does not rebuild it, and both variants share
/// one wheel build and one install; the install stands on the Python stage (the empty
/// venv) with the wheel as its file.
#[test]
fn the_projects_wheel_and_install_stand_on_no_group() {
    let s = spec(SPEC);
    let p = plan(&s, &[]);
    let of = |what: fn(&StageKind) -> bool| -> Vec<usize> {
        p.stages
            .iter()
            .filter(|st| what(&st.kind))
            .map(|st| st.id)
            .collect()
    };
    let wheels = of(|k| matches!(k, StageKind::ProjectWheel(_)));
    let installs = of(|k| matches!(k, StageKind::Project(_)));
    assert_eq!(
        (wheels.len(), installs.len()),
        (1, 1),
        "shared by both variants"
    );
    for id in [wheels[0], installs[0]] {
        let below = ancestors(&p, id);
        assert!(
            !below
                .iter()
                .any(|k| matches!(k, StageKind::Install(_) | StageKind::Layer(_))),
            "{}: {below:?}",
            p.stage(id).label()
        );
    }
    let install = p.stage(installs[0]);
    assert!(matches!(
        p.stage(install.parent.unwrap()).kind,
        StageKind::Python(_)
    ));
    assert_eq!(install.inputs, [(Role::File, wheels[0])]);
    // With build packages: the wheel is built on the builder, the venv copied in.
    let text = std::fs::read_to_string(SPEC)
        .unwrap()
        .replace("requirements:\n", "system: {build: [gcc]}\nrequirements:\n");
    let dir = temp_tree("project-builder", &[("spec.yaml", &text)]);
    let with_build = dir.join("spec.yaml");
    let def = llb(with_build.to_str().unwrap(), CONTEXT, "ml", &[]);
    let wheel = def
        .ops()
        .iter()
        .find(|o| name(o).starts_with("wheel from project: ."))
        .unwrap();
    let below = def.ancestry(wheel);
    assert!(
        below.iter().any(|n| n.starts_with("apt build: gcc")),
        "{below:?}"
    );
    assert!(
        below.iter().any(|n| n.contains("into the builder")),
        "{below:?}"
    );
    assert!(!below.iter().any(|n| n.contains(" install: ")), "{below:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The wheel is built from a writable copy of the project's files (no symlink out of
/// the context), and only the wheel leaves the step; the install runs offline with the
/// venv's interpreter into a prefix of its own, and its outputs are that prefix and the
/// project's metadata.
#[test]
fn the_wheel_is_installed_offline_into_a_prefix_of_its_own() {
    let def = llb(SPEC, CONTEXT, "ml", &[]);
    let wheel = def.op(WHEEL);
    let s = script(wheel);
    assert!(
        s.contains("is a symlink that leaves the build context"),
        "{s}"
    );
    assert!(
        s.contains("cp -a /kiln/project/. /tmp/kiln-project\n"),
        "{s}"
    );
    // The build runs inside the hint wrapper: a failed sdist build names its fix.
    assert!(
        s.contains("'uv build --wheel --python /opt/venv/bin/python --out-dir /kiln/wheel /tmp/kiln-project'"),
        "{s}"
    );
    assert!(s.contains("add build-essential to system.build"), "{s}");
    let (source, _) = def.input(
        wheel,
        mount(wheel, "/kiln/project").unwrap()["input"]
            .as_u64()
            .unwrap() as usize,
    );
    assert_eq!(name(source), "project source");
    let install = def.op(INSTALL);
    let s = script(install);
    assert!(
        s.contains("uv pip install --python /opt/venv/bin/python --prefix /kiln/project-prefix --offline --no-index --no-deps --no-cache /kiln/wheel/*.whl"),
        "{s}"
    );
    assert!(s.contains("rm -f /kiln/project-prefix/.lock"), "{s}");
    assert_eq!(install["op"]["exec"]["network"], "NONE");
    let from = mount(install, "/kiln/wheel").unwrap();
    assert_eq!(from["readonly"], true);
    assert_eq!(
        name(
            def.input(install, from["input"].as_u64().unwrap() as usize)
                .0
        ),
        WHEEL
    );
    for dest in ["/kiln/project-prefix", "/kiln/project-metadata"] {
        assert!(
            mount(install, dest).unwrap()["output"].as_i64().unwrap() > 0,
            "{dest}"
        );
    }
    for m in install["op"]["exec"]["mounts"].as_array().unwrap() {
        assert!(m["type"] != "SECRET" && m["type"] != "CACHE", "{m}");
    }
}

/// The index of the output the exec writes at `dest`.
fn output_at(op: &Value, dest: &str) -> u64 {
    mount(op, dest).unwrap()["output"].as_u64().unwrap()
}

/// The copies a FileOp makes: (the op and output it copies from, src, dest, owner).
fn copies<'d>(def: &'d Def, op: &'d Value) -> Vec<(&'d Value, u64, String, String, Value)> {
    op["op"]["file"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| {
            let c = &a["action"]["copy"];
            (!c.is_null()).then(|| {
                let (from, index) = def.input(op, a["secondary_input"].as_u64().unwrap() as usize);
                let s = |k: &str| c[k].as_str().unwrap().to_string();
                (from, index, s("src"), s("dest"), c["owner"].clone())
            })
        })
        .collect()
}

/// Issue 22: with MergeOp the project is a layer of its own in the image's merge, after
/// the venv's and before the app: the prefix copied into the venv path, owned by root,
/// with the check's (empty) verdict; the venv's layers (its packages', fetched from the
/// lock) never read the project. Without MergeOp the project is the copy between the venv's and the app's.
#[test]
fn the_image_takes_the_project_as_its_last_layer_before_the_app() {
    for merge in [true, false] {
        let args: &[&str] = if merge { &["--merge"] } else { &[] };
        let def = llb(SPEC, CONTEXT, "ml", args);
        let layer = def.op("[image] project");
        let install = def.op(INSTALL);
        let copied = copies(&def, layer);
        assert_eq!(copied.len(), 2, "the prefix and a verdict: {merge}");
        let (from, index, src, dest, owner) = &copied[0];
        assert_eq!(
            (name(from), *index, src.as_str(), dest.as_str()),
            (
                INSTALL,
                output_at(install, "/kiln/project-prefix"),
                "/",
                "/opt/venv"
            ),
            "{merge}"
        );
        assert!(owner.is_null(), "root-owned, as the venv: {owner}");
        // The runtime-library check reads the project: its verdict goes with it.
        let (from, index, ..) = &copied[1];
        assert_eq!((name(from), *index), (RUNTIME_CHECK, 1));
        // The project's `pip check` gates the image: no op of it waits for that.
        assert!(
            !def.names().contains(&CHECK),
            "{merge}: the check in the image"
        );
        def.gate(CHECK);
        // The venv's layers (and the group installs below them) never read the project.
        for op in def.ops().iter().filter(|o| {
            let n = name(o);
            n == "[image] venv" || n.starts_with("layer: ") || n.starts_with("uv install: ml")
        }) {
            let below = def.ancestry(op);
            assert!(
                !below.contains(INSTALL) && !below.contains(WHEEL),
                "{merge} {}: {below:?}",
                name(op)
            );
        }
        let app = def.op("[image] app");
        if merge {
            let image = def.op("[image] merge");
            let layers: Vec<&str> = (0..image["inputs"].as_array().unwrap().len())
                .map(|i| name(def.input(image, i).0))
                .collect();
            // user and venv first, the dependencies' own layers, then project and app.
            assert_eq!(
                layers[..2],
                ["[image] user svc 10001:10001", "[image] venv"]
            );
            assert_eq!(
                layers[layers.len() - 2..],
                ["[image] project", "[image] app"]
            );
            assert!(
                layers[2..layers.len() - 2]
                    .iter()
                    .all(|l| l.starts_with("layer: ")),
                "{layers:?}"
            );
            // On scratch: the layer holds the project alone.
            assert_eq!(layer["op"]["file"]["actions"][0]["input"], -1);
        } else {
            // user -> venv -> project -> app, one chain.
            assert_eq!(name(def.input(app, 0).0), "[image] project");
            assert_eq!(name(def.input(layer, 0).0), "[image] venv");
        }
    }
}

/// Issue 22: an edit to the app's files changes only what reads them: the project's
/// wheel, install, check and layer, the app's layer and the image (its merge, or the
/// copies chained after the project); no group's install and no venv layer. And the
/// other way round, the variants' different dependency sets share the project's wheel
/// build and install, op for op.
#[test]
fn an_app_edit_reaches_only_the_projects_and_apps_ops() {
    // The runtime-library check's scan of the project's own files (in the venv with the
    // project copied in) and its verdict are the project's too; the venv's scan is not
    // (the verdict reads the reports by their contents: an unchanged report finds it
    // cached). The project's check is a gate, which an edit reaches too.
    let runtime = [PROJECT_INTO_VENV, PROJECT_SCAN, RUNTIME_CHECK];
    let gated = [CHECK];
    let reached_all = |def: &Def| -> (BTreeSet<String>, BTreeSet<String>) {
        let gates = def
            .gates()
            .iter()
            .flat_map(|g| g.downstream_of("project source"))
            .filter(|n| ![WHEEL, INSTALL].contains(&n.as_str()))
            .collect();
        (def.downstream_of("project source"), gates)
    };
    let gated: BTreeSet<String> = gated.into_iter().map(String::from).collect();
    let merged = llb(SPEC, CONTEXT, "ml", &["--merge"]);
    let (reached, gates) = reached_all(&merged);
    let want: BTreeSet<String> = [WHEEL, INSTALL, "[image] project", "[image] merge"]
        .into_iter()
        .chain(runtime)
        .map(String::from)
        .collect();
    assert_eq!(reached, want);
    assert_eq!(gates, gated);
    let chained = llb(SPEC, CONTEXT, "ml", &[]);
    let (reached, gates) = reached_all(&chained);
    let want: BTreeSet<String> = [WHEEL, INSTALL, "[image] project", "[image] app"]
        .into_iter()
        .chain(runtime)
        .map(String::from)
        .collect();
    assert_eq!(reached, want);
    assert_eq!(gates, gated);
    let venv_scan = merged.op("scan: runtime libraries: core, ml (specs/uv-project.yaml:15)");
    assert!(!merged.ancestry(venv_scan).contains("project source"));
    for def in [&merged, &chained] {
        assert!(def.names().iter().any(|n| n.starts_with("uv install: ml")));
        assert!(!reached.iter().any(|n| n.starts_with("uv install: ml")));
    }
    // Two dependency sets, one project: the same wheel build and install.
    let minimal = llb(SPEC, CONTEXT, "minimal", &["--merge"]);
    let digest = |d: &Def, n: &str| d.op(n)["digest"].as_str().unwrap().to_string();
    for n in [WHEEL, INSTALL] {
        assert_eq!(digest(&minimal, n), digest(&merged, n), "{n}");
    }
    assert_ne!(
        digest(&minimal, "[image] merge"),
        digest(&merged, "[image] merge")
    );
}

/// Issue 22: the installer's check runs over the venv (the last group's install) with the
/// project's metadata alone, mounted read-only (BuildKit keys it by content: a code edit
/// finds the check cached); it gates the image, which does not read it. With
/// `pip: {check: false}` there is none.
#[test]
fn the_projects_check_reads_its_metadata_and_gates_the_image() {
    let image = llb(SPEC, CONTEXT, "ml", &["--merge"]);
    assert!(!image.names().contains(&CHECK));
    let def = image.gate(CHECK);
    let check = def.op(CHECK);
    let s = script(check);
    assert!(
        s.contains(
            "cp -R /kiln/project-metadata/. /opt/venv/\nuv pip check --python /opt/venv/bin/python"
        ),
        "{s}"
    );
    // It runs over the assembled venv of the last group (its packages' layers): the
    // merge the group's check makes, op for op.
    let (root, _) = def.input(check, 0);
    assert_eq!(name(root), "venv to check: project .");
    let group = image.gate("check: ml");
    let ml = group.ops().iter().find(|o| name(o) == "check: ml").unwrap();
    assert_eq!(root["digest"], group.input(ml, 0).0["digest"]);
    let meta = mount(check, "/kiln/project-metadata").unwrap();
    assert_eq!(meta["readonly"], true);
    let (from, index) = def.input(check, meta["input"].as_u64().unwrap() as usize);
    assert_eq!(
        (name(from), index),
        (
            INSTALL,
            output_at(def.op(INSTALL), "/kiln/project-metadata")
        )
    );
    assert!(mount(check, "/kiln/project-prefix").is_none());
    assert_eq!(check["op"]["exec"]["network"], "NONE");
    for m in check["op"]["exec"]["mounts"].as_array().unwrap() {
        assert!(m["type"] != "SECRET" && m["type"] != "CACHE", "{m}");
    }
    // Off (and the runtime-library check off too): no check, the layer is the prefix
    // alone.
    let text = std::fs::read_to_string(SPEC).unwrap().replace(
        "build_secrets:",
        "pip: {check: false}\nsystem: {check: false}\nbuild_secrets:",
    );
    let dir = temp_tree("project-nocheck", &[("spec.yaml", &text)]);
    let off = llb(
        dir.join("spec.yaml").to_str().unwrap(),
        CONTEXT,
        "ml",
        &["--merge"],
    );
    assert!(!off.names().iter().any(|n| n.starts_with("check: project")));
    assert!(off.gates().iter().all(|g| !g.names().contains(&CHECK)));
    assert_eq!(copies(&off, off.op("[image] project")).len(), 1);
    let _ = std::fs::remove_dir_all(dir);
}

/// A lock the engine fetches, layered (MergeOp): the project is the layer after every
/// package layer and before the app (not a DiffOp of an install on the merged venv), and
/// its check merges the empty venv and the package layers, as the group's check does: no
/// builder, no venv install below it.
#[test]
fn on_a_layered_venv_the_project_is_the_last_layer_and_its_check_merges_the_layers() {
    let spec_text = std::fs::read_to_string("specs/pylock-service.yaml")
        .unwrap()
        .replace("  src: [app]\n", "  project: .\n");
    let lock = std::fs::read_to_string("examples/pylock-service/pylock.toml").unwrap();
    let pyproject = "[project]\nname = \"svc\"\nversion = \"0.1\"\nrequires-python = \">=3.12\"\n\n[build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n";
    let dir = temp_tree(
        "project-layered",
        &[
            ("spec.yaml", &spec_text),
            ("pylock.toml", &lock),
            ("pyproject.toml", pyproject),
            ("src/svc/__init__.py", ""),
        ],
    );
    let (spec_path, context) = (dir.join("spec.yaml"), dir.to_str().unwrap().to_string());
    let def = llb(
        spec_path.to_str().unwrap(),
        &context,
        "default",
        &["--merge"],
    );
    let image = def.op("[image] merge");
    let layers: Vec<&str> = (0..image["inputs"].as_array().unwrap().len())
        .map(|i| name(def.input(image, i).0))
        .collect();
    assert_eq!(
        layers.len(),
        11,
        "user, venv, 7 package layers, project, app: {layers:?}"
    );
    assert_eq!(
        &layers[layers.len() - 2..],
        ["[image] project", "[image] app"]
    );
    assert!(
        layers[2..9].iter().all(|l| l.starts_with("layer: ")),
        "{layers:?}"
    );
    let diffs: Vec<&str> = def
        .ops()
        .iter()
        .filter(|o| !o["op"]["diff"].is_null())
        .map(name)
        .collect();
    assert!(diffs.iter().all(|n| n.starts_with("layer: ")), "{diffs:?}");
    let gates = def.gates();
    let named = |prefix: &str| {
        gates
            .iter()
            .find_map(|g| {
                let op = g.ops().iter().find(|o| name(o).starts_with(prefix))?;
                Some((g, op))
            })
            .unwrap_or_else(|| panic!("a gate with {prefix}"))
    };
    let (gate, check) = named("check: project .");
    let (root, _) = gate.input(check, 0);
    let (group, group_check) = named("check: core");
    assert_eq!(
        root["digest"],
        group.input(group_check, 0).0["digest"],
        "the group check's merge, shared"
    );
    assert_eq!(
        root["inputs"].as_array().unwrap().len(),
        8,
        "the empty venv and 7 layers"
    );
    assert!(
        !gate
            .ancestry(check)
            .iter()
            .any(|n| n.starts_with("uv install: core ("))
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A builder step stands on the venv with the project copied in (its console scripts and
/// package are there for it), not on a venv the project was installed into.
#[test]
fn a_builder_step_sees_the_project_in_the_venv() {
    let text = std::fs::read_to_string(SPEC).unwrap()
        + "steps:\n  - name: version\n    run: mkdir -p /out && svc-health > /out/health.txt\n    outputs: [{from: /out/health.txt, to: /etc/svc-health.txt}]\n";
    let dir = temp_tree("project-step", &[("spec.yaml", &text)]);
    let def = llb(
        dir.join("spec.yaml").to_str().unwrap(),
        CONTEXT,
        "minimal",
        &[],
    );
    let step = def
        .ops()
        .iter()
        .find(|o| name(o).starts_with("step version (builder)"))
        .unwrap();
    let (on, _) = def.input(step, 0);
    assert_eq!(name(on), "project into /opt/venv");
    let copied = copies(&def, on);
    assert_eq!(copied.len(), 1);
    assert!(name(copied[0].0).starts_with("uv install: project ."));
    assert!(name(def.input(on, 0).0).starts_with("uv install: core ("));
    let _ = std::fs::remove_dir_all(dir);
}

/// `kiln graph` shows the project's stages and how the image reads them.
#[test]
fn the_graph_shows_the_projects_stages() {
    let out = String::from_utf8(kiln_ok(&[
        "graph",
        SPEC,
        "--context",
        CONTEXT,
        "--target",
        "minimal",
        "--format",
        "mermaid",
    ]))
    .unwrap();
    let id = |label: &str| -> String {
        out.lines()
            .find(|l| l.ends_with(&format!("[\"{label}\"]")))
            .unwrap_or_else(|| panic!("{label} in {out}"))
            .trim()
            .split('[')
            .next()
            .unwrap()
            .to_string()
    };
    let (python, core) = (
        id("python: 3.11 check, venv /opt/venv + uv"),
        id("uv install: core"),
    );
    let (wheel, install) = (id("wheel from project: ."), id("uv install: project ."));
    let (check, image) = (id("check: project ."), id("image minimal"));
    for edge in [
        format!("{python} --> {wheel}"),
        format!("{python} --> {install}"),
        format!("{wheel} -. file .-> {install}"),
        format!("{core} --> {check}"),
        format!("{install} -. project .-> {check}"),
        format!("{install} -. project .-> {image}"),
        format!("{check} -. gates .-> {image}"),
        format!("{core} -. venv .-> {image}"),
    ] {
        assert!(out.lines().any(|l| l.trim() == edge), "{edge} in {out}");
    }
}
