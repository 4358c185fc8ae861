//! `kiln lock`: a PEP 751 lock (`pylock.<group>.toml`) per requirement group, made with
//! uv on the host, so that a spec can point its groups at locks (`{lock: pylock.core.toml}`)
//! instead of resolving at build time.
//!
//! - A requirements group (files, `packages`, `pip.constraints` and the `pip:` index
//!   options) is resolved with `uv pip compile --universal --format pylock.toml
//!   --python-version X.Y`. An existing `pylock.<group>.toml` is uv's preference (uv reads
//!   the output file's pins), so re-locking after adding one requirement changes only what
//!   must change; `--upgrade` drops that preference. A group installed on top of others
//!   (`ml` in `[core, ml]`) is constrained to the pins of the groups below it, so the venv
//!   holds one version of each package.
//! - A `uv.lock` group is exported as the build exports it (`uv export --locked --format
//!   pylock.toml --no-emit-workspace --no-default-groups`, with its extras and groups).
//! - A `poetry.lock` group is not lockable by kiln; a `pylock.toml` group is one already.
//!
//! Every lock is then read back: a package with no URL, no sha256, or from a host with
//! credentials (userinfo, or a `machine` in the netrc) cannot be fetched by its hash alone,
//! so its group keeps the in-step install (uv in a build step, with the netrc secret), and
//! the report says so. No URL is printed with its credentials.
//!
//! `plan` is pure (the command lines, tested without uv); `run` executes them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::context::{ContextInfo, pylock};
use crate::diag::{Diagnostic, Loc};
use crate::plan::install;
use crate::spec::{Group, GroupSource, S, Spec, Variant};

/// What the command line asked for.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Only the groups these variants install (all variants when empty).
    pub targets: Vec<String>,
    /// Only these groups (all when empty).
    pub groups: Vec<String>,
    /// Ignore the pins of existing locks (uv's `--upgrade`).
    pub upgrade: bool,
    /// The command that remakes the locks, for the lock's header
    /// (uv's `--custom-compile-command`).
    pub command: String,
}

/// One group's work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub group: String,
    pub loc: Loc,
    pub action: Action,
    /// Notes for the report (Python version chosen, installer, upgrade not applicable).
    pub notes: Vec<String>,
}

pub use crate::plan::install::{BELOW_TXT, LockAction as Action, LockDir, lock_name};

/// The work for each group `opts` selects. Errors: an unknown target or group, or no
/// requirement group at all.
pub fn plan(spec: &Spec, ctx: &ContextInfo, opts: &Options) -> Result<Vec<Job>, Diagnostic> {
    if spec.groups.is_empty() {
        return Err(Diagnostic::error(
            spec.name.loc,
            format!("spec `{}` has no requirement groups to lock", spec.name.v),
            "add one, e.g. `requirements: {core: [requirements/core.txt]}`",
        ));
    }
    let variants: Vec<&Variant> = if opts.targets.is_empty() {
        spec.variants.iter().collect()
    } else {
        opts.targets
            .iter()
            .map(|t| spec.target(Some(t)))
            .collect::<Result<_, _>>()?
    };
    for g in &opts.groups {
        if spec.group(g).is_none() {
            let known: Vec<&str> = spec.groups.iter().map(|g| g.name.v.as_str()).collect();
            return Err(Diagnostic::error(
                Loc::default(),
                format!("unknown requirement group `{g}`"),
                format!("the spec's groups are: {}", known.join(", ")),
            ));
        }
    }
    let mut jobs = vec![];
    for group in &spec.groups {
        if !opts.groups.is_empty() && !opts.groups.contains(&group.name.v) {
            continue;
        }
        let users: Vec<&Variant> = variants
            .iter()
            .copied()
            .filter(|v| v.groups.iter().any(|g| g.v == group.name.v))
            .collect();
        jobs.push(job(group, &users, ctx, opts));
    }
    if jobs.is_empty() {
        return Err(Diagnostic::error(
            Loc::default(),
            "no requirement group to lock",
            "the variants named with --target install none of the groups named with --group",
        ));
    }
    Ok(jobs)
}

fn job(group: &Group, users: &[&Variant], ctx: &ContextInfo, opts: &Options) -> Job {
    let name = group.name.v.clone();
    if users.is_empty() {
        return Job {
            group: name,
            loc: group.name.loc,
            action: Action::Skip {
                why: "no variant installs it".into(),
                help: "name it in a variant's `requirements`, or pass --target with a variant that does".into(),
            },
            notes: vec![],
        };
    }
    let req = install::LockRequest {
        upgrade: opts.upgrade,
        command: opts.command.clone(),
    };
    let (action, notes) = install::lock_action(group, users, ctx, &req);
    Job {
        group: name,
        loc: group.name.loc,
        action,
        notes,
    }
}

