//! A group's install in its step (`install::Recipe`: the context files it reads, an export
//! step before it, its command and cache) and the app's project, built as a wheel.

use super::{
    StepEnv, cache_mount, context_source, installer_env, links_stay_inside, secret_setup, sh,
};
use crate::llb::{self, Meta, Mount, State};
use crate::plan::build_hints;
use crate::plan::install::{Cache, EXPORT_MOUNT, Export, REQ_MOUNT, Recipe, flags};
use crate::plan::shell::quote;
use crate::plan::{InstallStep, LowerOpts, PipOptions, ProjectStep, Toolchain};
use crate::spec::Installer;

/// Where the app's project is mounted for its wheel build.
const PROJECT_MOUNT: &str = "/kiln/project";

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

/// Build the app's project as a wheel from a writable copy of its files (so no build
/// backend writes into the context), and install it without dependencies: those came
/// from the groups, installed before.
pub(super) fn project(
    parent: &State,
    step: &ProjectStep,
    opts: &LowerOpts,
    env: &StepEnv,
    meta: Meta,
) -> State {
    let Toolchain {
        installer, venv, ..
    } = &step.toolchain;
    let python = format!("{venv}/bin/python");
    let include = match step.dir.is_empty() {
        true => vec![],
        false => vec![step.dir.clone()],
    };
    let src = context_source(
        opts,
        (include, step.exclude.clone()),
        "-project",
        "project source",
    );
    let (mut mounts, secret_script) = secret_setup(&step.secrets);
    mounts.push(Mount::Bind {
        dest: PROJECT_MOUNT.into(),
        src,
    });
    let from = match step.dir.as_str() {
        "" => PROJECT_MOUNT.to_string(),
        d => format!("{PROJECT_MOUNT}/{d}"),
    };
    let (build, install, cache) = project_commands(*installer, &python, &step.pip, &env.cache);
    mounts.push(cache);
    let mut script = format!(
        "set -eu\n{}{secret_script}rm -rf /tmp/kiln-project /tmp/kiln-wheels\ncp -a {}/. /tmp/kiln-project\n{build}\n{install}\nrm -rf /tmp/kiln-project /tmp/kiln-wheels\n",
        links_stay_inside(PROJECT_MOUNT),
        quote(&from)
    );
    if step.pip.check {
        script.push_str(&format!("{}\n", check_command(*installer, venv)));
    }
    script.push_str(&drop_uv_lock(*installer, venv));
    parent
        .run(sh(
            script,
            installer_env(env, &step.toolchain, Some(&step.pip)),
            mounts,
            meta,
        ))
        .root()
}

/// The wheel build of the project copied to `/tmp/kiln-project` and its install, with the
/// installer's own tools, and the installer's cache.
pub(super) fn project_commands(
    installer: Installer,
    python: &str,
    pip: &PipOptions,
    scope: &str,
) -> (String, String, Mount) {
    let py = quote(python);
    let index: String = flags::index(pip)
        .iter()
        .map(|a| format!(" {}", quote(a)))
        .collect();
    match installer {
        Installer::Uv => (
            format!(
                "uv build --wheel --python {py} --out-dir /tmp/kiln-wheels{index} /tmp/kiln-project"
            ),
            format!("uv pip install --python {py} --no-deps /tmp/kiln-wheels/*.whl"),
            cache_mount(Cache::Uv, scope),
        ),
        Installer::Pip => (
            format!(
                "{py} -m pip wheel --no-deps --wheel-dir /tmp/kiln-wheels{index} /tmp/kiln-project"
            ),
            format!("{py} -m pip install --no-deps /tmp/kiln-wheels/*.whl"),
            cache_mount(Cache::Pip, scope),
        ),
    }
}
