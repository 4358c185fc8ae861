//! What `kiln init` finds in a project directory: the dependency source (`source`), the
//! Python, the app, its command, the sdists and what verifies the image, each with why.

use std::path::{Path, PathBuf};

use super::source::{self, Located};
use super::{App, Cmd, Detected, Error, Why};
use crate::context::pyproject::{self, Metadata};

/// The Python written when the project names none (the newest CPython whose wheels most
/// packages have).
pub const DEFAULT_PYTHON: &str = "3.12";

/// The CPython releases `requires-python` is held against, oldest first: those with a
/// python:X.Y-slim image and upstream support.
const PYTHONS: &[&str] = &["3.10", "3.11", "3.12", "3.13", "3.14"];

/// How many entries of one directory `kiln init` looks at.
const MAX_ENTRIES: usize = 10_000;

/// A project directory, read as a build context is: regular files inside it, each up to
/// `context::MAX_FILE_BYTES`, UTF-8.
pub struct Dir {
    root: PathBuf,
    /// The directory as the user named it, for messages.
    shown: String,
}

impl Dir {
    /// Errors: not a directory kiln can read.
    pub fn open(path: &Path) -> Result<Dir, Error> {
        let shown = path.display().to_string();
        let root = std::fs::canonicalize(path)
            .ok()
            .filter(|p| p.is_dir())
            .ok_or_else(|| {
                Error::new(
                    &shown,
                    "not a directory kiln can read",
                    "give kiln init the project's directory (where pyproject.toml or the lock is)",
                )
            })?;
        Ok(Dir { root, shown })
    }

    /// `rel` as the user would write it (`examples/init-uv/uv.lock`).
    pub fn shown(&self, rel: &str) -> String {
        match (self.shown.as_str(), rel) {
            (s, "") => s.to_string(),
            (".", r) => r.to_string(),
            (s, r) => format!("{}/{r}", s.trim_end_matches('/')),
        }
    }

