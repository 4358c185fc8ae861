//! The build context's files that a spec names, checked before any step runs: the
//! requirement files and constraints of each variant, and `app.src` after `.dockerignore`
//! and `app.exclude`. The frontend asks the engine (StatFile/ReadDir on a local source
//! that includes exactly those paths); `kiln check --context DIR` looks at the disk.

use std::path::Path;

use crate::diag::Diagnostic;
use crate::spec::{S, Spec, Variant};

/// What a context path is for, which decides the message when it is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    Requirements,
    Constraints,
    App,
}

/// One path the spec names, where it names it, and what it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextPath {
    pub path: S<String>,
    pub kind: PathKind,
}

/// Every context path `variants` need, each once (the first place that names it).
pub fn context_paths(spec: &Spec, variants: &[&Variant]) -> Vec<ContextPath> {
    let mut out: Vec<ContextPath> = vec![];
    let mut add = |path: &S<String>, kind| {
        if !out.iter().any(|p| p.path.v == path.v) {
            out.push(ContextPath {
                path: path.clone(),
                kind,
            });
        }
    };
    for v in variants {
        for name in &v.groups {
            if let Some(g) = spec.group(&name.v) {
                for f in &g.files {
                    add(f, PathKind::Requirements);
                }
            }
        }
        if let Some(c) = &v.pip.constraints {
            add(c, PathKind::Constraints);
        }
    }
    if let Some(app) = &spec.app {
        for src in &app.src {
            add(src, PathKind::App);
        }
    }
    out
}

/// The error for a path that is not in the context (after `.dockerignore` and
/// `app.exclude`, for app paths).
pub fn missing(p: &ContextPath) -> Diagnostic {
    let (what, help) = match p.kind {
        PathKind::Requirements => (
            "requirement file",
            "add it to the build context, or fix the path (relative to the context directory)",
        ),
        PathKind::Constraints => (
            "constraints file",
            "add it to the build context, or fix `pip.constraints` (relative to the context directory)",
        ),
        PathKind::App => (
            "app.src path",
            "add it to the build context, fix the path, or check that .dockerignore and app.exclude do not leave it out",
        ),
    };
    Diagnostic::error(
        p.path.loc,
        format!("{what} `{}` is not in the build context", p.path.v),
        help,
    )
}

/// The error for an `app.src` directory that `.dockerignore` and `app.exclude` empty.
pub fn emptied(p: &ContextPath) -> Diagnostic {
    Diagnostic::error(
        p.path.loc,
        format!(
            "app.src `{}` is empty once .dockerignore and app.exclude are applied",
            p.path.v
        ),
        "check the patterns in .dockerignore and app.exclude: they leave nothing of it to copy",
    )
}

/// `kiln check --context DIR`: every path of `variants` checked on disk, with the
/// context's `.dockerignore` (and `app.exclude`) applied to `app.src`.
pub fn check_dir(spec: &Spec, variants: &[&Variant], dir: &Path) -> Vec<Diagnostic> {
    let mut ignore = std::fs::read_to_string(dir.join(".dockerignore"))
        .map(|t| crate::dockerignore::parse(&t))
        .unwrap_or_default();
    if let Some(app) = &spec.app {
        ignore.extend(app.exclude.iter().cloned());
    }
    let mut out = vec![];
    for p in context_paths(spec, variants) {
        let full = dir.join(&p.path.v);
        let excluded = p.kind == PathKind::App && crate::dockerignore::excluded(&ignore, &p.path.v);
        if !full.exists() || excluded {
            out.push(missing(&p));
            continue;
        }
        if p.kind == PathKind::App && full.is_dir() && !has_kept_entry(dir, &p.path.v, &ignore) {
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
        !crate::dockerignore::excluded(patterns, &child)
    })
}
