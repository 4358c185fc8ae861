//! PEP 751 lock files (`pylock.toml`, `pylock.NAME.toml`) as kiln reads them: every
//! package with its marker and its files (wheels, sdist), each named by URL and sha256,
//! and the choice of one file per package for a target interpreter and platform.
//!
//! Facts used: PEP 751 (`[[packages]]`: `name`, `version`, `marker`, `wheels`, `sdist`,
//! `vcs`/`directory`/`archive`; a file has `url` or `path`, and `hashes`), PEP 425 and the
//! manylinux PEPs 513/571/599/600 for wheel filenames and platform tags.

use std::str::FromStr;

use pep508_rs::MarkerTree;

use super::interpreter::{Interpreter, Libc};
use serde::Deserialize;

/// One file of a locked package: where the engine fetches it and the digest it must have.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LockedFile {
    /// The file's name (`six-1.17.0-py2.py3-none-any.whl`): the wheel's tags are read from it.
    pub filename: String,
    pub url: String,
    /// 64 lowercase hex digits.
    pub sha256: String,
    /// The file's size in bytes, when the lock gives it (PEP 751 `size`, optional).
    pub size: Option<u64>,
}

/// One `[[packages]]` entry whose files are all content-addressed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LockedPackage {
    /// The name as written in the lock.
    pub name: String,
    pub version: Option<String>,
    /// The PEP 508 marker that says where the package is installed; `None`: everywhere.
    pub marker: Option<String>,
    pub wheels: Vec<LockedFile>,
    pub sdist: Option<LockedFile>,
}

/// What a lock file gives kiln.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pylock {
    /// Every package's files by URL and sha256: the engine can fetch them itself.
    Addressable(Vec<LockedPackage>),
    /// A valid lock with at least one package kiln cannot fetch as a checked file (the
    /// reason names it): the group installs from the index in its step, as before.
    InStep(String),
}

#[derive(Deserialize)]
struct File {
    #[serde(rename = "packages", default)]
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: Option<String>,
    marker: Option<toml::Spanned<String>>,
    #[serde(default)]
    wheels: Vec<Dist>,
    sdist: Option<Dist>,
    vcs: Option<toml::Value>,
    directory: Option<toml::Value>,
    archive: Option<toml::Value>,
}

#[derive(Deserialize)]
struct Dist {
    name: Option<String>,
    url: Option<String>,
    #[serde(default)]
    hashes: std::collections::BTreeMap<String, String>,
    size: Option<u64>,
}

/// One `[[packages]]` entry as read: the package with the files the engine can fetch,
/// and what keeps it from fetching the package by URL and sha256 alone (nothing, for most).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub package: LockedPackage,
    pub problems: Vec<Problem>,
    /// The URL of every file the entry names, fetchable or not.
    pub urls: Vec<String>,
    /// A `directory` entry's path, as written (relative to the lock's directory): a local
    /// project, such as the one `uv export` lists by default.
    pub directory: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// What is wrong, for a message (`no sha256 for https://...`); URLs without userinfo.
    pub text: String,
    /// The file or directory has no URL, only a local path.
    pub local: bool,
}

/// How deep a marker's parentheses may nest. PEP 508 markers that lockers write nest two
/// or three deep; pep508_rs parses parentheses recursively, so a marker nested thousands
/// deep (40 KB of `(`) would overflow the stack before it could be refused.
pub const MAX_MARKER_DEPTH: usize = 32;

/// Read every entry of a PEP 751 lock. Errors: the TOML or the lock's shape is invalid
/// (uv would refuse it too; the message is TOML's own), or a marker nests deeper than
/// `MAX_MARKER_DEPTH` (the message names its line).
pub fn read(text: &str) -> Result<Vec<Entry>, String> {
    let file: File = toml::from_str(text).map_err(|e| e.message().to_string())?;
    for p in &file.packages {
        let Some(marker) = &p.marker else { continue };
        let depth = marker_depth(marker.get_ref());
        if depth > MAX_MARKER_DEPTH {
            let line = text[..marker.span().start.min(text.len())]
                .matches('\n')
                .count()
                + 1;
            return Err(format!(
                "line {line}: the marker of package `{}` nests parentheses {depth} deep; kiln reads markers nested at most {MAX_MARKER_DEPTH} deep",
                p.name
            ));
        }
    }
    Ok(file.packages.into_iter().map(entry).collect())
}

