//! PEP 751 lock files (`pylock.toml`, `pylock.NAME.toml`) as kiln reads them: every
//! package with its marker and its files (wheels, sdist), each named by URL and sha256,
//! and the choice of one file per package for a target interpreter and platform.
//!
//! Facts used: PEP 751 (`[[packages]]`: `name`, `version`, `marker`, `wheels`, `sdist`,
//! `vcs`/`directory`/`archive`; a file has `url` or `path`, and `hashes`), PEP 425 and the
//! manylinux PEPs 513/571/599/600 for wheel filenames and platform tags.

use std::str::FromStr;

use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder, MarkerTree};
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
/// first problem. Errors: as `read`.
pub fn parse(text: &str) -> Result<Pylock, String> {
    let entries = read(text)?;
    let first = entries
        .iter()
        .find_map(|e| e.problems.first().map(|p| (&e.package.name, &p.text)));
    Ok(match first {
        Some((name, why)) => Pylock::InStep(format!("package `{name}`: {why}")),
        None => Pylock::Addressable(entries.into_iter().map(|e| e.package).collect()),
    })
}

/// Where the spec mounts a netrc, some index needs credentials the engine's own fetch
/// does not have: only files on PyPI's public file host stay addressable.
pub fn public_only(packages: Vec<LockedPackage>) -> Pylock {
    let private = packages.iter().find_map(|p| {
        p.wheels
            .iter()
            .chain(&p.sdist)
            .map(|f| host(&f.url))
            .find(|h| *h != PUBLIC_FILES)
            .map(|h| (p.name.clone(), h.to_string()))
    });
    match private {
        None => Pylock::Addressable(packages),
        Some((name, host)) => Pylock::InStep(format!(
            "package `{name}` comes from `{host}`, which may need the credentials of build_secrets.netrc"
        )),
    }
}

/// PyPI's file host: public, no credentials.
const PUBLIC_FILES: &str = "files.pythonhosted.org";

