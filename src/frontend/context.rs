//! What the build reads from the client: the spec (and every file it extends) from the
//! spec directory, and `.dockerignore` from the context. Each file comes through a local
//! source that follows only that path, solved and read with `ReadFile`.

use super::bridge::{Bridge, Failure};
use super::opts::Options;
use crate::context::dockerignore::Matcher;
use crate::context::preflight;
use crate::context::{ContextInfo, Gather};
use crate::diag::{Diagnostic, Report};
use crate::llb::{self, Local, Meta};
use crate::spec::{LoadOptions, Loaded, Sources, Variant};

/// Everything the build reads before it plans: the checked spec and what it needs from
/// the context.
#[derive(Clone)]
pub struct Inputs {
    pub loaded: Loaded,
    /// `.dockerignore`, requirement includes, lock projects (see `context::Gather`).
    pub context: ContextInfo,
    /// What `Gather` found wrong in the context: reported by `preflight` with the
    /// app.src problems, all at once.
    pub problems: Vec<Diagnostic>,
}

/// From the context, what the spec `loaded` (by `read_spec`) names (its problems are kept
/// for `preflight`). Errors: the engine's.
pub async fn read_context(
    bridge: &mut Bridge,
    opts: &Options,
    loaded: Loaded,
) -> Result<Inputs, Failure> {
    let spec = &loaded.spec;
    let mut gather = Gather::new(spec);
    loop {
        let wanted = gather.wanted();
        if wanted.is_empty() {
            break;
        }
        let found = read_files(bridge, opts, &opts.context_local, &wanted).await?;
        for (path, content) in wanted.iter().zip(found) {
            gather.give(path, content.as_deref());
        }
    }
    let (context, problems) = match gather.finish() {
        Ok(context) => (context, vec![]),
        Err(diags) => (ContextInfo::default(), diags),
    };
    Ok(Inputs {
        loaded,
        context,
        problems,
    })
}

/// Several files of a local directory, sent by the client for this purpose only: one
/// solve, then one `ReadFile` each (`None` for a file the client does not have).
async fn read_files(
    bridge: &mut Bridge,
    opts: &Options,
    local: &str,
    paths: &[String],
) -> Result<Vec<Option<Vec<u8>>>, Failure> {
    let st = llb::local(
        Local {
            name: local.into(),
            follow_paths: paths.to_vec(),
            shared_key_hint: Some(format!("{local}-kiln-inputs")),
            session_id: opts.session_id.clone(),
            differ_none: bridge.caps.local_differ_none(),
            ..Default::default()
        },
        Meta {
            name: Some(format!("[internal] load {}", paths.join(", "))),
            ..Default::default()
        },
    );
    let r = bridge.solve(llb::marshal(&st, &[]), false).await?;
    let mut out = vec![];
    for p in paths {
        out.push(bridge.read_file(&r, p).await.ok());
    }
    Ok(out)
}

/// Read the spec and every file it extends from the spec local. Errors: `InvalidArgument`
/// with each diagnostic as `file:line:col: error: ...`.
pub async fn read_spec(bridge: &mut Bridge, opts: &Options) -> Result<Loaded, Failure> {
    let mut sources = Sources::new();
    let mut name = opts.filename.clone();
    let mut first = true;
    loop {
        if name.starts_with("../") || name.starts_with('/') {
            return Err(Failure::invalid(
                sources
                    .missing("files outside the spec's directory are not sent to the build")
                    .to_string(),
            ));
        }
        let bytes = match read_local(bridge, opts, &opts.spec_local, &name).await {
            Ok(b) => b,
            Err(e) if first => {
                return Err(Failure::invalid(format!(
                    "cannot read the spec `{name}` from the build's `{}` directory: {e}; check `-f`/`--file` (docker build) or `--opt filename=` (buildctl)",
                    opts.spec_local
                )));
            }
            Err(e) => return Err(Failure::invalid(sources.missing(&e).to_string())),
        };
        first = false;
        match sources.add(&name, &bytes).map_err(report_failure)? {
            Some(next) => name = next,
            None => break,
        }
    }
    sources
        .finish(&LoadOptions {
            build_args: opts.build_args.clone(),
        })
        .map_err(report_failure)
}

/// Every error of the report, one a line, each with its `errdefs.Source` detail.
fn report_failure(r: Report) -> Failure {
    let errors: Vec<Diagnostic> = r.errors().cloned().collect();
    Failure::from_diagnostics(&r.files, &errors)
}

/// One file of a local directory, sent by the client for this purpose only.
async fn read_local(
    bridge: &mut Bridge,
    opts: &Options,
    local: &str,
    path: &str,
) -> Result<Vec<u8>, String> {
    let r = bridge
        .solve(local_file(bridge, opts, local, path), false)
        .await
        .map_err(|f| f.message)?;
    bridge
        .read_file(&r, path)
        .await
        .map_err(|s| s.message().to_string())
}

