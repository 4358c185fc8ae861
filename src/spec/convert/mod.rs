//! From the merged YAML tree to the typed `Spec`: every key known, every value checked.
//! Errors are collected (not stopped at the first) so one `kiln check` shows them all.
//!
//! `Cx` holds the diagnostics and the value readers every section shares; `Fields` is the
//! view of one mapping a section reads its keys through. One file per part of the spec:
//! `python` (python, pip), `requirements`, `image` (app, user, healthcheck, ports,
//! secrets), `variants` (each variant as the spec-wide values with its overrides on top);
//! `credentials` refuses a URL with credentials in any key or value.

mod credentials;
mod image;
mod process;
mod python;
mod requirements;
mod steps;
mod system;
mod variants;

use std::collections::{BTreeMap, BTreeSet};

use super::format::*;
use super::model::*;
use super::validate;
use super::yaml::{Key, Node, Value};
use crate::diag::{Diagnostic, Loc, SourceFile, did_you_mean};

pub(crate) struct Cx {
    pub(crate) diags: Vec<Diagnostic>,
    failed: BTreeSet<Loc>,
    /// Context paths read so far (`Spec::context_uses`).
    pub(crate) uses: Vec<ContextUse>,
}

/// The entries of one mapping, looked up by key.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a> {
    entries: &'a [(Key, Node)],
}

impl<'a> Fields<'a> {
    pub(crate) fn get(&self, name: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v)
    }
}

impl Cx {
    pub(crate) fn err(&mut self, loc: Loc, msg: impl Into<String>, help: impl Into<String>) {
        // An undefined ${ARG} explains whatever else is wrong with that value.
        if !self.failed.contains(&loc) {
            self.diags.push(Diagnostic::error(loc, msg, help));
        }
    }

    pub(crate) fn warn(
        &mut self,
        code: &'static str,
        loc: Loc,
        msg: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diags.push(Diagnostic::warning(code, loc, msg, help));
    }

