//! The app's project as LLB: its wheel built from a writable copy of its files, the wheel
//! installed alone into a prefix (the venv's layout, no venv around it), that prefix copied
//! into the venv (the image's project layer, a builder step's venv), and the installer's
//! check over the venv with the project's metadata.
//!
//! The prefix is what `--prefix` gives with the venv's own interpreter: uv lays it out by
//! the interpreter's virtualenv scheme relative to the prefix (`Prefix::scheme` in
//! astral-sh/uv), pip by the interpreter's sysconfig scheme with the prefix as its base;
//! both write console scripts that run `sys.executable`, the venv's `python`, and RECORD
//! paths relative to site-packages. So `PREFIX/lib/pythonX.Y/site-packages/...` and
//! `PREFIX/bin/...` copied into the venv are exactly what an install into it writes. The
//! one difference is a link in the venv: a platlib under `lib64` (Fedora's
//! `sys.platlibdir`) is moved to `lib`, where the venv's `lib64` link points, so the copy
//! never puts a directory over the link. Bytecode compiled in the prefix names its source
//! there; Python takes the source's real path when it loads it.

use super::fetched::offline_exec;
use super::image::dir_copy;
use super::install::check_command;
use super::{LowerOpts, StepEnv, cache_mount, context_source, links_stay_inside, secret_setup, sh};
use crate::llb::{self, Meta, Mount, State};
use crate::plan::install::{Cache, flags};
use crate::plan::shell::quote;
use crate::plan::{ProjectCheckStep, ProjectInstallStep, ProjectStep, shown};
use crate::spec::Installer;

/// Where the app's project is mounted for its wheel build.
const PROJECT_MOUNT: &str = "/kiln/project";
/// Where the project's files are copied to be built (a build backend may write beside them).
const BUILD_DIR: &str = "/tmp/kiln-project";
/// Where the wheel build writes the wheel, and where the install finds it.
const WHEEL_DIR: &str = "/kiln/wheel";
/// Where the install writes the project (its output).
const PREFIX: &str = "/kiln/project-prefix";
/// Where the install copies the project's metadata (its second output), and where the
/// check reads it.
const METADATA: &str = "/kiln/project-metadata";
/// Where the check writes nothing: its (empty) result, which the image copies.
const CHECK_OUT: &str = "/kiln/checked";

/// The project's wheel, built on `on` (the builder with the venv and installers, or the
/// Python stage) from a writable copy of its files, with the index reachable for the build
/// backend. Only the project's files (`.dockerignore` and `app.exclude` left out) enter the
/// step: it is cached on them and the builder. The result holds the wheel alone.
pub(super) fn wheel(
    on: &State,
    step: &ProjectStep,
    opts: &LowerOpts,
    env: &StepEnv,
    meta: Meta,
) -> State {
    let python = quote(&format!("{}/bin/python", step.toolchain.venv));
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
    let from = match step.dir.as_str() {
        "" => PROJECT_MOUNT.to_string(),
        d => format!("{PROJECT_MOUNT}/{d}"),
    };
    let index: String = flags::index(&step.pip)
        .iter()
        .map(|a| format!(" {}", quote(a)))
        .collect();
    let (build, cache) = match step.toolchain.installer {
        Installer::Uv => (
            format!("uv build --wheel --python {python} --out-dir {WHEEL_DIR}{index} {BUILD_DIR}"),
            Cache::Uv,
        ),
        Installer::Pip => (
            format!("{python} -m pip wheel --no-deps --wheel-dir {WHEEL_DIR}{index} {BUILD_DIR}"),
            Cache::Pip,
        ),
    };
    let (mut mounts, secret_script) = secret_setup(&step.secrets);
    mounts.extend([
        Mount::Bind {
            dest: PROJECT_MOUNT.into(),
            src,
        },
        Mount::Scratch {
            dest: WHEEL_DIR.into(),
        },
        cache_mount(cache, &env.cache),
    ]);
    let script = format!(
        "set -eu\n{}{secret_script}cp -a {}/. {BUILD_DIR}\n{}",
        links_stay_inside(PROJECT_MOUNT),
        quote(&from),
        // A project with C extensions: a failed build says what to add.
        crate::plan::build_hints::wrap(&build)
    );
    on.run(sh(
        script,
        super::installer_env(env, &step.toolchain, Some(&step.pip)),
        mounts,
        meta,
    ))
    .scratch(WHEEL_DIR)
}