/// The deepest nesting of parentheses in a PEP 508 marker, outside its quoted strings.
pub fn marker_depth(marker: &str) -> usize {
    let (mut depth, mut deepest, mut quote) = (0usize, 0usize, None);
    for c in marker.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ')') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Read a PEP 751 lock for a build: addressable when no entry has a problem, else the
/// first problem. Entries that `skip` says are not the lock's to install (the app's own
/// project) are left out. Errors: as `read`.
pub fn parse(text: &str, skip: impl Fn(&Entry) -> bool) -> Result<Pylock, String> {
    let entries: Vec<Entry> = read(text)?.into_iter().filter(|e| !skip(e)).collect();
    let first = entries
        .iter()
        .find_map(|e| e.problems.first().map(|p| (&e.package.name, &p.text)));
    Ok(match first {
        Some((name, why)) => Pylock::InStep(format!("package `{name}`: {why}")),
        None => Pylock::Addressable(entries.into_iter().map(|e| e.package).collect()),
    })
}

/// Each package's files, as (package name, file).
fn files_of(packages: &[LockedPackage]) -> impl Iterator<Item = (String, LockedFile)> + '_ {
    packages.iter().flat_map(|p| {
        p.wheels
            .iter()
            .chain(&p.sdist)
            .map(|f| (p.name.clone(), f.clone()))
    })
}

/// Where the spec mounts a netrc, some index needs credentials the engine's own fetch
/// does not have: only files on PyPI's public file host stay addressable.
pub fn public_only(packages: Vec<LockedPackage>) -> Pylock {
    match netrc_problem(files_of(&packages)) {
        None => Pylock::Addressable(packages),
        Some(why) => Pylock::InStep(why),
    }
}

/// The first of `files` (package name, file) not on PyPI's public file host, as a reason
/// the engine may not fetch it when the spec mounts a netrc.
pub fn netrc_problem(files: impl Iterator<Item = (String, LockedFile)>) -> Option<String> {
    files
        .map(|(name, f)| (name, crate::url::host(&f.url).unwrap_or_default()))
        .find(|(_, h)| h != PUBLIC_FILES)
        .map(|(name, host)| format!(
            "package `{name}` comes from `{host}`, which may need the credentials of build_secrets.netrc"
        ))
}

/// Where the engine would fetch a file from its own host's network unsafely
/// (`Url::fetch_risk`: plain http, a loopback or link-local address), the lock installs in
/// its step instead, unless the spec names that host (`host[:port]`) as an index in
/// `allowed`: then it is the user's own mirror.
pub fn engine_safe(packages: Vec<LockedPackage>, allowed: &[String]) -> Pylock {
    match fetch_problem(files_of(&packages), allowed) {
        None => Pylock::Addressable(packages),
        Some(why) => Pylock::InStep(why),
    }
}

/// The first of `files` (package name, file) the engine should not fetch from its own
/// host's network (`Url::fetch_risk`) from a host not in `allowed`, as the reason.
pub fn fetch_problem(
    files: impl Iterator<Item = (String, LockedFile)>,
    allowed: &[String],
) -> Option<String> {
    files
        .filter_map(|(name, f)| {
            let url = crate::url::Url::split(&f.url)?;
            let why = url.fetch_risk()?;
            (!allowed.contains(&url.host_port())).then(|| (name, url.host_port(), why))
        })
        .map(|(name, host, why)| format!(
            "package `{name}` comes from `{host}`, {why}, which the engine would fetch from its own host's network; name it as an index (`pip.index_url` or `pip.extra_index_urls`) if it is yours"
        ))
        .next()
}

/// PyPI's file host: public, no credentials.
const PUBLIC_FILES: &str = "files.pythonhosted.org";