    /// A mapping with the keys in `allowed`; each other key is reported with a suggestion.
    pub(crate) fn fields<'a>(
        &mut self,
        node: &'a Node,
        what: &str,
        allowed: &[&str],
    ) -> Fields<'a> {
        let entries = self.named(node, what, &format!("write {what} as `key: value` lines"));
        for (k, _) in entries {
            if !allowed.contains(&k.name.as_str()) {
                let help = match did_you_mean(&k.name, allowed.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("known keys in {what}: {}", allowed.join(", ")),
                };
                self.err(k.loc, format!("unknown key `{}` in {what}", k.name), help);
            }
        }
        Fields { entries }
    }

    /// The entries of a mapping whose keys are names the user picks (no key checks).
    pub(crate) fn named<'a>(
        &mut self,
        node: &'a Node,
        what: &str,
        help: &str,
    ) -> &'a [(Key, Node)] {
        match &node.value {
            Value::Map(entries) => entries,
            Value::Null => &[],
            _ => {
                let msg = format!("{what} must be a mapping, found {}", node.type_name());
                self.err(node.loc, msg, help);
                &[]
            }
        }
    }

    pub(crate) fn string(&mut self, node: &Node, what: &str) -> Option<S<String>> {
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
    pub(crate) fn text(&mut self, node: &Node, what: &str) -> Option<S<String>> {
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

    pub(crate) fn list(&mut self, node: &Node, what: &str) -> Vec<S<String>> {
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

    /// An integer in `range` (inclusive).
    pub(crate) fn int(&mut self, node: &Node, what: &str, range: IntRange) -> Option<u32> {
        let (min, max) = (range.min, range.max);
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

    pub(crate) fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
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

    /// `NAME: value` lines; booleans, numbers and null read as their text.
    pub(crate) fn string_map(&mut self, node: &Node, what: &str) -> BTreeMap<String, S<String>> {
        let mut out = BTreeMap::new();
        for (k, v) in self.named(node, what, &format!("write {what} as `NAME: value` lines")) {
            let value = match &v.value {
                Value::Bool(b) => Some(S::new(b.to_string(), v.loc)),
                Value::Float(f) => Some(S::new(f.to_string(), v.loc)),
                Value::Null => Some(S::new(String::new(), v.loc)),
                _ => self.string(v, &format!("{what}.{}", k.name)),
            };
            if let Some(value) = value {
                if value.v.contains('\0') {
                    let msg = format!("{what}.{} contains a NUL byte", k.name);
                    self.err(v.loc, msg, "remove it");
                }
                out.insert(k.name.clone(), value);
            }
        }
        out
    }

    /// An environment map: `string_map` whose keys must be variable names.
    pub(crate) fn env(&mut self, node: &Node, what: &str) -> BTreeMap<String, S<String>> {
        let env = self.string_map(node, what);
        for (k, v) in &env {
            if !validate::is_env_name(k) {
                self.err(
                    v.loc,
                    format!("invalid environment variable name `{k}`"),
                    "use letters, digits and _ (not starting with a digit)",
                );
            }
        }
        env
    }

    /// Image labels: `string_map` whose keys are non-empty and free of control characters
    /// (a NUL or newline in a key would reach the image config as it is).
    pub(crate) fn labels(&mut self, node: &Node, what: &str) -> BTreeMap<String, S<String>> {
        let labels = self.string_map(node, what);
        for (k, v) in &labels {
            if k.trim().is_empty() || k.chars().any(char::is_control) {
                self.err(
                    v.loc,
                    format!("invalid label key {k:?} in {what}"),
                    "use a key like org.opencontainers.image.source: letters, digits, '.', '-', '_', no control characters",
                );
            }
        }
        labels
    }

    /// A path inside the build context, normalised.
    pub(crate) fn context_path(&mut self, node: &Node, what: &str) -> Option<S<String>> {
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

    /// A directory inside the build context; `.` (the context itself) is `""`.
    pub(crate) fn context_dir(&mut self, node: &Node, what: &str) -> Option<S<String>> {
        match &node.value {
            Value::Str(s) if s.trim_end_matches('/') == "." => {
                Some(S::new(String::new(), node.loc))
            }
            _ => self.context_path(node, what),
        }
    }

    /// An absolute path in the image (`app.workdir`, `python.venv`), normalised.
    pub(crate) fn abs_path(&mut self, node: &Node, what: &str, example: &str) -> Option<String> {
        let s = self.text(node, what)?;
        match validate::abs_path(&s.v) {
            Ok(p) => Some(p),
            Err(why) => {
                self.err(
                    s.loc,
                    format!("invalid {what} `{}`: {why}", s.v),
                    format!("use an absolute path such as {example}"),
                );
                Some(s.v)
            }
        }
    }

    fn args(&mut self, node: Option<&Node>, build_args: &BTreeMap<String, String>) -> Vec<Arg> {
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
            let value = build_args
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

    /// `version`, `name` and `description`.
    fn identity(&mut self, doc: &Node, top: Fields) -> (Option<S<String>>, Option<String>) {
        match top.get("version") {
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
        let name = match top.get("name") {
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
        if let Some(n) = &name
            && !validate::is_image_name_part(&n.v)
        {
            self.err(
                n.loc,
                format!("invalid name `{}`", n.v),
                "use lowercase letters, digits, '.', '_' and '-'",
            );
        }
        let description = top
            .get("description")
            .and_then(|d| self.text(d, "description"))
            .map(|s| s.v);
        (name, description)
    }

    /// What is allowed but probably not meant: a root image, a group no variant installs.
    fn usage_warnings(&mut self, groups: &[Group], variants: &[Variant]) {
        let mut root_at = BTreeSet::new();
        for user in variants.iter().map(|v| &v.process.user) {
            if !user.is_root() || !root_at.insert(user.loc) {
                continue;
            }
            self.warn(
                "KilnRootUser",
                user.loc,
                "the image runs as root",
                "remove `user: root` to run as the non-root uid 10001",
            );
        }
        // Groups that no variant installs are probably a mistake.
        for g in groups {
            if !variants
                .iter()
                .any(|v| v.groups.iter().any(|n| n.v == g.name.v))
            {
                self.warn(
                    "KilnUnusedGroup",
                    g.name.loc,
                    format!(
                        "requirement group `{}` is not used by any variant",
                        g.name.v
                    ),
                    "add it to a variant's `requirements`, or remove it",
                );
            }
        }
    }

    /// `SOURCE_DATE_EPOCH`: the spec's arg (with its override) or the build arg; seconds.
    fn source_date_epoch(
        &mut self,
        args: &[Arg],
        build_args: &BTreeMap<String, String>,
    ) -> Option<u64> {
        let (value, loc) = match args.iter().find(|a| a.name == SOURCE_DATE_EPOCH_ARG) {
            Some(a) => (a.value.clone(), a.loc),
            None => (
                build_args.get(SOURCE_DATE_EPOCH_ARG)?.clone(),
                Loc::default(),
            ),
        };
        if value.is_empty() {
            return None;
        }
        match value.parse::<u64>() {
            Ok(s) if s <= MAX_SOURCE_DATE_EPOCH => Some(s),
            _ => {
                self.err(
                    loc,
                    format!("invalid SOURCE_DATE_EPOCH `{value}`"),
                    "give whole seconds since 1970, e.g. $(git log -1 --format=%ct)",
                );
                None
            }
        }
    }

    fn spec(
        &mut self,
        doc: &Node,
        args: Vec<Arg>,
        files: Vec<SourceFile>,
        build_args: &BTreeMap<String, String>,
    ) -> Option<Spec> {
        let top = self.fields(doc, "the spec", TOP_KEYS);
        let (name, description) = self.identity(doc, top);
        let groups = top
            .get("requirements")
            .map(|r| self.groups(r))
            .unwrap_or_default();
        let app = top.get("app").and_then(|a| self.app(a));
        let process = self.process_fields(top, "");
        let verify_timeout = self
            .verify_timeout(top.get("verify_timeout"), "verify_timeout")
            .unwrap_or_else(|| {
                let ns = validate::duration_ns(DEFAULT_VERIFY_TIMEOUT).expect("a duration");
                (ns / 1_000_000_000) as u32
            });
        let verify = top
            .get("verify")
            .map(|v| self.verify_list(v, "verify", verify_timeout))
            .unwrap_or_default();
        let secrets = self.secrets(top.get("build_secrets"));
        let steps = top.get("steps").map(|s| self.steps(s)).unwrap_or_default();
        let (variants, default_variant) =
            self.variants(doc, top, &groups, (&verify, verify_timeout), &process);
        let process = process.finish();

        self.usage_warnings(&groups, &variants);
        let source_date_epoch = self.source_date_epoch(&args, build_args);
        let mut context_uses = std::mem::take(&mut self.uses);
        let mut seen = BTreeSet::new();
        context_uses.retain(|u| seen.insert((u.path.v.clone(), u.path.loc)));
        Some(Spec {
            files,
            name: name?,
            description,
            args,
            app,
            process,
            verify,
            secrets,
            groups,
            variants,
            default_variant,
            steps,
            source_date_epoch,
            context_uses,
        })
    }
}

/// Convert a merged document: `args` first (they are not expanded, `build_args` override
/// their defaults), then `${}` everywhere else, then URLs with credentials anywhere (see
/// `credentials`), then every section. Returns the spec when nothing was wrong enough to
/// stop it, and every diagnostic (errors and warnings) found.
pub(crate) fn convert(
    mut doc: Node,
    build_args: &BTreeMap<String, String>,
    files: Vec<SourceFile>,
) -> (Option<Spec>, Vec<Diagnostic>) {
    let mut cx = Cx {
        diags: vec![],
        failed: BTreeSet::new(),
        uses: vec![],
    };
    let args = cx.args(doc.get("args"), build_args);
    let values: BTreeMap<String, String> = args
        .iter()
        .map(|a| (a.name.clone(), a.value.clone()))
        .collect();
    let mut expand_errors = vec![];
    let mut budget = super::expand::MAX_EXPANDED_BYTES;
    if let Value::Map(entries) = &mut doc.value {
        for (k, v) in entries.iter_mut() {
            if k.name != "args" {
                super::expand::expand(v, &values, &mut budget, &mut expand_errors);
            }
        }
    }
    // A value whose ${} failed gets no second error (see `err`).
    cx.failed = expand_errors.iter().map(|d| d.loc).collect();
    cx.diags.extend(expand_errors);
    cx.credentials(&doc);
    let spec = cx.spec(&doc, args, files, build_args);
    (spec, cx.diags)
}
