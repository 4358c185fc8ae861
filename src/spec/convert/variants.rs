//! `variants:` and `default_variant`. The spec-wide `python`, `pip`, `system`, `env` and
//! `labels` are read once; each variant is those values with its own laid on top:
//! `python`/`pip` key by key, `system` lists added, `env`/`labels` merged, `requirements`
//! replaced. Without `variants`, one variant named `default` is the spec-wide values.

use std::collections::BTreeMap;

use super::process::ProcessFields;
use super::python::{PipFields, PythonFields};
use super::system::SystemFields;
use super::{Cx, Fields};
use crate::diag::did_you_mean;
use crate::spec::format::*;
use crate::spec::model::*;
use crate::spec::validate;
use crate::spec::yaml::{Key, Node, Value};

/// The spec-wide values a variant starts from.
struct Shared {
    python: PythonFields,
    pip: PipFields,
    system: SystemFields,
    env: BTreeMap<String, S<String>>,
    labels: BTreeMap<String, S<String>>,
    /// The spec-wide verify commands and the default timeout for a variant's own.
    verify: Vec<S<VerifyCommand>>,
    verify_timeout: u32,
    process: ProcessFields,
}

impl Cx {
    /// Every variant, resolved, and the default one's name.
    pub(super) fn variants(
        &mut self,
        doc: &Node,
        top: Fields,
        groups: &[Group],
        (verify, verify_timeout): (&[S<VerifyCommand>], u32),
        process: &ProcessFields,
    ) -> (Vec<Variant>, String) {
        let shared = Shared {
            python: top
                .get("python")
                .map(|p| self.python_fields(p))
                .unwrap_or_default(),
            pip: top
                .get("pip")
                .map(|p| self.pip_fields(p))
                .unwrap_or_default(),
            system: top
                .get("system")
                .map(|s| self.system_fields(s, "system"))
                .unwrap_or_default(),
            env: top
                .get("env")
                .map(|e| self.env(e, "env"))
                .unwrap_or_default(),
            labels: top
                .get("labels")
                .map(|l| self.labels(l, "labels"))
                .unwrap_or_default(),
            verify: verify.to_vec(),
            verify_timeout,
            process: process.clone(),
        };
        let nodes = self.variant_nodes(doc, top);
        let mut variants = Vec::new();
        let mut baseless = false;
        for (vk, vnode) in &nodes {
            if !validate::is_variant_name(&vk.name) {
                self.err(
                    vk.loc,
                    format!("invalid variant name `{}`", vk.name),
                    "use lowercase letters, digits, '-' and '_' (it is the --target name)",
                );
            }
            match self.variant(vk, vnode, &shared, groups) {
                Some(v) => variants.push(v),
                None => baseless = true,
            }
        }
        // A base is needed by every variant; one error says so, where it belongs.
        match top.get("python") {
            None => self.err(
                doc.loc,
                "missing `python`",
                "add `python: {base: python:3.12-slim, version: \"3.12\"}`",
            ),
            Some(p) if baseless && shared.python.base.is_none() => self.err(
                p.loc,
                "missing `python.base`",
                "name the Python base image, e.g. `base: python:3.12-slim`",
            ),
            Some(_) => {}
        }
        self.lock_installers(&variants, groups);
        let default = self.default_variant(top, &nodes);
        (variants, default)
    }

    /// The `variants` entries; without the key, one `default` variant with no overrides.
    fn variant_nodes(&mut self, doc: &Node, top: Fields) -> Vec<(Key, Node)> {
        match top.get("variants") {
            Some(v) => match &v.value {
                Value::Map(e) if !e.is_empty() => e.clone(),
                Value::Map(_) | Value::Null => {
                    self.err(
                        v.loc,
                        "`variants` is empty",
                        "add at least one variant, or remove `variants` to build one image",
                    );
                    vec![]
                }
                _ => {
                    self.err(
                        v.loc,
                        format!("variants must be a mapping, found {}", v.type_name()),
                        "write `variants: {minimal: {requirements: [core]}}`",
                    );
                    vec![]
                }
            },
            None => vec![(
                Key::new("default", doc.loc),
                Node {
                    value: Value::Map(vec![]),
                    loc: doc.loc,
                },
            )],
        }
    }

