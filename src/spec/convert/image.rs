//! What the image is, beyond its packages: the app's code, the user, the process
//! (entrypoint, cmd, stop signal), its health check and ports, and the build secrets.

use super::Cx;
use crate::spec::format::*;
use crate::spec::model::*;
use crate::spec::validate;
use crate::spec::yaml::{Node, Value};

impl Cx {
    pub(super) fn app(&mut self, node: &Node) -> Option<App> {
        let f = self.fields(node, "app", APP_KEYS);
        let project = f
            .get("project")
            .and_then(|p| self.context_dir(p, "app.project"));
        let src: Vec<S<String>> = match f.get("src") {
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
            None if project.is_some() || f.get("project").is_some() => vec![],
            None => {
                self.err(
                    node.loc,
                    "missing `app.src`",
                    "list the code to copy, e.g. src: [app/], or name a Python project with `project: .`",
                );
                vec![]
            }
        };
        let exclude = f
            .get("exclude")
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
        let workdir = f
            .get("workdir")
            .and_then(|w| self.abs_path(w, "app.workdir", DEFAULT_WORKDIR))
            .unwrap_or_else(|| DEFAULT_WORKDIR.into());
        let owner = f
            .get("owner")
            .and_then(|o| self.owner(o, "app.owner"))
            .unwrap_or_default();
        Some(App {
            src,
            project,
            exclude: exclude.into_iter().map(|s| s.v).collect(),
            workdir,
            owner,
            loc: node.loc,
        })
    }