/// One package of a PEP 751 lock that cannot be fetched by URL and hash alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub package: String,
    pub problem: String,
    /// A local path (no URL): a build cannot install the lock from its mount, so the
    /// group stays a requirements group.
    pub local: bool,
}

/// A PEP 751 lock, read back: its packages (`name`, `version`, `marker`) and what keeps
/// any of them from being fetched by URL and sha256 alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    pub packages: Vec<(String, Option<String>, Option<String>)>,
    pub findings: Vec<Finding>,
}

/// Reads a PEP 751 lock back (with the reader builds use, `context::pylock::read`).
/// `credential_hosts`: hosts the netrc has a `machine` for. Errors: invalid TOML or
/// lock shape.
pub fn check_lock(text: &str, credential_hosts: &BTreeSet<String>) -> Result<Checked, String> {
    let mut out = Checked::default();
    for entry in pylock::read(text)? {
        let p = &entry.package;
        let label = match &p.version {
            Some(v) => format!("{} {v}", p.name),
            None => p.name.clone(),
        };
        let mut problems: BTreeSet<(String, bool)> = entry
            .problems
            .iter()
            .map(|pr| (pr.text.clone(), pr.local))
            .collect();
        for url in &entry.urls {
            if let Some(host) = needs_credentials(url, credential_hosts) {
                problems.insert((
                    format!("from {host}, an index that needs credentials"),
                    false,
                ));
            }
        }
        out.findings
            .extend(problems.into_iter().map(|(problem, local)| Finding {
                package: label.clone(),
                problem,
                local,
            }));
        out.packages
            .push((p.name.clone(), p.version.clone(), p.marker.clone()));
    }
    Ok(out)
}

/// The host of `url` when fetching it needs credentials: userinfo in the URL, or a netrc
/// `machine` for its host.
fn needs_credentials(url: &str, credential_hosts: &BTreeSet<String>) -> Option<String> {
    let url = crate::url::Url::split(url)?;
    let host = url.host();
    (url.has_userinfo() || credential_hosts.contains(&host)).then_some(host)
}

/// The hosts a netrc has a `machine` entry for (nothing else of it is kept).
pub fn netrc_hosts(text: &str) -> BTreeSet<String> {
    let mut hosts = BTreeSet::new();
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "machine"
            && let Some(h) = words.next()
        {
            hosts.insert(h.to_ascii_lowercase());
        }
    }
    hosts
}

/// The netrc uv reads (`$NETRC`, else `~/.netrc`): its hosts; none when there is none.
pub fn user_netrc_hosts() -> BTreeSet<String> {
    let path = std::env::var_os("NETRC")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".netrc")));
    path.and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| netrc_hosts(&t))
        .unwrap_or_default()
}

/// Constraints (`name==version ; marker`) from the locks of the groups below one: a pin
/// two of them disagree on is left out (uv then finds the conflict itself, if any).
pub fn constraints(locks: &[Checked]) -> String {
    let mut pins: BTreeMap<(String, Option<String>), BTreeSet<String>> = BTreeMap::new();
    for l in locks {
        for (name, version, marker) in &l.packages {
            if let Some(v) = version {
                pins.entry((name.clone(), marker.clone()))
                    .or_default()
                    .insert(v.clone());
            }
        }
    }
    let mut out = String::new();
    for ((name, marker), versions) in pins {
        if versions.len() != 1 {
            continue;
        }
        let v = versions.first().expect("one");
        match marker {
            Some(m) => out.push_str(&format!("{name}=={v} ; {m}\n")),
            None => out.push_str(&format!("{name}=={v}\n")),
        }
    }
    out
}

/// What happened to one group.
#[derive(Debug)]
pub struct Outcome {
    pub group: String,
    pub loc: Loc,
    pub notes: Vec<String>,
    pub result: Result<Done, Failure>,
}

#[derive(Debug)]
pub enum Done {
    /// The lock the group can point at, read back.
    Locked {
        lock: String,
        checked: Checked,
        wrote: bool,
    },
    Skipped {
        why: String,
        help: String,
    },
}

