//! `app.src` checked before any step runs, after `.dockerignore` and `app.exclude`: each
//! path must be there and not emptied by the patterns. (Requirement, constraints and lock
//! files are `Gather`'s.) The frontend asks the engine (StatFile/ReadDir on a local source
//! shaped like the app's own); `kiln check --context DIR` looks at the disk.

use std::path::Path;

use crate::diag::Diagnostic;
use crate::spec::{S, Spec};

/// One `app.src` path, where it is written.
pub type ContextPath = S<String>;

/// Every `app.src` path of the spec.
pub fn context_paths(spec: &Spec) -> Vec<ContextPath> {
    spec.app
        .iter()
        .flat_map(|a| a.src.iter().cloned())
        .collect()
}

/// The error for a path that is not in the context (after `.dockerignore` and
/// `app.exclude`, for app paths).
pub fn missing(p: &ContextPath) -> Diagnostic {
    Diagnostic::error(
        p.loc,
        format!("app.src path `{}` is not in the build context", p.v),
        "add it to the build context, fix the path, or check that .dockerignore and app.exclude do not leave it out",
    )
}

/// The error for an `app.src` directory that `.dockerignore` and `app.exclude` empty.
pub fn emptied(p: &ContextPath) -> Diagnostic {
    Diagnostic::error(
        p.loc,
        format!(
            "app.src `{}` is empty once .dockerignore and app.exclude are applied",
            p.v
        ),
        "check the patterns in .dockerignore and app.exclude: they leave nothing of it to copy",
    )
}

/// `kiln check --context DIR`: every path of `variants` checked on disk, with the
/// context's `.dockerignore` (and `app.exclude`) applied to `app.src`.
pub fn check_dir(spec: &Spec, dir: &Path) -> Vec<Diagnostic> {
    let mut ignore = std::fs::read_to_string(dir.join(".dockerignore"))
        .map(|t| super::dockerignore::parse(&t))
        .unwrap_or_default();
    if let Some(app) = &spec.app {
        ignore.extend(app.exclude.iter().cloned());
    }
    let mut out = vec![];
    for p in context_paths(spec) {
        let full = dir.join(&p.v);
        if !full.exists() || super::dockerignore::excluded(&ignore, &p.v) {
            out.push(missing(&p));
            continue;
        }
        if full.is_dir() && !has_kept_entry(dir, &p.v, &ignore) {
            out.push(emptied(&p));
        }
    }
    out
}

/// Whether the directory `rel` (under `root`) keeps any entry under `patterns`. A kept
/// subdirectory counts even when all it holds is left out: BuildKit's local source still
/// sends it, as the frontend's ReadDir sees.
fn has_kept_entry(root: &Path, rel: &str, patterns: &[String]) -> bool {
    let Ok(entries) = std::fs::read_dir(root.join(rel)) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let child = format!("{}/{name}", rel.trim_end_matches('/'));
        !super::dockerignore::excluded(patterns, &child)
    })
}