fn entry(p: Package) -> Entry {
    let problem = |text: &str, local: bool| Problem {
        text: text.to_string(),
        local,
    };
    let mut problems = vec![];
    if p.directory.is_some() {
        problems.push(problem("a local directory (no URL)", true));
    }
    if let Some(vcs) = &p.vcs {
        problems.push(match vcs.get("url").and_then(|u| u.as_str()) {
            Some(u) => problem(
                &format!("from version control ({}): no hash", crate::url::redact(u)),
                false,
            ),
            None => problem("from a local repository (no URL, no hash)", true),
        });
    }
    if p.archive.is_some() {
        problems.push(problem("an archive URL (a file of no stated kind)", false));
    }
    if p.wheels.is_empty() && p.sdist.is_none() && problems.is_empty() {
        problems.push(problem(
            "no file to fetch (no wheels, sdist or archive)",
            false,
        ));
    }
    let urls = p
        .wheels
        .iter()
        .chain(&p.sdist)
        .filter_map(|d| d.url.clone())
        .collect();
    let mut keep = |d: Dist| match dist(d) {
        Ok(f) => Some(f),
        Err(e) => {
            problems.push(e);
            None
        }
    };
    let wheels = p.wheels.into_iter().filter_map(&mut keep).collect();
    let sdist = p.sdist.and_then(&mut keep);
    problems.sort();
    problems.dedup();
    let directory = p
        .directory
        .as_ref()
        .and_then(|d| d.get("path"))
        .and_then(|p| p.as_str())
        .map(str::to_string);
    Entry {
        directory,
        package: LockedPackage {
            name: p.name,
            version: p.version,
            marker: p.marker.map(toml::Spanned::into_inner),
            wheels,
            sdist,
        },
        problems,
        urls,
    }
}

fn dist(d: Dist) -> Result<LockedFile, Problem> {
    let problem = |text: String| Problem { text, local: false };
    let Some(url) = d.url else {
        return Err(Problem {
            text: "a local file (no URL)".into(),
            local: true,
        });
    };
    let parts = crate::url::Url::split(&url).filter(|u| matches!(u.scheme, "https" | "http"));
    let Some(parts) = parts else {
        return Err(problem(format!(
            "a URL the engine cannot fetch ({})",
            crate::url::redact(&url)
        )));
    };
    if parts.has_userinfo() {
        // Credentials in a URL would land in the definition.
        return Err(problem(format!(
            "from {}, an index that needs credentials",
            parts.host()
        )));
    }
    let sha256 = d
        .hashes
        .get("sha256")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|h| h.to_ascii_lowercase())
        .ok_or_else(|| problem(format!("no sha256 for {url}")))?;
    let filename = d
        .name
        .or_else(|| {
            let last = url.split(['?', '#']).next()?.rsplit('/').next()?;
            Some(last.to_string())
        })
        // A name, not a path: no separator, no control character (a NUL would cut it).
        .filter(|f| {
            !f.is_empty()
                && !f.contains(['/', '\\'])
                && !f.chars().any(char::is_control)
                && f != "."
                && f != ".."
        })
        .ok_or_else(|| problem(format!("no file name in {url}")))?;
    Ok(LockedFile {
        filename,
        url,
        sha256,
        size: d.size,
    })
}

/// The file installed for one package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chosen {
    Wheel(LockedFile),
    /// Built into a wheel in the builder first.
    Sdist(LockedFile),
}

/// For each package whose marker holds for `target`, the file to install: the best
/// compatible wheel, else the sdist. Errors: a marker kiln cannot evaluate, a package with
/// neither, or a package listed twice for this target.
pub fn choose<'l>(
    packages: &'l [LockedPackage],
    target: &Interpreter,
) -> Result<Vec<(&'l LockedPackage, Chosen)>, String> {
    let python = &target.python_version;
    let tags = Tags::of(target)
        .ok_or_else(|| format!("`{python}` is not a major.minor Python version"))?;
    let env = target.marker_environment()?;
    let mut out: Vec<(&LockedPackage, Chosen)> = vec![];
    let mut names = std::collections::HashSet::new();
    for p in packages {
        if let Some(m) = &p.marker {
            // `read` refuses these; a package made elsewhere must not overflow the parser.
            if marker_depth(m) > MAX_MARKER_DEPTH {
                return Err(format!(
                    "package `{}`: its marker nests deeper than {MAX_MARKER_DEPTH}",
                    p.name
                ));
            }
            let tree = MarkerTree::from_str(m)
                .map_err(|e| format!("package `{}`: marker `{m}`: {e}", p.name))?;
            if !tree.evaluate(&env, &[]) {
                continue;
            }
        }
        if !names.insert(normalize(&p.name)) {
            return Err(format!(
                "package `{}` is locked twice for this target",
                p.name
            ));
        }
        let best = p
            .wheels
            .iter()
            .filter_map(|w| tags.rank(&w.filename).map(|r| (r, w)))
            .max_by(|(a, w), (b, v)| a.cmp(b).then_with(|| v.filename.cmp(&w.filename)));
        let chosen = match (best, &p.sdist) {
            (Some((_, w)), _) => Chosen::Wheel(w.clone()),
            (None, Some(s)) => Chosen::Sdist(s.clone()),
            (None, None) => {
                return Err(format!(
                    "package `{}` has no wheel for {} {} on linux/{} and no sdist",
                    p.name,
                    target.platform_python_implementation,
                    target.python_full_version,
                    target.platform_machine
                ));
            }
        };
        out.push((p, chosen));
    }
    Ok(out)
}

