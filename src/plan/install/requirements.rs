//! A group of requirement files (`-r`, with their includes), inline requirement lines and
//! the variant's constraints file (`-c`), as pip and `uv pip install` read them; `kiln lock`
//! resolves it into a PEP 751 lock with `uv pip compile --universal`.

use super::{Cache, ContextInfo, LockAction, LockRequest, Recipe, flags, in_mount, lock_name};
use crate::plan::shell::{join, quote};
use crate::plan::{PipOptions, Toolchain};
use crate::spec::{Installer, S, Variant};

/// One group's requirement inputs for one variant, with every context file they reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirements {
    pub files: Vec<String>,
    pub packages: Vec<String>,
    /// `pip.constraints`.
    pub constraints: Option<String>,
    /// Every context file installing these reads, includes too: what the step mounts.
    pub reached: Vec<String>,
    pub require_hashes: bool,
}

impl Requirements {
    /// The group's files and lines for `v`: the constraints and build constraints are the
    /// variant's, includes come from the context (each file alone when it was not read).
    pub fn new(
        files: &[S<String>],
        packages: &[S<String>],
        require_hashes: Option<bool>,
        v: &Variant,
        ctx: &ContextInfo,
    ) -> Requirements {
        let constraints = v.pip.constraints.as_ref().map(|c| c.v.clone());
        let build = v.pip.build_constraints.as_ref().map(|c| &c.v);
        let mut reached: Vec<String> = vec![];
        for f in files.iter().map(|f| &f.v).chain(&constraints).chain(build) {
            for r in ctx.requirement_closure(f) {
                if !reached.contains(&r) {
                    reached.push(r);
                }
            }
        }
        // As pip does by itself once a file has a hash, so that uv does too.
        let hashed = reached.iter().any(|f| ctx.hashed_files.contains(f));
        Requirements {
            files: files.iter().map(|f| f.v.clone()).collect(),
            packages: packages.iter().map(|p| p.v.clone()).collect(),
            constraints,
            reached,
            require_hashes: require_hashes.unwrap_or(v.pip.require_hashes || hashed),
        }
    }

    /// pip's or `uv pip install`'s command, each with its own spelling of the `pip:`
    /// build options.
    pub fn recipe(self, toolchain: &Toolchain, pip: &PipOptions) -> Recipe {
        let python = format!("{}/bin/python", toolchain.venv);
        let mut inputs = vec![];
        if self.require_hashes {
            inputs.push("--require-hashes".into());
        }
        if let Some(c) = &self.constraints {
            inputs.extend(["-c".into(), in_mount(c)]);
        }
        for f in &self.files {
            inputs.extend(["-r".into(), in_mount(f)]);
        }
        inputs.extend(self.packages.iter().cloned());
        let (command, cache) = match toolchain.installer {
            Installer::Pip => {
                let (mut args, env) = flags::pip_build_options(pip, in_mount);
                args.extend(flags::index(pip));
                args.extend(inputs);
                let env: String = env
                    .iter()
                    .map(|(k, v)| format!("{k}={} ", quote(v)))
                    .collect();
                let command = format!(
                    "{env}{} -m pip install --timeout {} --retries {} {}",
                    quote(&python),
                    pip.timeout,
                    pip.retries,
                    join(&args)
                );
                (command, Cache::Pip)
            }
            Installer::Uv => {
                let mut args = flags::index(pip);
                args.extend(flags::uv_build_options(pip, in_mount));
                args.extend(inputs);
                let command = format!("uv pip install --python {} {}", quote(&python), join(&args));
                (command, Cache::Uv)
            }
        };
        Recipe {
            reads: self.reached,
            export: None,
            command,
            cache,
        }
    }
}

/// `kiln lock` of a requirements group: `uv pip compile --universal --format pylock.toml`
/// for the lowest Python of its variants, with the first variant's index options,
/// constrained to the pins of the groups installed below it.
pub fn lock(
    group: &str,
    files: &[S<String>],
    packages: &[S<String>],
    users: &[&Variant],
    ctx: &ContextInfo,
    req: &LockRequest,
) -> (LockAction, Vec<String>) {
    let mut notes = vec![];
    let version = lowest_python(users, ctx);
    match &version {
        Some((v, why)) => notes.push(format!(
            "resolved for Python >= {v} ({why}), every platform (--universal)"
        )),
        None => notes.push("no Python version in the spec (python.version) or the project (.python-version): uv resolves for the Python it finds".into()),
    }
    let pip_users = super::pip_users(users);
    if !pip_users.is_empty() {
        notes.push(format!(
            "a pylock group is installed by uv: variant(s) {} need `python.installer: uv` before pointing at the lock",
            pip_users.join(", ")
        ));
    }
    let first = users[0];
    for other in &users[1..] {
        if other.pip.index_url != first.pip.index_url
            || other.pip.extra_index_urls != first.pip.extra_index_urls
            || other.pip.index_strategy != first.pip.index_strategy
        {
            notes.push(format!(
                "variants `{}` and `{}` have different index options; locked with `{}`'s",
                first.name.v, other.name.v, first.name.v
            ));
        }
    }
    let below = below(group, users);
    if !below.is_empty() {
        notes.push(format!(
            "installed on top of {}: resolved within the pins of their locks (as constraints)",
            below.join(", ")
        ));
    }
    let pip = PipOptions::of(first);
    let output = lock_name(group);
    let mut args: Vec<String> = [
        "pip",
        "compile",
        "--universal",
        "--format",
        "pylock.toml",
        "--no-config",
    ]
    .map(String::from)
    .to_vec();
    if let Some((v, _)) = version {
        args.extend(["--python-version".into(), v]);
    }
    args.extend(flags::index(&pip));
    // kiln lock runs in the context directory: context paths as they are.
    args.extend(flags::uv_build_options(&pip, |c| c.to_string()));
    if let Some(c) = &first.pip.constraints {
        args.extend(["--constraints".into(), c.v.clone()]);
    }
    if req.upgrade {
        args.push("--upgrade".into());
    }
    if !req.command.is_empty() {
        args.extend(["--custom-compile-command".into(), req.command.clone()]);
    }
    args.extend(["--output-file".into(), output.clone()]);
    args.extend(files.iter().map(|f| f.v.clone()));
    let action = LockAction::Uv {
        args,
        output,
        packages: packages.iter().map(|p| p.v.clone()).collect(),
        below,
    };
    (action, notes)
}

/// The lowest Python of the variants installing a group, and what asks for it: a
/// universal lock made for it also serves the newer ones.
fn lowest_python(users: &[&Variant], ctx: &ContextInfo) -> Option<(String, String)> {
    let mut best: Option<((u32, u32), String, String)> = None;
    for v in users {
        let Some(want) = ctx.python(v) else {
            continue;
        };
        let why = match want.pin_file {
            None => format!("python.version of `{}`", v.name.v),
            Some(file) => file.to_string(),
        };
        let mut parts = want.version.split('.');
        let key = (|| Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?)))();
        let Some(key) = key else {
            continue;
        };
        if best.as_ref().is_none_or(|(k, _, _)| key < *k) {
            best = Some((key, want.version.to_string(), why));
        }
    }
    best.map(|(_, v, why)| (v, why))
}

/// The groups installed below `group` in the variants that install it, in order, once.
fn below(group: &str, users: &[&Variant]) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for v in users {
        for g in &v.groups {
            if g.v == group {
                break;
            }
            if !out.contains(&g.v) {
                out.push(g.v.clone());
            }
        }
    }
    out
}
