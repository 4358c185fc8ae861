//! The runtime-library check (`system.check`) and `system.runtime: auto`: the stages the
//! plan makes for the example worker and the uv project (and variations of them), and
//! the steps they lower to, read back from `kiln llb`'s JSON dump.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::common::{Plan, Role, Spec, StageKind, build, kiln_ok, load, plan, spec, temp_tree};

const WORKER: &str = "specs/worker.yaml";

/// The worker spec with `from` replaced by `to` (which must be in it), loaded.
fn worker_with(from: &str, to: &str) -> (String, Spec) {
    let text = std::fs::read_to_string(format!("{}/{WORKER}", crate::common::ROOT)).unwrap();
    assert!(text.contains(from), "{from}");
    let text = text.replace(from, to);
    let spec = load(WORKER, &text).unwrap().spec;
    (text, spec)
}

/// `kiln llb` of `spec_text` (written into a fresh directory beside the worker's
/// context) for `target`, as JSON.
fn llb_of(name: &str, spec_text: &str, target: &str, merge: bool) -> Def {
    let dir = temp_tree(name, &[("worker.yaml", spec_text)]);
    let spec = dir.join("worker.yaml");
    let mut args = vec![
        "llb",
        spec.to_str().unwrap(),
        "--context",
        "examples/worker",
        "--target",
        target,
        "--format",
        "json",
    ];
    if merge {
        args.push("--merge");
    }
    let def = Def(serde_json::from_slice(&kiln_ok(&args)).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    def
}

/// A definition's JSON dump.
struct Def(Value);

impl Def {
    fn ops(&self) -> &Vec<Value> {
        self.0["ops"].as_array().unwrap()
    }

    fn by_digest(&self) -> HashMap<&str, &Value> {
        self.ops()
            .iter()
            .map(|o| (o["digest"].as_str().unwrap(), o))
            .collect()
    }

    /// The one op whose name starts with `prefix`.
    fn op(&self, prefix: &str) -> &Value {
        let found: Vec<&Value> = self
            .ops()
            .iter()
            .filter(|o| name(o).starts_with(prefix))
            .collect();
        let names: Vec<&str> = self.ops().iter().map(name).collect();
        assert_eq!(found.len(), 1, "one op named {prefix}...: {names:#?}");
        found[0]
    }

    fn has(&self, prefix: &str) -> bool {
        self.ops().iter().any(|o| name(o).starts_with(prefix))
    }

    /// The op and output index that input `i` of `op` is.
    fn input(&self, op: &Value, i: u64) -> (&Value, u64) {
        let input = &op["inputs"][i as usize];
        let digest = input["digest"].as_str().unwrap();
        (self.by_digest()[digest], input["index"].as_u64().unwrap())
    }

    /// Every (op name, output index) `op` stands on, through all its inputs.
    fn ancestry(&self, op: &Value) -> BTreeSet<(String, u64)> {
        let by_digest = self.by_digest();
        let (mut seen, mut todo) = (BTreeSet::new(), vec![op]);
        while let Some(o) = todo.pop() {
            for i in o["inputs"].as_array().unwrap() {
                let from = by_digest[i["digest"].as_str().unwrap()];
                if seen.insert((name(from).to_string(), i["index"].as_u64().unwrap())) {
                    todo.push(from);
                }
            }
        }
        seen
    }

    /// The image: what the terminal op points at.
    fn image(&self) -> &Value {
        let terminal = self.ops().last().unwrap();
        self.input(terminal, 0).0
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

fn mount<'v>(op: &'v Value, dest: &str) -> &'v Value {
    op["op"]["exec"]["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["dest"] == dest)
        .unwrap_or_else(|| panic!("{} mounts {dest}", name(op)))
}

/// An exec with no network, no secret and no cache mount.
fn assert_offline(op: &Value) {
    let exec = &op["op"]["exec"];
    assert_eq!(exec["network"], "NONE", "{}", name(op));
    for m in exec["mounts"].as_array().unwrap() {
        assert_eq!(m["type"], "BIND", "{}: {m}", name(op));
    }
    assert_eq!(exec["secretenv"], serde_json::json!([]), "{}", name(op));
}

fn kind(p: &Plan, id: usize) -> &StageKind {
    &p.stage(id).kind
}

/// Each image waits for a check of its venv on its own runtime branch, which looks up
/// what is missing in the builder and tells the groups apart by their venvs.
#[test]
fn every_image_waits_for_a_check_of_its_venv_on_its_runtime_branch() {
    let s = spec(WORKER);
    let p = plan(&s, &[]);
    for t in &p.targets {
        let check = t.runtime_check.expect("a check by default");
        let StageKind::RuntimeCheck(step) = kind(&p, check) else {
            panic!("{:?}", kind(&p, check))
        };
        let c = p.stage(check);
        assert_eq!(c.parent, Some(t.runtime), "{}", t.variant);
        assert_eq!(c.input(Role::Venv), t.venv, "{}", t.variant);
        let builder = c.input(Role::Builder).unwrap();
        assert!(
            matches!(kind(&p, builder), StageKind::Apt(a) if a.role == crate::common::AptRole::Build)
        );
        let image = p.stage(t.image);
        assert!(
            image.inputs_of(Role::Check).any(|i| i == check),
            "{}: {:?}",
            t.variant,
            image.inputs
        );
        assert_eq!(step.venv, "/opt/venv");
        assert_eq!(step.project, None);
        let groups: Vec<usize> = c.inputs_of(Role::Group).collect();
        let lines: Vec<u32> = t.runtime_check_locs.iter().map(|l| l.line).collect();
        match t.variant.as_str() {
            // One group: every file is its own, nothing to tell apart.
            "minimal" => {
                assert_eq!(step.groups, ["core"]);
                assert!(groups.is_empty());
                assert_eq!(lines, [19]);
            }
            // Core's venv tells its files from ml's; ml holds the rest.
            "cuda" => {
                assert_eq!(step.groups, ["core", "ml"]);
                assert_eq!(groups.len(), 1);
                assert!(matches!(kind(&p, groups[0]), StageKind::Install(i) if i.group == "core"));
                assert_eq!(lines, [19, 20]);
            }
            other => panic!("{other}"),
        }
    }
    // `kiln graph` shows it, with its edges.
    let graph = String::from_utf8(kiln_ok(&[
        "graph",
        WORKER,
        "--context",
        "examples/worker",
        "--target",
        "cuda",
    ]))
    .unwrap();
    assert!(
        graph.contains("label=\"check: runtime libraries: core, ml\", shape=note"),
        "{graph}"
    );
    for edge in ["label=\"builder\"", "label=\"group\"", "label=\"check\""] {
        assert!(graph.contains(edge), "{edge}: {graph}");
    }
}

/// The scan runs on the runtime branch with the venv at its own path and the builder
/// beside it, the verdict on its report, both offline with no secret or cache; the image
/// copies the verdict's output, so it is not exported when the verdict fails; the
/// frontend gets the scan's definition and the groups' lines for its error.
#[test]
fn the_check_runs_offline_and_the_image_waits_for_its_verdict() {
    let text = std::fs::read_to_string(format!("{}/{WORKER}", crate::common::ROOT)).unwrap();
    for (target, merge) in [("minimal", false), ("cuda", true)] {
        let def = llb_of(&format!("rl-{target}"), &text, target, merge);
        let scan = def.op("scan: runtime libraries:");
        let verdict = def.op("check: runtime libraries:");
        assert!(!def.has("scan: runtime libraries: project"));
        assert_offline(scan);
        assert_offline(verdict);
        // On the runtime branch.
        assert!(name(def.input(scan, 0).0).starts_with("apt runtime: libpq5"));
        assert!(name(def.input(verdict, 0).0).starts_with("apt runtime: libpq5"));
        let venv = mount(scan, "/opt/venv");
        assert_eq!(
            (venv["selector"].as_str(), venv["readonly"].as_bool()),
            (Some("/opt/venv"), Some(true))
        );
        let (from, _) = def.input(scan, venv["input"].as_u64().unwrap());
        let last = if target == "cuda" {
            "uv install: ml"
        } else {
            "uv install: core"
        };
        assert!(name(from).starts_with(last), "{}", name(from));
        let builder = mount(scan, "/kiln/builder");
        assert!(
            name(def.input(scan, builder["input"].as_u64().unwrap()).0).starts_with("apt build:")
        );
        assert!(script(scan).contains("exec python3 -I -c "));
        assert_eq!(scan["metadata"]["caps"]["exec.mount.selector"], true);
        if target == "cuda" {
            let core = mount(scan, "/kiln/groups/0");
            assert_eq!(core["selector"], "/opt/venv");
            assert!(
                name(def.input(scan, core["input"].as_u64().unwrap()).0)
                    .starts_with("uv install: core")
            );
        }
        // The verdict reads the scan's report and fails when it names a miss.
        let report = mount(verdict, "/kiln/reports/0");
        let (from, index) = def.input(verdict, report["input"].as_u64().unwrap());
        assert_eq!((name(from), index), (name(scan), 1));
        assert!(script(verdict).contains("kiln-runtime-libs-verdict"));
        assert!(script(verdict).contains("for r in /kiln/reports/0; do\n  if [ -s \"$r/misses\" ]; then cat \"$r/message\" >&2; failed=1; fi\ndone\nexit $failed\n"), "{}", script(verdict));
        // The image stands on the verdict's output.
        let image = def.image();
        assert!(
            def.ancestry(image)
                .contains(&(name(verdict).to_string(), 1)),
            "{target}: the image does not wait for the verdict"
        );
    }
    let s = spec(WORKER);
    let built = build(&s, "cuda", false);
    let run = built.runtime_check.expect("the frontend's report");
    assert_eq!(run.misses, "misses");
    assert_eq!(
        run.locs.iter().map(|l| l.line).collect::<Vec<_>>(),
        [19, 20]
    );
    // Its definition is the scan's report (output 1 of the scan).
    assert_eq!(run.defs.len(), 1);
    let g = crate::common::graph(&run.defs[0]);
    let scan = &g.ops[&g.root];
    assert!(
        crate::common::exec_script(scan)
            .unwrap()
            .contains("exec python3 -I -c ")
    );
}

/// `system.check: false` (spec-wide, or a variant's own) leaves the check out; a variant
/// may turn it back on.
#[test]
fn the_opt_out_removes_the_check() {
    let (text, s) = worker_with("system:\n", "system:\n  check: false\n");
    let p = plan(&s, &[]);
    assert!(
        !p.stages
            .iter()
            .any(|st| matches!(st.kind, StageKind::RuntimeCheck(_)))
    );
    assert!(p.targets.iter().all(|t| t.runtime_check.is_none()));
    let def = llb_of("rl-off", &text, "minimal", false);
    assert!(!def.has("scan: runtime libraries"));
    assert!(!def.has("check: runtime libraries"));
    assert!(def.ops().iter().all(|o| {
        !o["op"]["exec"]["meta"]["args"]
            .to_string()
            .contains("kiln-runtime-libs")
    }));
    assert!(build(&s, "minimal", false).runtime_check.is_none());

    // Off spec-wide, on again for one variant.
    let on_again = text.replace(
        "    requirements: [core, ml]\n",
        "    requirements: [core, ml]\n    system: {check: true}\n",
    );
    let s = load(WORKER, &on_again).unwrap().spec;
    let p = plan(&s, &[]);
    let on: Vec<(&str, bool)> = p
        .targets
        .iter()
        .map(|t| (t.variant.as_str(), t.runtime_check.is_some()))
        .collect();
    assert_eq!(on, [("minimal", false), ("cuda", true)]);
}

/// `system.runtime: auto`: a stage on the builder reads the venv and names the packages;
/// the runtime apt step installs those (besides the spec's own) from its output, after
/// the installs, and the check still runs on that runtime branch.
#[test]
fn auto_makes_the_runtime_apt_step_read_the_builders_list() {
    let (text, s) = worker_with(
        "  runtime: [libpq5, libjpeg62-turbo]\n",
        "  runtime: auto\n",
    );
    assert_eq!(s.variants[0].runtime_auto.map(|l| l.line), Some(17));
    assert!(s.variants[0].runtime_packages.is_empty());
    let p = plan(&s, &["minimal"]);
    let t = &p.targets[0];
    let StageKind::Apt(apt) = kind(&p, t.runtime) else {
        panic!("{:?}", kind(&p, t.runtime))
    };
    assert!(apt.auto && apt.packages.is_empty());
    assert_eq!(p.stage(t.runtime).label(), "apt runtime: auto");
    let found = p
        .stage(t.runtime)
        .input(Role::Packages)
        .expect("the builder's list");
    assert!(matches!(kind(&p, found), StageKind::RuntimePackages(_)));
    let f = p.stage(found);
    assert!(
        matches!(kind(&p, f.parent.unwrap()), StageKind::Apt(a) if a.role == crate::common::AptRole::Build)
    );
    assert_eq!(f.input(Role::Venv), t.venv);
    assert_eq!(p.stage(t.runtime_check.unwrap()).parent, Some(t.runtime));

    let def = llb_of("rl-auto", &text, "minimal", false);
    let search = def.op("runtime packages (auto): core");
    assert_offline(search);
    assert!(name(def.input(search, 0).0).starts_with("apt build:"));
    assert_eq!(mount(search, "/opt/venv")["selector"], "/opt/venv");
    assert!(script(search).contains(" auto --venv /opt/venv --out /kiln/auto"));
    let apt = def.op("apt runtime: auto");
    let list = mount(apt, "/kiln/runtime-packages/0");
    let (from, index) = def.input(apt, list["input"].as_u64().unwrap());
    assert_eq!((name(from), index), (name(search), 1));
    let sh = script(apt);
    assert!(
        sh.contains("for p in $(cat /kiln/runtime-packages/0/packages | sort -u); do"),
        "{sh}"
    );
    assert!(
        sh.contains("apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends \"$@\""),
        "{sh}"
    );
    assert!(sh.contains("set -- \n"), "{sh}");
    // The apt step still downloads, on the base.
    assert_eq!(apt["op"]["exec"]["network"], "UNSET");
    assert!(def.input(apt, 0).0["op"]["source"].is_object());

    // Listed packages and `auto` together: both are installed.
    let (text, s) = worker_with(
        "  runtime: [libpq5, libjpeg62-turbo]\n",
        "  runtime: [auto, tini]\n",
    );
    let p = plan(&s, &["minimal"]);
    assert_eq!(
        p.stage(p.targets[0].runtime).label(),
        "apt runtime: auto tini"
    );
    let def = llb_of("rl-auto-tini", &text, "minimal", false);
    assert!(script(def.op("apt runtime: auto tini")).contains("set -- tini\n"));
}

/// With `app.project`, its own files are scanned apart from the venv's (an edit to it
/// reruns only that scan), where they are in the venv with the project copied in (the
/// builder steps' op), and reported at `app.project`'s line (after the groups').
#[test]
fn the_project_is_checked_in_the_venv_and_reported_at_its_line() {
    let s = spec("specs/uv-project.yaml");
    let p = plan(&s, &[]);
    for t in &p.targets {
        let c = p.stage(t.runtime_check.unwrap());
        let StageKind::RuntimeCheck(step) = &c.kind else {
            unreachable!()
        };
        assert_eq!(step.project.as_deref(), Some(""));
        let project = c.input(Role::Project).expect("the project's install");
        assert!(matches!(kind(&p, project), StageKind::Project(_)));
        assert_eq!(c.inputs_of(Role::Group).count(), step.groups.len() - 1);
        assert_eq!(t.runtime_check_locs.len(), step.groups.len() + 1);
        assert_eq!(
            t.runtime_check_locs.last().unwrap().line,
            20,
            "app.project's line"
        );
    }
    let def: Def = Def(serde_json::from_slice(&kiln_ok(&[
        "llb",
        "specs/uv-project.yaml",
        "--context",
        "examples/uv-project",
        "--target",
        "ml",
        "--format",
        "json",
    ]))
    .unwrap());
    // The venv's scan: the last group's venv, core's to tell the files apart.
    let scan = def.op("scan: runtime libraries: core, ml (");
    let venv = mount(scan, "/opt/venv");
    assert!(
        name(def.input(scan, venv["input"].as_u64().unwrap()).0).starts_with("uv install: ml"),
        "{}",
        name(def.input(scan, venv["input"].as_u64().unwrap()).0)
    );
    assert!(
        script(scan).contains(" --groups 1 --fallback 1"),
        "{}",
        script(scan)
    );
    // The project's: its prefix, read in the venv with the project in it, at place 2.
    let own = def.op("scan: runtime libraries: project . (");
    let venv = mount(own, "/opt/venv");
    assert_eq!(
        name(def.input(own, venv["input"].as_u64().unwrap()).0),
        "project into /opt/venv"
    );
    let prefix = mount(own, "/kiln/project-prefix");
    assert!(
        name(def.input(own, prefix["input"].as_u64().unwrap()).0)
            .starts_with("uv install: project .")
    );
    assert!(
        script(own).contains(" --groups 0 --fallback 2 --only /kiln/project-prefix"),
        "{}",
        script(own)
    );
    assert_offline(own);
    // The verdict reads both reports.
    let verdict = def.op("check: runtime libraries: core, ml, project .");
    mount(verdict, "/kiln/reports/0");
    mount(verdict, "/kiln/reports/1");
    // What an edit to the project's files reaches: its own scan, not the venv's.
    let source = def.op("project source");
    let reached = |op: &Value| def.ancestry(op).iter().any(|(n, _)| n == name(source));
    assert!(reached(own));
    assert!(!reached(scan));
}

/// `auto` with nothing installed has nothing to read: the runtime apt step installs the
/// spec's own packages, and there is no check.
#[test]
fn nothing_installed_needs_no_search_and_no_check() {
    let s = load(
        "t.yaml",
        "version: 1\nname: w\npython: {base: python:3.12-slim}\nsystem: {runtime: [auto, tini]}\n",
    )
    .unwrap()
    .spec;
    let p = plan(&s, &[]);
    assert!(!p.stages.iter().any(|st| matches!(
        st.kind,
        StageKind::RuntimePackages(_) | StageKind::RuntimeCheck(_)
    )));
    let StageKind::Apt(apt) = kind(&p, p.targets[0].runtime) else {
        panic!()
    };
    assert_eq!(
        (apt.auto, apt.packages.as_slice()),
        (false, ["tini".to_string()].as_slice())
    );
}