    /// One variant; `None` when it ends up without a base image.
    fn variant(
        &mut self,
        vk: &Key,
        vnode: &Node,
        shared: &Shared,
        groups: &[Group],
    ) -> Option<Variant> {
        let f = self.fields(vnode, &format!("variant `{}`", vk.name), VARIANT_KEYS);
        let name = &vk.name;

        let mut python = f
            .get("python")
            .map(|p| self.python_fields(p))
            .unwrap_or_default();
        if let Some(b) = f.get("base") {
            python.base = self.base(b);
        }
        let python = python.over(&shared.python).finish()?;

        let system = f
            .get("system")
            .map(|s| self.system_fields(s, "the variant's system"))
            .unwrap_or_default()
            .over(&shared.system);
        let pip = f
            .get("pip")
            .map(|p| self.pip_fields(p))
            .unwrap_or_default()
            .over(&shared.pip)
            .finish();
        let mut env = shared.env.clone();
        if let Some(e) = f.get("env") {
            env.extend(self.env(e, &format!("variants.{name}.env")));
        }
        let mut labels = shared.labels.clone();
        if let Some(l) = f.get("labels") {
            labels.extend(self.labels(l, &format!("variants.{name}.labels")));
        }
        let groups = match f.get("requirements") {
            Some(r) => self.group_names(r, name, groups),
            None => groups.iter().map(|g| g.name.clone()).collect(),
        };
        if let Some(over) = groups.get(MAX_GROUPS)
            && !self.diags.iter().any(|d| d.loc == over.loc)
        {
            self.err(
                over.loc,
                format!("variant `{name}` installs more than {MAX_GROUPS} requirement groups"),
                "put requirements that install together into one group (each group is a layer on the previous one)",
            );
        }
        // Additive: the spec-wide commands run first, then the variant's own.
        let mut verify = shared.verify.clone();
        if let Some(v) = f.get("verify") {
            verify.extend(self.verify_list(
                v,
                &format!("variants.{name}.verify"),
                shared.verify_timeout,
            ));
        }
        let process = self
            .process_fields(f, &format!("variants.{name}."))
            .over(&shared.process)
            .finish();
        // The venv stays root's: the app must not rewrite its own dependencies.
        for d in process.writable.iter().chain(&process.volumes) {
            let (dir, venv) = (d.v.as_str(), python.venv.as_str());
            let related = dir == venv
                || venv.starts_with(&format!("{}/", dir.trim_end_matches('/')))
                || dir.starts_with(&format!("{venv}/"));
            if related && !self.diags.iter().any(|x| x.loc == d.loc) {
                self.err(
                    d.loc,
                    format!("`{dir}` holds or is within the venv `{venv}`, which stays root's"),
                    "name a directory of the app's own, such as /var/lib/worker or /data",
                );
            }
        }
        let description = f
            .get("description")
            .and_then(|d| self.text(d, "description"))
            .map(|s| s.v)
            .unwrap_or_default();
        Some(Variant {
            name: S::new(name.clone(), vk.loc),
            description,
            python,
            build_packages: system.build,
            runtime_packages: system.runtime,
            runtime_auto: system.auto,
            runtime_check: system.check.unwrap_or(DEFAULT_RUNTIME_CHECK),
            repositories: system.repositories,
            groups,
            pip,
            env: env.into_iter().map(|(k, v)| (k, v.v)).collect(),
            labels: labels.into_iter().map(|(k, v)| (k, v.v)).collect(),
            verify,
            process,
        })
    }

    /// `uv.lock` and `pylock.toml` are installed by uv: a variant that installs one with
    /// `installer: pip` is refused, once per lock group, at the lock's line.
    fn lock_installers(&mut self, variants: &[Variant], groups: &[Group]) {
        // uv's index strategy has no pip counterpart: say so once, where it is written.
        let mut reported = std::collections::BTreeSet::new();
        for v in variants {
            if let Some(s) = &v.pip.index_strategy
                && v.python.installer == Installer::Pip
                && reported.insert(s.loc)
            {
                self.err(s.loc, format!("pip.index_strategy is uv's, and variant `{}` uses installer pip", v.name.v), "set `python.installer: uv`, or remove index_strategy (pip takes the best match across indexes)");
            }
        }
        for g in groups {
            let GroupSource::Lock(lock) = &g.source else {
                continue;
            };
            if lock.kind.tool() != LockTool::Uv {
                continue;
            }
            let pip = variants.iter().find(|v| {
                v.python.installer == Installer::Pip && v.groups.iter().any(|n| n.v == g.name.v)
            });
            if let Some(v) = pip {
                self.err(
                    lock.path.loc,
                    format!(
                        "`{}` is installed by uv, and variant `{}` uses installer pip",
                        lock.path.v, v.name.v
                    ),
                    "set `python.installer: uv` (kiln puts uv in the builder; the image gets only the venv)",
                );
            }
        }
    }

