//! Reading a spec and the files it `extends`, merging them, and expanding `${ARG}`s.
//! The reading itself is left to the caller (disk for the CLI, the gateway for the
//! frontend): `Sources` says which file it needs next.

use std::collections::BTreeMap;

use super::model::Spec;
use super::yaml::{self, Node, Value};
use crate::diag::{Diagnostic, Loc, Report, Severity, SourceFile};

#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--build-arg NAME=VALUE`: overrides the defaults under `args:`.
    pub build_args: BTreeMap<String, String>,
}

/// A checked spec plus the warnings found on the way.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub spec: Spec,
    pub warnings: Vec<Diagnostic>,
}

/// Read a spec and what it extends from disk (paths relative to the current directory).
/// Errors: the report, with every error found and the files it points into.
/// As in a build, `extends` reaches only files in the spec's directory (and below it),
/// and each file is read up to the size limit (one byte more, so the limit is reported).
pub fn load_file(path: &str, opts: &LoadOptions) -> Result<Loaded, Report> {
    let mut sources = Sources::new();
    let first = read_bounded(std::path::Path::new(path)).map_err(|e| Report {
        files: vec![],
        diagnostics: vec![Diagnostic::error(
            Loc::default(),
            format!("cannot read spec `{path}`: {e}"),
            "check the path",
        )],
    })?;
    let dir = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()));
    let mut next = sources.add(path, &first)?;
    while let Some(name) = next {
        let inside = std::fs::canonicalize(&name)
            .ok()
            .zip(dir.as_ref())
            .is_some_and(|(p, d)| p.starts_with(d));
        if !inside {
            return Err(sources
                .missing("it is not in the spec's directory (a build sends only that directory)"));
        }
        match read_bounded(std::path::Path::new(&name)) {
            Ok(bytes) => next = sources.add(&name, &bytes)?,
            Err(e) => return Err(sources.missing(&e.to_string())),
        }
    }
    sources.finish(opts)
}

/// A file's first `MAX_SPEC_BYTES + 1` bytes: enough to say it is too large, never more
/// (`/dev/zero` ends there).
fn read_bounded(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = vec![];
    let file = std::fs::File::open(path)?;
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, yaml::MAX_SPEC_BYTES as u64 + 1),
        &mut bytes,
    )?;
    Ok(bytes)
}

/// Load from bytes already in memory (tests, fuzzing); a spec that `extends` another
/// file is refused, since there is nothing to read it from.
pub fn load_str(name: &str, text: &str, opts: &LoadOptions) -> Result<Loaded, Report> {
    let mut sources = Sources::new();
    if let Some(next) = sources.add(name, text.as_bytes())? {
        return Err(sources.missing(&format!("`{next}` not available here")));
    }
    sources.finish(opts)
}

/// How many files one `extends` chain may span.
const MAX_EXTENDS_DEPTH: usize = 8;

/// The files of one spec, read so far, in order: the spec itself, then what it extends.
#[derive(Default)]
pub struct Sources {
    pub(crate) files: Vec<SourceFile>,
    nodes: Vec<Node>,
    /// The `extends` entry of the last file added, when it names a file not read yet.
    next: Option<(String, Loc)>,
}

impl Sources {
    pub fn new() -> Self {
        Sources::default()
    }

    /// Add the text of the file asked for (the spec itself first). Returns the name of
    /// the next file to read, if the one just added extends another.
    pub fn add(&mut self, name: &str, bytes: &[u8]) -> Result<Option<String>, Report> {
        let index = self.files.len() as u16;
        self.files
            .push(SourceFile::new(name, &String::from_utf8_lossy(bytes)));
        self.next = None;
        let node = yaml::parse(index, bytes).map_err(|d| self.report(vec![d]))?;
        if let Some(ext) = node.get("extends") {
            let Value::Str(path) = &ext.value else {
                return Err(self.report(vec![Diagnostic::error(
                    ext.loc,
                    format!("`extends` must be a file name, found {}", ext.type_name()),
                    "write `extends: ../platform/python-worker.yaml`",
                )]));
            };
            // A URL would be read as a path (`https:/host/...`), its credentials with it.
            if crate::url::Url::split(path).is_some() {
                return Err(self.report(vec![Diagnostic::error(
                    ext.loc,
                    format!("`extends` names a URL (`{}`), not a file", crate::url::redact(path)),
                    "copy the shared spec next to this one (kiln reads `extends` from the spec's directory) and name its path",
                )]));
            }
            let resolved = resolve_relative(name, path);
            if self.files.iter().any(|f| f.name == resolved) {
                let chain: Vec<&str> = self.files.iter().map(|f| f.name.as_str()).collect();
                return Err(self.report(vec![Diagnostic::error(
                    ext.loc,
                    format!("`extends` cycle: {} -> {}", chain.join(" -> "), resolved),
                    "remove the `extends` that points back to a file already in the chain",
                )]));
            }
            if self.files.len() >= MAX_EXTENDS_DEPTH {
                return Err(self.report(vec![Diagnostic::error(
                    ext.loc,
                    format!("`extends` chain is longer than {MAX_EXTENDS_DEPTH} files"),
                    "flatten the shared defaults into fewer files",
                )]));
            }
            self.next = Some((resolved.clone(), ext.loc));
            self.nodes.push(node);
            return Ok(Some(resolved));
        }
        self.nodes.push(node);
        Ok(None)
    }

