//! The dependency source of a project, as `kiln init` finds it: which file (`uv.lock`,
//! `poetry.lock`, `pylock*.toml`, pip-tools style requirement files, in that order), the
//! groups the spec installs from it (the first for the minimal variant, the rest for the
//! full one; development groups left out), and the packages installed from a sdist.
//!
//! Which packages are sdists: for a lock, the file `pylock::choose` picks for CPython
//! `python` on linux/amd64 (a lock names every file, so this is what the build will
//! install). Requirement files name no files, so there a package counts only when
//! `sysdeps` says PyPI has no Linux wheel of it.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use pep508_rs::{Requirement, VerbatimUrl, VersionOrUrl};

use super::detect::Dir;
use super::{Error, Why, poetry_lock};
use crate::context::interpreter::Interpreter;
use crate::context::pylock::{self, Chosen, LockedPackage, normalize};
use crate::context::pyproject::Metadata;
use crate::context::{requirements, uv_lock};
use crate::sysdeps;

/// The architecture whose wheels decide what is a sdist (the build's platform by default
/// on most machines; a package without an arm64 wheel shows at build time, with a hint).
pub const ARCH: &str = "amd64";

/// At most this many requirement files are read (as `context::MAX_FILES` for a spec).
const MAX_REQUIREMENT_FILES: usize = crate::context::MAX_FILES;

/// The kind of dependency source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Uv,
    Poetry,
    Pylock,
    Requirements,
}

impl Kind {
    /// What `python.installer` the source needs or suits, and why.
    pub fn installer_why(self) -> &'static str {
        match self {
            Kind::Uv => "uv installs a uv.lock",
            Kind::Pylock => "uv installs a PEP 751 lock",
            Kind::Poetry => "kiln exports each Poetry group with Poetry, then uv installs it",
            Kind::Requirements => {
                "uv installs the requirement files (pip would too, hashes checked alike)"
            }
        }
    }
}

/// One requirement group of the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub value: GroupValue,
    pub why: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupValue {
    /// `{lock: PATH, extras: [...], groups: [...]}`.
    Lock {
        path: String,
        extras: Vec<String>,
        groups: Vec<String>,
    },
    /// `[FILE, ...]`: requirement files.
    Files(Vec<String>),
}

/// A package the image installs from its sdist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdistUse {
    /// PEP 503 normalised.
    pub name: String,
    pub version: Option<String>,
    /// The file that names it (`uv.lock`, `requirements/base.txt`).
    pub file: String,
    /// Only the full variant installs it (not the first group).
    pub full_only: bool,
    /// kiln's entry for it, if it has one.
    pub known: Option<&'static sysdeps::Sdist>,
    /// The lock has no wheel for the target (`true`), or (requirement files) `sysdeps`
    /// says PyPI has no Linux wheel of it.
    pub from_lock: bool,
}

/// What a source gives the spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub groups: Vec<Group>,
    pub left_out: Vec<String>,
    pub sdists: Vec<SdistUse>,
    pub notes: Vec<String>,
}

/// Where the source is, before it is read in full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Located {
    Uv,
    Poetry,
    /// The `pylock.toml` / `pylock.NAME.toml` files, in name order.
    Pylock(Vec<String>),
    Requirements(RequirementFiles),
}

impl Located {
    pub fn kind(&self) -> Kind {
        match self {
            Located::Uv => Kind::Uv,
            Located::Poetry => Kind::Poetry,
            Located::Pylock(_) => Kind::Pylock,
            Located::Requirements(_) => Kind::Requirements,
        }
    }
}

/// A group name's or file stem's words (`requirements-dev` -> `requirements`, `dev`).
fn words(name: &str) -> impl Iterator<Item = String> + '_ {
    name.split(['-', '_', '.'])
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase())
}

/// Words that mark a group, extra or file as for development only: never in an image.
const DEV_WORDS: &[&str] = &[
    "dev",
    "develop",
    "development",
    "test",
    "tests",
    "testing",
    "lint",
    "linting",
    "docs",
    "doc",
    "typing",
    "types",
    "mypy",
    "style",
    "format",
    "ci",
    "qa",
    "local",
    "debug",
    "bench",
    "benchmark",
    "benchmarks",
];

/// Whether a group, extra or file is for development only (one of its words says so).
pub fn is_dev(name: &str) -> bool {
    words(name).any(|w| DEV_WORDS.contains(&w.as_str()))
}