    /// A file's text; `None` when there is no such regular file inside the directory (a
    /// link out of it counts as none, as in a build context). Errors: over the size limit,
    /// unreadable, not UTF-8.
    pub fn read(&self, rel: &str) -> Result<Option<String>, Error> {
        let Ok(full) = std::fs::canonicalize(self.root.join(rel)) else {
            return Ok(None);
        };
        if !full.starts_with(&self.root) || !full.is_file() {
            return Ok(None);
        }
        let limit = crate::context::MAX_FILE_BYTES;
        let mut bytes = vec![];
        std::fs::File::open(&full)
            .and_then(|f| {
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(f, limit as u64 + 1),
                    &mut bytes,
                )
            })
            .map_err(|e| {
                Error::new(
                    self.shown(rel),
                    format!("cannot read it: {e}"),
                    "make it readable",
                )
            })?;
        if bytes.len() > limit {
            return Err(Error::new(
                self.shown(rel),
                format!(
                    "it is over {} MiB, more than kiln reads of one file in a build context",
                    limit >> 20
                ),
                "a build would refuse it too: split it, or leave it out of the project",
            ));
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::new(self.shown(rel), "it is not UTF-8 text", "save it as UTF-8"))
    }

    /// A file that must be there. Errors: as `read`, or missing.
    pub fn require(&self, rel: &str) -> Result<String, Error> {
        self.read(rel)?.ok_or_else(|| {
            Error::new(
                self.shown(rel),
                "it is missing or not a regular file",
                "check the project",
            )
        })
    }

    /// The entries of a subdirectory (`""`: the directory itself) as (name, is a
    /// directory), in name order; none when it is not there. Names that are not UTF-8 and
    /// links that leave the directory are skipped.
    pub fn entries(&self, rel: &str) -> Vec<(String, bool)> {
        let Ok(read) = std::fs::read_dir(self.root.join(rel)) else {
            return vec![];
        };
        let mut out: Vec<(String, bool)> = read
            .take(MAX_ENTRIES)
            .filter_map(|e| {
                let e = e.ok()?;
                let name = e.file_name().into_string().ok()?;
                let full = std::fs::canonicalize(e.path()).ok()?;
                full.starts_with(&self.root).then(|| (name, full.is_dir()))
            })
            .collect();
        out.sort();
        out
    }

    fn has_file(&self, rel: &str) -> bool {
        std::fs::canonicalize(self.root.join(rel))
            .is_ok_and(|p| p.starts_with(&self.root) && p.is_file())
    }

    /// The directory's own name, for a spec name when the project gives none.
    fn name(&self) -> String {
        self.root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Read the project at `path`. Errors: no dependency source, or one kiln cannot use (each
/// with its file and what to do).
pub fn detect(path: &Path) -> Result<Detected, Error> {
    let dir = Dir::open(path)?;
    let meta = match dir.read("pyproject.toml")? {
        Some(text) => Some(pyproject::metadata(&text).map_err(|e| {
            Error::new(
                dir.shown("pyproject.toml"),
                format!("not valid TOML: {e}"),
                "fix it",
            )
        })?),
        None => None,
    };
    let mut notes = vec![];
    let located = source::locate(&dir, &mut notes)?.ok_or_else(|| {
        Error::new(
            dir.shown(""),
            "no dependency source: no uv.lock, poetry.lock, pylock.toml or requirements*.txt",
            "lock the project first (`uv lock`, `poetry lock`, `uv pip compile ... -o requirements.txt`), then run kiln init again",
        )
    })?;
    let python = python(&dir, meta.as_ref(), &located)?;
    let found = source::read(&dir, &located, meta.as_ref(), &python.value)?;
    notes.extend(found.notes);
    let app = app(&dir, meta.as_ref());
    let cmd = cmd(&dir, meta.as_ref(), &app.value);
    if let App::None = app.value {
        notes.push(format!(
            "no app code found (no [build-system] in pyproject.toml, no Python package or module at the top of {}): add app.src",
            dir.shown("")
        ));
    }
    Ok(Detected {
        name: name(&dir, meta.as_ref()),
        description: meta.as_ref().and_then(|m| m.description.clone()),
        python,
        source: Why::new(located.kind(), located.kind().installer_why()),
        groups: found.groups,
        left_out: found.left_out,
        sdists: found.sdists,
        app,
        cmd,
        notes,
    })
}

/// The spec's name: the project's, else the directory's, as kiln names go (lowercase
/// letters, digits, `.`, `_`, `-`).
fn name(dir: &Dir, meta: Option<&Metadata>) -> Why<String> {
    let clean = |s: &str| -> String {
        let s: String = s
            .to_ascii_lowercase()
            .chars()
            .map(|c| match c {
                'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
                _ => '-',
            })
            .collect();
        s.trim_start_matches(['.', '_', '-'])
            .chars()
            .take(128)
            .collect()
    };
    if let Some(n) = meta
        .and_then(|m| m.name.as_deref())
        .map(clean)
        .filter(|n| !n.is_empty())
    {
        return Why::new(n, "the project's name in pyproject.toml");
    }
    match clean(&dir.name()) {
        n if !n.is_empty() => Why::new(n, "the directory's name (pyproject.toml names none)"),
        _ => Why::new("app".to_string(), "no project or directory name to take"),
    }
}

/// The Python: `.python-version`, else what requirement files were compiled for, else
/// the oldest CPython `requires-python` allows, else `DEFAULT_PYTHON`. Errors: a
/// `requires-python` no CPython kiln knows meets.
fn python(dir: &Dir, meta: Option<&Metadata>, located: &Located) -> Result<Why<String>, Error> {
    if let Some(v) = dir
        .read(".python-version")?
        .as_deref()
        .and_then(pyproject::pinned_version)
    {
        return Ok(Why::new(v, ".python-version"));
    }
    if let Located::Requirements(r) = located
        && let Some(v) = r.compiled_for()
    {
        return Ok(v);
    }
    if let Some(req) = meta.and_then(|m| m.requires_python.as_deref()) {
        let spec: pep440_rs::VersionSpecifiers = req.parse().map_err(|e| {
            Error::new(
                dir.shown("pyproject.toml"),
                format!("requires-python `{req}` is not a PEP 440 specifier set: {e}"),
                "fix it (`>=3.11`)",
            )
        })?;
        let allowed = PYTHONS.iter().find(|v| {
            v.parse::<pep440_rs::Version>()
                .is_ok_and(|v| spec.contains(&v))
        });
        return match allowed {
            Some(v) => Ok(Why::new(
                v.to_string(),
                format!("the oldest CPython pyproject.toml's requires-python `{req}` allows"),
            )),
            None => Err(Error::new(
                dir.shown("pyproject.toml"),
                format!(
                    "requires-python `{req}` allows none of CPython {}",
                    PYTHONS.join(", ")
                ),
                "write the version to build for in .python-version (3.12)",
            )),
        };
    }
    Ok(Why::new(
        DEFAULT_PYTHON.to_string(),
        "the project names no Python (.python-version, requires-python): kiln's default",
    ))
}

/// Top-level directories that are never the app's code.
const NOT_APP: &[&str] = &[
    "tests",
    "test",
    "docs",
    "doc",
    "build",
    "dist",
    "requirements",
    "scripts",
    "examples",
    "venv",
    "env",
    "node_modules",
    "site-packages",
];

/// Top-level modules that are tooling, not the app.
const NOT_APP_MODULES: &[&str] = &[
    "setup.py",
    "conftest.py",
    "noxfile.py",
    "fabfile.py",
    "tasks.py",
];

/// The app: a package (`[build-system]`) built by `app.project`, else the top-level
/// Python packages and modules copied by `app.src`.
fn app(dir: &Dir, meta: Option<&Metadata>) -> Why<App> {
    if meta.is_some_and(|m| m.package) {
        return Why::new(
            App::Project,
            "pyproject.toml has a [build-system]: the project is built as a wheel and installed into the venv (its console scripts on PATH)",
        );
    }
    let src: Vec<String> = dir
        .entries("")
        .into_iter()
        .filter(|(n, is_dir)| {
            if n.starts_with('.') || NOT_APP.contains(&n.as_str()) {
                return false;
            }
            match is_dir {
                // A package is importable only under a Python identifier.
                true => is_identifier(n) && dir.has_file(&format!("{n}/__init__.py")),
                false => n.ends_with(".py") && !NOT_APP_MODULES.contains(&n.as_str()),
            }
        })
        .map(|(n, _)| n)
        .collect();
    if src.is_empty() {
        return Why::new(App::None, "no build system and no top-level package");
    }
    let why = match meta {
        Some(_) => {
            "pyproject.toml has no [build-system] (not a package): the code is copied as it is"
        }
        None => {
            "no pyproject.toml: the top-level Python packages and modules are copied as they are"
        }
    };
    Why::new(App::Src(src), why)
}

fn is_identifier(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The command: the only console script; for copied code, the only package with a
/// `__main__.py`; else a list to choose from.
fn cmd(dir: &Dir, meta: Option<&Metadata>, app: &App) -> Cmd {
    match app {
        App::Project => {
            let scripts: Vec<String> = meta
                .map(|m| m.scripts.keys().cloned().collect())
                .unwrap_or_default();
            // A name the shell reads as one word (verify runs `NAME --help` through sh).
            let plain = |s: &str| {
                !s.starts_with('-')
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            };
            match scripts.as_slice() {
                [] => Cmd::None,
                [one] if plain(one) => Cmd::Script(one.clone()),
                _ => Cmd::Choose(scripts),
            }
        }
        App::Src(src) => {
            let mains: Vec<&String> = src
                .iter()
                .filter(|s| dir.has_file(&format!("{s}/__main__.py")))
                .collect();
            match mains.as_slice() {
                [one] => Cmd::Module(one.to_string()),
                [] => Cmd::None,
                many => Cmd::Choose(many.iter().map(|m| format!("python -m {m}")).collect()),
            }
        }
        App::None => Cmd::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::source::{GroupValue, Kind};

    fn example(name: &str) -> Detected {
        detect(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples")
                .join(name),
        )
        .unwrap()
    }

    /// A fresh project directory holding `files` (relative path, text).
    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    fn lock(path: &str, extras: &[&str], groups: &[&str]) -> GroupValue {
        let s = |l: &[&str]| l.iter().map(|x| x.to_string()).collect();
        GroupValue::Lock {
            path: path.into(),
            extras: s(extras),
            groups: s(groups),
        }
    }

    #[test]
    fn a_uv_project() {
        let d = example("init-uv");
        assert_eq!(d.source.value, Kind::Uv);
        assert_eq!(d.python, Why::new("3.11".to_string(), ".python-version"));
        assert_eq!(d.name.value, "pgver");
        let groups: Vec<(&str, &GroupValue)> = d
            .groups
            .iter()
            .map(|g| (g.name.as_str(), &g.value))
            .collect();
        assert_eq!(
            groups,
            [
                ("core", &lock("uv.lock", &[], &[])),
                ("optional", &lock("uv.lock", &["table"], &[]))
            ]
        );
        assert_eq!(d.left_out, ["dependency group dev (development only)"]);
        let [psycopg2] = d.sdists.as_slice() else {
            panic!("{:?}", d.sdists)
        };
        assert_eq!(
            (psycopg2.name.as_str(), psycopg2.version.as_deref()),
            ("psycopg2", Some("2.9.13"))
        );
        assert!(psycopg2.from_lock && !psycopg2.full_only);
        assert_eq!(psycopg2.known.map(|k| k.name), Some("psycopg2"));
        assert_eq!(d.app.value, App::Project);
        assert_eq!(d.cmd, Cmd::Script("pgver".into()));
        assert!(d.notes.is_empty(), "{:?}", d.notes);
    }

    #[test]
    fn a_poetry_project() {
        let d = example("init-poetry");
        assert_eq!(d.source.value, Kind::Poetry);
        let values: Vec<&GroupValue> = d.groups.iter().map(|g| &g.value).collect();
        assert_eq!(
            values,
            [
                &lock("poetry.lock", &[], &[]),
                &lock("poetry.lock", &[], &["report"])
            ]
        );
        assert!(
            d.groups[1].why.contains("optional: report"),
            "{}",
            d.groups[1].why
        );
        assert_eq!(d.left_out, ["Poetry group dev (development only)"]);
        assert_eq!(
            d.sdists.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["psycopg2"]
        );
        assert_eq!(d.cmd, Cmd::Script("pgver".into()));
    }

    #[test]
    fn a_pip_tools_project() {
        let d = example("init-piptools");
        assert_eq!(d.source.value, Kind::Requirements);
        assert_eq!(d.python.value, "3.11");
        assert!(
            d.python.why.contains("compiled for Python 3.11"),
            "{}",
            d.python.why
        );
        assert_eq!(d.groups.len(), 1);
        assert_eq!(
            d.groups[0].value,
            GroupValue::Files(vec!["requirements/prod.txt".into()])
        );
        assert!(d.groups[0].why.contains("includes requirements/base.txt"));
        assert_eq!(d.left_out, ["requirements/dev.txt (development only)"]);
        let [p] = d.sdists.as_slice() else {
            panic!("{:?}", d.sdists)
        };
        assert_eq!(
            (p.name.as_str(), p.file.as_str(), p.from_lock),
            ("psycopg2", "requirements/base.txt", false)
        );
        assert_eq!(d.app.value, App::Src(vec!["pgver".into()]));
        assert_eq!(d.cmd, Cmd::Module("pgver".into()));
    }

    /// Several entry points: the main one first, further ones a group each, development
    /// and main-named ones left out; a package kiln knows has no Linux wheel only in a
    /// further file is the full variant's.
    #[test]
    fn requirement_entry_points() {
        let dir = project(&[
            (
                "requirements.txt",
                "-r requirements/base.txt\nsix==1.17.0\n",
            ),
            (
                "requirements/base.txt",
                "-c ../constraints.txt\nidna==3.10\n",
            ),
            ("constraints.txt", "idna<4\n"),
            (
                "requirements-ml.txt",
                "numpy==2.2.6\nmysqlclient==2.2.7 ; sys_platform == 'linux'\nuwsgi==2.0.28 ; sys_platform == 'win32'\n",
            ),
            (
                "requirements-dev.txt",
                "-r requirements.txt\npytest==8.3.5\n",
            ),
            ("requirements/common.txt", "six\n"),
            ("app.py", "print('hi')\n"),
            ("setup.py", ""),
            ("tests/__init__.py", ""),
        ]);
        let d = detect(dir.path()).unwrap();
        let groups: Vec<(&str, &GroupValue)> = d
            .groups
            .iter()
            .map(|g| (g.name.as_str(), &g.value))
            .collect();
        assert_eq!(
            groups,
            [
                ("core", &GroupValue::Files(vec!["requirements.txt".into()])),
                ("ml", &GroupValue::Files(vec!["requirements-ml.txt".into()])),
            ]
        );
        assert_eq!(
            d.left_out,
            [
                "requirements-dev.txt (development only)",
                "requirements/common.txt (named as a main set, and requirements.txt is the entry point)",
            ]
        );
        // mysqlclient's marker holds on Linux, uwsgi's does not; numpy has wheels.
        let [m] = d.sdists.as_slice() else {
            panic!("{:?}", d.sdists)
        };
        assert_eq!((m.name.as_str(), m.full_only), ("mysqlclient", true));
        assert_eq!(
            d.python,
            Why::new(DEFAULT_PYTHON.to_string(), d.python.why.clone())
        );
        assert_eq!(d.app.value, App::Src(vec!["app.py".into()]));
        assert_eq!(d.cmd, Cmd::None);
    }

    #[test]
    fn the_python_version() {
        let with = |files: &[(&str, &str)]| detect(project(files).path());
        let req = ("requirements.txt", "six==1.17.0\n");
        let pyproject = |r: &str| format!("[project]\nname = \"x\"\nrequires-python = \"{r}\"\n");
        // requires-python: the oldest CPython it allows, as kiln check reads it (3.11 is
        // 3.11.0, outside >=3.11.4).
        let p = pyproject(">=3.11.4");
        assert_eq!(
            with(&[req, ("pyproject.toml", &p)]).unwrap().python.value,
            "3.12"
        );
        let p = pyproject(">=3.9,<3.12");
        assert_eq!(
            with(&[req, ("pyproject.toml", &p)]).unwrap().python.value,
            "3.10"
        );
        // .python-version first.
        assert_eq!(
            with(&[req, ("pyproject.toml", &p), (".python-version", "3.11.7\n")])
                .unwrap()
                .python,
            Why::new("3.11".to_string(), ".python-version")
        );
        // pip-compile's header.
        let compiled =
            "#\n# This file is autogenerated by pip-compile with Python 3.13\n#\nsix==1.17.0\n";
        assert_eq!(
            with(&[("requirements.txt", compiled)])
                .unwrap()
                .python
                .value,
            "3.13"
        );
        // None that kiln knows: an error naming the file.
        let p = pyproject("<3.8");
        let e = with(&[req, ("pyproject.toml", &p)]).unwrap_err();
        assert!(
            e.path.ends_with("pyproject.toml") && e.message.contains("allows none"),
            "{e}"
        );
    }

    /// A PEP 751 lock with a sdist kiln has no entry for: build-essential, said so; a lock
    /// for development left out; the project's own entry is the app.
    #[test]
    fn pylock_with_an_unknown_sdist() {
        let sha = "0".repeat(64);
        let pkg = |name: &str, file: &str| {
            format!(
                "[[packages]]\nname = \"{name}\"\nversion = \"1.0\"\nsdist = {{ url = \"https://files.pythonhosted.org/{file}\", hashes = {{ sha256 = \"{sha}\" }} }}\n"
            )
        };
        let lock = format!(
            "lock-version = \"1.0\"\n{}[[packages]]\nname = \"app\"\ndirectory = {{ path = \"./\" }}\n",
            pkg("oddity", "oddity-1.0.tar.gz")
        );
        let ml = pkg("psycopg2", "psycopg2-2.9.13.tar.gz");
        let dir = project(&[
            ("pylock.toml", &lock),
            ("pylock.ml.toml", &ml),
            ("pylock.test.toml", &pkg("pytest", "pytest-8.tar.gz")),
            (
                "pyproject.toml",
                "[project]\nname = \"app\"\n[project.scripts]\na = \"app:a\"\nb = \"app:b\"\n[build-system]\nrequires = []\n",
            ),
        ]);
        let d = detect(dir.path()).unwrap();
        assert_eq!(d.source.value, Kind::Pylock);
        let names: Vec<&str> = d.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["core", "ml"]);
        assert_eq!(d.left_out, ["pylock.test.toml (development only)"]);
        let s: Vec<(&str, bool, bool)> = d
            .sdists
            .iter()
            .map(|s| (s.name.as_str(), s.known.is_some(), s.full_only))
            .collect();
        assert_eq!(s, [("oddity", false, false), ("psycopg2", true, true)]);
        assert_eq!(d.cmd, Cmd::Choose(vec!["a".into(), "b".into()]));

        // Without a [build-system] the project's own entry is no app: refused.
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "[project]\nname = \"app\"\n",
        )
        .unwrap();
        let e = detect(dir.path()).unwrap_err();
        assert!(
            e.message.contains("local directory `./`") && e.help.contains("--no-emit-project"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_file_and_what_to_do() {
        let e = detect(project(&[("app.py", "")]).path()).unwrap_err();
        assert!(
            e.message.contains("no dependency source") && e.help.contains("uv lock"),
            "{e}"
        );
        let e = detect(project(&[("uv.lock", "version = 1\n")]).path()).unwrap_err();
        assert!(
            e.path.ends_with("pyproject.toml") && e.message.contains("no pyproject.toml"),
            "{e}"
        );
        let e = detect(project(&[("requirements.txt", "-r missing.txt\n")]).path()).unwrap_err();
        assert!(
            e.path == "missing.txt" && e.message.contains("missing"),
            "{e}"
        );
        let e = detect(
            project(&[
                ("poetry.lock", "[[package]]\nname = \"x\"\n"),
                ("pyproject.toml", ""),
            ])
            .path(),
        )
        .unwrap_err();
        assert!(
            e.path.ends_with("poetry.lock") && e.help.contains("poetry lock"),
            "{e}"
        );
        let big = "# x\n".repeat(300_000);
        let e = detect(project(&[("requirements.txt", &big)]).path()).unwrap_err();
        assert!(e.message.contains("over 1 MiB"), "{e}");
        let e = detect(
            project(&[(
                "requirements.txt",
                "--index-url https://u:secret@example.com/simple\n",
            )])
            .path(),
        )
        .unwrap_err();
        assert!(
            e.path == "requirements.txt:1" && !e.to_string().contains("u:secret"),
            "{e}"
        );
    }

    /// Several sources: the first in kiln's order is read, the others named in a note.
    #[test]
    fn one_source_and_a_note_for_the_others() {
        let d = example("init-uv");
        assert!(d.notes.is_empty());
        let big = "# x\n".repeat(300_000);
        let dir = project(&[
            ("uv.lock", include_str!("../../examples/init-uv/uv.lock")),
            (
                "pyproject.toml",
                include_str!("../../examples/init-uv/pyproject.toml"),
            ),
            ("requirements.txt", "psycopg2==2.9.13\n"),
            // Not the source, so not read: its size is no error here.
            ("requirements-dev.txt", &big),
        ]);
        let d = detect(dir.path()).unwrap();
        assert_eq!(d.source.value, Kind::Uv);
        assert_eq!(
            d.notes,
            [
                "requirements-dev.txt, requirements.txt not read: uv.lock comes first (uv.lock, poetry.lock, pylock*.toml, requirement files)"
            ]
        );
    }

    #[test]
    fn dev_words() {
        for dev in [
            "dev",
            "test",
            "requirements-dev",
            "pylock.tests",
            "lint_tools",
            "Docs",
        ] {
            assert!(source::is_dev(dev), "{dev}");
        }
        for not in [
            "pytest-plugins",
            "ml",
            "gpu",
            "requirements",
            "devices",
            "table",
        ] {
            assert!(!source::is_dev(not), "{not}");
        }
    }
}