/// PEP 503 normalised name: lowercase, each run of `-`, `_` and `.` one `-` (so `a--b`,
/// `a_.b` and `A-B` are one project).
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// What an interpreter's wheels may be tagged with (PEP 425, manylinux PEP 600,
/// musllinux PEP 656).
struct Tags<'t> {
    major: u32,
    minor: u32,
    cpython: bool,
    abiflags: &'t str,
    machine: &'t str,
    libc: Libc,
}

impl<'t> Tags<'t> {
    fn of(target: &'t Interpreter) -> Option<Tags<'t>> {
        let (major, minor) = target.major_minor()?;
        Some(Tags {
            major,
            minor,
            cpython: target.implementation_name == "cpython",
            abiflags: &target.abiflags,
            machine: &target.platform_machine,
            libc: target.libc,
        })
    }

    /// How well a wheel fits, or `None` when it does not install here. Higher is better:
    /// an interpreter-specific ABI over `abi3` over pure Python; then, for a libc that was
    /// read, the newest platform tag it runs (as pip prefers), and for one assumed, the
    /// oldest glibc (it runs on the most bases).
    fn rank(&self, filename: &str) -> Option<(u8, u32, i64)> {
        let stem = filename.strip_suffix(".whl")?;
        let parts: Vec<&str> = stem.split('-').collect();
        if !(5..=6).contains(&parts.len()) {
            return None;
        }
        let n = parts.len();
        let (pys, abis, plats) = (parts[n - 3], parts[n - 2], parts[n - 1]);
        let platform = plats.split('.').filter_map(|p| self.platform(p)).max()?;
        let (major, minor) = (self.major, self.minor);
        let cp = format!("cp{major}{minor}");
        let abi_cp = format!("{cp}{}", self.abiflags);
        let mut best: Option<(u8, u32)> = None;
        for py in pys.split('.') {
            for abi in abis.split('.') {
                let rank = if self.cpython && abi == abi_cp && py == cp {
                    Some((3, minor))
                } else if self.cpython && abi == "abi3" && self.abiflags.is_empty() {
                    py.strip_prefix(&format!("cp{major}"))
                        .and_then(|m| m.parse::<u32>().ok())
                        .filter(|m| *m <= minor)
                        .map(|m| (2, m))
                } else if abi == "none" {
                    let pure = py == format!("py{major}")
                        || (self.cpython && py == cp)
                        || py
                            .strip_prefix(&format!("py{major}"))
                            .and_then(|m| m.parse::<u32>().ok())
                            .is_some_and(|m| m <= minor);
                    pure.then_some((1, 0))
                } else {
                    None
                };
                best = best.max(rank);
            }
        }
        let (rank, sub) = best?;
        Some((rank, sub, platform))
    }

    /// A platform tag's preference here (higher is better), or `None` when a wheel with
    /// it does not run here: `any`; `linux_*` (built for glibc Linux); `manylinux*` up to
    /// the base's glibc; `musllinux_*` up to its musl.
    fn platform(&self, tag: &str) -> Option<i64> {
        if tag == "any" {
            // Read libc: the most specific tag wins; assumed: the most portable one.
            return Some(match self.libc {
                Libc::Unknown => 0,
                _ => i64::MIN,
            });
        }
        let rest = tag.strip_suffix(&format!("_{}", self.machine))?;
        let (musl, (a, b)) = match rest {
            "linux" => (false, (0, 0)),
            "manylinux1" => (false, (2, 5)),
            "manylinux2010" => (false, (2, 12)),
            "manylinux2014" => (false, (2, 17)),
            _ => match (
                rest.strip_prefix("manylinux_"),
                rest.strip_prefix("musllinux_"),
            ) {
                (Some(v), _) => (false, version(v)?),
                (_, Some(v)) => (true, version(v)?),
                _ => return None,
            },
        };
        let code = i64::from(a) * 1000 + i64::from(b);
        match (self.libc, musl) {
            (Libc::Glibc(x, y), false) if (a, b) <= (x, y) => Some(code),
            (Libc::Musl(x, y), true) if (a, b) <= (x, y) => Some(code),
            (Libc::Unknown, false) => Some(-code),
            _ => None,
        }
    }
}

/// `2_17` as (2, 17).
fn version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('_')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(python: &str, arch: &str) -> Interpreter {
        Interpreter::assumed(python, arch).expect("a known platform")
    }

