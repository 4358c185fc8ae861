//! `requirements:`: named groups of requirement files and lines.

use super::Cx;
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
            let (files, packages) = match &v.value {
                Value::Seq(_) => (self.files(v, &what), vec![]),
                Value::Map(_) => {
                    let f = self.fields(v, &what, GROUP_KEYS);
                    let files = f
                        .get("files")
                        .map(|n| self.files(n, &format!("{what}.files")))
                        .unwrap_or_default();
                    let packages = f
                        .get("packages")
                        .map(|n| self.list(n, &format!("{what}.packages")))
                        .unwrap_or_default();
                    (files, packages)
                }
                _ => {
                    self.err(v.loc, format!("requirement group `{}` must be a list of files or {{files, packages}}", k.name), "write core: [requirements/core.txt] or core: {packages: [\"arq==0.26.1\"]}");
                    (vec![], vec![])
                }
            };
            for p in &packages {
                if let Err(why) = validate::requirement_line(&p.v) {
                    self.err(p.loc, format!("invalid requirement `{}`: {why}", p.v), "write one requirement per entry, e.g. \"arq==0.26.1\"; pip options belong under `pip:`");
                }
            }
            if files.is_empty() && packages.is_empty() {
                self.err(
                    v.loc,
                    format!("requirement group `{}` is empty", k.name),
                    "list requirement files or packages, or remove the group",
                );
            }
            out.push(Group {
                name: S::new(k.name.clone(), k.loc),
                files,
                packages,
            });
        }
        out
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
