//! A uv project's lock (`uv.lock`): the group's exact set is exported to PEP 751 in its
//! own step (`uv export`), then installed with no resolution, every file checked against
//! its hash; `kiln lock` writes that export into the context.

use super::{
    Cache, ContextInfo, EXPORT_MOUNT, Export, Fetchable, LockAction, LockDir, LockRequest, Recipe,
    in_mount, lock_name, uv_install_pylock,
};
use crate::context::join;
use crate::plan::Toolchain;
use crate::plan::shell::{join as shell_join, quote};
use crate::spec::{Lock, S, Variant};

/// `uv export`'s arguments that make one group of a `uv.lock` a PEP 751 set: exactly the
/// locked files (`--locked`: a lock that no longer matches `pyproject.toml` fails), the
/// project's dependencies without the workspace's own packages, only the `groups` and
/// `extras` asked for. The build's export step and `kiln lock` both use it, so a lock
/// `kiln lock` writes is the set the build would install.
pub fn export_args(extras: &[S<String>], groups: &[S<String>]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--locked",
        "--format",
        "pylock.toml",
        "--no-emit-workspace",
        "--no-default-groups",
    ]
    .map(String::from)
    .to_vec();
    for e in extras {
        args.extend(["--extra".into(), e.v.clone()]);
    }
    for g in groups {
        args.extend(["--group".into(), g.v.clone()]);
    }
    args
}

/// The export of the group's set (its own step, reading the project's `pyproject.toml`,
/// the lock and every workspace member's `pyproject.toml`), then `uv pip install` of
/// exactly that. The install reads only the exported file, so a lock edit that leaves this
/// group's set alone leaves its install cached (BuildKit keys read-only mounts by content).
pub fn recipe(lock: &Lock, ctx: &ContextInfo, toolchain: &Toolchain) -> Recipe {
    let project = lock.project_dir();
    let members = ctx
        .workspace_files
        .get(&lock.path.v)
        .cloned()
        .unwrap_or_default();
    let reads = [join(project, "pyproject.toml"), lock.path.v.clone()]
        .into_iter()
        .chain(members)
        .collect();
    let mut args = export_args(&lock.extras, &lock.groups);
    args.extend([
        "--output-file".into(),
        format!("{EXPORT_MOUNT}/pylock.toml"),
    ]);
    let python = format!("{}/bin/python", toolchain.venv);
    Recipe {
        tool: "uv",
        reads,
        writes: vec![],
        unread: vec![],
        export: Some(Export {
            name: "uv export",
            command: format!(
                "cd {}\nuv export --quiet {}",
                quote(&in_mount(project)),
                shell_join(&args)
            ),
            cache: Cache::Uv,
        }),
        command: uv_install_pylock(&python, &format!("{EXPORT_MOUNT}/pylock.toml")),
        cache: Cache::Uv,
    }
}

/// The group's set, chosen by kiln from the lock it read (`context::uv_lock`), when the
/// engine can fetch every file: its extras and dependency groups.
pub fn fetchable<'c>(lock: &Lock, v: &Variant, ctx: &'c ContextInfo) -> Option<Fetchable<'c>> {
    let read = ctx.uv_locks.get(&lock.path.v)?;
    if read.problem.is_some() {
        return None;
    }
    let names = |l: &[S<String>]| l.iter().map(|s| s.v.clone()).collect::<Vec<_>>();
    Some(Fetchable::graph(
        ctx.python(v).map(|p| p.version.to_string()),
        read,
        (names(&lock.extras), names(&lock.groups)),
    ))
}

/// `kiln lock` of a uv.lock group: `uv export` of the build's set, run in the context
/// directory (uv reads the project), printed for kiln to write as `pylock.<group>.toml`.
pub fn lock(
    group: &str,
    lock: &Lock,
    users: &[&Variant],
    req: &LockRequest,
) -> (LockAction, Vec<String>) {
    let mut notes = vec![];
    let dir = match lock.project_dir() {
        "" => ".",
        d => d,
    };
    if req.upgrade {
        notes.push(format!(
            "--upgrade does not re-resolve a uv.lock: run `uv lock --upgrade` in `{dir}` first"
        ));
    }
    let pip_users = super::pip_users(users);
    if !pip_users.is_empty() {
        notes.push(format!(
            "a pylock group is installed by uv: variant(s) {} need `python.installer: uv`",
            pip_users.join(", ")
        ));
    }
    notes.push(format!(
        "exported from `{}`: run kiln lock again after each `uv lock` (a build installs the pylock as it is, without checking `uv.lock` against `pyproject.toml`)",
        lock.path.v
    ));
    let mut args = vec!["export".to_string()];
    args.extend(export_args(&lock.extras, &lock.groups));
    if !lock.project_dir().is_empty() {
        // `=`: a directory whose name starts with `-` is still the option's value.
        args.push(format!("--project={}", lock.project_dir()));
    }
    let action = LockAction::Uv {
        args,
        dir: LockDir::Context,
        inputs: vec![],
        below: vec![],
        output: lock_name(group),
    };
    (action, notes)
}
