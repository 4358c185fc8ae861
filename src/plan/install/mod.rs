//! One requirement group's install and its `kiln lock`, per kind of source. Each kind's
//! module turns a group of its kind into the install step as data (`Recipe`: the context
//! files it reads, an export before it, its command and cache; lowering makes the LLB)
//! and says what `kiln lock` does with it (`LockAction`). This file is the one dispatch on
//! the kind; a source whose files the engine can fetch by digest says so with `fetchable`,
//! and is then installed offline (`Fetched`) whatever its format.

pub mod flags;
pub mod poetry;
pub mod pylock;
pub mod requirements;
pub mod tools;
pub mod uv_lock;

use crate::context::ContextInfo;
use crate::context::interpreter::Interpreter;
use crate::context::pylock::LockedPackage;
use crate::context::uv_lock::UvLock;
use crate::spec::{self, LockKind, Variant};

use super::{PipOptions, Toolchain};
use crate::plan::shell::quote;

/// Where a group's context files are mounted (read-only) in its install step.
pub const REQ_MOUNT: &str = "/kiln/req";
/// Where an export step writes the install's input, and where the install reads it.
pub const EXPORT_MOUNT: &str = "/kiln/export";
/// uv lives in its own venv in the builder, on PATH for every step that uses it.
pub const UV_HOME: &str = "/opt/kiln-uv";
/// Poetry lives in its own venv in the builder, for `poetry.lock` groups.
pub const POETRY_HOME: &str = "/opt/kiln-poetry";

/// `path` (context-relative, `""` for the root) as the install step sees it.
pub fn in_mount(path: &str) -> String {
    match path {
        "" => REQ_MOUNT.to_string(),
        p => format!("{REQ_MOUNT}/{p}"),
    }
}

/// A group's install in its step, as data.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Recipe {
    /// The tool that decides what is installed (`uv`, `pip`, `poetry`): the step is named
    /// after it (`poetry install: main`), whichever installer runs the command.
    pub tool: &'static str,
    /// The context files the step reads, mounted at `REQ_MOUNT` from a source that holds
    /// only them: only these invalidate it. Empty: no context file is mounted.
    pub reads: Vec<String>,
    /// Files kiln writes for the step instead, mounted at `REQ_MOUNT`: (name, content).
    /// The installer reads these, never the context files they were read from.
    pub writes: Vec<(String, String)>,
    /// Context files kiln should have read for this recipe and was not given (the context
    /// was not read): the step fails, saying so; `plan::compile` refuses before that.
    pub unread: Vec<String>,
    /// A step before the install that turns those files into its input (written to
    /// `EXPORT_MOUNT`, which the install then reads instead of the files).
    pub export: Option<Export>,
    /// The install: one shell command (several lines at most), paths as mounted.
    pub command: String,
    pub cache: Cache,
}

/// A step that prepares an install's input from the group's context files.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Export {
    /// What the step is called in progress output (`uv export`).
    pub name: &'static str,
    /// Its shell command, run with the files at `REQ_MOUNT`; writes into `EXPORT_MOUNT`.
    pub command: String,
    pub cache: Cache,
}

/// The package cache a command uses (a cache mount, scoped to the base).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cache {
    Pip,
    Uv,
    Poetry,
}

/// A lock whose every file the engine can fetch and check by sha256 itself: what it locks,
/// and the Python the spec or the project asks for (`major.minor`), for a plan made
/// without reading the base's interpreter.
pub struct Fetchable<'c> {
    pub python: Option<String>,
    locked: Locked<'c>,
}

enum Locked<'c> {
    /// Each package with its marker (a PEP 751 lock).
    Packages(&'c [LockedPackage]),
    /// A uv lock's graph, and the extras and dependency groups the group installs.
    Graph {
        lock: &'c UvLock,
        extras: Vec<String>,
        groups: Vec<String>,
    },
}

impl<'c> Fetchable<'c> {
    /// A PEP 751 lock's packages.
    pub fn packages(python: Option<String>, packages: &'c [LockedPackage]) -> Self {
        Fetchable {
            python,
            locked: Locked::Packages(packages),
        }
    }

