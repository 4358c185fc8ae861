//! A group of requirement files (`-r`, with their includes), inline requirement lines and
//! the variant's constraints file (`-c`), as pip and `uv pip install` read them; `kiln lock`
//! resolves it into a PEP 751 lock with `uv pip compile --universal`.

use super::{
    BELOW_TXT, Cache, ContextInfo, LockAction, LockDir, LockRequest, Recipe, flags, in_mount,
};
use crate::context::Flat;
use crate::plan::shell::{join, quote};
use crate::plan::{PipOptions, Toolchain};
use crate::spec::{Installer, S, Variant};

/// The files kiln writes for a requirements group's step, at `REQ_MOUNT`.
pub const REQUIREMENTS_TXT: &str = "requirements.txt";
pub const CONSTRAINTS_TXT: &str = "constraints.txt";
pub const BUILD_CONSTRAINTS_TXT: &str = "build-constraints.txt";

/// One group's requirements for one variant, as kiln read them from its files (their
/// includes followed) and its `packages`, with the variant's constraints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requirements {
    /// Install-wide options from the files (`--index-url URL`).
    pub options: Vec<String>,
    /// Requirement lines: the files', then the group's `packages`.
    pub requirements: Vec<String>,
    /// Constraint lines: what the files include with `-c`, then `pip.constraints`.
    pub constraints: Vec<String>,
    /// `pip.build_constraints`' lines, for sdist build environments.
    pub build_constraints: Option<Vec<String>>,
    pub require_hashes: bool,
    /// Files the context was not read for.
    pub unread: Vec<String>,
}

impl Requirements {
    /// The group's files and lines for `v`: the constraints and build constraints are the
    /// variant's; what the files say comes from the context as kiln read it.
    pub fn new(
        files: &[S<String>],
        packages: &[S<String>],
        require_hashes: Option<bool>,
        v: &Variant,
        ctx: &ContextInfo,
    ) -> Requirements {
        let mut out = Requirements::default();
        let mut hashed = false;
        let mut read = |file: &str, out: &mut Requirements| -> Option<Flat> {
            let flat = ctx.requirements.get(file).cloned();
            match &flat {
                Some(f) => hashed |= f.hashed,
                None => out.unread.push(file.to_string()),
            }
            flat
        };
        let extend = |list: &mut Vec<String>, lines: &[String]| {
            for l in lines {
                if !list.contains(l) {
                    list.push(l.clone());
                }
            }
        };
        for f in files {
            if let Some(flat) = read(&f.v, &mut out) {
                extend(&mut out.options, &flat.options);
                extend(&mut out.requirements, &flat.requirements);
                extend(&mut out.constraints, &flat.constraints);
            }
        }
        let packages: Vec<String> = packages.iter().map(|p| p.v.clone()).collect();
        extend(&mut out.requirements, &packages);
        // A constraints file's own requirement lines are constraints too.
        if let Some(c) = &v.pip.constraints
            && let Some(flat) = read(&c.v, &mut out)
        {
            extend(&mut out.options, &flat.options);
            extend(&mut out.constraints, &flat.requirements);
            extend(&mut out.constraints, &flat.constraints);
        }
        if let Some(c) = &v.pip.build_constraints {
            let mut lines = vec![];
            if let Some(flat) = read(&c.v, &mut out) {
                extend(&mut lines, &flat.requirements);
                extend(&mut lines, &flat.constraints);
            }
            out.build_constraints = Some(lines);
        }
        // As pip does by itself once a file has a hash, so that uv does too.
        out.require_hashes = require_hashes.unwrap_or(v.pip.require_hashes || hashed);
        out
    }

