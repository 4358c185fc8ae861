//! `python:` and `pip:`. Both can be written spec-wide and overridden key by key in a
//! variant, so each is read into its `...Fields` form (every key optional), laid over
//! the spec-wide one with `over`, and only then completed with defaults.

use super::{Cx, Fields};
use crate::reference;
use crate::spec::format::*;
use crate::spec::model::*;
use crate::spec::validate;
use crate::spec::yaml::{Node, Value};

/// `python:` as written in one place; `None` where the key is absent (or was wrong).
#[derive(Clone, Debug, Default)]
pub(super) struct PythonFields {
    pub base: Option<S<String>>,
    pub version: Option<S<String>>,
    pub installer: Option<Installer>,
    pub uv_version: Option<String>,
    pub venv: Option<String>,
}

impl PythonFields {
    /// These fields where set, `under`'s elsewhere.
    pub fn over(self, under: &PythonFields) -> PythonFields {
        let under = under.clone();
        PythonFields {
            base: self.base.or(under.base),
            version: self.version.or(under.version),
            installer: self.installer.or(under.installer),
            uv_version: self.uv_version.or(under.uv_version),
            venv: self.venv.or(under.venv),
        }
    }

    /// The complete settings; `None` without a base (reported by the caller, once).
    pub fn finish(self) -> Option<Python> {
        Some(Python {
            base: self.base?,
            version: self.version,
            installer: self.installer.unwrap_or(Installer::Pip),
            uv_version: self.uv_version.unwrap_or_else(|| DEFAULT_UV_VERSION.into()),
            venv: self.venv.unwrap_or_else(|| DEFAULT_VENV.into()),
        })
    }
}

/// `pip:` as written in one place. `constraints: null` is kept apart from an absent key,
/// so a variant can drop the spec-wide constraints.
#[derive(Clone, Debug, Default)]
pub(super) struct PipFields {
    pub index_url: Option<String>,
    pub extra_index_urls: Option<Vec<String>>,
    pub timeout: Option<u32>,
    pub retries: Option<u32>,
    pub constraints: Option<Option<S<String>>>,
    pub check: Option<bool>,
    pub require_hashes: Option<bool>,
    pub build_constraints: Option<Option<S<String>>>,
    pub index_strategy: Option<S<String>>,
    pub no_build_isolation: Option<Vec<S<String>>>,
}

impl PipFields {
    pub fn over(self, under: &PipFields) -> PipFields {
        let under = under.clone();
        PipFields {
            index_url: self.index_url.or(under.index_url),
            extra_index_urls: self.extra_index_urls.or(under.extra_index_urls),
            timeout: self.timeout.or(under.timeout),
            retries: self.retries.or(under.retries),
            constraints: self.constraints.or(under.constraints),
            check: self.check.or(under.check),
            require_hashes: self.require_hashes.or(under.require_hashes),
            build_constraints: self.build_constraints.or(under.build_constraints),
            index_strategy: self.index_strategy.or(under.index_strategy),
            no_build_isolation: self.no_build_isolation.or(under.no_build_isolation),
        }
    }

    pub fn finish(self) -> Pip {
        Pip {
            index_url: self.index_url,
            extra_index_urls: self.extra_index_urls.unwrap_or_default(),
            timeout: self.timeout.unwrap_or(PIP_TIMEOUT.default as u32),
            retries: self.retries.unwrap_or(PIP_RETRIES.default as u32),
            constraints: self.constraints.flatten(),
            check: self.check.unwrap_or(DEFAULT_PIP_CHECK),
            require_hashes: self.require_hashes.unwrap_or(DEFAULT_REQUIRE_HASHES),
            build_constraints: self.build_constraints.flatten(),
            index_strategy: self.index_strategy,
            no_build_isolation: self.no_build_isolation.unwrap_or_default(),
        }
    }
}

impl Cx {
    pub(super) fn python_fields(&mut self, node: &Node) -> PythonFields {
        let f = self.fields(node, "python", PYTHON_KEYS);
        PythonFields {
            base: f.get("base").and_then(|b| self.base(b)),
            version: f.get("version").and_then(|v| self.python_version(v)),
            installer: f.get("installer").and_then(|i| self.installer(i)),
            uv_version: f.get("uv_version").and_then(|v| self.uv_version(v)),
            venv: f
                .get("venv")
                .and_then(|v| self.abs_path(v, "python.venv", "/opt/venv")),
        }
    }