/// The definition of a local source that follows only `path`.
fn local_file(bridge: &Bridge, opts: &Options, local: &str, path: &str) -> llb::pb::Definition {
    let st = llb::local(
        Local {
            name: local.into(),
            follow_paths: vec![path.into()],
            shared_key_hint: Some(format!("{local}-{path}")),
            session_id: opts.session_id.clone(),
            differ_none: bridge.caps.local_differ_none(),
            ..Default::default()
        },
        Meta {
            name: Some(format!("[internal] load {path}")),
            ..Default::default()
        },
    );
    llb::marshal(&st, &[])
}

/// The digest of the vertex that loaded the spec (`[internal] load <spec>`): build
/// warnings are attached to it, as the Dockerfile frontend attaches its own.
pub fn spec_vertex(bridge: &Bridge, opts: &Options) -> String {
    let def = local_file(bridge, opts, &opts.spec_local, &opts.filename);
    crate::llb::head(&def).unwrap_or_default()
}

/// Check the context paths `variant` reads before any step runs (needs the `statfile`
/// cap; `readdir` for the emptiness of app directories): `app.src` on a local source
/// shaped like the app's own (`.dockerignore` and `app.exclude` applied), and the other
/// paths (`files[].src`, step `inputs`, repository keys) in the same solve; what
/// `.dockerignore` leaves out of those is found here, as the build's sources leave it out.
/// A path that `app.exclude` alone would hide is looked up in a second source, without
/// it (rare). Requirement, constraints and lock files were checked by `read_context`.
/// Errors: each missing path at its spec line, all at once.
pub async fn preflight(
    bridge: &Bridge,
    opts: &Options,
    inputs: &Inputs,
    variant: &Variant,
) -> Result<(), Failure> {
    let spec = &inputs.loaded.spec;
    let apps = preflight::context_paths(spec);
    let dockerignore = &inputs.context.dockerignore;
    let ignore = Matcher::new(dockerignore);
    let mut errors = inputs.problems.clone();
    let mut app_patterns = dockerignore.clone();
    if let Some(app) = &spec.app {
        app_patterns.extend(app.exclude.iter().cloned());
    }
    let app_ignore = Matcher::new(&app_patterns);
    // The other paths: left out by .dockerignore (an error here), or to look up, in the
    // app's source or, when app.exclude alone would hide them, in one without it.
    let (mut shared, mut own) = (vec![], vec![]);
    let mut costly = None;
    for u in preflight::uses(spec, Some(variant)) {
        match (ignore.excluded(&u.path.v), app_ignore.excluded(&u.path.v)) {
            (Ok(true), _) => errors.push(preflight::left_out(u)),
            (Ok(false), Ok(false)) => shared.push(u),
            (Ok(false), Ok(true)) => own.push(u),
            (Err(e), _) | (_, Err(e)) => costly = Some(e),
        }
    }
    errors.extend(preflight::pattern_errors(&ignore, costly));
    let local = |include: Vec<String>, exclude: Vec<String>| Local {
        name: opts.context_local.clone(),
        include,
        exclude,
        shared_key_hint: Some(opts.context_local.clone()),
        session_id: opts.session_id.clone(),
        ..Default::default()
    };
    if bridge.caps.stat_file() && (!apps.is_empty() || !shared.is_empty()) {
        let include = apps
            .iter()
            .map(|p| p.v.clone())
            .chain(shared.iter().map(|u| u.path.v.clone()))
            .collect();
        let r = solve_local(bridge, local(include, app_patterns), "context paths").await?;
        let read_dir = bridge.caps.read_dir();
        for p in &apps {
            if bridge.stat(&r, &p.v).await.is_err() {
                errors.push(preflight::missing(p));
            } else if read_dir && matches!(bridge.dir_entries(&r, &p.v).await, Ok(0)) {
                errors.push(preflight::emptied(p));
            }
        }
        for u in &shared {
            if bridge.stat(&r, &u.path.v).await.is_err() {
                errors.push(preflight::not_there(u));
            }
        }
    }
    if bridge.caps.stat_file() && !own.is_empty() {
        let include = own.iter().map(|u| u.path.v.clone()).collect();
        let r = solve_local(
            bridge,
            local(include, dockerignore.clone()),
            "context paths",
        )
        .await?;
        for u in &own {
            if bridge.stat(&r, &u.path.v).await.is_err() {
                errors.push(preflight::not_there(u));
            }
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    errors.sort_by_key(|d| d.loc);
    Err(Failure::from_diagnostics(&spec.files, &errors))
}

async fn solve_local(
    bridge: &Bridge,
    local: Local,
    name: &str,
) -> Result<super::bridge::RefId, Failure> {
    // The state is marshalled before the await: it is not `Send`, and pre-flight runs as a
    // task of its own.
    let def = llb::marshal(
        &llb::local(
            local,
            Meta {
                name: Some(name.into()),
                ..Default::default()
            },
        ),
        &[],
    );
    bridge.solve(def, false).await
}
