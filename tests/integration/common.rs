//! What every module shares: running the binary, loading specs, building targets and
//! reading definitions back.
//!
//! This is the only file of the integration tests that names kiln's library API
//! (`kiln::...`): the other modules use the helpers and re-exports below, so a change to
//! that API is adapted here, once.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use prost::Message;

pub use kiln::frontend::opts::Options;
pub use kiln::llb::caps;
pub use kiln::llb::pb;
pub use kiln::plan::Compiled as Built;
pub use kiln::plan::{AptRole, AptStep, CheckKind, Plan, Role, StageKind};
pub use kiln::spec::{Installer, Loaded, Spec};

/// The repository root: the tests' working directory for the binary and spec paths.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

// ---- the binary ----

/// `kiln <args>` in the repository root, not yet started (for callers that need to
/// spawn, add arguments or redirect).
pub fn kiln_command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.args(args).current_dir(ROOT);
    c
}

/// Runs `kiln <args>` in the repository root and returns what it did.
pub fn kiln(args: &[&str]) -> Output {
    kiln_command(args).output().expect("run the kiln binary")
}

/// Runs `kiln <args>`, which must succeed, and returns its stdout.
pub fn kiln_ok(args: &[&str]) -> Vec<u8> {
    let out = kiln(args);
    assert!(
        out.status.success(),
        "kiln {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

// ---- files ----

/// A fresh directory under the system's temp dir (named after `name` and this process)
/// holding `files` as (relative path, text), parents made as needed.
pub fn temp_tree(name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

// ---- specs ----

/// A spec file (path relative to the repository root) that must load.
pub fn spec(path: &str) -> Spec {
    let full = Path::new(ROOT).join(path);
    match load_path(&full) {
        Ok(loaded) => loaded.spec,
        Err(report) => panic!("{path}: {}", report.render()),
    }
}

/// Loads a spec file from anywhere, with its `extends` chain.
pub fn load_path(path: &Path) -> Result<Loaded, kiln::diag::Report> {
    let path = path.to_str().expect("a UTF-8 path");
    kiln::spec::load_file(path, &kiln::spec::LoadOptions::default())
}

/// Loads spec text named `name`, without build args.
pub fn load(name: &str, text: &str) -> Result<Loaded, kiln::diag::Report> {
    load_with_args(name, text, &[])
}

/// Loads spec text named `name` with `--build-arg NAME=VALUE` pairs.
pub fn load_with_args(
    name: &str,
    text: &str,
    build_args: &[(&str, &str)],
) -> Result<Loaded, kiln::diag::Report> {
    let opts = kiln::spec::LoadOptions {
        build_args: build_args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    kiln::spec::load_str(name, text, &opts)
}

// ---- plans and definitions ----

/// linux/amd64, the platform every offline build here uses.
pub fn amd64() -> pb::Platform {
    kiln::llb::platform("linux", "amd64", "")
}

/// The plan of some variants (all of them when `targets` is empty).
pub fn plan(spec: &Spec, targets: &[&str]) -> Plan {
    let variants: Vec<_> = if targets.is_empty() {
        spec.variants.iter().collect()
    } else {
        targets
            .iter()
            .map(|t| spec.target(Some(t)).expect("a variant of the spec"))
            .collect()
    };
    let opts = kiln::plan::PlanOpts::of(&kiln::plan::lower::LowerOpts::offline(amd64()));
    Plan::new(spec, &variants, &stub_context(spec), &opts)
}

/// A context for `spec` where every requirement and constraints file it names was read
/// and holds one pin named after the file (`stub-requirements-core-txt==1.0` for
/// `requirements/core.txt`): for tests of the graph's shape, which need no files on disk.
pub fn stub_context(spec: &Spec) -> kiln::context::ContextInfo {
    let mut ctx = kiln::context::ContextInfo::default();
    let mut files: Vec<String> = vec![];
    for g in &spec.groups {
        if let kiln::spec::GroupSource::Requirements { files: f, .. } = &g.source {
            files.extend(f.iter().map(|f| f.v.clone()));
        }
    }
    for v in &spec.variants {
        let pip = &v.pip;
        files.extend(
            pip.constraints
                .iter()
                .chain(&pip.build_constraints)
                .map(|c| c.v.clone()),
        );
    }
    for f in files {
        let flat = kiln::context::Flat {
            requirements: vec![stub_pin(&f)],
            ..Default::default()
        };
        ctx.requirement_files.insert(f.clone(), vec![f.clone()]);
        ctx.requirements.insert(f, flat);
    }
    ctx
}

/// The pin `stub_context` gives `file`.
pub fn stub_pin(file: &str) -> String {
    format!("stub-{}==1.0", file.replace(['/', '.', '_'], "-"))
}

/// One target as `kiln llb` and the frontend build it, offline for linux/amd64 (on
/// `stub_context`): the image definition, its config and the verify definitions.
pub fn build(spec: &Spec, target: &str, merge: bool) -> Built {
    let mut opts = kiln::plan::lower::LowerOpts::offline(amd64());
    if merge {
        opts.caps = kiln::llb::caps::Caps::latest();
    }
    match spec.target(Some(target)) {
        Ok(variant) => kiln::plan::compile(spec, variant, &stub_context(spec), &opts)
            .unwrap_or_else(|d| panic!("{target}: {}", d.render(&spec.files))),
        Err(d) => panic!("{target}: {}", d.render(&spec.files)),
    }
}

/// The image definition of one target (see `build`).
pub fn definition(spec: &Spec, target: &str, merge: bool) -> pb::Definition {
    build(spec, target, merge).def
}

/// The images of several targets of one plan, lowered together and marshalled as one
/// definition (a merge of them), so work they share shows as shared ops.
pub fn images_in_one_definition(spec: &Spec, targets: &[&str]) -> pb::Definition {
    let plan = plan(spec, targets);
    let lowered = kiln::plan::lower::lower(&plan, &kiln::plan::lower::LowerOpts::offline(amd64()));
    let images: Vec<_> = targets.iter().map(|t| lowered.images[*t].clone()).collect();
    kiln::llb::marshal(&kiln::llb::merge(&images, Default::default()), &spec.files)
}

/// The image config of one variant on `base` (a base image config) for linux/amd64.
pub fn image_config(
    spec: &Spec,
    variant: &str,
    base: &serde_json::Value,
    labels: &BTreeMap<String, String>,
) -> serde_json::Value {
    let plan = plan(spec, &[variant]);
    // The final stage, under the image steps that stand on it.
    let mut image = plan.stage(plan.targets[0].image);
    while let kiln::plan::StageKind::Step(_) = &image.kind {
        image = plan.stage(image.parent.expect("an image step stands on the image"));
    }
    let kiln::plan::StageKind::Final(step) = &image.kind else {
        panic!("a target's image is a final stage")
    };
    kiln::plan::config::image_config(step, base, &amd64(), labels)
}

// ---- reading definitions ----

/// The name of an encoded op in a definition: `sha256:` of its bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    kiln::llb::digest_of(bytes)
}

/// The ops of a definition, decoded, in order (the terminal op last).
pub fn ops(def: &pb::Definition) -> Vec<pb::Op> {
    def.def
        .iter()
        .map(|b| pb::Op::decode(b.as_slice()).expect("an op"))
        .collect()
}

/// A definition's ops by digest, and the digest its terminal op points at.
pub struct Graph {
    pub ops: BTreeMap<String, pb::Op>,
    pub root: String,
}

pub fn graph(def: &pb::Definition) -> Graph {
    let mut ops = BTreeMap::new();
    for bytes in &def.def {
        ops.insert(digest_of(bytes), pb::Op::decode(bytes.as_slice()).unwrap());
    }
    let terminal = pb::Op::decode(def.def.last().expect("a terminal op").as_slice()).unwrap();
    assert!(terminal.op.is_none(), "the last op is the terminal");
    let root = terminal.inputs[0].digest.clone();
    Graph { ops, root }
}

/// The files kiln wrote for an exec op's `/kiln/req` mount, as (path, text), when that
/// mount is a FileOp of files kiln made (an install's requirements); `None` otherwise.
pub fn written_at_req(g: &Graph, op: &pb::Op) -> Option<Vec<(String, String)>> {
    let Some(pb::op::Op::Exec(e)) = &op.op else {
        return None;
    };
    let m = e.mounts.iter().find(|m| m.dest == "/kiln/req")?;
    let src = &g.ops[&op.inputs[m.input as usize].digest];
    let Some(pb::op::Op::File(f)) = &src.op else {
        return None;
    };
    f.actions
        .iter()
        .map(|a| match &a.action {
            Some(pb::file_action::Action::Mkfile(mk)) => Some((
                mk.path.clone(),
                String::from_utf8_lossy(&mk.data).into_owned(),
            )),
            _ => None,
        })
        .collect()
}

/// An exec op's command line, joined by spaces; `None` for other ops.
pub fn exec_script(op: &pb::Op) -> Option<String> {
    match &op.op {
        Some(pb::op::Op::Exec(e)) => Some(e.meta.as_ref().unwrap().args.join(" ")),
        _ => None,
    }
}

// ---- the frontend ----

/// Frontend options as BuildKit would pass them (`key=value` pairs), in a session.
pub fn frontend_options(pairs: &[(&str, &str)]) -> Options {
    Options::parse(
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        Some("session-1".into()),
    )
    .unwrap()
}

/// Frontend options without a session (as the frontend gets them from a bare engine).
pub fn frontend_options_without_session(pairs: &[(&str, &str)]) -> Options {
    Options::parse(
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        None,
    )
    .unwrap()
}

/// Connects the frontend to an engine at the other end of `io` and returns its run, not
/// started: it pings, reads the spec, solves and returns when awaited.
pub async fn frontend_over<S>(
    io: S,
    opts: Options,
) -> impl std::future::Future<Output = Result<(), String>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let channel = kiln::frontend::channel_over(io).await.unwrap();
    kiln::frontend::serve(channel, Ok(opts))
}

/// What the frontend sends BuildKit for a spec that does not load (as `read_spec` makes
/// it, with `Failure::from_diagnostics`): the message, and each `errdefs.Source` detail's
/// file text with its range's start (line, character).
pub fn failure_sent(report: &kiln::diag::Report) -> (String, Vec<(Vec<u8>, i32, i32)>) {
    use kiln::frontend::errdefs::{SOURCE_TYPE_URL, SourceJson};
    let errors: Vec<_> = report.errors().cloned().collect();
    let f = kiln::frontend::bridge::Failure::from_diagnostics(&report.files, &errors);
    let sources = f
        .details
        .iter()
        .filter(|d| d.type_url == SOURCE_TYPE_URL)
        .map(|d| {
            let s: SourceJson = serde_json::from_slice(&d.value).expect("errdefs.Source");
            let start = s.ranges[0].start;
            (s.info.expect("a file").data, start.line, start.character)
        })
        .collect();
    (f.message, sources)
}

/// A real (self-signed, test-only) CA certificate, as someone would pass it with
/// `--secret id=pipca,src=ca.pem`: what must never reach a definition or an image config.
pub const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBgjCCASmgAwIBAgIUZT6fMlICJXSsBNtXDiVENIZQ3/0wCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMa2lsbiB0ZXN0IENBMB4XDTI2MTEyOTA5NTEyN1oXDTM2MTEy
NjA5NTEyN1owFzEVMBMGA1UEAwwMa2lsbiB0ZXN0IENBMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEKjk/Tkj4NtA1/Y8HxSUdk+MCc+CNmOenFSU61XtRJpph0+sx
6nOMWuvse1PupZ12cGU7xnkP0LiFdRm5ofKR66NTMFEwHQYDVR0OBBYEFIg67oWU
b9E3yhHjJ9Q1cmD6t33sMB8GA1UdIwQYMBaAFIg67oWUb9E3yhHjJ9Q1cmD6t33s
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgT1P3uxecxtyqAaFY
xcZhRDAytXtETt6SZusRvdIMD10CICQpPSEw3INeCoY8lqMVhQqxy2+35kXTGJo2
lqIKQH2i
-----END CERTIFICATE-----
";

/// Pieces of `TEST_CA_PEM` that show if any part of it leaked: the armour line and
/// each base64 line.
pub fn pem_fragments() -> Vec<&'static str> {
    TEST_CA_PEM
        .lines()
        .filter(|l| !l.starts_with("-----END"))
        .collect()
}
