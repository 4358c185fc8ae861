//! `system`, spec-wide and per variant: apt packages for the builder (`build`) and the
//! image (`runtime`, or `auto`: the packages the builder finds the venv needs), extra apt
//! `repositories`, and the runtime-library `check`. Read here only; a variant's block is
//! laid over the spec-wide one (`SystemFields::over`): lists added, a repository of the
//! same name replaced, `auto` and `check` key by key.

use super::Cx;
use crate::diag::Loc;
use crate::spec::format::*;
use crate::spec::model::*;
use crate::spec::validate;
use crate::spec::yaml::{Node, Value};

/// Apt packages for the builder (`build`) and for the image (`runtime`, and `auto`'s
/// position when the builder names them), and the runtime-library check (`check`).
#[derive(Default)]
pub(super) struct SystemFields {
    pub build: Vec<S<String>>,
    pub runtime: Vec<S<String>>,
    pub auto: Option<Loc>,
    pub repositories: Vec<S<AptRepository>>,
    pub check: Option<bool>,
}

impl SystemFields {
    /// This (a variant's) block over the spec-wide `shared`.
    pub fn over(self, shared: &SystemFields) -> SystemFields {
        SystemFields {
            build: unique(&shared.build, &self.build),
            runtime: unique(&shared.runtime, &self.runtime),
            auto: self.auto.or(shared.auto),
            repositories: repositories(&shared.repositories, self.repositories),
            check: self.check.or(shared.check),
        }
    }
}

impl Cx {
    /// One `system` block (spec-wide or a variant's), every key optional.
    pub(super) fn system_fields(&mut self, node: &Node, what: &str) -> SystemFields {
        let f = self.fields(node, what, SYSTEM_KEYS);
        let mut packages = |which: &str| -> Vec<S<String>> {
            let list = f
                .get(which)
                .map(|l| self.list(l, &format!("system.{which}")))
                .unwrap_or_default();
            for p in &list {
                if !validate::is_apt_package(&p.v) {
                    self.err(p.loc, format!("invalid apt package name `{}`", p.v), "Debian package names use a-z, 0-9, '+', '-', '.', optionally `=version` or `:arch`");
                }
            }
            list
        };
        let build = packages("build");
        let (runtime, auto) = f
            .get("runtime")
            .map(|r| self.runtime(r))
            .unwrap_or_default();
        let repositories = f
            .get("repositories")
            .map(|r| self.repositories(r, what))
            .unwrap_or_default();
        let check = f.get("check").and_then(|n| self.bool(n, "system.check"));
        SystemFields {
            build,
            runtime,
            auto,
            repositories,
            check,
        }
    }

    /// `system.runtime`: a list of apt packages, `auto`, or a list with an `auto` entry
    /// among the packages (the builder's packages and these). Returns the packages and
    /// where `auto` is written.
    fn runtime(&mut self, node: &Node) -> (Vec<S<String>>, Option<Loc>) {
        if let Value::Str(s) = &node.value {
            if s == RUNTIME_AUTO {
                return (vec![], Some(node.loc));
            }
            self.err(
                node.loc,
                format!("system.runtime must be a list or `{RUNTIME_AUTO}`, found the string `{s}`"),
                format!("write a list, [{s}], or `{RUNTIME_AUTO}` to install what the venv's libraries need"),
            );
            return (vec![], None);
        }
        let mut auto = None;
        let mut packages = vec![];
        for p in self.list(node, "system.runtime") {
            if p.v == RUNTIME_AUTO {
                auto = auto.or(Some(p.loc));
            } else if validate::is_apt_package(&p.v) {
                packages.push(p);
            } else {
                self.err(p.loc, format!("invalid apt package name `{}`", p.v), "Debian package names use a-z, 0-9, '+', '-', '.', optionally `=version` or `:arch`");
            }
        }
        (packages, auto)
    }