/// Words that name a requirement file or lock as the main one, best first.
const MAIN_WORDS: &[&str] = &[
    "prod",
    "production",
    "main",
    "runtime",
    "deploy",
    "base",
    "core",
    "common",
];

/// A requirement file's or lock's own words: its name without directory, extension and
/// the kind's word (`requirements/prod.txt` -> `prod`, `pylock.ml.toml` -> `ml`,
/// `requirements.txt` -> none).
fn stem_words(file: &str) -> Vec<String> {
    let name = file.rsplit('/').next().unwrap_or(file);
    let stem = name
        .strip_suffix(".toml")
        .or_else(|| name.strip_suffix(".txt"))
        .unwrap_or(name);
    words(stem)
        .filter(|w| w != "requirements" && w != "pylock")
        .collect()
}

/// Which source the project has, in kiln's order of preference; the others seen become
/// notes. `None`: no dependency source.
pub fn locate(dir: &Dir, notes: &mut Vec<String>) -> Result<Option<Located>, Error> {
    let root = dir.entries("");
    let files: Vec<&str> = root
        .iter()
        .filter(|(_, is_dir)| !is_dir)
        .map(|(n, _)| n.as_str())
        .collect();
    let pylocks: Vec<String> = files
        .iter()
        .filter(|n| crate::spec::LockKind::of(n) == Ok(crate::spec::LockKind::Pylock))
        .map(|n| n.to_string())
        .collect();
    let mut found = vec![];
    if files.contains(&"uv.lock") {
        found.push(Located::Uv);
    }
    if files.contains(&"poetry.lock") {
        found.push(Located::Poetry);
    }
    if !pylocks.is_empty() {
        found.push(Located::Pylock(pylocks));
    }
    // Requirement files are read only when they are the source (a large dev file beside a
    // lock is none of init's business).
    let requirement_files = RequirementFiles::names(dir);
    let mut others = found.iter().skip(1).map(source_name).collect::<Vec<_>>();
    let first = match found.into_iter().next() {
        Some(first) => {
            if !requirement_files.is_empty() {
                others.push(requirement_files.join(", "));
            }
            Some(first)
        }
        None => RequirementFiles::find(dir, requirement_files)?.map(Located::Requirements),
    };
    if let Some(first) = &first {
        for what in others {
            notes.push(format!(
                "{what} not read: {} comes first (uv.lock, poetry.lock, pylock*.toml, requirement files)",
                source_name(first)
            ));
        }
    }
    Ok(first)
}

fn source_name(l: &Located) -> String {
    match l {
        Located::Uv => "uv.lock".into(),
        Located::Poetry => "poetry.lock".into(),
        Located::Pylock(files) => files.join(", "),
        Located::Requirements(r) => r.named.join(", "),
    }
}

/// Read the source into groups and sdists, for CPython `python` on linux/`ARCH`.
/// `project`: the project's `pyproject.toml` metadata, when it has one. Errors: a file
/// that cannot be read, a lock out of date, a requirement line kiln refuses.
pub fn read(
    dir: &Dir,
    located: &Located,
    project: Option<&Metadata>,
    python: &str,
) -> Result<Found, Error> {
    let target = Interpreter::assumed(python, ARCH).ok_or_else(|| {
        Error::new(
            dir.shown(""),
            format!("`{python}` is not a Python version kiln reads"),
            "write major.minor (3.12) in .python-version",
        )
    })?;
    match located {
        Located::Uv => uv(dir, project, &target),
        Located::Poetry => poetry(dir, project, &target),
        Located::Pylock(files) => pylocks(dir, files, project, &target),
        Located::Requirements(r) => r.read(&target),
    }
}

/// `extras` and `groups` split into what the image gets and what it leaves out.
fn split_dev(names: &[String], what: &str, left_out: &mut Vec<String>) -> Vec<String> {
    let mut keep = vec![];
    for n in names {
        if is_dev(n) {
            left_out.push(format!("{what} {n} (development only)"));
        } else {
            keep.push(n.clone());
        }
    }
    keep
}

