//! The Python stage (the interpreter checked, the venv made, the installers put beside
//! it) and its copy into the builder.

use super::{
    ImageInfo, LowerOpts, StepEnv, cache_mount, installer_env, own_vertices, prefixed,
    secret_setup, sh,
};
use crate::llb::{self, CopyOpts, Exec, Meta, Mount, State};
use crate::plan::config::base_env;
use crate::plan::install::tools::PIP_VERSION;
use crate::plan::install::{Cache, POETRY_HOME, UV_HOME};
use crate::plan::shell::quote;
use crate::plan::{PythonStep, Toolchain};
use crate::spec::Installer;
use crate::spec::format::POETRY_PLUGIN_EXPORT_VERSION;

/// Where the installer's wheel (the stage's `File` input) is mounted.
const INSTALLER_MOUNT: &str = "/kiln/installer";

/// The interpreter checked, the venv made, the installer beside it: from its wheel
/// (`installer`, fetched by the engine) with no network, else (a uv version kiln pins no
/// wheel of, or Poetry) from the index with the secrets.
pub(super) fn python(
    parent: &State,
    installer_wheel: Option<State>,
    step: &PythonStep,
    env: &StepEnv,
    meta: Meta,
) -> State {
    let Toolchain {
        installer,
        uv_version,
        venv,
        poetry,
    } = &step.toolchain;
    let installer = *installer;
    let mut script = String::from("set -eu\n");
    script.push_str("PY=$(command -v python3 || command -v python || true)\n");
    script.push_str("if [ -z \"$PY\" ]; then echo 'kiln: the base image has no python3; use a Python base such as python:3.12-slim' >&2; exit 1; fi\n");
    if let Some((v, from)) = &step.version {
        // No spec position in the script: op bytes must not change when lines move (the
        // step's progress name carries the position instead).
        script
            .push_str("have=$(\"$PY\" -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])')\n");
        script.push_str(&format!(
            "if [ \"$have\" != {want} ]; then echo \"kiln: base has Python $have, {who} wants {v} ({from}); pick a base image with Python {v} or change {from}\" >&2; exit 1; fi\n",
            want = quote(v),
            // Both names are kiln's or a context path (no quote or `$` in either).
            who = if from == "python.version" { "spec" } else { "the project" },
            from = from.replace(['"', '$', '`', '\\'], ""),
        ));
    }
    for a in &step.assumed {
        script.push_str(&assumed_check(a));
    }
    // With uv the venv is uv's to fill: no pip or setuptools seeded into it (as `uv venv`
    // makes it), which also keeps an old ensurepip pip out of the image.
    let seed = if installer == Installer::Uv {
        " --without-pip"
    } else {
        ""
    };
    script.push_str(&format!("\"$PY\" -m venv{seed} {}\n", quote(venv)));
    let wheel = match (&installer_wheel, &step.installer_wheel) {
        (Some(state), Some(name)) => Some((state, format!("{INSTALLER_MOUNT}/{name}"))),
        _ => None,
    };
    // Only what comes from the index needs the network, the secrets and pip's cache.
    let online = wheel.is_none() || poetry.is_some();
    let (mut mounts, secret_script) = match online {
        true => secret_setup(&step.secrets),
        false => (vec![], String::new()),
    };
    if online {
        mounts.push(cache_mount(Cache::Pip, &env.cache));
    }
    script.push_str(&secret_script);
    match (installer, &wheel) {
        // The base's pip may predate PEP 517-only builds (no wheel cache for sdists, so
        // psycopg2 would recompile on every install): a pinned, current pip in the venv.
        (Installer::Pip, Some((_, path))) => script.push_str(&format!(
            "{}/bin/python -m pip install -q --no-index --no-cache-dir {}\n",
            quote(venv),
            quote(path)
        )),
        (Installer::Pip, None) => script.push_str(&format!(
            "{}/bin/python -m pip install -q {}\n",
            quote(venv),
            quote(&format!("pip=={PIP_VERSION}"))
        )),
        // uv is one static binary in its wheel: unpacked, not installed.
        (Installer::Uv, Some((_, path))) => script.push_str(&format!(
            "rm -rf /tmp/kiln-uv\n\"$PY\" -m zipfile -e {} /tmp/kiln-uv\nmkdir -p {UV_HOME}/bin\ncp /tmp/kiln-uv/uv-*.data/scripts/uv {UV_HOME}/bin/uv\nchmod 0755 {UV_HOME}/bin/uv\nrm -rf /tmp/kiln-uv\nuv --version\n",
            quote(path)
        )),
        (Installer::Uv, None) => {
            script.push_str(&format!(
                "\"$PY\" -m venv {UV_HOME}\n{UV_HOME}/bin/python -m pip install -q {}\n",
                quote(&format!("uv=={uv_version}"))
            ));
            script.push_str("uv --version\n");
        }
    }
    if let Some((state, _)) = wheel {
        mounts.push(Mount::Bind {
            dest: INSTALLER_MOUNT.into(),
            src: state.clone(),
        });
    }
    if let Some(version) = poetry {
        // `poetry export` is a plugin in Poetry 2: found by its entry point in Poetry's venv.
        script.push_str(&format!(
            "\"$PY\" -m venv {POETRY_HOME}\n{POETRY_HOME}/bin/python -m pip install -q {} {}\n",
            quote(&format!("poetry=={version}")),
            quote(&format!(
                "poetry-plugin-export=={POETRY_PLUGIN_EXPORT_VERSION}"
            ))
        ));
    }
    let exec = Exec {
        network_none: !online,
        ..sh(
            script,
            installer_env(env, &step.toolchain, None),
            mounts,
            meta,
        )
    };
    parent.run(exec).root()
}