#[derive(Debug)]
pub struct Failure {
    pub message: String,
    /// uv's stderr, credentials removed.
    pub detail: String,
}

/// `uv --version`; Errors: uv missing or not running.
pub fn uv_version(uv: &str) -> Result<String, Diagnostic> {
    let help = "install uv: `pip install uv==0.9.7` (or `pipx install uv==0.9.7`), or see https://docs.astral.sh/uv/getting-started/installation/";
    match Command::new(uv).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        Ok(o) => Err(Diagnostic::error(
            Loc::default(),
            format!(
                "`{uv} --version` failed: {}",
                crate::url::redact_text(String::from_utf8_lossy(&o.stderr).trim())
            ),
            help,
        )),
        Err(e) => Err(Diagnostic::error(
            Loc::default(),
            format!("kiln lock runs uv, and `{uv}` cannot be run: {e}"),
            help,
        )),
    }
}

/// Runs the jobs in `context` with `uv`, in an order where each group comes after the
/// groups installed below it. uv gets a private directory (mode 0700, an unpredictable
/// name) for what kiln writes for it, and an environment with none of the user's
/// variables but those it needs to run and to reach the index (`UV_ENV`).
pub fn run(
    jobs: &[Job],
    context: &Path,
    uv: &str,
    credential_hosts: &BTreeSet<String>,
) -> Vec<Outcome> {
    let private = tempfile::Builder::new().prefix("kiln-lock-").tempdir();
    let mut done: BTreeMap<String, Checked> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
    for job in order(jobs) {
        let mut uv_warnings = vec![];
        let result = match (&job.action, &private) {
            (Action::Skip { why, help }, _) => Ok(Done::Skipped {
                why: why.clone(),
                help: help.clone(),
            }),
            (Action::Check { lock }, _) => read_context_lock(context, lock)
                .and_then(|text| checked(lock, &text, credential_hosts, false)),
            (Action::Uv { .. }, Err(e)) => Err(Failure {
                message: format!("cannot make a private temporary directory: {e}"),
                detail: String::new(),
            }),
            (
                Action::Uv {
                    args,
                    dir,
                    inputs,
                    below,
                    output,
                },
                Ok(private),
            ) => {
                let work = private.path().join(&job.group);
                // uv writes the lock in `work` under its file name.
                let name = output.rsplit('/').next().unwrap_or(output);
                let mut run = || -> Result<Done, Failure> {
                    let below: Vec<Checked> = below
                        .iter()
                        .filter_map(|b| match done.get(b) {
                            Some(c) => Some(c.clone()),
                            None => read_context_lock(context, &lock_name(b))
                                .ok()
                                .and_then(|t| check_lock(&t, credential_hosts).ok()),
                        })
                        .collect();
                    prepare(&work, inputs, &below, (context, output, *dir))?;
                    let cwd = match dir {
                        LockDir::Private => work.as_path(),
                        LockDir::Context => context,
                    };
                    let (stdout, warned) = run_uv(uv, args, cwd)?;
                    uv_warnings = warned;
                    let text = match dir {
                        LockDir::Private => {
                            std::fs::read_to_string(work.join(name)).map_err(|e| Failure {
                                message: format!("uv wrote no `{output}`: {e}"),
                                detail: String::new(),
                            })?
                        }
                        LockDir::Context => stdout,
                    };
                    let done = checked(output, &text, credential_hosts, true)?;
                    write_lock(context, output, &text)?;
                    Ok(done)
                };
                run()
            }
        };
        if let Ok(Done::Locked { checked, .. }) = &result {
            done.insert(job.group.clone(), checked.clone());
        }
        outcomes.insert(
            job.group.clone(),
            Outcome {
                group: job.group.clone(),
                loc: job.loc,
                notes: job.notes.iter().cloned().chain(uv_warnings).collect(),
                result,
            },
        );
    }
    // Reported in spec order.
    jobs.iter()
        .filter_map(|j| outcomes.remove(&j.group))
        .collect()
}

