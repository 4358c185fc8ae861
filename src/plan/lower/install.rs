//! A group's install in its step (`install::Recipe`: the context files it reads, an export
//! step before it, its command and cache).

use super::{
    StepEnv, cache_mount, context_source, installer_env, links_stay_inside, secret_setup, sh,
};
use crate::llb::{self, Meta, Mount, State};
use crate::plan::build_hints;
use crate::plan::install::{EXPORT_MOUNT, Export, REQ_MOUNT, Recipe};
use crate::plan::shell::quote;
use crate::plan::{InstallStep, LowerOpts};
use crate::spec::Installer;

/// Install one group into the venv on `on`, as `recipe` says: only the group's own context
/// files enter the step, through their own local source, so editing the app or another
/// group's file does not rerun it.
pub(super) fn install(
    on: &State,
    step: &InstallStep,
    recipe: &Recipe,
    opts: &LowerOpts,
    env: &StepEnv,
    meta: Meta,
) -> State {
    let (installer, venv) = (step.toolchain.installer, &step.toolchain.venv);
    if !recipe.unread.is_empty() {
        // Fail closed: what kiln did not read, no installer reads either.
        let why = format!(
            "kiln: {} of group {} were not read from the build context before the build",
            recipe.unread.join(", "),
            step.group
        );
        let script = format!("echo {} >&2\nexit 1\n", quote(&why));
        return on.run(sh(script, vec![], vec![], meta)).root();
    }
    let (mut mounts, secret_script) = secret_setup(&step.secrets);
    let mut links = String::new();
    if !recipe.writes.is_empty() {
        // The files kiln wrote, and nothing of the context: the installer reads only what
        // kiln read and understood.
        let mut files = llb::scratch().file(Meta {
            name: Some(format!("requirements: {}", step.group)),
            ..Default::default()
        });
        for (name, content) in &recipe.writes {
            files = files.mkfile(&format!("/{name}"), 0o444, content.as_bytes());
        }
        mounts.push(Mount::Bind {
            dest: REQ_MOUNT.into(),
            src: files.done(),
        });
    }
    if !recipe.reads.is_empty() {
        let files = context_source(
            opts,
            (recipe.reads.clone(), step.dockerignore.clone()),
            &format!("-requirements-{}", step.group),
            &format!("requirements: {}", step.group),
        );
        match &recipe.export {
            Some(export) => {
                let exported = export_step(on, files, step, export, env, &meta);
                mounts.push(Mount::Bind {
                    dest: EXPORT_MOUNT.into(),
                    src: exported,
                });
            }
            None => {
                mounts.push(Mount::Bind {
                    dest: REQ_MOUNT.into(),
                    src: files,
                });
                links = links_stay_inside(REQ_MOUNT);
            }
        }
    }
    mounts.push(cache_mount(recipe.cache, &env.cache));
    // The installer may build a sdist: a missing system package ends with its hint.
    let mut script = format!(
        "set -eu\n{links}{secret_script}{}",
        build_hints::wrap(&recipe.command)
    );
    if step.pip.check {
        script.push_str(&format!("{}\n", check_command(installer, venv)));
    }
    script.push_str(&drop_uv_lock(installer, venv));
    on.run(sh(
        script,
        installer_env(env, &step.toolchain, Some(&step.pip)),
        mounts,
        meta,
    ))
    .root()
}

/// A recipe's export in its own step, on the install's filesystem, with the group's files
/// at `REQ_MOUNT`: what it writes to `EXPORT_MOUNT`, as a state of its own. It may reach
/// the index (uv resolves to say that a lock is stale), so it mounts the secrets.
fn export_step(
    on: &State,
    files: State,
    step: &InstallStep,
    export: &Export,
    env: &StepEnv,
    meta: &Meta,
) -> State {
    let (mut mounts, secret_script) = secret_setup(&step.secrets);
    let script = format!(
        "set -eu\n{}{secret_script}{}\n",
        links_stay_inside(REQ_MOUNT),
        export.command
    );
    mounts.extend([
        Mount::Bind {
            dest: REQ_MOUNT.into(),
            src: files,
        },
        Mount::Scratch {
            dest: EXPORT_MOUNT.into(),
        },
        cache_mount(export.cache, &env.cache),
    ]);
    let meta = Meta {
        name: Some(format!("{}: {}", export.name, step.group)),
        ..meta.clone()
    };
    on.run(sh(
        script,
        installer_env(env, &step.toolchain, Some(&step.pip)),
        mounts,
        meta,
    ))
    .scratch(EXPORT_MOUNT)
}

/// uv leaves `VENV/.lock` behind, world-writable (0777) so that any user may take it; in
/// the image nobody installs, and a file every user may write has no place there.
pub(super) fn drop_uv_lock(installer: Installer, venv: &str) -> String {
    match installer {
        Installer::Uv => format!("rm -f {}\n", quote(&format!("{venv}/.lock"))),
        Installer::Pip => String::new(),
    }
}

/// `pip check` for the venv, with the installer's own tool.
pub(super) fn check_command(installer: Installer, venv: &str) -> String {
    let python = format!("{venv}/bin/python");
    match installer {
        Installer::Pip => format!("{} -m pip check", quote(&python)),
        Installer::Uv => format!("uv pip check --python {}", quote(&python)),
    }
}