    /// The file asked for by `add` could not be read.
    pub fn missing(&self, why: &str) -> Report {
        let (name, loc) = self.next.clone().unwrap_or_default();
        self.report(vec![Diagnostic::error(
            loc,
            format!("cannot read extended spec `{name}`: {why}"),
            "check the path; it is relative to the file that extends it and must be inside the build's spec directory",
        )])
    }

    /// Check and convert everything added so far into a `Spec`. Errors come first in the
    /// report, then warnings, each group in file order.
    pub fn finish(&self, opts: &LoadOptions) -> Result<Loaded, Report> {
        let (spec, mut diags) =
            super::convert::convert(self.merged(), &opts.build_args, self.files.clone());
        if let Some(spec) = &spec {
            diags.extend(undeclared_build_args(spec, opts));
        }
        diags.sort_by_key(|d| (d.severity != Severity::Error, d.loc));
        match spec {
            Some(spec) if !diags.iter().any(|d| d.severity == Severity::Error) => Ok(Loaded {
                spec,
                warnings: diags,
            }),
            _ => Err(self.report(diags)),
        }
    }

    pub(crate) fn report(&self, diagnostics: Vec<Diagnostic>) -> Report {
        Report {
            files: self.files.clone(),
            diagnostics,
        }
    }

    /// The merged document: each file over the one it extends, the first file winning.
    fn merged(&self) -> Node {
        let mut nodes = self.nodes.iter().rev();
        let mut doc = nodes
            .next()
            .cloned()
            .expect("Sources::merged called before add");
        for over in nodes {
            doc = deep_merge(doc, over.clone());
        }
        if let Value::Map(entries) = &mut doc.value {
            entries.retain(|(k, _)| k.name != "extends");
        }
        doc
    }
}

/// A warning for each `--build-arg` that the spec does not declare and that means
/// nothing to kiln or BuildKit (it is not used), at the first declared argument (where
/// it would go), or nowhere when the spec declares none.
fn undeclared_build_args(spec: &super::Spec, opts: &LoadOptions) -> Vec<Diagnostic> {
    let at = spec.args.first().map(|a| a.loc).unwrap_or_default();
    opts.build_args
        .keys()
        .filter(|n| !spec.args.iter().any(|a| &a.name == *n) && !super::format::is_builtin_arg(n))
        .map(|name| {
            Diagnostic::warning(
                "KilnUndeclaredBuildArg",
                at,
                format!("build arg `{name}` is not declared under `args:` and was not used"),
                format!(
                    "declare it under `args:` in {}, or drop the --build-arg",
                    spec.files[0].name
                ),
            )
        })
        .collect()
}

/// `path` as named from inside `from` (a path relative to the same root).
fn resolve_relative(from: &str, path: &str) -> String {
    let dir = match from.rfind('/') {
        Some(i) => &from[..i],
        None => "",
    };
    let mut parts: Vec<&str> = if path.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect()
    };
    let mut up = 0usize;
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    up += 1;
                }
            }
            p => parts.push(p),
        }
    }
    if from.starts_with('/') || path.starts_with('/') {
        return format!("/{}", parts.join("/"));
    }
    let mut out = "../".repeat(up);
    out.push_str(&parts.join("/"));
    out
}

/// Maps merge key by key (recursively); anything else in `over` replaces `base`.
pub(crate) fn deep_merge(base: Node, over: Node) -> Node {
    match (base.value, over.value) {
        (Value::Map(mut b), Value::Map(o)) => {
            for (k, v) in o {
                match b.iter().position(|(bk, _)| bk.name == k.name) {
                    Some(i) => {
                        let old = std::mem::replace(
                            &mut b[i].1,
                            Node {
                                value: Value::Null,
                                loc: v.loc,
                            },
                        );
                        b[i] = (k, deep_merge(old, v));
                    }
                    None => b.push((k, v)),
                }
            }
            Node {
                value: Value::Map(b),
                loc: over.loc,
            }
        }
        (_, value) => Node {
            value,
            loc: over.loc,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            resolve_relative("specs/worker.yaml", "../platform/base.yaml"),
            "platform/base.yaml"
        );
        assert_eq!(resolve_relative("worker.yaml", "base.yaml"), "base.yaml");
        assert_eq!(resolve_relative("worker.yaml", "../x.yaml"), "../x.yaml");
        assert_eq!(
            resolve_relative("/w/specs/api.yaml", "platform/b.yaml"),
            "/w/specs/platform/b.yaml"
        );
    }
}