/// A job's private directory `work`: the files kiln wrote for uv, the pins of the groups
/// below (`BELOW_TXT`), and (uv run there) a copy of the context's existing lock, whose
/// pins uv keeps.
fn prepare(
    work: &Path,
    inputs: &[(String, String)],
    below: &[Checked],
    (context, output, dir): (&Path, &str, LockDir),
) -> Result<(), Failure> {
    let failed = |e: std::io::Error| Failure {
        message: format!("cannot write kiln lock's private files: {e}"),
        detail: String::new(),
    };
    std::fs::create_dir_all(work).map_err(failed)?;
    for (name, content) in inputs {
        std::fs::write(work.join(name), content).map_err(failed)?;
    }
    std::fs::write(work.join(BELOW_TXT), constraints(below)).map_err(failed)?;
    if dir == LockDir::Private
        && let Some(existing) = read_context_lock(context, output).ok()
    {
        let name = output.rsplit('/').next().unwrap_or(output);
        std::fs::write(work.join(name), existing).map_err(failed)?;
    }
    Ok(())
}

/// A lock in the context, read only when it is a regular file: a symlink could name any
/// file of the user's. Errors: missing, a link or not a file, unreadable.
fn read_context_lock(context: &Path, lock: &str) -> Result<String, Failure> {
    let path = context.join(lock);
    let fail = |message: String| Failure {
        message,
        detail: String::new(),
    };
    let meta =
        std::fs::symlink_metadata(&path).map_err(|e| fail(format!("cannot read `{lock}`: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(fail(format!(
            "`{lock}` is not a regular file (a symlink or a directory): kiln lock reads and writes locks only as files of the context"
        )));
    }
    std::fs::read_to_string(&path).map_err(|e| fail(format!("cannot read `{lock}`: {e}")))
}

/// `text` as the context's `lock`, written whole or not at all: into a new file beside it
/// (created, never opened through a link), then renamed over it (a link there is replaced,
/// not followed).
fn write_lock(context: &Path, lock: &str, text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let fail = |e: std::io::Error| Failure {
        message: format!("cannot write `{lock}`: {e}"),
        detail: String::new(),
    };
    let path = context.join(lock);
    let (dir, name) = match lock.rsplit_once('/') {
        Some((d, n)) => (context.join(d), n),
        None => (context.to_path_buf(), lock),
    };
    let mut file = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .tempfile_in(dir)
        .map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.as_file().sync_all().map_err(fail)?;
    file.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// The jobs, each after the jobs of the groups installed below it (spec order otherwise;
/// a cycle between variants is broken in spec order).
fn order(jobs: &[Job]) -> Vec<&Job> {
    let names: BTreeSet<&str> = jobs.iter().map(|j| j.group.as_str()).collect();
    let mut left: Vec<&Job> = jobs.iter().collect();
    let mut out: Vec<&Job> = vec![];
    while !left.is_empty() {
        let ready = left.iter().position(|j| match &j.action {
            Action::Uv { below, .. } => below
                .iter()
                .all(|b| !names.contains(b.as_str()) || out.iter().any(|o| o.group == *b)),
            _ => true,
        });
        out.push(left.remove(ready.unwrap_or(0)));
    }
    out
}

/// uv's `warning:` lines (credentials removed).
fn warnings(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .map(|l| format!("uv {}", crate::url::redact_text(l)))
        .collect()
}

/// What uv may see of the user's environment: what it needs to run, to find its cache and
/// the user's netrc, and to reach the index (TLS roots, proxies). Nothing else: uv reads
/// `UV_*` settings and expands `${NAME}` from its environment, and a spec's lock must not
/// depend on (or send anywhere) what the user happens to have exported.
pub const UV_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "XDG_CACHE_HOME",
    "UV_CACHE_DIR",
    "UV_NATIVE_TLS",
    "UV_HTTP_TIMEOUT",
    "NETRC",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
];

