//! From the merged YAML tree to the typed `Spec`: every key known, every value checked.
//! Errors are collected (not stopped at the first) so one `kiln check` shows them all.

use std::collections::BTreeMap;

use super::load::{Sources, deep_merge, expand, key};
use super::model::*;
use super::validate;
use super::yaml::{Key, Node, Value};
use crate::diag::{Diagnostic, Loc, Report, did_you_mean};

/// The spec format version this kiln reads.
pub const SPEC_VERSION: i64 = 1;
pub const DEFAULT_UV_VERSION: &str = "0.9.7";
pub const DEFAULT_VENV: &str = "/opt/venv";
pub const DEFAULT_WORKDIR: &str = "/app";
pub const DEFAULT_USER: (&str, u32) = ("app", 10001);

pub const TOP_KEYS: &[&str] = &[
    "version",
    "name",
    "description",
    "extends",
    "args",
    "python",
    "system",
    "requirements",
    "pip",
    "app",
    "user",
    "env",
    "entrypoint",
    "cmd",
    "healthcheck",
    "ports",
    "labels",
    "stop_signal",
    "verify",
    "variants",
    "default_variant",
    "build_secrets",
];
pub const PYTHON_KEYS: &[&str] = &["base", "version", "installer", "uv_version", "venv"];
pub const SYSTEM_KEYS: &[&str] = &["build", "runtime"];
pub const PIP_KEYS: &[&str] = &[
    "index_url",
    "extra_index_urls",
    "timeout",
    "retries",
    "constraints",
    "check",
];
pub const GROUP_KEYS: &[&str] = &["files", "packages"];
pub const APP_KEYS: &[&str] = &["src", "exclude", "workdir"];
pub const USER_KEYS: &[&str] = &["name", "uid", "gid"];
pub const HEALTHCHECK_KEYS: &[&str] = &["cmd", "interval", "timeout", "retries", "start_period"];
pub const SECRETS_KEYS: &[&str] = &["ca_bundle", "netrc"];
pub const VARIANT_KEYS: &[&str] = &[
    "description",
    "base",
    "python",
    "requirements",
    "system",
    "pip",
    "env",
    "labels",
];

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

impl Sources {
    /// Check and convert everything added so far into a `Spec`.
    pub fn finish(&self, opts: &LoadOptions) -> Result<Loaded, Report> {
        let mut doc = self.merged();
        let mut cx = Cx::default();
        let args = cx.args(doc.get("args"), opts);
        let values: BTreeMap<String, String> = args
            .iter()
            .map(|a| (a.name.clone(), a.value.clone()))
            .collect();
        if let Value::Map(entries) = &mut doc.value {
            for (k, v) in entries.iter_mut() {
                if k.name != "args" {
                    expand(v, &values, &mut cx.diags);
                }
            }
        }
        let spec = cx.spec(&doc, args, self.files.clone());
        // One error per position: the first (e.g. an undefined ${ARG}) explains the rest.
        let mut seen: Vec<(crate::diag::Severity, Loc)> = Vec::new();
        cx.diags.retain(|d| {
            let key = (d.severity, d.loc);
            let fresh = !seen.contains(&key);
            seen.push(key);
            fresh
        });
        cx.diags.sort_by(|a, b| {
            (a.severity != crate::diag::Severity::Error, a.loc)
                .cmp(&(b.severity != crate::diag::Severity::Error, b.loc))
        });
        match spec {
            Some(spec)
                if !cx
                    .diags
                    .iter()
                    .any(|d| d.severity == crate::diag::Severity::Error) =>
            {
                Ok(Loaded {
                    spec,
                    warnings: cx.diags,
                })
            }
            _ => Err(self.report(cx.diags)),
        }
    }
}

/// Read a spec and what it extends from disk (paths relative to the current directory).
pub fn load_file(path: &str, opts: &LoadOptions) -> Result<Loaded, Report> {
    let mut sources = Sources::new();
    let first = std::fs::read(path).map_err(|e| Report {
        files: vec![],
        diagnostics: vec![Diagnostic::error(
            Loc::default(),
            format!("cannot read spec `{path}`: {e}"),
            "check the path",
        )],
    })?;
    let mut next = sources.add(path, &first)?;
    while let Some(name) = next {
        match std::fs::read(&name) {
            Ok(bytes) => next = sources.add(&name, &bytes)?,
            Err(e) => return Err(sources.missing(&e.to_string())),
        }
    }
    sources.finish(opts)
}