/// The builder with the venv (and uv) made beside it copied in. Same paths, so the venv's
/// absolute links to the base's interpreter still hold: the builder stands on that base.
pub(super) fn toolchain_into(
    builder: &State,
    python: &State,
    toolchain: &Toolchain,
    meta: &Meta,
) -> State {
    let venv = &toolchain.venv;
    let copy = CopyOpts {
        contents_only: true,
        create_dest_path: true,
        ..Default::default()
    };
    let mut ops = builder
        .file(Meta {
            name: Some(format!("venv {venv} into the builder")),
            ignore_cache: meta.ignore_cache,
            loc: meta.loc,
        })
        .copy(python, venv, venv, copy.clone());
    if toolchain.poetry.is_some() {
        ops = ops.copy(python, POETRY_HOME, POETRY_HOME, copy.clone());
    }
    if toolchain.installer == Installer::Uv {
        ops = ops.copy(python, UV_HOME, UV_HOME, copy);
    }
    ops.done()
}

/// `on` with the Python stage's venv and installers copied in when the stage reads them
/// (`Role::Toolchain`: the builder), else `on` itself (it stands on the Python stage).
pub(super) fn with_toolchain(
    on: &State,
    python: Option<State>,
    toolchain: &Toolchain,
    meta: &Meta,
) -> State {
    match python {
        Some(python) => toolchain_into(on, &python, toolchain, meta),
        None => on.clone(),
    }
}

/// Where the interpreter probe writes what it read, in its result.
pub const PROBE_FILE: &str = "interpreter.json";
const PROBE_OUT: &str = "/kiln-probe";

/// The base's interpreter, read in a container of the pinned base (`info`) on `opts`'s
/// platform with no network (`context::interpreter::PROBE`, as `python3`, else
/// `python`): its result holds `PROBE_FILE`. It stands on the very base op the build
/// does, so it costs one container start on a cold build and nothing once cached.
pub fn interpreter_probe(info: &ImageInfo, opts: &LowerOpts) -> State {
    let base = llb::image_with_attrs(
        &info.reference,
        Some(opts.platform.clone()),
        own_vertices(opts),
        Meta {
            ignore_cache: opts.no_cache,
            ..Default::default()
        },
    );
    let script = format!(
        "set -eu\nPY=$(command -v python3 || command -v python || true)\n\
         if [ -z \"$PY\" ]; then echo 'kiln: the base image has no python3' >&2; exit 1; fi\n\
         \"$PY\" -c {} >{PROBE_OUT}/{PROBE_FILE}\n",
        quote(crate::context::interpreter::PROBE)
    );
    let exec = Exec {
        network_none: true,
        ..sh(
            script,
            base_env(&info.config),
            vec![Mount::Scratch {
                dest: PROBE_OUT.into(),
            }],
            Meta {
                name: Some(prefixed(
                    opts.step_prefix.as_deref(),
                    "[internal] read the base's Python",
                )),
                ignore_cache: opts.no_cache,
                loc: None,
            },
        )
    };
    base.run(exec).scratch(PROBE_OUT)
}

/// A shell check that the base's interpreter has a value of a marker variable the choice
/// of a lock's files assumed (`Assumed`): else the step fails, naming the packages whose
/// markers read it.
fn assumed_check(a: &crate::plan::Assumed) -> String {
    let read = match a.var.as_str() {
        "python_full_version" => "import platform; print(platform.python_version())",
        "platform_release" => "import platform; print(platform.release())",
        "platform_version" => "import platform; print(platform.version())",
        _ => "import sys; v = sys.implementation.version; print('%d.%d.%d' % tuple(v[:3]))",
    };
    let allowed = match a.allowed.is_empty() {
        true => "''".to_string(),
        false => a
            .allowed
            .iter()
            .map(|v| quote(v))
            .collect::<Vec<_>>()
            .join("|"),
    };
    let why = format!(
        "kiln: the lock's files were chosen without reading this base's Python (kiln llb offline), for {} in [{}]; the markers of {} read it. Build through the frontend (docker build), which reads the base",
        a.var,
        a.allowed.join(", "),
        a.packages.join(", ")
    );
    format!(
        "have=$(\"$PY\" -c {})\ncase \"$have\" in {allowed}) ;; *) echo {}\": this base has $have\" >&2; exit 1;; esac\n",
        quote(read),
        quote(&why)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Assumed;

    /// The check through a real `sh` with this machine's `python3`: it passes on a value
    /// it allows, fails naming the packages on one it does not.
    #[test]
    fn the_assumed_check_passes_or_names_the_packages() {
        let have = std::process::Command::new("python3")
            .args(["-c", "import platform; print(platform.python_version())"])
            .output();
        let Ok(have) = have else {
            eprintln!("skipped: no python3 here");
            return;
        };
        let have = String::from_utf8_lossy(&have.stdout).trim().to_string();
        let run = |allowed: Vec<String>| {
            let a = Assumed {
                var: "python_full_version".into(),
                allowed,
                packages: vec!["async-timeout".into()],
            };
            let script = format!("PY=python3\n{}", assumed_check(&a));
            std::process::Command::new("/bin/sh")
                .args(["-c", &script])
                .output()
                .unwrap()
        };
        assert!(run(vec!["3.0.0".into(), have.clone()]).status.success());
        let out = run(vec!["3.0.0".into()]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("async-timeout"), "{err}");
        assert!(err.contains(&format!("this base has {have}")), "{err}");
        assert!(!run(vec![]).status.success());
    }
}