/// The sdists `choose` picks among `packages` for `target`; `in_core`: the names the
/// minimal variant installs (`None`: these are the minimal variant's).
fn sdists_of(
    packages: &[LockedPackage],
    target: &Interpreter,
    file: &str,
    in_core: Option<&BTreeSet<String>>,
) -> Result<Vec<SdistUse>, String> {
    Ok(pylock::choose(packages, target)?
        .into_iter()
        .filter(|(_, c)| matches!(c, Chosen::Sdist(_)))
        .map(|(p, _)| SdistUse {
            name: normalize(&p.name),
            version: p.version.clone(),
            file: file.to_string(),
            full_only: in_core.is_some_and(|core| !core.contains(&normalize(&p.name))),
            known: sysdeps::sdist(&p.name),
            from_lock: true,
        })
        .collect())
}

/// The sdists of the minimal set and, of the full set, those the minimal one lacks.
fn core_and_full(
    core: &[LockedPackage],
    full: Option<&[LockedPackage]>,
    target: &Interpreter,
    file: &str,
) -> Result<Vec<SdistUse>, String> {
    let mut out = sdists_of(core, target, file, None)?;
    if let Some(full) = full {
        let names: BTreeSet<String> = core.iter().map(|p| normalize(&p.name)).collect();
        out.extend(
            sdists_of(full, target, file, Some(&names))?
                .into_iter()
                .filter(|s| s.full_only),
        );
    }
    Ok(out)
}

fn no_sdists_note(file: &str, why: &str) -> String {
    format!(
        "could not tell which packages of {file} build from a sdist ({why}): no system packages written; a build that misses one says which"
    )
}

fn uv(dir: &Dir, project: Option<&Metadata>, target: &Interpreter) -> Result<Found, Error> {
    let text = dir.require("uv.lock")?;
    let pyproject = dir.read("pyproject.toml")?.ok_or_else(|| {
        Error::new(
            dir.shown("pyproject.toml"),
            "uv.lock has no pyproject.toml beside it",
            "run kiln init in the project's directory (where pyproject.toml is)",
        )
    })?;
    let lock = uv_lock::read(&text, Some(&pyproject)).map_err(|e| {
        Error::new(
            dir.shown("uv.lock"),
            format!("kiln cannot use it: {e}"),
            "run `uv lock` in the project, then kiln init again",
        )
    })?;
    let mut found = Found::default();
    let meta = project.cloned().unwrap_or_default();
    let extras = split_dev(&meta.extras, "extra", &mut found.left_out);
    let groups = split_dev(&meta.groups, "dependency group", &mut found.left_out);
    found.groups.push(Group {
        name: "core".into(),
        value: GroupValue::Lock {
            path: "uv.lock".into(),
            extras: vec![],
            groups: vec![],
        },
        why: "uv.lock: the project's [project] dependencies".into(),
    });
    let optional = !extras.is_empty() || !groups.is_empty();
    if optional {
        found.groups.push(Group {
            name: "optional".into(),
            value: GroupValue::Lock {
                path: "uv.lock".into(),
                extras: extras.clone(),
                groups: groups.clone(),
            },
            why: format!("uv.lock: {}", selection(&extras, &groups, "extra")),
        });
    }
    if let Some(problem) = &lock.problem {
        found.notes.push(no_sdists_note("uv.lock", problem));
        return Ok(found);
    }
    let sets = lock.select(&[], &[], target).and_then(|core| {
        let full = match optional {
            true => Some(lock.select(&extras, &groups, target)?),
            false => None,
        };
        core_and_full(&core, full.as_deref(), target, "uv.lock")
    });
    match sets {
        Ok(s) => found.sdists = s,
        Err(e) => found.notes.push(no_sdists_note("uv.lock", &e)),
    }
    Ok(found)
}

/// `extras a, b and dependency groups c` (what an optional group adds).
fn selection(extras: &[String], groups: &[String], extra_word: &str) -> String {
    let mut parts = vec![];
    if !extras.is_empty() {
        parts.push(format!(
            "{extra_word}{} {}",
            if extras.len() > 1 { "s" } else { "" },
            extras.join(", ")
        ));
    }
    if !groups.is_empty() {
        parts.push(format!(
            "dependency group{} {}",
            if groups.len() > 1 { "s" } else { "" },
            groups.join(", ")
        ));
    }
    parts.join(" and ")
}