    pub(super) fn user(&mut self, node: Option<&Node>) -> User {
        let default = super::process::default_user;
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
        let f = self.fields(node, "user", USER_KEYS);
        let name = f.get("name").and_then(|n| self.text(n, "user.name"));
        if let Some(n) = &name
            && !validate::is_user_name(&n.v)
        {
            self.err(n.loc, format!("invalid user name `{}`", n.v), "start with a lowercase letter or _, then lowercase letters, digits, _ or - (at most 32)");
        }
        let uid = f
            .get("uid")
            .and_then(|n| self.int(n, "user.uid", USER_ID))
            .unwrap_or(DEFAULT_UID);
        let gid = f
            .get("gid")
            .and_then(|n| self.int(n, "user.gid", USER_ID))
            .unwrap_or(uid);
        let name = name.map(|n| n.v).unwrap_or_else(|| {
            if uid == 0 {
                "root".into()
            } else {
                DEFAULT_USER.into()
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

    pub(super) fn healthcheck(&mut self, node: &Node) -> Option<Healthcheck> {
        let f = self.fields(node, "healthcheck", HEALTHCHECK_KEYS);
        let test = match f.get("cmd") {
            Some(c) => {
                let (cmd, shell) = self.command_form(c, "healthcheck.cmd")?;
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
        let mut dur = |name: &str, default: &str| -> u64 {
            let default = validate::duration_ns(default).expect("the defaults are durations");
            match f
                .get(name)
                .and_then(|n| self.text(n, &format!("healthcheck.{name}")))
            {
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
        let interval_ns = dur("interval", HEALTHCHECK_INTERVAL);
        let timeout_ns = dur("timeout", HEALTHCHECK_TIMEOUT);
        let start_period_ns = dur("start_period", HEALTHCHECK_START_PERIOD);
        let retries = f
            .get("retries")
            .and_then(|n| self.int(n, "healthcheck.retries", HEALTHCHECK_RETRIES))
            .unwrap_or(HEALTHCHECK_RETRIES.default as u32);
        let verify = f
            .get("verify")
            .and_then(|n| self.bool(n, "healthcheck.verify"))
            .unwrap_or(DEFAULT_HEALTHCHECK_VERIFY);
        Some(Healthcheck {
            test,
            interval_ns,
            timeout_ns,
            start_period_ns,
            retries,
            verify,
            loc: node.loc,
        })
    }

    pub(super) fn ports(&mut self, node: &Node) -> Vec<S<String>> {
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

    pub(super) fn secrets(&mut self, node: Option<&Node>) -> BuildSecrets {
        let Some(node) = node else {
            return BuildSecrets::default();
        };
        let f = self.fields(node, "build_secrets", SECRETS_KEYS);
        let mut id = |name: &str| -> Option<String> {
            let n = f.get(name)?;
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

    /// `entrypoint` or `cmd` as the image config holds it: a list is the exec form, one
    /// string is Docker's shell form (`/bin/sh -c STRING`).
    pub(super) fn command(&mut self, node: &Node, what: &str) -> Option<S<Vec<String>>> {
        let (cmd, shell) = self.command_form(node, what)?;
        let argv = if shell {
            vec!["/bin/sh".into(), "-c".into(), cmd[0].clone()]
        } else {
            cmd
        };
        Some(S::new(argv, node.loc))
    }

    pub(super) fn stop_signal(&mut self, node: &Node) -> Option<S<String>> {
        let s = self.text(node, "stop_signal")?;
        if !validate::is_signal(&s.v) {
            self.err(
                s.loc,
                format!("invalid stop_signal `{}`", s.v),
                "use a signal name such as SIGTERM or SIGINT, or its number",
            );
        }
        Some(s)
    }

    /// A command: a list of strings (exec form, `false`) or one string (shell form, `true`).
    fn command_form(&mut self, node: &Node, what: &str) -> Option<(Vec<String>, bool)> {
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
}

impl Cx {
    /// `verify_timeout` in whole seconds (rounded up); the default when absent or wrong.
    pub(super) fn verify_timeout(&mut self, node: Option<&Node>, what: &str) -> Option<u32> {
        let s = self.text(node?, what)?;
        let ns = match validate::duration_ns(&s.v) {
            Ok(ns) => ns,
            Err(why) => {
                self.err(
                    s.loc,
                    format!("invalid {what} `{}`: {why}", s.v),
                    "write a duration such as 300s, 5m or 90s",
                );
                return None;
            }
        };
        let secs = ns.div_ceil(1_000_000_000);
        if secs == 0 || secs > MAX_VERIFY_TIMEOUT_S {
            self.err(
                s.loc,
                format!("{what} `{}` is out of range", s.v),
                format!("give between 1s and {}h", MAX_VERIFY_TIMEOUT_S / 3600),
            );
            return None;
        }
        Some(secs as u32)
    }

    /// A `verify` list: each entry a command string, or `{run: ..., timeout: ...}`.
    pub(super) fn verify_list(
        &mut self,
        node: &Node,
        what: &str,
        default_timeout: u32,
    ) -> Vec<S<VerifyCommand>> {
        let Value::Seq(items) = &node.value else {
            if !matches!(node.value, Value::Null) {
                self.err(
                    node.loc,
                    format!("{what} must be a list, found {}", node.type_name()),
                    format!("write {what} as a list of commands: [\"python -m app.health\"]"),
                );
            }
            return vec![];
        };
        let mut out = vec![];
        for item in items {
            if let Value::Map(_) = &item.value {
                let f = self.fields(item, &format!("an entry of {what}"), VERIFY_KEYS);
                let Some(run) = f.get("run") else {
                    self.err(
                        item.loc,
                        format!("an entry of {what} has no `run`"),
                        "write `{run: \"python -m app.health\", timeout: 60s}`",
                    );
                    continue;
                };
                let Some(run) = self.verify_command(run, what) else {
                    continue;
                };
                let timeout = self
                    .verify_timeout(f.get("timeout"), &format!("{what} timeout"))
                    .unwrap_or(default_timeout);
                out.push(S::new(
                    VerifyCommand {
                        run: run.v,
                        timeout_s: timeout,
                    },
                    run.loc,
                ));
            } else if let Some(run) = self.verify_command(item, what) {
                out.push(S::new(
                    VerifyCommand {
                        run: run.v,
                        timeout_s: default_timeout,
                    },
                    run.loc,
                ));
            }
        }
        out
    }

    fn verify_command(&mut self, node: &Node, what: &str) -> Option<S<String>> {
        let run = self.text(node, &format!("an entry of {what}"))?;
        if run.v.trim().is_empty() {
            self.err(
                run.loc,
                format!("empty command in {what}"),
                "give a shell command, e.g. python -m app.health",
            );
            return None;
        }
        Some(run)
    }
}