    fn file(name: &str) -> LockedFile {
        LockedFile {
            filename: name.into(),
            url: format!("https://files.example/{name}"),
            sha256: "0".repeat(64),
            size: None,
        }
    }

    fn pkg(
        name: &str,
        marker: Option<&str>,
        wheels: &[&str],
        sdist: Option<&str>,
    ) -> LockedPackage {
        LockedPackage {
            name: name.into(),
            version: Some("1.0".into()),
            marker: marker.map(str::to_string),
            wheels: wheels.iter().map(|w| file(w)).collect(),
            sdist: sdist.map(file),
        }
    }

    fn chosen(p: &[LockedPackage], py: &str, arch: &str) -> Vec<String> {
        choose(p, &at(py, arch))
            .unwrap()
            .into_iter()
            .map(|(_, c)| match c {
                Chosen::Wheel(f) => f.filename,
                Chosen::Sdist(f) => format!("sdist {}", f.filename),
            })
            .collect()
    }

    #[test]
    fn picks_the_interpreter_specific_wheel_for_the_platform() {
        let core = pkg(
            "pydantic-core",
            None,
            &[
                "pydantic_core-2.0-cp311-cp311-macosx_11_0_arm64.whl",
                "pydantic_core-2.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
                "pydantic_core-2.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                "pydantic_core-2.0-cp311-cp311-musllinux_1_1_x86_64.whl",
                "pydantic_core-2.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                "pydantic_core-2.0-cp313-cp313t-manylinux_2_17_x86_64.whl",
            ],
            Some("pydantic_core-2.0.tar.gz"),
        );
        assert_eq!(
            chosen(std::slice::from_ref(&core), "3.11", "amd64"),
            ["pydantic_core-2.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"]
        );
        assert_eq!(
            chosen(std::slice::from_ref(&core), "3.11", "arm64"),
            ["pydantic_core-2.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"]
        );
        // No cp310 wheel: the sdist, to be built in the builder.
        assert_eq!(
            chosen(&[core], "3.10", "amd64"),
            ["sdist pydantic_core-2.0.tar.gz"]
        );
    }

    #[test]
    fn prefers_binary_over_pure_and_the_lowest_glibc() {
        let p = pkg(
            "x",
            None,
            &[
                "x-1.0-py3-none-any.whl",
                "x-1.0-cp312-cp312-manylinux_2_28_x86_64.whl",
                "x-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
            ],
            None,
        );
        assert_eq!(
            chosen(std::slice::from_ref(&p), "3.12", "amd64"),
            ["x-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"]
        );
        assert_eq!(chosen(&[p], "3.11", "amd64"), ["x-1.0-py3-none-any.whl"]);
        let abi3 = pkg(
            "y",
            None,
            &["y-1.0-cp38-abi3-manylinux2014_x86_64.whl"],
            None,
        );
        assert_eq!(
            chosen(std::slice::from_ref(&abi3), "3.12", "amd64"),
            ["y-1.0-cp38-abi3-manylinux2014_x86_64.whl"]
        );
        assert!(
            choose(&[abi3], &at("3.12", "arm64"))
                .unwrap_err()
                .contains("no wheel for CPython 3.12.0 on linux/aarch64")
        );
    }