fn poetry(dir: &Dir, project: Option<&Metadata>, target: &Interpreter) -> Result<Found, Error> {
    let text = dir.require("poetry.lock")?;
    if project.is_none() {
        return Err(Error::new(
            dir.shown("pyproject.toml"),
            "poetry.lock has no pyproject.toml beside it",
            "run kiln init in the project's directory (where pyproject.toml is)",
        ));
    }
    let meta = project.cloned().unwrap_or_default();
    let packages = poetry_lock::read(&text).map_err(|e| {
        Error::new(
            dir.shown("poetry.lock"),
            format!("not a lock kiln can read: {e}"),
            "run `poetry lock` in the project, then kiln init again",
        )
    })?;
    let mut found = Found::default();
    let names: Vec<String> = meta
        .poetry_groups
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| normalize(n) != "main")
        .collect();
    let groups = split_dev(&names, "Poetry group", &mut found.left_out);
    for e in &meta.extras {
        found.left_out.push(format!(
            "extra {e} (kiln installs Poetry groups, not extras: move its packages into a group to have them)"
        ));
    }
    found.groups.push(Group {
        name: "core".into(),
        value: GroupValue::Lock {
            path: "poetry.lock".into(),
            extras: vec![],
            groups: vec![],
        },
        why: "poetry.lock: Poetry's main group (the project's dependencies)".into(),
    });
    if !groups.is_empty() {
        let optional: Vec<&str> = groups
            .iter()
            .filter(|g| meta.poetry_groups.iter().any(|(n, o)| n == *g && *o))
            .map(String::as_str)
            .collect();
        let mut why = format!("poetry.lock: {}", selection(&[], &groups, ""));
        why = why.replace("dependency group", "Poetry group");
        if !optional.is_empty() {
            why.push_str(&format!(" (optional: {})", optional.join(", ")));
        }
        found.groups.push(Group {
            name: "optional".into(),
            value: GroupValue::Lock {
                path: "poetry.lock".into(),
                extras: vec![],
                groups: groups.clone(),
            },
            why,
        });
    }
    if packages.iter().any(|p| !p.has_files()) {
        found.notes.push(no_sdists_note(
            "poetry.lock",
            "it lists no files (an old lock format): run `poetry lock`",
        ));
        return Ok(found);
    }
    // A package's marker is the one of the first group of the set that installs it.
    let set = |wanted: &[String]| -> Vec<LockedPackage> {
        packages
            .iter()
            .filter(|p| !p.optional)
            .filter_map(|p| {
                let g = wanted.iter().find(|g| p.groups.contains(&normalize(g)))?;
                Some(p.locked(&normalize(g)))
            })
            .collect()
    };
    let core = set(&["main".to_string()]);
    let mut all = vec!["main".to_string()];
    all.extend(groups.iter().cloned());
    let full = (!groups.is_empty()).then(|| set(&all));
    match core_and_full(&core, full.as_deref(), target, "poetry.lock") {
        Ok(s) => found.sdists = s,
        Err(e) => found.notes.push(no_sdists_note("poetry.lock", &e)),
    }
    Ok(found)
}

/// A group name from a file's name: `pylock.ml.toml` -> `ml`, `requirements-gpu.txt` ->
/// `gpu`; lowercase letters, digits and `-`, not `core` nor one taken.
fn group_name(file: &str, taken: &[Group]) -> String {
    let mut name: String = stem_words(file)
        .join("-")
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .collect();
    name = name.trim_matches('-').chars().take(50).collect();
    if name.is_empty() || name == "core" {
        name = "extra".into();
    }
    let mut candidate = name.clone();
    let mut n = 2;
    while taken.iter().any(|g| g.name == candidate) {
        candidate = format!("{name}-{n}");
        n += 1;
    }
    candidate
}

/// How plainly a file is named as the main one: `requirements.txt` and `pylock.toml`
/// first (no words of their own), then by `MAIN_WORDS`, other names last.
fn main_rank(file: &str) -> usize {
    let words = stem_words(file);
    if words.is_empty() {
        return 0;
    }
    words
        .iter()
        .filter_map(|w| MAIN_WORDS.iter().position(|m| m == w))
        .min()
        .map_or(usize::MAX, |i| i + 1)
}

/// The files, the main one first (by `main_rank`, then by name).
fn main_first(mut files: Vec<String>) -> Vec<String> {
    files.sort_by(|a, b| main_rank(a).cmp(&main_rank(b)).then(a.cmp(b)));
    files
}

/// Whether a file is named as a main set (`prod`, `base`, ...), not an optional one.
fn main_named(file: &str) -> bool {
    main_rank(file) != usize::MAX
}