    /// What a uv lock installs for some `extras` and dependency `groups`.
    pub fn graph(
        python: Option<String>,
        lock: &'c UvLock,
        (extras, groups): (Vec<String>, Vec<String>),
    ) -> Self {
        Fetchable {
            python,
            locked: Locked::Graph {
                lock,
                extras,
                groups,
            },
        }
    }

    /// The packages installed on `target`, their markers decided (none is kept). Errors:
    /// a marker kiln cannot evaluate, or a lock that does not lead where it says.
    pub fn select(&self, target: &Interpreter) -> Result<Vec<LockedPackage>, String> {
        match &self.locked {
            Locked::Packages(packages) => {
                let env = target.marker_environment()?;
                let mut out = vec![];
                for p in packages.iter() {
                    if let Some(m) = &p.marker {
                        let tree = m
                            .parse::<pep508_rs::MarkerTree>()
                            .map_err(|e| format!("package `{}`: marker `{m}`: {e}", p.name))?;
                        if !tree.evaluate(&env, &[]) {
                            continue;
                        }
                    }
                    out.push(LockedPackage {
                        marker: None,
                        ..p.clone()
                    });
                }
                Ok(out)
            }
            Locked::Graph {
                lock,
                extras,
                groups,
            } => lock.select(extras, groups, target),
        }
    }

    /// Every marker the choice reads: (the package it decides on, the marker).
    pub fn markers(&self) -> Vec<(String, String)> {
        match &self.locked {
            Locked::Packages(packages) => packages
                .iter()
                .filter_map(|p| Some((p.name.clone(), p.marker.clone()?)))
                .collect(),
            Locked::Graph { lock, .. } => lock.markers.clone(),
        }
    }
}

/// What `kiln lock` does for one group (run by `lock::run`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockAction {
    /// Run `uv ARGS` in `dir`; the lock it makes is written to `output` (context-relative)
    /// by kiln, never by uv.
    Uv {
        args: Vec<String>,
        dir: LockDir,
        /// Files written to the private directory before uv runs: (name, content).
        inputs: Vec<(String, String)>,
        /// Groups installed below this one: their locks' pins are written to
        /// `BELOW_TXT`, which `args` name as constraints.
        below: Vec<String>,
        output: String,
    },
    /// Already a PEP 751 lock: only read it back.
    Check { lock: String },
    /// Not lockable by kiln: why, and what to do.
    Skip { why: String, help: String },
}

/// Where uv runs for `kiln lock`, and where the lock it makes is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockDir {
    /// kiln lock's private directory (the inputs kiln wrote, and a copy of the existing
    /// lock, whose pins uv keeps): uv writes the lock there, under the output's name.
    Private,
    /// The context directory (a uv project's): uv prints the lock.
    Context,
}

/// The constraints file `kiln lock` writes from the locks of the groups below one.
pub const BELOW_TXT: &str = "below.txt";

/// What the `kiln lock` command line asks of every group.
#[derive(Clone, Debug, Default)]
pub struct LockRequest {
    /// Ignore the pins of existing locks (uv's `--upgrade`).
    pub upgrade: bool,
    /// The command that remakes the locks, for the lock's header
    /// (uv's `--custom-compile-command`).
    pub command: String,
}

/// `uv pip install` of exactly a PEP 751 lock (`lock`, a path as the step sees it) into
/// the venv of `python`, resolving nothing. uv reads a `-r` file named `pylock.*.toml` as
/// its `--pylock` input and, unless its `pylock` preview feature is on, warns on every
/// install that the option is experimental (uv 0.9.7: "Pass `--preview-features pylock`
/// to disable this warning"). `UV_PREVIEW_FEATURES=pylock`, for this one command, turns
/// that feature on, which uv reads for that warning alone (`uv pip install`/`sync`); the
/// variable rather than the flag, because a `python.uv_version` from before uv's preview
/// features ignores a variable it does not know where it would refuse the flag.
pub fn uv_install_pylock(python: &str, lock: &str) -> String {
    format!(
        "UV_PREVIEW_FEATURES=pylock uv pip install --python {} -r {}",
        quote(python),
        quote(lock)
    )
}