    /// `system.repositories`: `{name, url, suite, components, key}` entries.
    pub(super) fn repositories(&mut self, node: &Node, what: &str) -> Vec<S<AptRepository>> {
        let what = format!("{what}.repositories");
        let Value::Seq(items) = &node.value else {
            self.err(
                node.loc,
                format!("{what} must be a list, found {}", node.type_name()),
                "write repositories: [{name: pgdg, url: http://apt.postgresql.org/pub/repos/apt, suite: bookworm-pgdg, components: [main], key: keys/pgdg.asc}]",
            );
            return vec![];
        };
        let mut out: Vec<S<AptRepository>> = vec![];
        for item in items {
            let Some(repo) = self.repository(item, &what) else {
                continue;
            };
            if out.iter().any(|r| r.v.name == repo.v.name) {
                self.err(
                    item.loc,
                    format!("repository `{}` is listed twice", repo.v.name),
                    "give each repository its own name",
                );
                continue;
            }
            out.push(repo);
        }
        out
    }

    fn repository(&mut self, item: &Node, what: &str) -> Option<S<AptRepository>> {
        let f = self.fields(item, &format!("an entry of {what}"), REPOSITORY_KEYS);
        let field = |cx: &mut Cx, key: &str| -> Option<S<String>> {
            match f.get(key) {
                Some(n) => cx.text(n, &format!("{what}.{key}")),
                None => {
                    cx.err(
                        item.loc,
                        format!("an entry of {what} has no `{key}`"),
                        "give name, url, suite, components and key",
                    );
                    None
                }
            }
        };
        let (name, url, suite) = (
            field(self, "name"),
            field(self, "url"),
            field(self, "suite"),
        );
        let key = match f.get("key") {
            Some(k) => self.context_path(k, &format!("{what}.key")),
            None => field(self, "key"),
        };
        let key = key.and_then(|k| match validate::apt_key_path(&k.v) {
            Ok(()) => {
                self.uses.push(ContextUse {
                    what: "system.repositories.key",
                    path: k.clone(),
                });
                Some(k)
            }
            Err(why) => {
                self.err(
                    k.loc,
                    format!("invalid {what}.key `{}`: {why}", k.v),
                    "name the key file by a plain path, e.g. keys/pgdg.asc",
                );
                None
            }
        });
        let components = f
            .get("components")
            .map(|c| self.list(c, &format!("{what}.components")))
            .unwrap_or_default();
        let (name, url, suite, key) = (name?, url?, suite?, key?);
        let word = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '+'))
        };
        if !validate::is_image_name_part(&name.v) {
            self.err(
                name.loc,
                format!("invalid repository name `{}`", name.v),
                "use lowercase letters, digits, '.', '_' and '-' (it names the sources file)",
            );
        }
        if let Err(why) = validate::index_url(&url.v) {
            self.err(
                url.loc,
                format!("invalid {what}.url `{}`: {why}", crate::url::redact(&url.v)),
                "write the archive's root, e.g. http://apt.postgresql.org/pub/repos/apt",
            );
        }
        for s in std::iter::once(&suite).chain(&components) {
            if !word(&s.v) {
                self.err(
                    s.loc,
                    format!("invalid suite or component `{}`", s.v),
                    "use letters, digits, '.', '_', '-', '+' and '/', e.g. bookworm-pgdg or main",
                );
            }
        }
        if components.is_empty() && !suite.v.ends_with('/') {
            self.err(item.loc, format!("an entry of {what} has no `components`"), "list them, e.g. components: [main] (only a flat repository, suite ending in /, has none)");
        }
        let repo = AptRepository {
            name: name.v,
            url: url.v,
            suite: suite.v,
            components: components.into_iter().map(|c| c.v).collect(),
            key: key.v,
        };
        Some(S::new(repo, item.loc))
    }
}

/// The spec-wide repositories with the variant's added; one of the same name replaces.
fn repositories(shared: &[S<AptRepository>], own: Vec<S<AptRepository>>) -> Vec<S<AptRepository>> {
    let mut out: Vec<S<AptRepository>> = shared
        .iter()
        .filter(|r| !own.iter().any(|o| o.v.name == r.v.name))
        .cloned()
        .collect();
    out.extend(own);
    out
}

/// `first` then `then`, each package once (the first mention wins).
fn unique(first: &[S<String>], then: &[S<String>]) -> Vec<S<String>> {
    let mut seen = std::collections::BTreeSet::new();
    first
        .iter()
        .chain(then)
        .filter(|p| seen.insert(p.v.clone()))
        .cloned()
        .collect()
}