/// Load from bytes already in memory (tests, fuzzing, the frontend).
pub fn load_str(name: &str, text: &str, opts: &LoadOptions) -> Result<Loaded, Report> {
    let mut sources = Sources::new();
    if let Some(next) = sources.add(name, text.as_bytes())? {
        return Err(sources.missing(&format!("`{next}` not available here")));
    }
    sources.finish(opts)
}

#[derive(Default)]
struct Cx {
    diags: Vec<Diagnostic>,
}

impl Cx {
    fn err(&mut self, loc: Loc, msg: impl Into<String>, help: impl Into<String>) {
        self.diags.push(Diagnostic::error(loc, msg, help));
    }

    /// The entries of a mapping, after reporting keys not in `allowed`.
    fn map<'a>(&mut self, node: &'a Node, what: &str, allowed: &[&str]) -> &'a [(Key, Node)] {
        match &node.value {
            Value::Map(entries) => {
                for (k, _) in entries {
                    if !allowed.contains(&k.name.as_str()) {
                        let help = match did_you_mean(&k.name, allowed.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("known keys in {what}: {}", allowed.join(", ")),
                        };
                        self.err(k.loc, format!("unknown key `{}` in {what}", k.name), help);
                    }
                }
                entries
            }
            Value::Null => &[],
            _ => {
                self.err(
                    node.loc,
                    format!("{what} must be a mapping, found {}", node.type_name()),
                    format!("write {what} as `key: value` lines"),
                );
                &[]
            }
        }
    }

    /// The entries of a mapping whose keys are names the user picks (no key checks).
    fn named<'a>(&mut self, node: &'a Node, what: &str, example: &str) -> &'a [(Key, Node)] {
        match &node.value {
            Value::Map(entries) => entries,
            Value::Null => &[],
            _ => {
                let msg = format!("{what} must be a mapping, found {}", node.type_name());
                self.err(node.loc, msg, example);
                &[]
            }
        }
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<S<String>> {
        match &node.value {
            Value::Str(s) => Some(S::new(s.clone(), node.loc)),
            Value::Int(i) => Some(S::new(i.to_string(), node.loc)),
            Value::Float(_) => {
                self.err(
                    node.loc,
                    format!("{what} must be a string, found a number"),
                    "quote it, e.g. \"3.12\" (unquoted 3.10 would read as 3.1)",
                );
                None
            }
            _ => {
                self.err(
                    node.loc,
                    format!("{what} must be a string, found {}", node.type_name()),
                    format!("write {what} as a string"),
                );
                None
            }
        }
    }

    /// A string that must be there and non-empty.
    fn text(&mut self, node: &Node, what: &str) -> Option<S<String>> {
        let s = self.string(node, what)?;
        if s.v.trim().is_empty() {
            self.err(
                node.loc,
                format!("{what} is empty"),
                format!("give {what} a value or remove the key"),
            );
            return None;
        }
        if s.v.contains('\0') {
            self.err(node.loc, format!("{what} contains a NUL byte"), "remove it");
            return None;
        }
        Some(s)
    }

    fn list(&mut self, node: &Node, what: &str) -> Vec<S<String>> {
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| self.text(i, &format!("an entry of {what}")))
                .collect(),
            Value::Null => vec![],
            _ => {
                self.err(
                    node.loc,
                    format!("{what} must be a list, found {}", node.type_name()),
                    format!("write {what} as a list: [a, b]"),
                );
                vec![]
            }
        }
    }

    fn int(&mut self, node: &Node, what: &str, min: i64, max: i64) -> Option<u32> {
        match node.value {
            Value::Int(i) if i >= min && i <= max => Some(i as u32),
            Value::Int(i) => {
                self.err(
                    node.loc,
                    format!("{what} is {i}, outside {min}..={max}"),
                    format!("use a value from {min} to {max}"),
                );
                None
            }
            _ => {
                self.err(
                    node.loc,
                    format!("{what} must be an integer, found {}", node.type_name()),
                    format!("write {what} as a whole number"),
                );
                None
            }
        }
    }

    fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.err(
                    node.loc,
                    format!("{what} must be true or false, found {}", node.type_name()),
                    "write true or false",
                );
                None
            }
        }
    }

    fn string_map(&mut self, node: &Node, what: &str) -> BTreeMap<String, S<String>> {
        let mut out = BTreeMap::new();
        match &node.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    let value = match &v.value {
                        Value::Bool(b) => Some(S::new(b.to_string(), v.loc)),
                        Value::Float(f) => Some(S::new(f.to_string(), v.loc)),
                        Value::Null => Some(S::new(String::new(), v.loc)),
                        _ => self.string(v, &format!("{what}.{}", k.name)),
                    };
                    if let Some(value) = value {
                        if value.v.contains('\0') {
                            self.err(
                                v.loc,
                                format!("{what}.{} contains a NUL byte", k.name),
                                "remove it",
                            );
                        }
                        out.insert(k.name.clone(), value);
                    }
                }
            }
            Value::Null => {}
            _ => self.err(
                node.loc,
                format!("{what} must be a mapping, found {}", node.type_name()),
                format!("write {what} as `NAME: value` lines"),
            ),
        }
        out
    }

    /// A command: a list of strings (exec form) or one string (run by /bin/sh -c).
    fn command(&mut self, node: &Node, what: &str) -> Option<(Vec<String>, bool)> {
        match &node.value {
            Value::Str(s) if !s.trim().is_empty() => Some((vec![s.clone()], true)),
            Value::Seq(_) => {
                let items: Vec<String> = self.list(node, what).into_iter().map(|s| s.v).collect();
                if items.is_empty() {
                    self.err(
                        node.loc,
                        format!("{what} is an empty list"),
                        "give the program and its arguments, e.g. [python, -m, app]",
                    );
                    return None;
                }
                Some((items, false))
            }
            _ => {
                self.err(
                    node.loc,
                    format!(
                        "{what} must be a list of strings or one string, found {}",
                        node.type_name()
                    ),
                    "write e.g. [python, -m, app.worker]",
                );
                None
            }
        }
    }

    fn args(&mut self, node: Option<&Node>, opts: &LoadOptions) -> Vec<Arg> {
        let mut out = Vec::new();
        let Some(node) = node else { return out };
        for (k, v) in self.named(node, "args", "write `NAME: default` lines") {
            if !validate::is_env_name(&k.name) {
                self.err(
                    k.loc,
                    format!("invalid argument name `{}`", k.name),
                    "use letters, digits and _ (not starting with a digit)",
                );
                continue;
            }
            let default = match &v.value {
                Value::Null => String::new(),
                Value::Bool(b) => b.to_string(),
                _ => match self.string(v, &format!("the default of `{}`", k.name)) {
                    Some(s) => s.v,
                    None => continue,
                },
            };
            let value = opts
                .build_args
                .get(&k.name)
                .cloned()
                .unwrap_or_else(|| default.clone());
            out.push(Arg {
                name: k.name.clone(),
                default,
                value,
                loc: k.loc,
            });
        }
        out
    }

    fn spec(
        &mut self,
        doc: &Node,
        args: Vec<Arg>,
        files: Vec<crate::diag::SourceFile>,
    ) -> Option<Spec> {
        let entries = self.map(doc, "the spec", TOP_KEYS);
        let get = |name: &str| entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v);
        match get("version") {
            None => self.err(
                doc.loc,
                "missing `version`",
                "add `version: 1` at the top of the spec",
            ),
            Some(v) if v.value == Value::Int(SPEC_VERSION) => {}
            Some(v) => self.err(
                v.loc,
                "unsupported spec version",
                format!("this kiln reads `version: {SPEC_VERSION}`"),
            ),
        }
        let name = match get("name") {
            Some(n) => self.text(n, "name"),
            None => {
                self.err(
                    doc.loc,
                    "missing `name`",
                    "add `name: my-worker` (the image title label)",
                );
                None
            }
        };
        if let Some(n) = &name {
            if !validate::is_image_name_part(&n.v) {
                self.err(
                    n.loc,
                    format!("invalid name `{}`", n.v),
                    "use lowercase letters, digits, '.', '_' and '-'",
                );
            }
        }
        let description = get("description")
            .and_then(|d| self.text(d, "description"))
            .map(|s| s.v);
        if get("python").is_none() {
            self.err(
                doc.loc,
                "missing `python`",
                "add `python: {base: python:3.12-slim, version: \"3.12\"}`",
            );
        }

        let groups = get("requirements")
            .map(|r| self.groups(r))
            .unwrap_or_default();
        let app = get("app").and_then(|a| self.app(a));
        let user = self.user(get("user"));
        let entrypoint = get("entrypoint")
            .and_then(|e| self.command(e, "entrypoint"))
            .map(|(c, shell)| S::new(shell_form(c, shell), get("entrypoint").unwrap().loc));
        let cmd = get("cmd")
            .and_then(|e| self.command(e, "cmd"))
            .map(|(c, shell)| S::new(shell_form(c, shell), get("cmd").unwrap().loc));
        let healthcheck = get("healthcheck").and_then(|h| self.healthcheck(h));
        let ports = get("ports").map(|p| self.ports(p)).unwrap_or_default();
        let stop_signal = get("stop_signal").and_then(|s| self.text(s, "stop_signal"));
        if let Some(s) = &stop_signal {
            if !validate::is_signal(&s.v) {
                self.err(
                    s.loc,
                    format!("invalid stop_signal `{}`", s.v),
                    "use a signal name such as SIGTERM or SIGINT, or its number",
                );
            }
        }
        let verify = get("verify")
            .map(|v| self.list(v, "verify"))
            .unwrap_or_default();
        let secrets = self.secrets(get("build_secrets"));

        // Variants: each is the top level with its overrides applied, then converted.
        let mut variants = Vec::new();
        let variant_nodes: Vec<(Key, Node)> = match get("variants") {
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
                key("default", doc.loc),
                Node {
                    value: Value::Map(vec![]),
                    loc: doc.loc,
                },
            )],
        };
        for (vk, vnode) in &variant_nodes {
            if !validate::is_variant_name(&vk.name) {
                self.err(
                    vk.loc,
                    format!("invalid variant name `{}`", vk.name),
                    "use lowercase letters, digits, '-' and '_' (it is the --target name)",
                );
            }
            if let Some(v) = self.variant(doc, vk, vnode, &groups) {
                variants.push(v);
            }
        }
        let default_variant = match get("default_variant") {
            Some(d) => match self.text(d, "default_variant") {
                Some(s) if variant_nodes.iter().any(|(k, _)| k.name == s.v) => s.v,
                Some(s) => {
                    let names: Vec<&str> =
                        variant_nodes.iter().map(|(k, _)| k.name.as_str()).collect();
                    self.err(
                        s.loc,
                        format!("default_variant `{}` is not a variant", s.v),
                        format!("use one of: {}", names.join(", ")),
                    );
                    String::new()
                }
                None => String::new(),
            },
            None => variant_nodes
                .first()
                .map(|(k, _)| k.name.clone())
                .unwrap_or_default(),
        };

        if user.is_root() {
            self.diags.push(Diagnostic::warning(
                user.loc,
                "the image runs as root",
                "remove `user: root` to run as the non-root uid 10001",
            ));
        }
        // Groups that no variant installs are probably a mistake.
        for g in &groups {
            if !variants
                .iter()
                .any(|v| v.groups.iter().any(|n| n.v == g.name.v))
            {
                self.diags.push(Diagnostic::warning(
                    g.name.loc,
                    format!(
                        "requirement group `{}` is not used by any variant",
                        g.name.v
                    ),
                    "add it to a variant's `requirements`, or remove it",
                ));
            }
        }

        Some(Spec {
            files,
            name: name?,
            description,
            args,
            app,
            user,
            entrypoint,
            cmd,
            healthcheck,
            ports,
            stop_signal,
            verify,
            secrets,
            groups,
            variants,
            default_variant,
        })
    }

    fn variant(&mut self, doc: &Node, vk: &Key, vnode: &Node, groups: &[Group]) -> Option<Variant> {
        let ventries = self.map(vnode, &format!("variant `{}`", vk.name), VARIANT_KEYS);
        let vget = |name: &str| {
            ventries
                .iter()
                .find(|(k, _)| k.name == name)
                .map(|(_, v)| v)
        };
        let top = |name: &str| doc.get(name).cloned();

        // python: the variant's python block (and `base` shorthand) over the top level's.
        let mut python = top("python").unwrap_or(Node {
            value: Value::Map(vec![]),
            loc: doc.loc,
        });
        if let Some(p) = vget("python") {
            python = deep_merge(python, p.clone());
        }
        if let Some(b) = vget("base") {
            python = deep_merge(
                python,
                Node {
                    value: Value::Map(vec![(key("base", b.loc), b.clone())]),
                    loc: b.loc,
                },
            );
        }
        let python = self.python(&python)?;

        // system: the variant's packages are added to the top level's.
        let system = top("system");
        let vsystem = vget("system");
        let mut packages = |which: &str| -> Vec<S<String>> {
            let mut out = Vec::new();
            for (node, what) in [
                (system.as_ref(), "system"),
                (vsystem, "the variant's system"),
            ] {
                if let Some(n) = node {
                    let entries = self.map(n, what, SYSTEM_KEYS);
                    if let Some((_, list)) = entries.iter().find(|(k, _)| k.name == which) {
                        out.extend(self.list(list, &format!("system.{which}")));
                    }
                }
            }
            for p in &out {
                if !validate::is_apt_package(&p.v) {
                    self.err(p.loc, format!("invalid apt package name `{}`", p.v), "Debian package names use a-z, 0-9, '+', '-', '.', optionally `=version` or `:arch`");
                }
            }
            let mut seen = Vec::new();
            out.retain(|p| {
                let fresh = !seen.contains(&p.v);
                seen.push(p.v.clone());
                fresh
            });
            out
        };
        let build_packages = packages("build");
        let runtime_packages = packages("runtime");

        let group_names = match vget("requirements") {
            Some(r) => {
                let names = self.list(r, &format!("variants.{}.requirements", vk.name));
                for n in &names {
                    if !groups.iter().any(|g| g.name.v == n.v) {
                        let help =
                            match did_you_mean(&n.v, groups.iter().map(|g| g.name.v.as_str())) {
                                Some(s) => format!("did you mean `{s}`?"),
                                None if groups.is_empty() => {
                                    "define it under `requirements:` (the spec has no groups yet)"
                                        .to_string()
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
                }
                names
            }
            None => groups.iter().map(|g| g.name.clone()).collect(),
        };

        let mut pip = top("pip").unwrap_or(Node {
            value: Value::Map(vec![]),
            loc: doc.loc,
        });
        if let Some(p) = vget("pip") {
            pip = deep_merge(pip, p.clone());
        }
        let pip = self.pip(&pip);

        let mut env = top("env")
            .map(|e| self.string_map(&e, "env"))
            .unwrap_or_default();
        if let Some(e) = vget("env") {
            env.extend(self.string_map(e, &format!("variants.{}.env", vk.name)));
        }
        for (k, v) in &env {
            if !validate::is_env_name(k) {
                self.err(
                    v.loc,
                    format!("invalid environment variable name `{k}`"),
                    "use letters, digits and _ (not starting with a digit)",
                );
            }
        }
        let mut labels = top("labels")
            .map(|e| self.string_map(&e, "labels"))
            .unwrap_or_default();
        if let Some(l) = vget("labels") {
            labels.extend(self.string_map(l, &format!("variants.{}.labels", vk.name)));
        }
        let description = vget("description")
            .and_then(|d| self.text(d, "description"))
            .map(|s| s.v)
            .unwrap_or_default();
        Some(Variant {
            name: S::new(vk.name.clone(), vk.loc),
            description,
            python,
            build_packages,
            runtime_packages,
            groups: group_names,
            pip,
            env: env.into_iter().map(|(k, v)| (k, v.v)).collect(),
            labels: labels.into_iter().map(|(k, v)| (k, v.v)).collect(),
        })
    }

    fn python(&mut self, node: &Node) -> Option<Python> {
        let entries = self.map(node, "python", PYTHON_KEYS);
        let get = |name: &str| entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v);
        let base = match get("base") {
            Some(b) => self.text(b, "python.base")?,
            None => {
                self.err(
                    node.loc,
                    "missing `python.base`",
                    "name the Python base image, e.g. `base: python:3.12-slim`",
                );
                return None;
            }
        };
        if let Err(why) = validate::image_ref(&base.v) {
            self.err(
                base.loc,
                format!("invalid image reference `{}`: {why}", base.v),
                "write an image such as python:3.12-slim or registry.example.com/team/python:3.12",
            );
        }
        let version = get("version").and_then(|v| self.text(v, "python.version"));
        if let Some(v) = &version {
            if !validate::is_python_version(&v.v) {
                self.err(
                    v.loc,
                    format!("invalid python.version `{}`", v.v),
                    "write major.minor, e.g. \"3.12\"",
                );
            }
        }
        let installer = match get("installer").and_then(|i| self.text(i, "python.installer")) {
            None => Installer::Pip,
            Some(s) if s.v == "pip" => Installer::Pip,
            Some(s) if s.v == "uv" => Installer::Uv,
            Some(s) => {
                self.err(
                    s.loc,
                    format!("unknown installer `{}`", s.v),
                    "use `pip` or `uv`",
                );
                Installer::Pip
            }
        };
        let uv_version = match get("uv_version").and_then(|v| self.text(v, "python.uv_version")) {
            Some(v) if validate::is_plain_version(&v.v) => v.v,
            Some(v) => {
                self.err(
                    v.loc,
                    format!("invalid uv_version `{}`", v.v),
                    "write a release number such as \"0.9.7\"",
                );
                DEFAULT_UV_VERSION.into()
            }
            None => DEFAULT_UV_VERSION.into(),
        };
        let venv = match get("venv").and_then(|v| self.text(v, "python.venv")) {
            Some(v) => {
                if let Err(why) = validate::abs_path(&v.v) {
                    self.err(
                        v.loc,
                        format!("invalid python.venv `{}`: {why}", v.v),
                        "use an absolute path such as /opt/venv",
                    );
                }
                v.v
            }
            None => DEFAULT_VENV.into(),
        };
        Some(Python {
            base,
            version,
            installer,
            uv_version,
            venv,
        })
    }

    fn pip(&mut self, node: &Node) -> Pip {
        let entries = self.map(node, "pip", PIP_KEYS);
        let get = |name: &str| entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v);
        let url = |cx: &mut Cx, n: &Node, what: &str| -> Option<String> {
            let s = cx.text(n, what)?;
            if let Err(why) = validate::index_url(&s.v) {
                cx.err(s.loc, format!("invalid {what} `{}`: {why}", redact(&s.v)), "use an http(s) URL without credentials; put credentials in a netrc build secret (build_secrets.netrc)");
                return None;
            }
            Some(s.v)
        };
        let index_url = get("index_url").and_then(|n| url(self, n, "pip.index_url"));
        let extra_index_urls = match get("extra_index_urls") {
            Some(n) => match &n.value {
                Value::Seq(items) => items
                    .iter()
                    .filter_map(|i| url(self, i, "pip.extra_index_urls entry"))
                    .collect(),
                Value::Null => vec![],
                _ => {
                    self.err(
                        n.loc,
                        "pip.extra_index_urls must be a list",
                        "write extra_index_urls: [https://...]",
                    );
                    vec![]
                }
            },
            None => vec![],
        };
        let timeout = get("timeout")
            .and_then(|n| self.int(n, "pip.timeout", 1, 86_400))
            .unwrap_or(60);
        let retries = get("retries")
            .and_then(|n| self.int(n, "pip.retries", 0, 100))
            .unwrap_or(5);
        let constraints = get("constraints").and_then(|n| {
            if n.value == Value::Null {
                None
            } else {
                self.context_path(n, "pip.constraints")
            }
        });
        let check = get("check")
            .and_then(|n| self.bool(n, "pip.check"))
            .unwrap_or(true);
        Pip {
            index_url,
            extra_index_urls,
            timeout,
            retries,
            constraints,
            check,
        }
    }

    fn context_path(&mut self, node: &Node, what: &str) -> Option<S<String>> {
        let s = self.text(node, what)?;
        match validate::context_path(&s.v) {
            Ok(p) => Some(S::new(p, s.loc)),
            Err(why) => {
                self.err(
                    s.loc,
                    format!("invalid path `{}` in {what}: {why}", s.v),
                    "use a path inside the build context, relative to it, without `..`",
                );
                None
            }
        }
    }

    fn groups(&mut self, node: &Node) -> Vec<Group> {
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
            let (files, packages) = match &v.value {
                Value::Seq(items) => (
                    items
                        .iter()
                        .filter_map(|i| self.context_path(i, &format!("requirements.{}", k.name)))
                        .collect(),
                    vec![],
                ),
                Value::Map(_) => {
                    let entries = self.map(v, &format!("requirements.{}", k.name), GROUP_KEYS);
                    let mut files = vec![];
                    let mut packages = vec![];
                    for (gk, gv) in entries {
                        match gk.name.as_str() {
                            "files" => {
                                if let Value::Seq(items) = &gv.value {
                                    files = items
                                        .iter()
                                        .filter_map(|i| {
                                            self.context_path(
                                                i,
                                                &format!("requirements.{}.files", k.name),
                                            )
                                        })
                                        .collect();
                                } else {
                                    self.err(
                                        gv.loc,
                                        "`files` must be a list of requirement files",
                                        "write files: [requirements/core.txt]",
                                    );
                                }
                            }
                            "packages" => {
                                packages =
                                    self.list(gv, &format!("requirements.{}.packages", k.name))
                            }
                            _ => {}
                        }
                    }
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

    fn app(&mut self, node: &Node) -> Option<App> {
        let entries = self.map(node, "app", APP_KEYS);
        let get = |name: &str| entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v);
        let src: Vec<S<String>> = match get("src") {
            Some(n) => match &n.value {
                Value::Seq(items) => items
                    .iter()
                    .filter_map(|i| self.context_path(i, "app.src"))
                    .collect(),
                _ => {
                    self.err(
                        n.loc,
                        "app.src must be a list of paths",
                        "write src: [app/]",
                    );
                    vec![]
                }
            },
            None => {
                self.err(
                    node.loc,
                    "missing `app.src`",
                    "list the code to copy, e.g. src: [app/]",
                );
                vec![]
            }
        };
        let exclude = get("exclude")
            .map(|e| self.list(e, "app.exclude"))
            .unwrap_or_default();
        for e in &exclude {
            if e.v.contains('\n') {
                self.err(
                    e.loc,
                    "exclude pattern contains a newline",
                    "one pattern per entry",
                );
            }
        }
        let workdir = match get("workdir").and_then(|w| self.text(w, "app.workdir")) {
            Some(w) => {
                if let Err(why) = validate::abs_path(&w.v) {
                    self.err(
                        w.loc,
                        format!("invalid app.workdir `{}`: {why}", w.v),
                        "use an absolute path such as /app",
                    );
                }
                w.v
            }
            None => DEFAULT_WORKDIR.into(),
        };
        Some(App {
            src,
            exclude: exclude.into_iter().map(|s| s.v).collect(),
            workdir,
            loc: node.loc,
        })
    }

    fn user(&mut self, node: Option<&Node>) -> User {
        let default = || User {
            name: DEFAULT_USER.0.into(),
            uid: DEFAULT_USER.1,
            gid: DEFAULT_USER.1,
            loc: Loc::default(),
        };
        let Some(node) = node else { return default() };
        if let Value::Str(s) = &node.value {
            if s == "root" {
                return User {
                    name: "root".into(),
                    uid: 0,
                    gid: 0,
                    loc: node.loc,
                };
            }
            self.err(
                node.loc,
                format!("user must be a mapping or `root`, found `{s}`"),
                "write user: {name: worker, uid: 10001}",
            );
            return default();
        }
        let entries = self.map(node, "user", USER_KEYS);
        let get = |name: &str| entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v);
        let name = get("name").and_then(|n| self.text(n, "user.name"));
        if let Some(n) = &name {
            if !validate::is_user_name(&n.v) {
                self.err(n.loc, format!("invalid user name `{}`", n.v), "start with a lowercase letter or _, then lowercase letters, digits, _ or - (at most 32)");
            }
        }
        let uid = get("uid")
            .and_then(|n| self.int(n, "user.uid", 0, 4_294_967_294))
            .unwrap_or(DEFAULT_USER.1);
        let gid = get("gid")
            .and_then(|n| self.int(n, "user.gid", 0, 4_294_967_294))
            .unwrap_or(uid);
        let name = name.map(|n| n.v).unwrap_or_else(|| {
            if uid == 0 {
                "root".into()
            } else {
                DEFAULT_USER.0.into()
            }
        });
        if uid == 0 && name != "root" {
            self.err(
                node.loc,
                "uid 0 is root",
                "to run as root write `user: root` explicitly; otherwise pick a uid such as 10001",
            );
        }
        if name == "root" && uid != 0 {
            self.err(
                node.loc,
                "the name `root` is reserved for uid 0",
                "pick another name, or write `user: root`",
            );
        }
        User {
            name,
            uid,
            gid,
            loc: node.loc,
        }
    }

    fn healthcheck(&mut self, node: &Node) -> Option<Healthcheck> {
        let entries = self.map(node, "healthcheck", HEALTHCHECK_KEYS);
        let get = |name: &str| entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v);
        let test = match get("cmd") {
            Some(c) => {
                let (cmd, shell) = self.command(c, "healthcheck.cmd")?;
                if shell {
                    vec!["CMD-SHELL".to_string(), cmd[0].clone()]
                } else {
                    std::iter::once("CMD".to_string()).chain(cmd).collect()
                }
            }
            None => {
                self.err(
                    node.loc,
                    "missing `healthcheck.cmd`",
                    "give the probe, e.g. cmd: [python, -m, app.health]",
                );
                return None;
            }
        };
        let mut dur = |name: &str, default: u64| -> u64 {
            match get(name).and_then(|n| self.text(n, &format!("healthcheck.{name}"))) {
                Some(s) => match validate::duration_ns(&s.v) {
                    Ok(ns) => ns,
                    Err(why) => {
                        self.err(
                            s.loc,
                            format!("invalid healthcheck.{name} `{}`: {why}", s.v),
                            "write a duration such as 30s, 1m30s or 500ms",
                        );
                        default
                    }
                },
                None => default,
            }
        };
        let interval_ns = dur("interval", 30_000_000_000);
        let timeout_ns = dur("timeout", 30_000_000_000);
        let start_period_ns = dur("start_period", 0);
        let retries = get("retries")
            .and_then(|n| self.int(n, "healthcheck.retries", 1, 1000))
            .unwrap_or(3);
        Some(Healthcheck {
            test,
            interval_ns,
            timeout_ns,
            start_period_ns,
            retries,
            loc: node.loc,
        })
    }

    fn ports(&mut self, node: &Node) -> Vec<S<String>> {
        let Value::Seq(items) = &node.value else {
            self.err(
                node.loc,
                "ports must be a list",
                "write ports: [8000, 9000/udp]",
            );
            return vec![];
        };
        let mut out = vec![];
        for i in items {
            let s = match &i.value {
                Value::Int(n) => n.to_string(),
                Value::Str(s) => s.clone(),
                _ => {
                    self.err(
                        i.loc,
                        format!(
                            "a port must be a number or \"8000/tcp\", found {}",
                            i.type_name()
                        ),
                        "write e.g. 8000 or 8000/udp",
                    );
                    continue;
                }
            };
            match validate::port(&s) {
                Ok(p) => out.push(S::new(p, i.loc)),
                Err(why) => self.err(
                    i.loc,
                    format!("invalid port `{s}`: {why}"),
                    "write a port from 1 to 65535, optionally /tcp or /udp",
                ),
            }
        }
        out
    }

    fn secrets(&mut self, node: Option<&Node>) -> BuildSecrets {
        let Some(node) = node else {
            return BuildSecrets::default();
        };
        let entries = self.map(node, "build_secrets", SECRETS_KEYS);
        let mut id = |name: &str| -> Option<String> {
            let n = entries
                .iter()
                .find(|(k, _)| k.name == name)
                .map(|(_, v)| v)?;
            let s = self.text(n, &format!("build_secrets.{name}"))?;
            if !validate::is_secret_id(&s.v) {
                self.err(
                    s.loc,
                    format!("invalid secret id `{}`", s.v),
                    "use letters, digits, '.', '_' and '-' (the id given to --secret id=...)",
                );
                return None;
            }
            Some(s.v)
        };
        BuildSecrets {
            ca_bundle: id("ca_bundle"),
            netrc: id("netrc"),
        }
    }
}

fn shell_form(cmd: Vec<String>, shell: bool) -> Vec<String> {
    if shell {
        vec!["/bin/sh".into(), "-c".into(), cmd[0].clone()]
    } else {
        cmd
    }
}

/// A URL with any userinfo replaced, for messages (credentials never reach a log).
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(a)) if a > s => format!("{}://***@{}", &url[..s], &url[a + 1..]),
        _ => url.to_string(),
    }
}