/// The lock file kiln writes for a group (PEP 751: `pylock.<name>.toml`).
pub fn lock_name(group: &str) -> String {
    format!("pylock.{group}.toml")
}

/// The install of `source` for variant `v`, with `toolchain` and `pip`, as its step runs it.
pub fn recipe(
    source: &spec::GroupSource,
    v: &Variant,
    ctx: &ContextInfo,
    (toolchain, pip): (&Toolchain, &PipOptions),
) -> Recipe {
    match source {
        spec::GroupSource::Requirements {
            files,
            packages,
            require_hashes,
        } => requirements::Requirements::new(files, packages, *require_hashes, v, ctx)
            .recipe(toolchain, pip),
        spec::GroupSource::Lock(lock) => match lock.kind {
            LockKind::Uv => uv_lock::recipe(lock, ctx, toolchain),
            LockKind::Poetry => poetry::recipe(lock, toolchain),
            LockKind::Pylock => pylock::recipe(lock, toolchain),
        },
    }
}

/// The locked files of `source`, when the engine can fetch every one by its digest for
/// variant `v` (its interpreter known); `None`: the group installs in its step.
pub fn fetchable<'c>(
    source: &spec::GroupSource,
    v: &Variant,
    ctx: &'c ContextInfo,
) -> Option<Fetchable<'c>> {
    match source {
        spec::GroupSource::Lock(lock) => match lock.kind {
            LockKind::Pylock => pylock::fetchable(lock, v, ctx),
            LockKind::Uv => uv_lock::fetchable(lock, v, ctx),
            LockKind::Poetry => None,
        },
        spec::GroupSource::Requirements { .. } => None,
    }
}

/// What `kiln lock` does for `group`, installed by `users` (the variants that install it,
/// the first one's options win), with notes for the report.
pub fn lock_action(
    group: &spec::Group,
    users: &[&Variant],
    ctx: &ContextInfo,
    req: &LockRequest,
) -> (LockAction, Vec<String>) {
    match &group.source {
        spec::GroupSource::Requirements {
            files, packages, ..
        } => requirements::lock(
            (&group.name.v, &lock_name(&group.name.v)),
            (files, packages),
            users,
            ctx,
            req,
        ),
        spec::GroupSource::Lock(spec::Lock {
            path,
            from: Some(from),
            ..
        }) => requirements::lock(
            (&group.name.v, &path.v),
            (&from.files, &from.packages),
            users,
            ctx,
            req,
        ),
        spec::GroupSource::Lock(lock) => match lock.kind {
            LockKind::Uv => uv_lock::lock(&group.name.v, lock, users, req),
            LockKind::Poetry => poetry::lock(lock),
            LockKind::Pylock => pylock::lock(lock),
        },
    }
}

