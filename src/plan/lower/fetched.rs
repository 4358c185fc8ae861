//! A fetched group's stages as LLB (the plan decides which there are: `plan/fetched.rs`):
//! each file an HTTP source checked by its sha256, a sdist built into a wheel in the
//! builder, and the offline installs (no network, no secret, no cache): all files in one
//! step, or some packages into the empty venv with the layer as the DiffOp of what they
//! wrote; the `pip check` over the layers.

use super::image::dir_copy;
use super::install::{check_command, drop_uv_lock};
use super::{LowerOpts, StepEnv, cache_mount, installer_env, own_vertices, secret_setup, sh};
use crate::llb::{self, Exec, Meta, Mount, State};
use crate::plan::build_hints;
use crate::plan::install::{Cache, flags};
use crate::plan::shell::quote;
use crate::plan::{CheckStep, FetchStep, InstallStep, LayerStep, Toolchain, WheelStep, fetched};
use crate::spec::Installer;

/// Where fetched (or built) files reach a group's one install step.
const FILES_MOUNT: &str = "/kiln/files";
/// Where a layer's files reach its install: a directory every Linux base has (FHS), so
/// the mount point adds nothing to the layer.
const PACKAGE_MOUNT: &str = "/mnt";
/// Where a sdist reaches its wheel build, and where the wheel is written.
const SDIST_MOUNT: &str = "/kiln/sdist";
const WHEEL_OUT: &str = "/kiln/wheel";
/// Where a check writes nothing: its (empty) result, which the image copies to wait for
/// the verdict.
const CHECK_OUT: &str = "/kiln/checked";

/// The locked file, fetched by the engine and checked by its sha256 (a vertex of its own
/// in a `--no-cache` build too, where the base is: see `LowerOpts::own_vertices`).
pub(super) fn fetch(step: &FetchStep, opts: &LowerOpts, meta: Meta) -> State {
    let file = &step.file;
    llb::http(
        &file.url,
        (&file.sha256, &file.filename),
        own_vertices(opts),
        meta,
    )
}

/// A sdist built into a wheel on `builder` (its build packages are there), with the index
/// reachable for the build backend: cached by the sdist's digest and the builder, so it
/// compiles once per base, not once per requirement change.
pub(super) fn build_wheel(
    builder: &State,
    sdist: &State,
    step: &WheelStep,
    env: &StepEnv,
    meta: Meta,
) -> State {
    let python = quote(&format!("{}/bin/python", step.toolchain.venv));
    let src = quote(&format!("{SDIST_MOUNT}/{}", step.sdist));
    let index: String = flags::index(&step.pip)
        .iter()
        .map(|a| format!(" {}", quote(a)))
        .collect();
    let (command, cache) = match step.toolchain.installer {
        Installer::Uv => (
            format!("uv build --wheel --python {python} --out-dir {WHEEL_OUT}{index} {src}"),
            Cache::Uv,
        ),
        Installer::Pip => (
            format!("{python} -m pip wheel --no-deps --wheel-dir {WHEEL_OUT}{index} {src}"),
            Cache::Pip,
        ),
    };
    let (mut mounts, secret_script) = secret_setup(&step.secrets);
    mounts.extend([
        Mount::Bind {
            dest: SDIST_MOUNT.into(),
            src: sdist.clone(),
        },
        Mount::Scratch {
            dest: WHEEL_OUT.into(),
        },
        cache_mount(cache, &env.cache),
    ]);
    builder
        .run(sh(
            format!("set -eu\n{secret_script}{}", build_hints::wrap(&command)),
            installer_env(&env.vars, &step.toolchain, Some(&step.pip)),
            mounts,
            meta,
        ))
        .scratch(WHEEL_OUT)
}

/// The installer's command for wheels given by path: exactly those, no resolution, no
/// index, no cache (nothing but the venv changes).
fn offline_install(installer: Installer, venv: &str, wheels: &[String]) -> String {
    let python = quote(&format!("{venv}/bin/python"));
    let wheels = wheels.join(" ");
    match installer {
        Installer::Uv => format!(
            "uv pip install --python {python} --offline --no-index --no-deps --no-cache {wheels}"
        ),
        Installer::Pip => {
            format!("{python} -m pip install --no-index --no-deps --no-cache-dir {wheels}")
        }
    }
}