    /// Issue 22: with the base's interpreter read, markers split inside a minor release
    /// and the wheels follow its glibc or musl.
    #[test]
    fn a_read_interpreter_decides_markers_and_platform_tags() {
        let read = |full: &str, libc: Libc| Interpreter {
            python_full_version: full.into(),
            implementation_version: full.into(),
            libc,
            read: true,
            ..at("3.11", "amd64")
        };
        let timeout = pkg(
            "async-timeout",
            Some("python_full_version < '3.11.3'"),
            &["async_timeout-4.0.3-py3-none-any.whl"],
            None,
        );
        let names = |target: &Interpreter| -> Vec<String> {
            choose(std::slice::from_ref(&timeout), target)
                .unwrap()
                .into_iter()
                .map(|(p, _)| p.name.clone())
                .collect()
        };
        assert_eq!(
            names(&read("3.11.2", Libc::Glibc(2, 36))),
            ["async-timeout"]
        );
        assert!(names(&read("3.11.7", Libc::Glibc(2, 36))).is_empty());
        let x = pkg(
            "x",
            None,
            &[
                "x-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                "x-1.0-cp311-cp311-manylinux_2_28_x86_64.whl",
                "x-1.0-cp311-cp311-musllinux_1_2_x86_64.whl",
            ],
            Some("x-1.0.tar.gz"),
        );
        let file =
            |libc| match &choose(std::slice::from_ref(&x), &read("3.11.7", libc)).unwrap()[0].1 {
                Chosen::Wheel(f) => f.filename.clone(),
                Chosen::Sdist(f) => format!("sdist {}", f.filename),
            };
        // The newest tag the base runs, as pip takes it; none newer than its glibc.
        assert_eq!(
            file(Libc::Glibc(2, 36)),
            "x-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"
        );
        assert_eq!(
            file(Libc::Glibc(2, 17)),
            "x-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
        );
        assert_eq!(file(Libc::Glibc(2, 12)), "sdist x-1.0.tar.gz");
        assert_eq!(
            file(Libc::Musl(1, 2)),
            "x-1.0-cp311-cp311-musllinux_1_2_x86_64.whl"
        );
        // A free-threaded build takes only its own ABI.
        let t = Interpreter {
            abiflags: "t".into(),
            ..read("3.13.1", Libc::Glibc(2, 36))
        };
        let y = pkg(
            "y",
            None,
            &[
                "y-1.0-cp313-cp313-manylinux_2_17_x86_64.whl",
                "y-1.0-cp313-cp313t-manylinux_2_17_x86_64.whl",
            ],
            None,
        );
        let t = Interpreter {
            python_version: "3.13".into(),
            ..t
        };
        let Chosen::Wheel(f) = &choose(std::slice::from_ref(&y), &t).unwrap()[0].1 else {
            panic!()
        };
        assert_eq!(f.filename, "y-1.0-cp313-cp313t-manylinux_2_17_x86_64.whl");
    }

    #[test]
    fn markers_select_packages() {
        let p = [
            pkg(
                "a",
                Some("python_full_version < '3.12'"),
                &["a-1-py3-none-any.whl"],
                None,
            ),
            pkg(
                "b",
                Some("sys_platform == 'win32'"),
                &["b-1-py3-none-any.whl"],
                None,
            ),
            pkg(
                "c",
                Some("platform_machine == 'aarch64'"),
                &["c-1-py3-none-any.whl"],
                None,
            ),
        ];
        assert_eq!(chosen(&p, "3.11", "amd64"), ["a-1-py3-none-any.whl"]);
        assert_eq!(chosen(&p, "3.12", "arm64"), ["c-1-py3-none-any.whl"]);
        let twice = [
            pkg("a", None, &["a-1-py3-none-any.whl"], None),
            pkg("A", None, &["a-2-py3-none-any.whl"], None),
        ];
        assert!(
            choose(&twice, &at("3.11", "amd64"))
                .unwrap_err()
                .contains("locked twice")
        );
    }