/// The variants of `users` that install with pip: a group uv installs needs uv.
fn pip_users(users: &[&Variant]) -> Vec<String> {
    users
        .iter()
        .filter(|v| v.python.installer == spec::Installer::Pip)
        .map(|v| v.name.v.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Loc;
    use crate::spec::{Installer, Lock, S};
    use std::path::Path;
    use std::process::{Command, Output};

    /// A pure wheel `kiln_probe` 1.0 in `dir`; its sha256.
    fn probe_wheel(dir: &Path) -> String {
        let code = r#"
import base64, hashlib, sys, zipfile
name = "kiln_probe"
files = {f"{name}/__init__.py": b"X = 1\n",
         f"{name}-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: kiln-probe\nVersion: 1.0\n",
         f"{name}-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: kiln-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
def digest(d):
    return base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
record = "".join(f"{p},sha256={digest(d)},{len(d)}\n" for p, d in files.items())
files[f"{name}-1.0.dist-info/RECORD"] = (record + f"{name}-1.0.dist-info/RECORD,,\n").encode()
path = sys.argv[1] + "/kiln_probe-1.0-py3-none-any.whl"
with zipfile.ZipFile(path, "w") as z:
    for p, d in files.items():
        z.writestr(p, d)
print(hashlib.sha256(open(path, "rb").read()).hexdigest())
"#;
        let out = Command::new("python3")
            .args(["-c", code, dir.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn sh(script: &str, cache: &Path) -> Output {
        Command::new("sh")
            .args(["-c", script])
            .env("UV_CACHE_DIR", cache)
            .env_remove("UV_PREVIEW")
            .env_remove("UV_PREVIEW_FEATURES")
            .output()
            .unwrap()
    }

    /// The install command of both recipes that hand uv a PEP 751 lock (a `pylock.toml`
    /// group installed in its step, a `uv.lock` group's export), run by a real `sh` and
    /// the uv on `PATH` (required with `KILN_REQUIRE_UV`), the mounts replaced by a
    /// directory: the lock's package is installed, and uv says nothing about `--pylock`
    /// being experimental, which the same command without `UV_PREVIEW_FEATURES` does say.
    #[test]
    fn uv_installs_a_pylock_without_the_experimental_warning() {
        if Command::new("uv").arg("--version").output().is_err() {
            assert!(
                std::env::var_os("KILN_REQUIRE_UV").is_none(),
                "KILN_REQUIRE_UV is set and uv is not on PATH"
            );
            eprintln!("SKIPPED: uv is not on PATH");
            return;
        }
        let root = std::env::temp_dir().join(format!("kiln-pylock-install-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let sha = probe_wheel(&root);
        let lock_text = format!(
            "lock-version = \"1.0\"\ncreated-by = \"kiln test\"\nrequires-python = \">=3.8\"\n\n\
             [[packages]]\nname = \"kiln-probe\"\nversion = \"1.0\"\n\
             wheels = [{{ path = \"kiln_probe-1.0-py3-none-any.whl\", hashes = {{ sha256 = \"{sha}\" }} }}]\n"
        );
        let lock = |path: &str| Lock {
            path: S::new(path.to_string(), Loc::default()),
            kind: if path.ends_with("uv.lock") {
                LockKind::Uv
            } else {
                LockKind::Pylock
            },
            extras: vec![],
            groups: vec![],
            from: None,
        };
        let dir = root.to_str().unwrap();
        for (name, mount, file) in [
            ("pylock.toml group", REQ_MOUNT, "pylock.core.toml"),
            ("uv.lock group", EXPORT_MOUNT, "pylock.toml"),
        ] {
            let venv = root.join(name.replace(' ', "-"));
            let toolchain = Toolchain {
                installer: Installer::Uv,
                uv_version: "0.9.7".into(),
                venv: venv.to_str().unwrap().into(),
                poetry: None,
            };
            let recipe = match mount {
                REQ_MOUNT => pylock::recipe(&lock(file), &toolchain),
                _ => uv_lock::recipe(&lock("uv.lock"), &ContextInfo::default(), &toolchain),
            };
            std::fs::write(root.join(file), &lock_text).unwrap();
            let command = recipe.command.replace(mount, dir);
            assert!(
                command.contains(&format!("-r {dir}/{file}")),
                "{name}: {command}"
            );
            let made = sh(
                &format!("python3 -m venv --without-pip {}", venv.display()),
                &root,
            );
            assert!(
                made.status.success(),
                "{}",
                String::from_utf8_lossy(&made.stderr)
            );
            let out = sh(&command, &root.join("cache"));
            let said = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(out.status.success(), "{name}: {command}: {said}");
            assert!(said.contains("+ kiln-probe==1.0"), "{name}: {said}");
            assert!(!said.contains("experimental"), "{name}: {said}");
            // Without the variable, this uv does warn: the test can tell the difference.
            let bare = command.replace("UV_PREVIEW_FEATURES=pylock ", "");
            let out = sh(&format!("{bare} --reinstall"), &root.join("cache"));
            let said = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(out.status.success(), "{name}: {bare}: {said}");
            assert!(
                said.contains("The `--pylock` option is experimental"),
                "{name}: {said}"
            );
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