    /// The files kiln writes for the install (name, content): the requirements (options
    /// first), and the constraints and build constraints when there are any.
    pub fn files(&self) -> Vec<(String, String)> {
        let text = |lines: &[&[String]]| -> String {
            lines
                .iter()
                .flat_map(|l| l.iter())
                .map(|l| format!("{l}\n"))
                .collect()
        };
        let mut out = vec![(
            REQUIREMENTS_TXT.to_string(),
            text(&[&self.options, &self.requirements]),
        )];
        if !self.constraints.is_empty() {
            out.push((CONSTRAINTS_TXT.into(), text(&[&self.constraints])));
        }
        if let Some(b) = &self.build_constraints {
            out.push((BUILD_CONSTRAINTS_TXT.into(), text(&[b])));
        }
        out
    }

    /// The requirement inputs of the installer's command, with `file` mapping each of
    /// `files`' names to where the command reads it: `--require-hashes`, `-c`, `-r`.
    fn inputs(&self, file: impl Fn(&str) -> String) -> Vec<String> {
        let mut args = vec![];
        if self.require_hashes {
            args.push("--require-hashes".into());
        }
        if !self.constraints.is_empty() {
            args.extend(["-c".into(), file(CONSTRAINTS_TXT)]);
        }
        args.extend(["-r".into(), file(REQUIREMENTS_TXT)]);
        args
    }

    /// pip's or `uv pip install`'s command, each with its own spelling of the `pip:`
    /// build options, reading only the files kiln wrote.
    pub fn recipe(self, toolchain: &Toolchain, pip: &PipOptions) -> Recipe {
        let python = format!("{}/bin/python", toolchain.venv);
        let build = |_: &str| in_mount(BUILD_CONSTRAINTS_TXT);
        let (command, cache, tool) = match toolchain.installer {
            Installer::Pip => {
                let (mut args, env) = flags::pip_build_options(pip, build);
                args.extend(flags::index(pip));
                args.extend(self.inputs(in_mount));
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
                (command, Cache::Pip, "pip")
            }
            Installer::Uv => {
                let mut args = flags::index(pip);
                args.extend(flags::uv_build_options(pip, build));
                args.extend(self.inputs(in_mount));
                let command = format!("uv pip install --python {} {}", quote(&python), join(&args));
                (command, Cache::Uv, "uv")
            }
        };
        Recipe {
            tool,
            reads: vec![],
            writes: self.files(),
            unread: self.unread,
            export: None,
            command,
            cache,
        }
    }
}

/// `kiln lock` of a requirements group: `uv pip compile --universal --format pylock.toml`
/// for the lowest Python of its variants, with the first variant's index options,
/// constrained to the pins of the groups installed below it. uv reads only the files kiln
/// wrote (the requirements as kiln read them), in kiln lock's private directory.
pub fn lock(
    (group, output): (&str, &str),
    (files, packages): (&[S<String>], &[S<String>]),
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
    let read = Requirements::new(files, packages, Some(false), first, ctx);
    if !read.unread.is_empty() {
        let action = LockAction::Skip {
            why: format!(
                "kiln did not read {} from the context",
                read.unread.join(", ")
            ),
            help: "run kiln lock with --context DIR".into(),
        };
        return (action, notes);
    }
    let pip = PipOptions::of(first);
    let output = output.to_string();
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
    args.extend(flags::uv_build_options(&pip, |_| {
        BUILD_CONSTRAINTS_TXT.to_string()
    }));
    if !read.constraints.is_empty() {
        args.extend(["--constraints".into(), CONSTRAINTS_TXT.into()]);
    }
    if !below.is_empty() {
        args.extend(["--constraints".into(), BELOW_TXT.into()]);
    }
    if req.upgrade {
        args.push("--upgrade".into());
    }
    if !req.command.is_empty() {
        args.extend(["--custom-compile-command".into(), req.command.clone()]);
    }
    // In the private directory, by its file name; files after `--`: no name is read as
    // an option.
    let written = output.rsplit('/').next().unwrap_or(&output).to_string();
    args.extend([
        "--output-file".into(),
        written,
        "--".into(),
        REQUIREMENTS_TXT.into(),
    ]);
    let action = LockAction::Uv {
        args,
        dir: LockDir::Private,
        inputs: read.files(),
        below,
        output,
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