fn pylocks(
    dir: &Dir,
    files: &[String],
    project: Option<&Metadata>,
    target: &Interpreter,
) -> Result<Found, Error> {
    let mut found = Found::default();
    let kept: Vec<String> = files
        .iter()
        .filter(|f| {
            let dev = stem_words(f).iter().any(|w| is_dev(w));
            if dev {
                found.left_out.push(format!("{f} (development only)"));
            }
            !dev
        })
        .cloned()
        .collect();
    if kept.is_empty() {
        return Err(Error::new(
            dir.shown(""),
            format!(
                "the only PEP 751 locks are for development ({})",
                files.join(", ")
            ),
            "export the app's dependencies to pylock.toml (`uv export --format pylock.toml -o pylock.toml`)",
        ));
    }
    let package = project.is_some_and(|m| m.package);
    let ordered = main_first(kept);
    let mut core_names: Option<BTreeSet<String>> = None;
    for (i, file) in ordered.iter().enumerate() {
        let text = dir.require(file)?;
        let entries = pylock::read(&text).map_err(|e| {
            Error::new(
                dir.shown(file),
                format!("not a PEP 751 lock kiln can read: {e}"),
                "export it again (`uv export --format pylock.toml`)",
            )
        })?;
        for e in &entries {
            // As the build reads it: the project's own entry (the context root) is the app.
            let root =
                |d: &str| requirements::resolve(file, &format!("{d}/x")).is_ok_and(|p| p == "x");
            match e.directory.as_deref() {
                Some(d) if package && root(d) => {}
                Some(d) => {
                    return Err(Error::new(
                        dir.shown(file),
                        format!(
                            "it installs the local directory `{d}` (package `{}`), which no install step sees",
                            e.package.name
                        ),
                        "export it without the project (`uv export --no-emit-project --format pylock.toml`); the app's own code is copied by app.src or built by app.project",
                    ));
                }
                None => {}
            }
        }
        let packages: Vec<LockedPackage> = entries
            .into_iter()
            .filter(|e| e.directory.is_none())
            .map(|e| e.package)
            .collect();
        let name = if i == 0 {
            "core".to_string()
        } else if main_named(file) {
            found.left_out.push(format!(
                "{file} (named as a main set, and {} is the main one)",
                ordered[0]
            ));
            continue;
        } else {
            group_name(file, &found.groups)
        };
        found.groups.push(Group {
            name,
            value: GroupValue::Lock {
                path: file.clone(),
                extras: vec![],
                groups: vec![],
            },
            why: match i {
                0 => format!("{file}: the main PEP 751 lock"),
                _ => format!("{file}: a further PEP 751 lock (for the full variant)"),
            },
        });
        match sdists_of(&packages, target, file, core_names.as_ref()) {
            Ok(s) => found
                .sdists
                .extend(s.into_iter().filter(|s| i == 0 || s.full_only)),
            Err(e) => found.notes.push(no_sdists_note(file, &e)),
        }
        if i == 0 {
            core_names = Some(packages.iter().map(|p| normalize(&p.name)).collect());
        }
    }
    Ok(found)
}

/// One requirement file, read: its text, its lines, its includes resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ReqFile {
    text: String,
    parsed: requirements::Parsed,
    /// (line, as written, `-c`, the context path or why not).
    includes: Vec<(u32, String, bool, Result<String, &'static str>)>,
}

/// pip-tools style requirement files: `requirements*.txt` at the top and `*.txt` under
/// `requirements/`, with every file they include.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequirementFiles {
    /// The files found by name, each read (`None`: named by an include, absent).
    files: BTreeMap<String, Option<ReqFile>>,
    /// The files found by name (not only included).
    named: Vec<String>,
}

impl RequirementFiles {
    /// The project's requirement files by name: `requirements*.txt` at the top, `*.txt`
    /// under `requirements/`.
    fn names(dir: &Dir) -> Vec<String> {
        let mut named: Vec<String> = dir
            .entries("")
            .into_iter()
            .filter(|(n, is_dir)| !is_dir && n.starts_with("requirements") && n.ends_with(".txt"))
            .map(|(n, _)| n)
            .collect();
        named.extend(
            dir.entries("requirements")
                .into_iter()
                .filter(|(n, is_dir)| !is_dir && n.ends_with(".txt"))
                .map(|(n, _)| format!("requirements/{n}")),
        );
        named
    }