/// `uv ARGS` in `dir`, with only `UV_ENV` from the environment. Returns its stdout and
/// its warnings (credentials removed). Errors: uv could not run or failed (its stderr).
fn run_uv(uv: &str, args: &[String], dir: &Path) -> Result<(String, Vec<String>), Failure> {
    let mut cmd = Command::new(uv);
    cmd.args(args).current_dir(dir).env_clear();
    for var in UV_ENV {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    let shown: Vec<String> = args
        .iter()
        .map(|a| match a.contains([' ', '\'', '"']) {
            true => format!("'{}'", a.replace('\'', "'\\''")),
            false => a.clone(),
        })
        .collect();
    let shown = format!("uv {}", crate::url::redact_text(&shown.join(" ")));
    match cmd.output() {
        Err(e) => Err(Failure {
            message: format!("`{shown}` cannot be run: {e}"),
            detail: String::new(),
        }),
        Ok(o) if o.status.success() => Ok((
            String::from_utf8_lossy(&o.stdout).into_owned(),
            warnings(&o.stderr),
        )),
        Ok(o) => Err(Failure {
            message: format!("`{shown}` failed ({})", o.status),
            detail: crate::url::redact_text(String::from_utf8_lossy(&o.stderr).trim_end()),
        }),
    }
}

/// A lock's text, read back. Errors: not a PEP 751 lock.
fn checked(
    lock: &str,
    text: &str,
    credential_hosts: &BTreeSet<String>,
    wrote: bool,
) -> Result<Done, Failure> {
    let checked = check_lock(text, credential_hosts).map_err(|e| Failure {
        message: format!("`{lock}` is not a PEP 751 lock: {e}"),
        detail: String::new(),
    })?;
    Ok(Done::Locked {
        lock: lock.to_string(),
        checked,
        wrote,
    })
}

/// A group's files and packages as flow YAML keys, for a snippet that keeps them beside
/// its lock (`files: [a.txt], packages: ["x==1"], `): `kiln lock` re-locks from them.
fn sources(files: &[S<String>], packages: &[S<String>]) -> String {
    let list = |l: &[S<String>]| {
        l.iter()
            .map(|s| serde_json::to_string(&s.v).expect("a string"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::new();
    if !files.is_empty() {
        out.push_str(&format!("files: [{}], ", list(files)));
    }
    if !packages.is_empty() {
        out.push_str(&format!("packages: [{}], ", list(packages)));
    }
    out
}

/// The report: per group what was done (stderr), the spec snippet (stdout), and every
/// package that keeps its group on the in-step install.
pub struct Report {
    pub stdout: String,
    pub stderr: String,
    pub failed: bool,
}

pub fn report(spec: &Spec, outcomes: &[Outcome]) -> Report {
    let mut err = String::new();
    let mut snippet = vec![];
    let mut in_step: Vec<(String, Vec<Finding>)> = vec![];
    let mut failed = false;
    for o in outcomes {
        match &o.result {
            Ok(Done::Locked {
                lock,
                checked,
                wrote,
            }) => {
                let verb = if *wrote {
                    "wrote"
                } else {
                    "already a PEP 751 lock:"
                };
                err.push_str(&format!(
                    "{}: {verb} {lock} ({} packages)\n",
                    o.group,
                    checked.packages.len()
                ));
                if !checked.findings.iter().any(|f| f.local) {
                    match spec.group(&o.group).map(|g| &g.source) {
                        Some(GroupSource::Lock(l)) if l.path.v == *lock => err
                            .push_str(&format!("{}: the spec points at {lock} already\n", o.group)),
                        Some(GroupSource::Requirements {
                            files, packages, ..
                        }) => snippet.push(format!(
                            "  {}: {{{}lock: {lock}}}",
                            o.group,
                            sources(files, packages)
                        )),
                        _ => snippet.push(format!("  {}: {{lock: {lock}}}", o.group)),
                    }
                }
                if !checked.findings.is_empty() {
                    in_step.push((o.group.clone(), checked.findings.clone()));
                }
            }
            Ok(Done::Skipped { why, help }) => {
                err.push_str(&format!("{}: not locked: {why}; {help}\n", o.group));
            }
            Err(f) => {
                failed = true;
                let d = Diagnostic::error(
                    o.loc,
                    format!(
                        "uv could not lock requirement group `{}`: {}",
                        o.group, f.message
                    ),
                    "fix what uv says above the spec line, then run kiln lock again",
                );
                if !f.detail.is_empty() {
                    err.push_str(&f.detail);
                    err.push('\n');
                }
                err.push_str(&d.render(&spec.files));
            }
        }
        for n in &o.notes {
            err.push_str(&format!("{}: note: {n}\n", o.group));
        }
    }
    for (group, findings) in &in_step {
        if findings.iter().any(|f| f.local) {
            err.push_str(&format!(
                "{group}: keep it a requirements group (today's in-step install): its lock names local paths a build cannot read from the lock's mount:\n"
            ));
        } else {
            err.push_str(&format!(
                "{group}: keeps the in-step install (`uv pip install` in a build step, with the netrc secret `build_secrets.netrc`), not fetched by URL and hash, because of:\n"
            ));
        }
        for f in findings {
            err.push_str(&format!("  {group}: {}: {}\n", f.package, f.problem));
        }
    }
    let stdout = if snippet.is_empty() {
        String::new()
    } else {
        format!("requirements:\n{}\n", snippet.join("\n"))
    };
    Report {
        stdout,
        stderr: err,
        failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{LoadOptions, load_str};

    /// A context where each of `files` was read and holds one pin.
    fn read(files: &[&str]) -> ContextInfo {
        let mut ctx = ContextInfo::default();
        for f in files {
            let flat = crate::context::Flat {
                requirements: vec![format!("pin-of-{}==1.0", f.replace(['/', '.'], "-"))],
                ..Default::default()
            };
            ctx.requirements.insert(f.to_string(), flat);
        }
        ctx
    }

    fn worker() -> ContextInfo {
        read(&[
            "requirements/core.txt",
            "requirements/ml.txt",
            "constraints.txt",
        ])
    }

    fn spec(yaml: &str) -> Spec {
        load_str("kiln.yaml", yaml, &LoadOptions::default())
            .map_err(|r| r.render())
            .expect("valid spec")
            .spec
    }

    fn args(job: &Job) -> Vec<&str> {
        match &job.action {
            Action::Uv { args, .. } => args.iter().map(String::as_str).collect(),
            other => panic!("not a uv job: {other:?}"),
        }
    }

    const WORKER: &str = r#"
version: 1
name: w
python: {base: python:3.12-slim, version: "3.12", installer: uv}
requirements:
  core: [requirements/core.txt]
  ml: {files: [requirements/ml.txt], packages: ["numpy==2.2.6"]}
pip:
  index_url: https://pypi.example.com/simple
  extra_index_urls: [https://download.pytorch.org/whl/cpu]
  index_strategy: unsafe-best-match
  constraints: constraints.txt
variants:
  minimal: {requirements: [core]}
  cuda: {requirements: [core, ml], python: {version: "3.11"}}
"#;

    #[test]
    fn requirements_group_is_compiled_universal_for_the_lowest_python() {
        let s = spec(WORKER);
        let opts = Options {
            command: "kiln lock kiln.yaml".into(),
            ..Default::default()
        };
        let jobs = plan(&s, &worker(), &opts).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(
            args(&jobs[0]),
            [
                "pip",
                "compile",
                "--universal",
                "--format",
                "pylock.toml",
                "--no-config",
                "--python-version",
                "3.11",
                "--index-url",
                "https://pypi.example.com/simple",
                "--extra-index-url",
                "https://download.pytorch.org/whl/cpu",
                "--index-strategy",
                "unsafe-best-match",
                "--constraints",
                "constraints.txt",
                "--custom-compile-command",
                "kiln lock kiln.yaml",
                "--output-file",
                "pylock.core.toml",
                "--",
                "requirements.txt",
            ]
        );
        // uv reads what kiln read: the file's lines, the constraints file's as constraints.
        let Action::Uv {
            inputs,
            dir,
            below,
            output,
            ..
        } = &jobs[0].action
        else {
            panic!()
        };
        assert_eq!(*dir, LockDir::Private);
        assert_eq!(output, "pylock.core.toml");
        assert!(below.is_empty());
        assert_eq!(
            inputs,
            &[
                (
                    "requirements.txt".to_string(),
                    "pin-of-requirements-core-txt==1.0\n".to_string()
                ),
                (
                    "constraints.txt".to_string(),
                    "pin-of-constraints-txt==1.0\n".to_string()
                ),
            ]
        );
        // ml: only cuda (3.11) installs it, on top of core.
        let Action::Uv {
            inputs,
            below,
            output,
            ..
        } = &jobs[1].action
        else {
            panic!()
        };
        assert_eq!(output, "pylock.ml.toml");
        assert_eq!(
            inputs[0].1, "pin-of-requirements-ml-txt==1.0\nnumpy==2.2.6\n",
            "the file's lines, then the group's packages"
        );
        assert_eq!(below, &["core"]);
        assert!(
            args(&jobs[1])
                .windows(2)
                .any(|w| w == ["--constraints", "below.txt"])
        );
        assert!(args(&jobs[1]).ends_with(&[
            "--output-file",
            "pylock.ml.toml",
            "--",
            "requirements.txt"
        ]));
        assert!(jobs[1].notes[0].contains("3.11"), "{:?}", jobs[1].notes);
    }

    #[test]
    fn upgrade_and_targets() {
        let s = spec(WORKER);
        let opts = Options {
            targets: vec!["minimal".into()],
            upgrade: true,
            ..Default::default()
        };
        let jobs = plan(&s, &worker(), &opts).unwrap();
        // minimal (3.12) installs core; ml is installed by no selected variant.
        assert!(args(&jobs[0]).contains(&"--upgrade"));
        assert!(
            args(&jobs[0])
                .windows(2)
                .any(|w| w == ["--python-version", "3.12"])
        );
        assert!(matches!(&jobs[1].action, Action::Skip { why, .. } if why.contains("no variant")));
        let only = Options {
            groups: vec!["ml".into()],
            ..Default::default()
        };
        let jobs = plan(&s, &worker(), &only).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].group, "ml");
        let bad = Options {
            groups: vec!["mll".into()],
            ..Default::default()
        };
        let e = plan(&s, &ContextInfo::default(), &bad).unwrap_err();
        assert!(e.message.contains("unknown requirement group `mll`"));
        let bad = Options {
            targets: vec!["gpu".into()],
            ..Default::default()
        };
        assert!(plan(&s, &ContextInfo::default(), &bad).is_err());
    }

    #[test]
    fn python_pin_of_the_project_and_no_version() {
        let s = spec(
            "version: 1\nname: w\npython: {base: python:3.12-slim}\nrequirements: {core: [r.txt]}\n",
        );
        let jobs = plan(&s, &read(&["r.txt"]), &Options::default()).unwrap();
        assert!(!args(&jobs[0]).contains(&"--python-version"));
        assert!(
            jobs[0]
                .notes
                .iter()
                .any(|n| n.contains("no Python version"))
        );
        assert!(
            jobs[0]
                .notes
                .iter()
                .any(|n| n.contains("python.installer: uv"))
        );
        let ctx = ContextInfo {
            python_pin: Some(("3.11".into(), ".python-version".into())),
            ..read(&["r.txt"])
        };
        let jobs = plan(&s, &ctx, &Options::default()).unwrap();
        assert!(
            args(&jobs[0])
                .windows(2)
                .any(|w| w == ["--python-version", "3.11"])
        );
        assert!(jobs[0].notes[0].contains(".python-version"));
    }

    #[test]
    fn lock_groups_export_skip_or_check() {
        let s = spec(
            r#"
version: 1
name: p
python: {base: python:3.12-slim, installer: uv}
requirements:
  deps: {lock: svc/uv.lock, extras: [ml], groups: [gpu]}
  poetry: {lock: poetry.lock}
  pinned: {lock: pylock.toml}
variants: {all: {requirements: [deps, poetry, pinned]}}
"#,
        );
        let jobs = plan(
            &s,
            &ContextInfo::default(),
            &Options {
                upgrade: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            args(&jobs[0]),
            [
                "export",
                "--locked",
                "--format",
                "pylock.toml",
                "--no-emit-workspace",
                "--no-default-groups",
                "--extra",
                "ml",
                "--group",
                "gpu",
                "--project=svc",
            ]
        );
        assert!(jobs[0].notes[0].contains("uv lock --upgrade"));
        assert!(matches!(&jobs[1].action, Action::Skip { why, .. } if why.contains("Poetry")));
        assert_eq!(
            jobs[2].action,
            Action::Check {
                lock: "pylock.toml".into()
            }
        );
    }

    #[test]
    fn no_groups_is_an_error() {
        let s = spec("version: 1\nname: w\npython: {base: python:3.12-slim}\n");
        let e = plan(&s, &ContextInfo::default(), &Options::default()).unwrap_err();
        assert!(e.message.contains("no requirement groups"), "{}", e.message);
    }

    const LOCK: &str = r#"
lock-version = "1.0"
created-by = "uv"
requires-python = ">=3.11"

[[packages]]
name = "anyio"
version = "4.9.0"
sdist = { url = "https://files.pythonhosted.org/a.tar.gz", hashes = { sha256 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" } }
wheels = [{ url = "https://files.pythonhosted.org/a.whl", hashes = { sha256 = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" } }]

[[packages]]
name = "numpy"
version = "2.2.6"
marker = "python_full_version < '3.12'"
wheels = [{ url = "https://files.pythonhosted.org/n.whl", hashes = { sha256 = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc" } }]

[[packages]]
name = "private"
version = "1.0"
wheels = [{ url = "https://bob:s3cret@pypi.corp.example/p.whl", hashes = { sha256 = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd" } }]

[[packages]]
name = "internal"
version = "2.0"
wheels = [{ url = "https://pypi.internal.example:8443/i.whl", hashes = { md5 = "ee" } }]

[[packages]]
name = "local"
directory = { path = "vendor/local" }

[[packages]]
name = "tool"
vcs = { type = "git", url = "https://tok@github.com/o/tool", commit-id = "abc" }
"#;

    #[test]
    fn lock_read_back_finds_what_cannot_be_fetched_by_hash() {
        let hosts =
            netrc_hosts("machine pypi.internal.example login u password p\ndefault login x");
        let c = check_lock(LOCK, &hosts).unwrap();
        assert_eq!(c.packages.len(), 6);
        let found: Vec<String> = c
            .findings
            .iter()
            .map(|f| format!("{}: {}", f.package, f.problem))
            .collect();
        assert_eq!(
            found,
            [
                "private 1.0: from pypi.corp.example, an index that needs credentials",
                "internal 2.0: from pypi.internal.example, an index that needs credentials",
                "internal 2.0: no sha256 for https://pypi.internal.example:8443/i.whl",
                "local: a local directory (no URL)",
                "tool: from version control (https://***@github.com/o/tool): no hash",
            ]
        );
        assert!(!found.join("\n").contains("s3cret"));
        assert!(!found.join("\n").contains("tok"));
    }

    #[test]
    fn constraints_from_the_groups_below() {
        let c = check_lock(LOCK, &BTreeSet::new()).unwrap();
        let other = Checked {
            packages: vec![
                ("anyio".into(), Some("4.16.0".into()), None),
                ("idna".into(), Some("3.10".into()), None),
            ],
            findings: vec![],
        };
        let pins = constraints(&[c, other]);
        // anyio: the two disagree, so no pin; numpy keeps its marker; no version, no pin.
        assert_eq!(
            pins,
            "idna==3.10\ninternal==2.0\nnumpy==2.2.6 ; python_full_version < '3.12'\nprivate==1.0\n"
        );
    }

    #[test]
    fn order_puts_groups_below_first() {
        let s = spec(
            r#"
version: 1
name: w
python: {base: python:3.12-slim, installer: uv}
requirements: {ml: [ml.txt], core: [core.txt]}
variants: {cuda: {requirements: [core, ml]}}
"#,
        );
        let jobs = plan(&s, &read(&["ml.txt", "core.txt"]), &Options::default()).unwrap();
        let ordered: Vec<&str> = order(&jobs).iter().map(|j| j.group.as_str()).collect();
        assert_eq!(ordered, ["core", "ml"]);
    }

    #[test]
    fn report_prints_the_snippet_and_the_in_step_groups() {
        let s = spec(WORKER);
        let hosts = netrc_hosts("machine pypi.internal.example");
        let outcomes = vec![
            Outcome {
                group: "core".into(),
                loc: Loc::default(),
                notes: vec![],
                result: Ok(Done::Locked {
                    lock: "pylock.core.toml".into(),
                    checked: check_lock(LOCK, &hosts).unwrap(),
                    wrote: true,
                }),
            },
            Outcome {
                group: "web".into(),
                loc: Loc::default(),
                notes: vec!["resolved for Python >= 3.12".into()],
                result: Ok(Done::Locked {
                    lock: "pylock.web.toml".into(),
                    checked: check_lock(&LOCK.replace("bob:s3cret@", ""), &BTreeSet::new())
                        .map(|mut c| {
                            c.findings.retain(|f| !f.local);
                            c
                        })
                        .unwrap(),
                    wrote: true,
                }),
            },
            Outcome {
                group: "ml".into(),
                loc: s.groups[1].name.loc,
                notes: vec![],
                result: Err(Failure {
                    message: "`uv pip compile ...` failed".into(),
                    detail: "error: No solution found".into(),
                }),
            },
        ];
        let r = report(&s, &outcomes);
        assert!(r.failed);
        // core names a local directory: it stays a requirements group.
        assert_eq!(r.stdout, "requirements:\n  web: {lock: pylock.web.toml}\n");
        assert!(
            r.stderr
                .contains("core: wrote pylock.core.toml (6 packages)")
        );
        assert!(r.stderr.contains("core: keep it a requirements group"));
        assert!(r.stderr.contains("web: keeps the in-step install"));
        assert!(r.stderr.contains("  web: internal 2.0: no sha256"));
        assert!(r.stderr.contains("web: note: resolved for Python >= 3.12"));
        assert!(
            r.stderr
                .contains("  core: private 1.0: from pypi.corp.example")
        );
        assert!(r.stderr.contains("error: No solution found"));
        assert!(r.stderr.contains("kiln.yaml:7:"), "{}", r.stderr);
    }
}
