//! `requirements:`: named groups, each from requirement files and lines or from a lock file.

use super::{Cx, Fields};
use crate::spec::format::GROUP_KEYS;
use crate::spec::model::*;
use crate::spec::validate;
use crate::spec::yaml::{Node, Value};

impl Cx {
    pub(super) fn groups(&mut self, node: &Node) -> Vec<Group> {
        let mut out = Vec::new();
        let example = "write `requirements: {core: [requirements/core.txt]}`";
        for (k, v) in self.named(node, "requirements", example) {
            if !validate::is_variant_name(&k.name) {
                self.err(
                    k.loc,
                    format!("invalid group name `{}`", k.name),
                    "use lowercase letters, digits, '-' and '_'",
                );
            }
            let what = format!("requirements.{}", k.name);
            let source = match &v.value {
                Value::Seq(_) => Some(GroupSource::Requirements {
                    files: self.files(v, &what),
                    packages: vec![],
                    require_hashes: None,
                }),
                Value::Map(_) => {
                    let before = self.diags.len();
                    let f = self.fields(v, &what, GROUP_KEYS);
                    let misspelt = self.diags.len() > before;
                    match f.get("lock") {
                        Some(lock) => self.lock(lock, f, &what).map(GroupSource::Lock),
                        // An unknown key (`lok:`) already says what is wrong: not "empty" too.
                        None if misspelt => None,
                        None => Some(self.requirement_lines(f, &what)),
                    }
                }
                _ => {
                    self.err(v.loc, format!("requirement group `{}` must be a list of files or a mapping", k.name), "write core: [requirements/core.txt], core: {packages: [\"arq==0.26.1\"]} or core: {lock: uv.lock}");
                    None
                }
            };
            // A group whose source was refused still exists: no "unknown group" errors at
            // the variants that name it.
            let Some(source) = source else {
                out.push(Group {
                    name: S::new(k.name.clone(), k.loc),
                    source: GroupSource::Requirements {
                        files: vec![],
                        packages: vec![],
                        require_hashes: None,
                    },
                });
                continue;
            };
            if let GroupSource::Requirements {
                files, packages, ..
            } = &source
                && files.is_empty()
                && packages.is_empty()
            {
                self.err(
                    v.loc,
                    format!("requirement group `{}` is empty", k.name),
                    "list requirement files or packages, or remove the group",
                );
            }
            out.push(Group {
                name: S::new(k.name.clone(), k.loc),
                source,
            });
        }
        out
    }

    /// `{files, packages, require_hashes}`; lock-only keys are refused here.
    fn requirement_lines(&mut self, f: Fields, what: &str) -> GroupSource {
        for key in ["extras", "groups"] {
            if let Some(n) = f.get(key) {
                self.err(
                    n.loc,
                    format!("`{key}` selects from a lock file, and {what} has no `lock`"),
                    "add `lock: uv.lock` (uv's lock has extras and groups), or list the packages under `packages`",
                );
            }
        }
        let files = f
            .get("files")
            .map(|n| self.files(n, &format!("{what}.files")))
            .unwrap_or_default();
        let packages = f
            .get("packages")
            .map(|n| self.list(n, &format!("{what}.packages")))
            .unwrap_or_default();
        for p in &packages {
            if let Err(why) = validate::requirement_line(&p.v) {
                self.err(p.loc, format!("invalid requirement `{}`: {why}", p.v), "write one requirement per entry, e.g. \"arq==0.26.1\"; pip options belong under `pip:`");
            }
        }
        let require_hashes = f
            .get("require_hashes")
            .and_then(|n| self.bool(n, &format!("{what}.require_hashes")));
        GroupSource::Requirements {
            files,
            packages,
            require_hashes,
        }
    }

    /// `{lock, extras, groups}`, or a PEP 751 lock with what it is resolved from
    /// (`files`, `packages`).
    fn lock(&mut self, node: &Node, f: Fields, what: &str) -> Option<Lock> {
        if let Some(n) = f.get("require_hashes") {
            self.err(
                n.loc,
                "`require_hashes` cannot be used with `lock`",
                "lock files carry their hashes and kiln always checks them: remove it",
            );
        }
        let path = self.context_path(node, &format!("{what}.lock"))?;
        let kind = LockKind::of(&path.v).ok();
        let mut from = None;
        if f.get("files").is_some() || f.get("packages").is_some() {
            if kind == Some(LockKind::Pylock) {
                match self.requirement_lines(f, what) {
                    GroupSource::Requirements {
                        files, packages, ..
                    } => from = Some(LockedFrom { files, packages }),
                    GroupSource::Lock(_) => {}
                }
            } else {
                for key in ["files", "packages"] {
                    if let Some(n) = f.get(key) {
                        self.err(
                            n.loc,
                            format!("`{key}` cannot be used with a {}", kind.map_or("lock", |k| k.file_name())),
                            "its tool makes the lock from the project (`uv lock`, `poetry lock`): a group is that lock, or requirement files and lines with the PEP 751 lock kiln makes of them (`lock: pylock.<group>.toml`)",
                        );
                    }
                }
            }
        }
        let kind = match LockKind::of(&path.v) {
            Ok(k) => k,
            Err(why) => {
                let help = if path.v.ends_with(".txt") || path.v.contains("requirements") {
                    format!(
                        "a requirements file is `files: [{}]`; `lock` names {}",
                        path.v,
                        LockKind::listed()
                    )
                } else {
                    "point `lock` at the project's lock file".to_string()
                };
                self.err(path.loc, why, help);
                return None;
            }
        };
        let mut names = |key: &str| -> Vec<S<String>> {
            let list = f
                .get(key)
                .map(|n| self.list(n, &format!("{what}.{key}")))
                .unwrap_or_default();
            for n in &list {
                if !validate::is_package_name(&n.v) {
                    self.err(n.loc, format!("invalid name `{}` in {what}.{key}", n.v), "extras and groups are names of letters, digits, '-', '_' and '.' (PEP 685, PEP 735)");
                }
            }
            list
        };
        let extras = names("extras");
        let groups = names("groups");
        for (key, list) in [("extras", &extras), ("groups", &groups)] {
            if let (Err(help), Some(first)) = (kind.selects(key), list.first()) {
                self.err(
                    first.loc,
                    format!("`{key}` cannot select from a {}", kind.file_name()),
                    help,
                );
            }
        }
        Some(Lock {
            path,
            kind,
            extras,
            groups,
            from,
        })
    }

    /// A list of requirement files in the build context.
    fn files(&mut self, node: &Node, what: &str) -> Vec<S<String>> {
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| self.context_path(i, what))
                .collect(),
            _ => {
                self.err(
                    node.loc,
                    "`files` must be a list of requirement files",
                    "write files: [requirements/core.txt]",
                );
                vec![]
            }
        }
    }
}