    /// The files `named`, and what they include (followed, as kiln follows them in a
    /// build). `None`: there are none. Errors: a file that cannot be read.
    fn find(dir: &Dir, named: Vec<String>) -> Result<Option<RequirementFiles>, Error> {
        if named.is_empty() {
            return Ok(None);
        }
        let mut files: BTreeMap<String, Option<ReqFile>> = BTreeMap::new();
        let mut todo = named.clone();
        while let Some(path) = todo.pop() {
            if files.contains_key(&path) {
                continue;
            }
            if files.len() >= MAX_REQUIREMENT_FILES {
                return Err(Error::new(
                    dir.shown(&path),
                    format!("more than {MAX_REQUIREMENT_FILES} requirement files"),
                    "a build reads at most as many; write the spec by hand",
                ));
            }
            let Some(text) = dir.read(&path)? else {
                files.insert(path, None);
                continue;
            };
            let parsed = requirements::parse(&text);
            let includes: Vec<_> = parsed
                .includes()
                .map(|(line, p, c)| (line, p.to_string(), c, requirements::resolve(&path, p)))
                .collect();
            for (_, _, _, r) in &includes {
                if let Ok(p) = r {
                    todo.push(p.clone());
                }
            }
            files.insert(
                path,
                Some(ReqFile {
                    text,
                    parsed,
                    includes,
                }),
            );
        }
        Ok(Some(RequirementFiles { files, named }))
    }

    /// The version the files were compiled for, from the compiler's header comment
    /// (`uv pip compile ... --python-version 3.11`, `pip-compile with Python 3.11`) in
    /// the main entry point or what it includes.
    pub fn compiled_for(&self) -> Option<Why<String>> {
        let (entries, _) = self.entry_points();
        let main = entries.first()?;
        for file in self.closure(main, true) {
            let Some(Some(f)) = self.files.get(&file) else {
                continue;
            };
            for line in f.text.lines().filter(|l| l.trim_start().starts_with('#')) {
                let found = line
                    .split("--python-version")
                    .nth(1)
                    .map(|rest| rest.trim_start_matches([' ', '=']))
                    .or_else(|| line.split("pip-compile with Python ").nth(1));
                let version = found.and_then(|v| {
                    let v: String = v
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.')
                        .collect();
                    crate::context::pyproject::pinned_version(&v)
                });
                if let Some(v) = version {
                    return Some(Why::new(
                        v.clone(),
                        format!("{file} was compiled for Python {v} (its header)"),
                    ));
                }
            }
        }
        None
    }

    /// The entry points: files found by name, not for development, that no other such
    /// file includes, main one first; and the files left out, with why.
    fn entry_points(&self) -> (Vec<String>, Vec<String>) {
        let mut left_out = vec![];
        let kept: Vec<&String> = self
            .named
            .iter()
            .filter(|f| {
                let words = stem_words(f);
                let dev = words.iter().any(|w| is_dev(w));
                if dev {
                    left_out.push(format!("{f} (development only)"));
                }
                !dev && !words.iter().any(|w| w == "constraints")
            })
            .collect();
        let included: BTreeSet<&String> = kept
            .iter()
            .filter_map(|f| self.files.get(*f)?.as_ref())
            .flat_map(|f| f.includes.iter().filter_map(|(_, _, _, r)| r.as_ref().ok()))
            .collect();
        let roots: Vec<String> = kept
            .into_iter()
            .filter(|f| !included.contains(f))
            .cloned()
            .collect();
        (main_first(roots), left_out)
    }

    /// `root` and what it includes (through `-r` alone when `only_r`), depth-first, each
    /// once.
    fn closure(&self, root: &str, only_r: bool) -> Vec<String> {
        let mut out: Vec<String> = vec![];
        let mut todo = vec![root.to_string()];
        while let Some(f) = todo.pop() {
            if out.contains(&f) {
                continue;
            }
            if let Some(Some(file)) = self.files.get(&f) {
                for (_, _, c, r) in file.includes.iter().rev() {
                    if let (Ok(p), false) = (r, only_r && *c) {
                        todo.push(p.clone());
                    }
                }
            }
            out.push(f);
        }
        out
    }