/// The project's wheel (`wheel`, the wheel build's result) installed without dependencies
/// into a prefix by the interpreter of the empty venv on `python` (the Python stage),
/// offline. Returns the prefix (what the image copies into the venv) and the project's
/// metadata alone (`*.dist-info/METADATA` and `WHEEL` in the same layout): what the check
/// reads, unchanged by an edit to the code, so that the check is not run again for one.
pub(super) fn install(
    python: &State,
    wheel: &State,
    step: &ProjectInstallStep,
    env: &StepEnv,
    meta: Meta,
) -> (State, State) {
    let toolchain = &step.toolchain;
    let wheels = format!("{WHEEL_DIR}/*.whl");
    let script = install_script(
        toolchain.installer,
        &toolchain.venv,
        &wheels,
        PREFIX,
        METADATA,
    );
    let mounts = vec![
        Mount::Bind {
            dest: WHEEL_DIR.into(),
            src: wheel.clone(),
        },
        Mount::Scratch {
            dest: PREFIX.into(),
        },
        Mount::Scratch {
            dest: METADATA.into(),
        },
    ];
    let done = python.run(offline_exec(script, toolchain, env, mounts, meta));
    (done.scratch(PREFIX), done.scratch(METADATA))
}

/// The installer's check of the venv on `on` (with `layers` merged on it, where the image
/// takes the venv as layers) with the project's `metadata` copied in, run for its verdict:
/// the returned (empty) state, copied into the image, makes the image wait for it. The
/// metadata is a read-only mount, which BuildKit keys by its content: an edit to the
/// project's code alone finds the check cached.
pub(super) fn check(
    on: &State,
    layers: &[State],
    metadata: &State,
    step: &ProjectCheckStep,
    env: &StepEnv,
    meta: Meta,
) -> State {
    let venv = match layers {
        [] => on.clone(),
        _ => {
            let mut all = vec![on.clone()];
            all.extend(layers.iter().cloned());
            let name = Some(format!("venv to check: project {}", shown(&step.dir)));
            llb::merge(
                &all,
                Meta {
                    name,
                    ..meta.clone()
                },
            )
        }
    };
    let toolchain = &step.toolchain;
    let script = check_script(toolchain.installer, &toolchain.venv, METADATA);
    let mounts = vec![
        Mount::Bind {
            dest: METADATA.into(),
            src: metadata.clone(),
        },
        Mount::Scratch {
            dest: CHECK_OUT.into(),
        },
    ];
    venv.run(offline_exec(script, toolchain, env, mounts, meta))
        .scratch(CHECK_OUT)
}

/// `on` with the project's `prefix` copied into `venv`, owned by root like the venv, and
/// each of `checks` (an empty verdict) copied too, so that what reads the result waits for
/// them.
pub(super) fn into_venv(
    on: &State,
    prefix: &State,
    checks: &[State],
    venv: &str,
    meta: Meta,
) -> State {
    let mut ops = on.file(meta).copy(prefix, "/", venv, dir_copy(None));
    for c in checks {
        ops = ops.copy(c, "/", venv, dir_copy(None));
    }
    ops.done()
}

/// The shell script that installs the wheels matching the glob `wheels` into `prefix`
/// with `venv`'s interpreter (no index, no dependencies, no cache), fits the prefix to the
/// venv's links and copies the project's `METADATA` and `WHEEL` files to `metadata`.
/// `prefix` and `metadata` are kiln's own paths (no quoting needed); `venv` is quoted.
fn install_script(
    installer: Installer,
    venv: &str,
    wheels: &str,
    prefix: &str,
    metadata: &str,
) -> String {
    let v = quote(venv);
    // uv leaves its lock of the prefix behind, writable by all: nothing for the image.
    let install = match installer {
        Installer::Uv => format!(
            "uv pip install --python {v}/bin/python --prefix {prefix} --offline --no-index --no-deps --no-cache {wheels}\n\
             rm -f {prefix}/.lock\n"
        ),
        Installer::Pip => format!(
            "{v}/bin/python -m pip install --prefix {prefix} --no-index --no-deps --no-cache-dir --no-warn-script-location {wheels}\n"
        ),
    };
    // A directory the venv has as a link to a sibling (lib64 -> lib) goes where the link
    // points; then each dist-info's METADATA and WHEEL, in the same layout.
    format!(
        "set -eu\n{install}cd {prefix}\n\
         for d in *; do\n\
         \x20 [ -d \"$d\" ] && [ -L {v}/\"$d\" ] || continue\n\
         \x20 t=$(readlink {v}/\"$d\")\n\
         \x20 case \"$t\" in */*|.|..|'') continue;; esac\n\
         \x20 mkdir -p \"$t\" && cp -a \"$d\"/. \"$t\"/ && rm -rf \"$d\"\n\
         done\n\
         find . -path '*.dist-info/*' \\( -name METADATA -o -name WHEEL \\) | while read -r f; do\n\
         \x20 mkdir -p {metadata}/\"${{f%/*}}\" && cp \"$f\" {metadata}/\"$f\"\n\
         done\n"
    )
}