    /// A variant's `requirements`: names of groups, each checked.
    fn group_names(&mut self, node: &Node, variant: &str, groups: &[Group]) -> Vec<S<String>> {
        let names = self.list(node, &format!("variants.{variant}.requirements"));
        for n in &names {
            if groups.iter().any(|g| g.name.v == n.v) {
                continue;
            }
            let help = match did_you_mean(&n.v, groups.iter().map(|g| g.name.v.as_str())) {
                Some(s) => format!("did you mean `{s}`?"),
                None if groups.is_empty() => {
                    "define it under `requirements:` (the spec has no groups yet)".to_string()
                }
                None => format!(
                    "define it under `requirements:`; known groups: {}",
                    groups
                        .iter()
                        .map(|g| g.name.v.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            self.err(n.loc, format!("unknown requirement group `{}`", n.v), help);
        }
        names
    }

    fn default_variant(&mut self, top: Fields, nodes: &[(Key, Node)]) -> String {
        let Some(d) = top.get("default_variant") else {
            return nodes
                .first()
                .map(|(k, _)| k.name.clone())
                .unwrap_or_default();
        };
        match self.text(d, "default_variant") {
            Some(s) if nodes.iter().any(|(k, _)| k.name == s.v) => s.v,
            Some(s) => {
                let names: Vec<&str> = nodes.iter().map(|(k, _)| k.name.as_str()).collect();
                self.err(
                    s.loc,
                    format!("default_variant `{}` is not a variant", s.v),
                    format!("use one of: {}", names.join(", ")),
                );
                String::new()
            }
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::{LoadOptions, load_str};

    /// Spec-wide values are read once, so each mistake in them is one error, however
    /// many variants build on them.
    #[test]
    fn a_spec_wide_mistake_is_one_error_for_all_variants() {
        let yaml = "version: 1\nname: w\npython: {base: python:3, version: \"3\"}\n\
                    system: {runtime: [\"Bad Name\"]}\npip: {timeout: 0}\nenv: {\"1X\": y}\n\
                    variants: {a: {}, b: {}, c: {pip: {retries: 1}}}\n";
        let err = load_str("t.yaml", yaml, &LoadOptions::default()).unwrap_err();
        let messages: Vec<&str> = err.errors().map(|d| d.message.as_str()).collect();
        assert_eq!(messages.len(), 4, "{}", err.render());
        for want in [
            "invalid python.version `3`",
            "invalid apt package name `Bad Name`",
            "pip.timeout is 0",
            "invalid environment variable name `1X`",
        ] {
            assert_eq!(
                messages.iter().filter(|m| m.starts_with(want)).count(),
                1,
                "{want}"
            );
        }
    }

    #[test]
    fn a_variant_overrides_python_and_pip_key_by_key() {
        let yaml = "version: 1\nname: w\n\
                    python: {base: python:3, installer: uv, venv: /v}\n\
                    pip: {timeout: 9, constraints: c.txt}\n\
                    variants: {a: {base: other:1, pip: {retries: 1, constraints: null}}, b: {}}\n";
        let spec = load_str("t.yaml", yaml, &LoadOptions::default())
            .unwrap()
            .spec;
        let (a, b) = (&spec.variants[0], &spec.variants[1]);
        assert_eq!(a.python.base.v, "other:1");
        assert_eq!(
            (a.python.installer, a.python.venv.as_str()),
            (crate::spec::Installer::Uv, "/v")
        );
        assert_eq!(
            (a.pip.timeout, a.pip.retries, a.pip.constraints.is_none()),
            (9, 1, true)
        );
        assert_eq!(b.python.base.v, "python:3");
        assert_eq!(
            b.pip.constraints.as_ref().map(|c| c.v.as_str()),
            Some("c.txt")
        );
    }
}