    #[test]
    fn parses_a_uv_lock_export_and_says_what_is_not_addressable() {
        let ok = r#"
lock-version = "1.0"
[[packages]]
name = "six"
version = "1.17.0"
sdist = { url = "https://files.pythonhosted.org/p/six-1.17.0.tar.gz", hashes = { sha256 = "FF70335D468E7EB6EC65B95B99D3A2836546063F63ACC5171DE367E834932A81" } }
wheels = [{ url = "https://files.pythonhosted.org/p/six-1.17.0-py2.py3-none-any.whl", hashes = { sha256 = "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274" } }]
"#;
        let Pylock::Addressable(p) = parse(ok, |_| false).unwrap() else {
            panic!("addressable")
        };
        assert_eq!(p[0].wheels[0].filename, "six-1.17.0-py2.py3-none-any.whl");
        assert_eq!(
            p[0].sdist.as_ref().unwrap().sha256,
            "ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81"
        );
        let cases = [
            (
                "wheels = [{ url = \"https://h/a-1-py3-none-any.whl\" }]",
                "no sha256 for https://h/",
            ),
            (
                "wheels = [{ url = \"https://user:pw@h/a-1-py3-none-any.whl\", hashes = { sha256 = \"",
                "credentials",
            ),
            (
                "vcs = { type = \"git\", url = \"https://g/x\", commit-id = \"abc\" }",
                "from version control (https://g/x)",
            ),
            (
                "wheels = [{ path = \"dist/a-1-py3-none-any.whl\", hashes = { sha256 = \"",
                "local file",
            ),
        ];
        for (line, why) in cases {
            let h = "a".repeat(64);
            let line = if line.ends_with('"') {
                format!("{line}{h}\" }} }}]")
            } else {
                line.to_string()
            };
            let text = format!("lock-version = \"1.0\"\n[[packages]]\nname = \"a\"\n{line}\n");
            match parse(&text, |_| false) {
                Ok(Pylock::InStep(reason)) => assert!(reason.contains(why), "{reason} lacks {why}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(parse("[[packages]]\nname = 3", |_| false).is_err());
    }

    /// Issue 21: `a--b` and `a-b` are one PEP 503 name, so one target cannot get both.
    #[test]
    fn names_are_pep_503_normalised() {
        for (name, want) in [
            ("a--b", "a-b"),
            ("A_.-b", "a-b"),
            ("Foo.Bar", "foo-bar"),
            ("x", "x"),
        ] {
            assert_eq!(normalize(name), want, "{name}");
        }
        let twice = [
            pkg("a--b", None, &["a_b-1-py3-none-any.whl"], None),
            pkg("a-b", None, &["a_b-1-py3-none-any.whl"], None),
        ];
        let err = choose(&twice, &at("3.12", "amd64")).unwrap_err();
        assert!(err.contains("locked twice"), "{err}");
    }

    /// Issue 21: a file name is a name: a NUL, another control character or a separator in
    /// it makes the package one kiln does not fetch (its group installs in its step).
    #[test]
    fn file_names_with_control_characters_are_refused() {
        // As TOML writes them.
        for name in [
            r#""a\u0000.whl""#,
            r#""a\n.whl""#,
            r#""../a.whl""#,
            r#""a\\b.whl""#,
        ] {
            let text = format!(
                "[[packages]]\nname = \"a\"\nwheels = [{{name = {name}, url = \"https://files.pythonhosted.org/a-1-py3-none-any.whl\", hashes = {{sha256 = \"{}\"}}}}]\n",
                "0".repeat(64)
            );
            match parse(&text, |_| false).unwrap() {
                Pylock::InStep(why) => assert!(why.contains("no file name"), "{name}: {why}"),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn marker_depth_counts_parentheses_outside_strings() {
        assert_eq!(marker_depth("python_version > '3'"), 0);
        assert_eq!(marker_depth("(a and (b or c)) or d"), 2);
        assert_eq!(marker_depth("extra == '((((' and (x)"), 1);
        assert_eq!(
            marker_depth(&format!("{}x{}", "(".repeat(40), ")".repeat(40))),
            40
        );
    }

    #[test]
    fn with_a_netrc_only_public_files_are_fetched_by_the_engine() {
        let public = pkg("a", None, &["a-1-py3-none-any.whl"], None);
        let mut private = pkg("b", None, &["b-1-py3-none-any.whl"], None);
        assert!(
            matches!(public_only(vec![private.clone()]), Pylock::InStep(w) if w.contains("files.example"))
        );
        private.wheels[0].url = "https://files.pythonhosted.org/p/b-1-py3-none-any.whl".into();
        let mut public = public;
        public.wheels[0].url = "https://files.pythonhosted.org/p/a-1-py3-none-any.whl".into();
        assert!(matches!(
            public_only(vec![public, private]),
            Pylock::Addressable(_)
        ));
    }

    #[test]
    fn the_example_lock_is_addressable_for_both_platforms() {
        let text = include_str!("../../examples/pylock-service/pylock.toml");
        let Pylock::Addressable(p) = parse(text, |_| false).unwrap() else {
            panic!("the example lock is addressable")
        };
        for arch in ["amd64", "arm64"] {
            let files = choose(&p, &at("3.11", arch)).unwrap();
            assert!(files.len() >= 10, "{arch}: {}", files.len());
            assert!(
                files.iter().all(|(_, c)| matches!(c, Chosen::Wheel(_))),
                "{arch}"
            );
        }
    }
}