/// The shell script that copies the project's metadata (`metadata`, in the prefix's layout)
/// into `venv` and runs the installer's check.
fn check_script(installer: Installer, venv: &str, metadata: &str) -> String {
    format!(
        "set -eu\ncp -R {metadata}/. {}/\n{}\n",
        quote(venv),
        check_command(installer, venv)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    fn sh(script: &str, env: &[(&str, &str)]) -> std::process::Output {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", script]);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("run sh")
    }

    /// A pure-Python wheel of project `svc` 0.1 with a console script `svc-hello`,
    /// requiring `kiln-absent-dependency`, written into `dir` with the Python at `python`.
    fn make_wheel(python: &str, dir: &Path) {
        let code = r#"
import base64, hashlib, sys, zipfile
files = {
    "svc/__init__.py": b"def main():\n    print('hello from svc')\n",
    "svc-0.1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: svc\nVersion: 0.1\nRequires-Dist: kiln-absent-dependency\n",
    "svc-0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: kiln-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    "svc-0.1.dist-info/entry_points.txt": b"[console_scripts]\nsvc-hello = svc:main\n",
}
def digest(d):
    return base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
record = "".join(f"{p},sha256={digest(d)},{len(d)}\n" for p, d in files.items())
files["svc-0.1.dist-info/RECORD"] = (record + "svc-0.1.dist-info/RECORD,,\n").encode()
with zipfile.ZipFile(sys.argv[1] + "/svc-0.1-py3-none-any.whl", "w") as z:
    for p, d in files.items():
        z.writestr(p, d)
"#;
        let out = Command::new(python)
            .args(["-c", code, dir.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The install script through a real `sh` with this machine's `python3` and each
    /// installer it has (pip always; uv when on `PATH`, required with `KILN_REQUIRE_UV`):
    /// the prefix copied into a fresh venv is the project installed there (its console
    /// script runs the venv's python and works, RECORD names what is there, uv's lock is
    /// gone), the metadata output holds `METADATA` and `WHEEL` alone, and the check over
    /// the venv with that metadata fails naming the missing dependency.
    #[test]
    fn the_prefix_copied_into_the_venv_is_the_project_installed_there() {
        let uv = Command::new("uv").arg("--version").output().is_ok();
        if !uv && std::env::var_os("KILN_REQUIRE_UV").is_some() {
            panic!("KILN_REQUIRE_UV is set and uv is not on PATH");
        }
        let mut installers = vec![Installer::Pip];
        if uv {
            installers.push(Installer::Uv);
        } else {
            eprintln!("uv not on PATH: only pip is tried");
        }
        let root = std::env::temp_dir().join(format!("kiln-project-prefix-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("wheel")).unwrap();
        make_wheel("python3", &root.join("wheel"));
        for installer in installers {
            let dir = root.join(installer.to_string());
            let (venv, prefix, metadata) = (dir.join("venv"), dir.join("prefix"), dir.join("meta"));
            let s = |p: &Path| p.to_str().unwrap().to_string();
            // pip is in the venv; uv's venv has none (as kiln makes them).
            let seed = match installer {
                Installer::Pip => "",
                Installer::Uv => " --without-pip",
            };
            let made = sh(&format!("python3 -m venv{seed} {}", s(&venv)), &[]);
            assert!(
                made.status.success(),
                "{}",
                String::from_utf8_lossy(&made.stderr)
            );
            let wheels = format!("{}/*.whl", s(&root.join("wheel")));
            let script = install_script(installer, &s(&venv), &wheels, &s(&prefix), &s(&metadata));
            let env = [
                ("UV_COMPILE_BYTECODE", "1"),
                ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
            ];
            let out = sh(&script, &env);
            assert!(
                out.status.success(),
                "{installer}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let venv_lib = std::fs::read_dir(venv.join("lib"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap();
            let site = format!(
                "lib/{}/site-packages",
                venv_lib.file_name().to_string_lossy()
            );
            assert!(
                prefix.join(&site).join("svc/__init__.py").is_file(),
                "{installer}"
            );
            assert!(
                !prefix.join(".lock").exists(),
                "{installer}: uv's lock left"
            );
            let script_text = std::fs::read_to_string(prefix.join("bin/svc-hello")).unwrap();
            assert_eq!(
                script_text.lines().next(),
                Some(format!("#!{}/bin/python", s(&venv)).as_str()),
                "{installer}: the console script runs the venv's python"
            );
            let mut meta: Vec<String> = walk(&metadata);
            meta.sort();
            assert_eq!(
                meta,
                [
                    format!("{site}/svc-0.1.dist-info/METADATA"),
                    format!("{site}/svc-0.1.dist-info/WHEEL")
                ],
                "{installer}"
            );
            // The check: the venv with the metadata alone lacks the dependency.
            let check = check_script(installer, &s(&venv), &s(&metadata));
            let out = sh(&check, &[]);
            let said = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "{installer}: the check passed: {said}"
            );
            assert!(
                said.contains("kiln-absent-dependency"),
                "{installer}: {said}"
            );
            // The prefix copied in: the project works from the venv, and its RECORD names
            // each of its files where they are.
            let copied = sh(&format!("cp -R {}/. {}/", s(&prefix), s(&venv)), &[]);
            assert!(copied.status.success());
            let run = Command::new(venv.join("bin/svc-hello")).output().unwrap();
            assert_eq!(
                String::from_utf8_lossy(&run.stdout),
                "hello from svc\n",
                "{installer}"
            );
            let record =
                std::fs::read_to_string(venv.join(&site).join("svc-0.1.dist-info/RECORD")).unwrap();
            for line in record.lines() {
                let path = line.split(',').next().unwrap();
                assert!(
                    venv.join(&site).join(path).exists(),
                    "{installer}: {path} in RECORD"
                );
            }
            assert!(
                record.contains("../../../bin/svc-hello,"),
                "{installer}: {record}"
            );
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    /// A directory the venv has as a link to a sibling (`lib64 -> lib`) is folded into the
    /// link's target; other directories, and links elsewhere, stay.
    #[test]
    fn a_directory_the_venv_links_goes_where_the_link_points() {
        let root = std::env::temp_dir().join(format!("kiln-project-fold-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (venv, prefix) = (root.join("venv"), root.join("prefix"));
        for d in [
            "venv/lib",
            "venv/bin",
            "prefix/lib64/site",
            "prefix/lib/other",
            "prefix/bin",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(prefix.join("lib64/site/m.py"), "").unwrap();
        std::os::unix::fs::symlink("lib", venv.join("lib64")).unwrap();
        // A stub installer: the script's install line is the only part that is not run.
        let script = install_script(
            Installer::Pip,
            venv.to_str().unwrap(),
            "/nonexistent/*.whl",
            prefix.to_str().unwrap(),
            root.join("meta").to_str().unwrap(),
        );
        let fold = script
            .split_once("cd ")
            .map(|(_, rest)| format!("cd {rest}"))
            .unwrap();
        let out = sh(&format!("set -eu\n{fold}"), &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!prefix.join("lib64").exists());
        assert!(prefix.join("lib/site/m.py").is_file());
        assert!(prefix.join("lib/other").is_dir());
        assert!(prefix.join("bin").is_dir());
        let _ = std::fs::remove_dir_all(&root);
    }

    /// Every file under `dir`, as a path relative to it.
    fn walk(dir: &Path) -> Vec<String> {
        let mut out = vec![];
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    out.push(p.strip_prefix(dir).unwrap().to_string_lossy().to_string());
                }
            }
        }
        out
    }
}