fn host(url: &str) -> &str {
    let rest = url.split("://").nth(1).unwrap_or("");
    rest.split(['/', '?', '#']).next().unwrap_or("")
}

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
                &format!("from version control ({}): no hash", redact(u)),
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
    Entry {
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

/// `url` without its userinfo (`user:token@`), for messages.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
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
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(problem(format!(
            "a URL the engine cannot fetch ({})",
            redact(&url)
        )));
    }
    let authority = host(&url);
    if let Some((_, h)) = authority.rsplit_once('@') {
        // Credentials in a URL would land in the definition.
        return Err(problem(format!(
            "from {h}, an index that needs credentials"
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

/// `uv export`'s arguments that make one group of a `uv.lock` a PEP 751 set: exactly the
/// locked files (`--locked`: a lock that no longer matches `pyproject.toml` fails), the
/// project's dependencies without the workspace's own packages, only the `groups` and
/// `extras` asked for. The build's export step and `kiln lock` both use it, so a lock
/// `kiln lock` writes is the set the build would install.
pub fn uv_export_args(extras: &[String], groups: &[String]) -> Vec<String> {
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
        args.extend(["--extra".into(), e.clone()]);
    }
    for g in groups {
        args.extend(["--group".into(), g.clone()]);
    }
    args
}

/// The file installed for one package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chosen {
    Wheel(LockedFile),
    /// Built into a wheel in the builder first.
    Sdist(LockedFile),
}

/// For each package whose marker holds on CPython `python` (`major.minor`) on Linux on
/// `arch` (GOARCH: `amd64`, `arm64`, ...), the file to install: the best compatible wheel,
/// else the sdist. Errors: a marker kiln cannot evaluate, a package with neither, or a
/// package listed twice for this target.
pub fn choose<'l>(
    packages: &'l [LockedPackage],
    python: &str,
    arch: &str,
) -> Result<Vec<(&'l LockedPackage, Chosen)>, String> {
    let machine = machine(arch).ok_or_else(|| format!("no wheels are known for `{arch}`"))?;
    let (major, minor) = python
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        .ok_or_else(|| format!("`{python}` is not a major.minor Python version"))?;
    let env = environment(python, machine)?;
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
            .filter_map(|w| wheel_rank(&w.filename, (major, minor), machine).map(|r| (r, w)))
            .max_by(|(a, w), (b, v)| a.cmp(b).then_with(|| v.filename.cmp(&w.filename)));
        let chosen = match (best, &p.sdist) {
            (Some((_, w)), _) => Chosen::Wheel(w.clone()),
            (None, Some(s)) => Chosen::Sdist(s.clone()),
            (None, None) => {
                return Err(format!(
                    "package `{}` has no wheel for CPython {python} on linux/{arch} and no sdist",
                    p.name
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

/// `platform.machine()` on Linux for a GOARCH.
fn machine(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "arm" => "armv7l",
        "386" => "i686",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        _ => return None,
    })
}

fn environment(python: &str, machine: &str) -> Result<MarkerEnvironment, String> {
    // The patch release is not known before the build: `.0` stands for the series.
    let full = format!("{python}.0");
    MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
        implementation_name: "cpython",
        implementation_version: &full,
        os_name: "posix",
        platform_machine: machine,
        platform_python_implementation: "CPython",
        platform_release: "",
        platform_system: "Linux",
        platform_version: "",
        python_full_version: &full,
        python_version: python,
        sys_platform: "linux",
    })
    .map_err(|e| e.to_string())
}

/// How well a wheel fits CPython `major.minor` on glibc Linux, or `None` when it does not
/// install there. Higher is better: an interpreter-specific ABI over `abi3` over pure
/// Python; then the lowest glibc a manylinux tag asks for (it runs on the most bases).
/// musllinux wheels are left out: kiln's bases are glibc ones.
fn wheel_rank(filename: &str, (major, minor): (u32, u32), machine: &str) -> Option<(u8, u32, i64)> {
    let stem = filename.strip_suffix(".whl")?;
    let parts: Vec<&str> = stem.split('-').collect();
    if !(5..=6).contains(&parts.len()) {
        return None;
    }
    let n = parts.len();
    let (pys, abis, plats) = (parts[n - 3], parts[n - 2], parts[n - 1]);
    let glibc = plats
        .split('.')
        .filter_map(|p| platform_glibc(p, machine))
        .min()?;
    let cp = format!("cp{major}{minor}");
    let mut best: Option<(u8, u32)> = None;
    for py in pys.split('.') {
        for abi in abis.split('.') {
            let rank = if abi == cp && py == cp {
                Some((3, minor))
            } else if abi == "abi3" {
                py.strip_prefix(&format!("cp{major}"))
                    .and_then(|m| m.parse::<u32>().ok())
                    .filter(|m| *m <= minor)
                    .map(|m| (2, m))
            } else if abi == "none" {
                let pure = py == format!("py{major}")
                    || py == cp
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
    Some((rank, sub, -(glibc as i64)))
}

/// The glibc version (`major * 1000 + minor`) a platform tag needs on `machine`; 0 for
/// `any` and `linux_*`; `None` when it does not run there.
fn platform_glibc(tag: &str, machine: &str) -> Option<u32> {
    if tag == "any" || tag == format!("linux_{machine}") {
        return Some(0);
    }
    let rest = tag.strip_suffix(&format!("_{machine}"))?;
    match rest {
        "manylinux1" => Some(2005),
        "manylinux2010" => Some(2012),
        "manylinux2014" => Some(2017),
        _ => {
            let (a, b) = rest.strip_prefix("manylinux_")?.split_once('_')?;
            Some(a.parse::<u32>().ok()? * 1000 + b.parse::<u32>().ok()?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        choose(p, py, arch)
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
            choose(&[abi3], "3.12", "arm64")
                .unwrap_err()
                .contains("no wheel for CPython 3.12 on linux/arm64")
        );
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
            choose(&twice, "3.11", "amd64")
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
        let Pylock::Addressable(p) = parse(ok).unwrap() else {
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
            match parse(&text) {
                Ok(Pylock::InStep(reason)) => assert!(reason.contains(why), "{reason} lacks {why}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(parse("[[packages]]\nname = 3").is_err());
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
        let err = choose(&twice, "3.12", "amd64").unwrap_err();
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
            match parse(&text).unwrap() {
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
        let Pylock::Addressable(p) = parse(text).unwrap() else {
            panic!("the example lock is addressable")
        };
        for arch in ["amd64", "arm64"] {
            let files = choose(&p, "3.11", arch).unwrap();
            assert!(files.len() >= 10, "{arch}: {}", files.len());
            assert!(
                files.iter().all(|(_, c)| matches!(c, Chosen::Wheel(_))),
                "{arch}"
            );
        }
    }
}