    /// An image reference (`python.base`, or a variant's `base`).
    pub(super) fn base(&mut self, node: &Node) -> Option<S<String>> {
        let base = self.text(node, "python.base")?;
        if let Err(why) = reference::validate(&base.v) {
            self.err(
                base.loc,
                format!("invalid image reference `{}`: {why}", base.v),
                "write an image such as python:3.12-slim or registry.example.com/team/python:3.12",
            );
        }
        Some(base)
    }

    fn python_version(&mut self, node: &Node) -> Option<S<String>> {
        let v = self.text(node, "python.version")?;
        if !validate::is_python_version(&v.v) {
            self.err(
                v.loc,
                format!("invalid python.version `{}`", v.v),
                "write major.minor, e.g. \"3.12\"",
            );
        }
        Some(v)
    }

    fn installer(&mut self, node: &Node) -> Option<Installer> {
        let s = self.text(node, "python.installer")?;
        match s.v.as_str() {
            "pip" => Some(Installer::Pip),
            "uv" => Some(Installer::Uv),
            _ => {
                let msg = format!("unknown installer `{}`", s.v);
                self.err(s.loc, msg, "use `pip` or `uv`");
                None
            }
        }
    }

    fn uv_version(&mut self, node: &Node) -> Option<String> {
        let v = self.text(node, "python.uv_version")?;
        if validate::is_plain_version(&v.v) {
            return Some(v.v);
        }
        self.err(
            v.loc,
            format!("invalid uv_version `{}`", v.v),
            "write a release number such as \"0.9.7\"",
        );
        None
    }

    pub(super) fn pip_fields(&mut self, node: &Node) -> PipFields {
        let f: Fields = self.fields(node, "pip", PIP_KEYS);
        let extra_index_urls = f.get("extra_index_urls").map(|n| match &n.value {
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| self.index_url(i, "pip.extra_index_urls entry"))
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
        });
        PipFields {
            index_url: f
                .get("index_url")
                .and_then(|n| self.index_url(n, "pip.index_url")),
            extra_index_urls,
            timeout: f
                .get("timeout")
                .and_then(|n| self.int(n, "pip.timeout", PIP_TIMEOUT)),
            retries: f
                .get("retries")
                .and_then(|n| self.int(n, "pip.retries", PIP_RETRIES)),
            constraints: f.get("constraints").map(|n| match n.value {
                Value::Null => None,
                _ => self.context_path(n, "pip.constraints"),
            }),
            check: f.get("check").and_then(|n| self.bool(n, "pip.check")),
            require_hashes: f
                .get("require_hashes")
                .and_then(|n| self.bool(n, "pip.require_hashes")),
            build_constraints: f.get("build_constraints").map(|n| match n.value {
                Value::Null => None,
                _ => self.context_path(n, "pip.build_constraints"),
            }),
            index_strategy: f.get("index_strategy").and_then(|n| self.index_strategy(n)),
            no_build_isolation: f.get("no_build_isolation").map(|n| {
                let list = self.list(n, "pip.no_build_isolation");
                for p in &list {
                    if !validate::is_package_name(&p.v) {
                        self.err(
                            p.loc,
                            format!("invalid package name `{}` in pip.no_build_isolation", p.v),
                            "name the packages to build without isolation, e.g. [flash-attn]",
                        );
                    }
                }
                list
            }),
        }
    }

    fn index_strategy(&mut self, node: &Node) -> Option<S<String>> {
        let s = self.text(node, "pip.index_strategy")?;
        if INDEX_STRATEGIES.contains(&s.v.as_str()) {
            return Some(s);
        }
        self.err(
            s.loc,
            format!("unknown pip.index_strategy `{}`", s.v),
            format!("use one of uv's: {}", INDEX_STRATEGIES.join(", ")),
        );
        None
    }

    fn index_url(&mut self, node: &Node, what: &str) -> Option<String> {
        let s = self.text(node, what)?;
        if let Err(why) = validate::index_url(&s.v) {
            self.err(
                s.loc,
                format!("invalid {what} `{}`: {why}", crate::url::redact(&s.v)),
                "use an http(s) URL without credentials; put credentials in a netrc build secret (build_secrets.netrc)",
            );
            return None;
        }
        Some(s.v)
    }
}