    fn read(&self, target: &Interpreter) -> Result<Found, Error> {
        let mut found = Found::default();
        let (entries, left_out) = self.entry_points();
        found.left_out = left_out;
        let Some(main) = entries.first() else {
            return Err(Error::new(
                self.named.join(", "),
                "every requirement file is for development, or included by another",
                "name the app's requirements requirements.txt (or requirements/prod.txt)",
            ));
        };
        let mut core: BTreeSet<String> = BTreeSet::new();
        for (i, entry) in entries.iter().enumerate() {
            let name = if i == 0 {
                "core".to_string()
            } else if main_named(entry) {
                found.left_out.push(format!(
                    "{entry} (named as a main set, and {main} is the entry point)"
                ));
                continue;
            } else {
                group_name(entry, &found.groups)
            };
            let files = self.closure(entry, false);
            self.check(&files)?;
            let reached = self.closure(entry, true);
            let hashed = reached.iter().any(|f| {
                self.files.get(f).and_then(Option::as_ref).is_some_and(|r| {
                    r.parsed.lines.iter().any(|(_, l)| {
                        matches!(l, requirements::Line::Requirement { hashes, .. } if !hashes.is_empty())
                    })
                })
            });
            let mut why = match i {
                0 => format!("{entry}: the entry point (no other requirement file includes it)"),
                _ => format!("{entry}: a further entry point (for the full variant)"),
            };
            if reached.len() > 1 {
                why.push_str(&format!("; it includes {}", reached[1..].join(", ")));
            }
            if hashed {
                why.push_str("; its --hash pins are kept: kiln installs with --require-hashes");
            }
            found.groups.push(Group {
                name,
                value: GroupValue::Files(vec![entry.clone()]),
                why,
            });
            for file in &reached {
                for (name, version) in self.requirements_of(file, target) {
                    let Some(known) = sysdeps::sdist(&name).filter(|s| !s.linux_wheels) else {
                        continue;
                    };
                    if i == 0 {
                        core.insert(name.clone());
                    } else if core.contains(&name) {
                        continue;
                    }
                    if found.sdists.iter().any(|s| s.name == name) {
                        continue;
                    }
                    found.sdists.push(SdistUse {
                        name,
                        version,
                        file: file.clone(),
                        full_only: i > 0,
                        known: Some(known),
                        from_lock: false,
                    });
                }
            }
        }
        found.notes.push(
            "requirement files name no files: only packages kiln knows to have no Linux wheel get system packages; a build that misses one says which".into(),
        );
        Ok(found)
    }

    /// Every file is there and every line is one kiln reads. Errors: the first problem,
    /// at `file:line`.
    fn check(&self, files: &[String]) -> Result<(), Error> {
        for f in files {
            let Some(file) = self.files.get(f).and_then(Option::as_ref) else {
                return Err(Error::new(
                    f.clone(),
                    "an included requirement file is missing",
                    "add it, or remove the -r/-c line that names it",
                ));
            };
            if let Some(p) = file.parsed.problems.first() {
                return Err(Error::new(
                    format!("{f}:{}", p.line),
                    p.message.clone(),
                    p.help,
                ));
            }
            if let Some((line, written, _, Err(why))) =
                file.includes.iter().find(|(_, _, _, r)| r.is_err())
            {
                return Err(Error::new(
                    format!("{f}:{line}"),
                    format!("the include `{written}`: {why}"),
                    "include files inside the project by relative paths",
                ));
            }
        }
        Ok(())
    }

    /// The requirements of one file whose marker holds for `target`: (normalised name,
    /// `==` version).
    fn requirements_of(&self, file: &str, target: &Interpreter) -> Vec<(String, Option<String>)> {
        let Some(Some(f)) = self.files.get(file) else {
            return vec![];
        };
        let env = target.marker_environment().ok();
        f.parsed
            .lines
            .iter()
            .filter_map(|(_, l)| match l {
                requirements::Line::Requirement { requirement, .. } => {
                    Requirement::<VerbatimUrl>::from_str(requirement).ok()
                }
                _ => None,
            })
            .filter(|r| env.as_ref().is_none_or(|e| r.marker.evaluate(e, &[])))
            .map(|r| {
                let version = match &r.version_or_url {
                    Some(VersionOrUrl::VersionSpecifier(s)) => s
                        .iter()
                        .find(|s| s.operator() == &pep440_rs::Operator::Equal)
                        .map(|s| s.version().to_string()),
                    _ => None,
                };
                (normalize(r.name.as_ref()), version)
            })
            .collect()
    }
}