pub(super) fn offline_exec(
    script: String,
    toolchain: &Toolchain,
    env: &StepEnv,
    mounts: Vec<Mount>,
    meta: Meta,
) -> Exec {
    let mut vars = installer_env(&env.vars, toolchain, None);
    // The interpreter's own imports must not leave bytecode outside the venv: a layer is
    // exactly what the install wrote.
    vars.push("PYTHONDONTWRITEBYTECODE=1".into());
    vars.sort();
    Exec {
        network_none: true,
        ..sh(script, vars, mounts, meta)
    }
}

/// The whole group in one step on `parent` (engines without MergeOp/DiffOp): each file
/// mounted read-only in its own directory.
pub(super) fn install_files(
    parent: &State,
    files: &[State],
    step: &InstallStep,
    env: &StepEnv,
    meta: Meta,
) -> State {
    let (installer, venv) = (step.toolchain.installer, &step.toolchain.venv);
    let mut mounts = vec![];
    for (i, state) in files.iter().enumerate() {
        mounts.push(Mount::Bind {
            dest: format!("{FILES_MOUNT}/{i}"),
            src: state.clone(),
        });
    }
    // Each directory holds just its file: one glob names them all, and the script stays
    // short however many there are (the kernel takes at most 128 KiB in one argument).
    let every = format!("{FILES_MOUNT}/*/*");
    let mut script = format!("set -eu\n{}\n", offline_install(installer, venv, &[every]));
    if step.pip.check {
        script.push_str(&format!("{}\n", check_command(installer, venv)));
    }
    script.push_str(&drop_uv_lock(installer, venv));
    parent
        .run(offline_exec(script, &step.toolchain, env, mounts, meta))
        .root()
}

/// A layer's packages (their files, each source holding just its file) installed alone
/// into the empty venv `empty`: the layer is only what the install wrote.
pub(super) fn layer(
    empty: &State,
    files: &[State],
    step: &LayerStep,
    env: &StepEnv,
    meta: Meta,
) -> State {
    let (installer, venv) = (step.toolchain.installer, &step.toolchain.venv);
    let label = fetched::packages_label(&step.packages);
    // One file: mounted as it is. Several: each in a directory of its own (two may share
    // a name, or be wheels built from sdists, named by a glob), all in one state.
    let (files, paths): (State, Vec<String>) = match files {
        [one] => (
            one.clone(),
            vec![format!("{PACKAGE_MOUNT}/{}", step.files[0])],
        ),
        _ => {
            let mut all = llb::scratch().file(Meta {
                name: Some(format!("files: {label}")),
                ..meta.clone()
            });
            for (i, f) in files.iter().enumerate() {
                all = all.copy(f, "/", &format!("/{i}"), dir_copy(None));
            }
            let paths = step
                .files
                .iter()
                .enumerate()
                .map(|(i, f)| format!("{PACKAGE_MOUNT}/{i}/{f}"))
                .collect();
            (all.done(), paths)
        }
    };
    let script = format!(
        "set -eu\n{}\n{}",
        offline_install(installer, venv, &paths),
        drop_uv_lock(installer, venv)
    );
    let mounts = vec![Mount::Bind {
        dest: PACKAGE_MOUNT.into(),
        src: files,
    }];
    let installed = empty
        .run(offline_exec(
            script,
            &step.toolchain,
            env,
            mounts,
            meta.clone(),
        ))
        .root();
    let name = Some(format!("layer: {label}"));
    llb::diff(empty, &installed, Meta { name, ..meta })
}

/// `pip check` of the empty venv `empty` with `layers` merged on it, run for its verdict
/// only: the returned (empty) state, copied into the image's venv, makes the image depend
/// on it.
pub(super) fn check(
    empty: &State,
    layers: &[State],
    step: &CheckStep,
    env: &StepEnv,
    meta: Meta,
) -> State {
    let (installer, venv) = (step.toolchain.installer, &step.toolchain.venv);
    let mut all = vec![empty.clone()];
    all.extend(layers.iter().cloned());
    let merged = llb::merge(
        &all,
        Meta {
            name: Some(format!("venv to check: {}", step.group)),
            ..meta.clone()
        },
    );
    let script = format!(
        "set -eu\n{}\n{}",
        check_command(installer, venv),
        drop_uv_lock(installer, venv)
    );
    let mounts = vec![Mount::Scratch {
        dest: CHECK_OUT.into(),
    }];
    merged
        .run(offline_exec(script, &step.toolchain, env, mounts, meta))
        .scratch(CHECK_OUT)
}
