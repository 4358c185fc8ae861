//! The context paths a spec names, checked before any step runs, as the build will see
//! them: `.dockerignore` applies to every context source (what it excludes is not sent,
//! as with Docker), and `app.exclude` to `app.src` too. Each path must be there and not
//! left out, and an `app.src` directory not emptied. (Requirement, constraints and lock
//! files are `Gather`'s.) The frontend asks the engine (StatFile/ReadDir on a local
//! source shaped like the build's own); `kiln check --context DIR` looks at the disk.

use std::path::{Path, PathBuf};

use super::dockerignore::{Matcher, TooCostly};
use crate::diag::{Diagnostic, Loc};
use crate::spec::{ContextUse, S, Spec, Variant};

/// One `app.src` path, where it is written.
pub type ContextPath = S<String>;

/// Every `app.src` path of the spec.
pub fn context_paths(spec: &Spec) -> Vec<ContextPath> {
    spec.app
        .iter()
        .flat_map(|a| a.src.iter().cloned())
        .collect()
}

/// The other context paths `variant` reads (`files[].src`, step `inputs`, repository
/// keys), each where it is written; glob patterns are left out (they need not match).
pub fn uses<'s>(spec: &'s Spec, variant: Option<&Variant>) -> Vec<&'s ContextUse> {
    spec.context_uses
        .iter()
        .filter(|u| !u.path.v.contains(['*', '?', '[']))
        .filter(|u| match variant {
            None => true,
            Some(v) => {
                u.what == "steps.inputs"
                    || v.process.files.iter().any(|f| f.v.src == u.path.v)
                    || v.repositories.iter().any(|r| r.v.key == u.path.v)
            }
        })
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

/// The error for another path the spec names that the context does not have.
pub fn not_there(u: &ContextUse) -> Diagnostic {
    Diagnostic::error(
        u.path.loc,
        format!("{} `{}` is not in the build context", u.what, u.path.v),
        "add it to the build context or fix the path (relative to the context)",
    )
}

/// The error for another path the spec names that `.dockerignore` leaves out.
pub fn left_out(u: &ContextUse) -> Diagnostic {
    Diagnostic::error(
        u.path.loc,
        format!(
            "{} `{}` is left out by .dockerignore, so the build does not see it",
            u.what, u.path.v
        ),
        "take it out of .dockerignore (a `!` line keeps it), or name another file",
    )
}

/// `.dockerignore` patterns Docker refuses (the whole build fails with them), and a
/// `.dockerignore` too costly to apply.
pub fn pattern_errors(ignore: &Matcher, costly: Option<TooCostly>) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = ignore
        .invalid()
        .iter()
        .map(|p| {
            Diagnostic::error(
                Loc::default(),
                format!("`.dockerignore` has the invalid pattern `{p}`"),
                "fix it: Docker and BuildKit refuse a context whose .dockerignore has one",
            )
        })
        .collect();
    if let Some(e) = costly {
        out.push(Diagnostic::error(
            Loc::default(),
            e.to_string(),
            "shorten .dockerignore (or the paths the spec names)",
        ));
    }
    out
}

/// `kiln check --context DIR`: every path the spec names, checked on disk with the
/// context's `.dockerignore` (`dockerignore`, as read by the caller within the context)
/// and, for `app.src`, `app.exclude`. Nothing outside `dir` is looked at: a symlink that
/// leaves it counts as missing, as it does for the frontend.
pub fn check_dir(spec: &Spec, dir: &Path, dockerignore: &[String]) -> Vec<Diagnostic> {
    let Ok(root) = dir.canonicalize() else {
        return vec![];
    };
    let ignore = Matcher::new(dockerignore);
    let mut app_patterns = dockerignore.to_vec();
    if let Some(app) = &spec.app {
        app_patterns.extend(app.exclude.iter().cloned());
    }
    let app_ignore = Matcher::new(&app_patterns);
    let mut costly = None;
    let mut out = vec![];
    let mut left_out_by = |m: &Matcher, path: &str| match m.excluded(path) {
        Ok(x) => x,
        Err(e) => {
            costly = Some(e);
            false
        }
    };
    for p in context_paths(spec) {
        let full = match inside(&root, &p.v) {
            Some(full) if !left_out_by(&app_ignore, &p.v) => full,
            _ => {
                out.push(missing(&p));
                continue;
            }
        };
        if full.is_dir() && !has_kept_entry(&full, &p.v, &mut |path| left_out_by(&app_ignore, path))
        {
            out.push(emptied(&p));
        }
    }
    for u in uses(spec, None) {
        if inside(&root, &u.path.v).is_none() {
            out.push(not_there(u));
        } else if left_out_by(&ignore, &u.path.v) {
            out.push(left_out(u));
        }
    }
    out.extend(pattern_errors(&ignore, costly));
    out
}

/// `rel` under `root` (canonical) when it is there and stays inside once symlinks are
/// resolved.
fn inside(root: &Path, rel: &str) -> Option<PathBuf> {
    let full = root.join(rel).canonicalize().ok()?;
    full.starts_with(root).then_some(full)
}

/// Whether the directory `full` (the context's `rel`) keeps any entry. A kept
/// subdirectory counts even when all it holds is left out: BuildKit's local source still
/// sends it, as the frontend's ReadDir sees.
fn has_kept_entry(full: &Path, rel: &str, left_out: &mut dyn FnMut(&str) -> bool) -> bool {
    let Ok(entries) = std::fs::read_dir(full) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        !left_out(&format!("{}/{name}", rel.trim_end_matches('/')))
    })
}
