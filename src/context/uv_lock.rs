//! A uv project's lock (`uv.lock`), read by kiln: every package with its files (URL,
//! sha256, size) and its dependency edges (markers, extras, the version they pin when the
//! lock holds several), so that the set one group installs can be chosen for the base's
//! interpreter (`UvLock::select`) and fetched by the engine, as a PEP 751 lock's files are.
//! What uv's `export --locked --no-emit-workspace --no-default-groups` would emit for that
//! interpreter, without running uv: the project's dependencies, its `extras` and
//! dependency `groups`, followed through the lock with each edge's marker decided on the
//! interpreter; workspace members are walked but not installed.
//!
//! Facts used: uv's lock format (`version = 1`; `[[package]]` with `name`, `version`,
//! `source` (`registry`, `editable`, `virtual`, `directory`, `path`, `git`, `url`),
//! `dependencies`, `[package.optional-dependencies]`, `[package.dev-dependencies]`, `sdist`
//! and `wheels` as `{url, hash = "sha256:...", size}`, `[package.metadata]` with
//! `requires-dist` and `requires-dev`), PEP 621 and PEP 735 for `pyproject.toml`.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use pep508_rs::{MarkerTree, Requirement, VerbatimUrl};
use serde::Deserialize;

use super::interpreter::Interpreter;
use super::pylock::{LockedFile, LockedPackage, normalize};

/// How deep the walk of a lock's dependencies may go: real locks stay far below it; a lock
/// made to recurse is refused rather than followed.
const MAX_WALK: usize = 100_000;

/// A `uv.lock` as kiln reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UvLock {
    packages: Vec<Package>,
    /// The project the lock's directory holds (`source = { editable | virtual = "." }`);
    /// `None` for a lock kiln cannot walk (a virtual workspace root, say: `problem` says).
    root: Option<usize>,
    /// What keeps the engine from fetching some package by URL and sha256 (`None`: all
    /// can be): the group then installs in its step, by `uv export`.
    pub problem: Option<String>,
    /// Every marker of an edge: (package it leads to, marker), for what an assumed
    /// interpreter takes on trust.
    pub markers: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Package {
    name: String,
    version: Option<String>,
    /// A workspace member or another local project: walked, never installed from files.
    local: bool,
    dependencies: Vec<Edge>,
    optional: BTreeMap<String, Vec<Edge>>,
    groups: BTreeMap<String, Vec<Edge>>,
    wheels: Vec<LockedFile>,
    sdist: Option<LockedFile>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Edge {
    name: String,
    version: Option<String>,
    marker: Option<String>,
    extras: Vec<String>,
}

#[derive(Deserialize)]
struct File {
    version: Option<u32>,
    #[serde(rename = "package", default)]
    packages: Vec<RawPackage>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    version: Option<String>,
    #[serde(default)]
    source: BTreeMap<String, toml::Value>,
    #[serde(default)]
    dependencies: Vec<RawEdge>,
    #[serde(rename = "optional-dependencies", default)]
    optional: BTreeMap<String, Vec<RawEdge>>,
    #[serde(rename = "dev-dependencies", default)]
    dev: BTreeMap<String, Vec<RawEdge>>,
    sdist: Option<RawFile>,
    #[serde(default)]
    wheels: Vec<RawFile>,
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct RawEdge {
    name: String,
    version: Option<String>,
    marker: Option<String>,
    #[serde(default)]
    extra: Vec<String>,
}

#[derive(Deserialize)]
struct RawFile {
    url: Option<String>,
    path: Option<String>,
    hash: Option<String>,
    size: Option<u64>,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(rename = "requires-dist", default)]
    requires_dist: Vec<Dist>,
    #[serde(rename = "requires-dev", default)]
    requires_dev: BTreeMap<String, Vec<Dist>>,
}

#[derive(Deserialize)]
struct Dist {
    name: String,
    specifier: Option<String>,
    marker: Option<String>,
    #[serde(default)]
    extras: Vec<String>,
    url: Option<String>,
}

/// Read a `uv.lock`. One kiln cannot walk (another lock version, no project at its own
/// directory) is kept with its `problem` (its groups install by `uv export` in their
/// steps). Errors: not TOML, or out of date with `pyproject` (the text of the project's
/// `pyproject.toml`): what `uv export --locked` would refuse too.
pub fn read(text: &str, pyproject: Option<&str>) -> Result<UvLock, String> {
    let file: File = toml::from_str(text).map_err(|e| e.message().to_string())?;
    let mut problem = (file.version != Some(1))
        .then(|| format!("lock version {:?}: kiln reads uv's version 1", file.version));
    let mut markers = vec![];
    let mut root = None;
    let mut root_metadata = None;
    let mut packages = vec![];
    for (i, p) in file.packages.into_iter().enumerate() {
        let at_root = ["editable", "virtual"]
            .iter()
            .any(|k| p.source.get(*k).and_then(|v| v.as_str()) == Some("."));
        if at_root {
            root = Some(i);
            root_metadata = p.metadata;
        }
        let local = ["editable", "virtual", "directory", "path"]
            .iter()
            .any(|k| p.source.contains_key(*k));
        if p.source.contains_key("git") && problem.is_none() {
            problem = Some(format!(
                "package `{}` comes from git: no file to fetch by its hash",
                p.name
            ));
        }
        let mut file = |f: RawFile| -> Option<LockedFile> {
            match file_of(f) {
                Ok(f) => Some(f),
                Err(why) => {
                    if !local && problem.is_none() {
                        problem = Some(format!("package `{}`: {why}", p.name));
                    }
                    None
                }
            }
        };
        let wheels: Vec<LockedFile> = p.wheels.into_iter().filter_map(&mut file).collect();
        let sdist = p.sdist.and_then(&mut file);
        let edges = |list: Vec<RawEdge>, markers: &mut Vec<(String, String)>| -> Vec<Edge> {
            list.into_iter()
                .map(|e| {
                    if let Some(m) = &e.marker {
                        markers.push((e.name.clone(), m.clone()));
                    }
                    Edge {
                        name: normalize(&e.name),
                        version: e.version,
                        marker: e.marker,
                        extras: e.extra.iter().map(|x| normalize(x)).collect(),
                    }
                })
                .collect()
        };
        let dependencies = edges(p.dependencies, &mut markers);
        let optional = p
            .optional
            .into_iter()
            .map(|(k, v)| (normalize(&k), edges(v, &mut markers)))
            .collect();
        let groups = p
            .dev
            .into_iter()
            .map(|(k, v)| (normalize(&k), edges(v, &mut markers)))
            .collect();
        if !local && wheels.is_empty() && sdist.is_none() && problem.is_none() {
            problem = Some(format!("package `{}` has no file to fetch", p.name));
        }
        packages.push(Package {
            name: normalize(&p.name),
            version: p.version,
            local,
            dependencies,
            optional,
            groups,
            wheels,
            sdist,
        });
    }
    if root.is_none() && problem.is_none() {
        problem = Some("it holds no project at its own directory (a virtual workspace?)".into());
    }
    if let (Some(_), Some(pyproject)) = (root, pyproject) {
        up_to_date(root_metadata.unwrap_or_default(), pyproject)?;
    }
    Ok(UvLock {
        packages,
        root,
        problem,
        markers,
    })
}

/// A lock file entry as a fetchable file. Errors: why it is not one.
fn file_of(f: RawFile) -> Result<LockedFile, String> {
    let Some(url) = f.url else {
        return Err(match f.path {
            Some(p) => format!("a local file ({p})"),
            None => "a file with no URL".into(),
        });
    };
    let sha256 = f
        .hash
        .as_deref()
        .and_then(|h| h.strip_prefix("sha256:"))
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|h| h.to_ascii_lowercase())
        .ok_or_else(|| format!("no sha256 for {}", crate::url::redact(&url)))?;
    let filename = url
        .split(['?', '#'])
        .next()
        .and_then(|u| u.rsplit('/').next())
        .filter(|n| !n.is_empty() && *n != "." && *n != ".." && !n.contains(['\\', '\0']))
        .ok_or_else(|| format!("no file name in {}", crate::url::redact(&url)))?
        .to_string();
    Ok(LockedFile {
        filename,
        url,
        sha256,
        size: f.size,
    })
}

/// The project's metadata in the lock against its `pyproject.toml`: the same dependencies
/// (with their extras' markers) and the same dependency groups. Errors: what changed.
fn up_to_date(lock: Metadata, pyproject: &str) -> Result<(), String> {
    #[derive(Deserialize, Default)]
    struct Project {
        #[serde(default)]
        dependencies: Vec<String>,
        #[serde(rename = "optional-dependencies", default)]
        optional: BTreeMap<String, Vec<String>>,
    }
    #[derive(Deserialize)]
    struct Pyproject {
        project: Option<Project>,
        #[serde(rename = "dependency-groups", default)]
        groups: BTreeMap<String, Vec<toml::Value>>,
    }
    let p: Pyproject = toml::from_str(pyproject).map_err(|e| e.message().to_string())?;
    let stale = |what: &str| {
        Err(format!(
            "it is out of date with pyproject.toml ({what}): run `uv lock`"
        ))
    };
    let project = p.project.unwrap_or_default();
    let mut want: Vec<String> = project.dependencies.clone();
    for (extra, list) in &project.optional {
        for r in list {
            let (req, marker) = match r.split_once(';') {
                Some((req, m)) => (req, format!("({m}) and extra == '{extra}'")),
                None => (r.as_str(), format!("extra == '{extra}'")),
            };
            want.push(format!("{req} ; {marker}"));
        }
    }
    let have: Vec<String> = lock.requires_dist.iter().map(Dist::text).collect();
    if canonical(&want)? != canonical(&have)? {
        return stale("its dependencies");
    }
    for (group, list) in &p.groups {
        // `{include-group = ...}` tables: uv resolves them; kiln compares plain lists only.
        let Some(want): Option<Vec<String>> = list
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect()
        else {
            continue;
        };
        let have: Vec<String> = lock
            .requires_dev
            .get(group)
            .map(|l| l.iter().map(Dist::text).collect())
            .unwrap_or_default();
        if canonical(&want)? != canonical(&have)? {
            return stale(&format!("dependency group `{group}`"));
        }
    }
    Ok(())
}

impl Dist {
    /// The requirement as PEP 508 text.
    fn text(&self) -> String {
        let mut out = self.name.clone();
        if !self.extras.is_empty() {
            out.push_str(&format!("[{}]", self.extras.join(",")));
        }
        match (&self.url, &self.specifier) {
            (Some(u), _) => out.push_str(&format!(" @ {u}")),
            (None, Some(s)) => out.push_str(s),
            (None, None) => {}
        }
        if let Some(m) = &self.marker {
            out.push_str(&format!(" ; {m}"));
        }
        out
    }
}

/// Requirements in a form two equal lists share whatever their spelling: each parsed (PEP
/// 508), with its extras and specifiers sorted and its marker in pep508_rs's canonical
/// form, the list sorted. Errors: a requirement that does not parse.
fn canonical(list: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = list
        .iter()
        .map(|r| {
            let req = Requirement::<VerbatimUrl>::from_str(r)
                .map_err(|e| format!("`{r}`: {}", e.message))?;
            let mut extras: Vec<String> = req.extras.iter().map(|e| e.to_string()).collect();
            extras.sort();
            let what = match &req.version_or_url {
                Some(pep508_rs::VersionOrUrl::VersionSpecifier(s)) => {
                    let mut parts: Vec<String> = s.iter().map(|p| p.to_string()).collect();
                    parts.sort();
                    parts.join(",")
                }
                Some(pep508_rs::VersionOrUrl::Url(u)) => u.to_string(),
                None => String::new(),
            };
            let marker = req.marker.try_to_string().unwrap_or_default();
            Ok(format!("{}[{}]{what};{marker}", req.name, extras.join(",")))
        })
        .collect::<Result<_, String>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

impl UvLock {
    /// What one group installs on `target`: the project's dependencies, those of its
    /// `extras` and dependency `groups`, and theirs, each edge taken when its marker holds;
    /// local projects (workspace members) walked but left out. In name order, each with
    /// its files (markers decided here, so none is kept). Errors: an edge to a package the
    /// lock lacks, a marker that does not parse, an extra or group the project lacks, or a
    /// walk past `MAX_WALK`.
    pub fn select(
        &self,
        extras: &[String],
        groups: &[String],
        target: &Interpreter,
    ) -> Result<Vec<LockedPackage>, String> {
        let env = target.marker_environment()?;
        let root = self
            .root
            .map(|r| &self.packages[r])
            .ok_or_else(|| self.problem.clone().unwrap_or_default())?;
        let mut todo: Vec<&Edge> = root.dependencies.iter().collect();
        for (what, names, table) in [
            ("extra", extras, &root.optional),
            ("dependency group", groups, &root.groups),
        ] {
            for n in names {
                let edges = table
                    .get(&normalize(n))
                    .ok_or_else(|| format!("the project has no {what} `{n}` in the lock"))?;
                todo.extend(edges);
            }
        }
        let mut seen: BTreeSet<(usize, Vec<String>)> = BTreeSet::new();
        let mut out: BTreeMap<usize, ()> = BTreeMap::new();
        let mut steps = 0;
        while let Some(edge) = todo.pop() {
            steps += 1;
            if steps > MAX_WALK {
                return Err(format!(
                    "its dependencies lead more than {MAX_WALK} steps deep"
                ));
            }
            if let Some(m) = &edge.marker {
                let tree = MarkerTree::from_str(m)
                    .map_err(|e| format!("package `{}`: marker `{m}`: {e}", edge.name))?;
                if !tree.evaluate(&env, &[]) {
                    continue;
                }
            }
            let i = self.find(edge)?;
            if !seen.insert((i, edge.extras.clone())) {
                continue;
            }
            let p = &self.packages[i];
            if !p.local {
                out.insert(i, ());
            }
            todo.extend(&p.dependencies);
            for x in &edge.extras {
                todo.extend(p.optional.get(x).into_iter().flatten());
            }
        }
        let mut selected: Vec<LockedPackage> = out
            .keys()
            .map(|&i| {
                let p = &self.packages[i];
                LockedPackage {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    marker: None,
                    wheels: p.wheels.clone(),
                    sdist: p.sdist.clone(),
                }
            })
            .collect();
        selected.sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
        Ok(selected)
    }

    /// The package an edge leads to: by name, and by version where the lock holds several.
    fn find(&self, edge: &Edge) -> Result<usize, String> {
        let mut found = self.packages.iter().enumerate().filter(|(_, p)| {
            p.name == edge.name
                && edge
                    .version
                    .as_ref()
                    .is_none_or(|v| p.version.as_ref() == Some(v))
        });
        match (found.next(), found.next()) {
            (Some((i, _)), None) => Ok(i),
            (None, _) => Err(format!(
                "a dependency on `{}` that the lock does not hold",
                edge.name
            )),
            (Some(_), Some(_)) => Err(format!(
                "a dependency on `{}` that the lock holds in several versions, with none named",
                edge.name
            )),
        }
    }

    /// Every locked file, of every package (what the netrc and fetch rules look at).
    pub fn files(&self) -> impl Iterator<Item = (&str, &LockedFile)> {
        self.packages.iter().flat_map(|p| {
            p.wheels
                .iter()
                .chain(&p.sdist)
                .map(move |f| (p.name.as_str(), f))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = include_str!("../../examples/uv-project/uv.lock");
    const PYPROJECT: &str = include_str!("../../examples/uv-project/pyproject.toml");

    fn names(lock: &UvLock, extras: &[&str], groups: &[&str], python: &str) -> Vec<String> {
        let target = Interpreter {
            python_full_version: python.into(),
            implementation_version: python.into(),
            read: true,
            ..Interpreter::assumed(&python[..4], "amd64").unwrap()
        };
        let s = |l: &[&str]| l.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        lock.select(&s(extras), &s(groups), &target)
            .unwrap()
            .into_iter()
            .map(|p| format!("{} {}", p.name, p.version.unwrap()))
            .collect()
    }

    /// The example project's groups, as `uv export` gives them: the project itself and the
    /// dev group left out, the ml extra's numpy by the interpreter's version.
    #[test]
    fn selects_what_uv_export_would_for_the_interpreter() {
        let lock = read(LOCK, Some(PYPROJECT)).unwrap();
        assert!(lock.problem.is_none(), "{:?}", lock.problem);
        let core = names(&lock, &[], &[], "3.11.2");
        assert!(core.contains(&"httpx 0.28.1".to_string()), "{core:?}");
        assert!(
            core.iter()
                .all(|n| !n.starts_with("svc ") && !n.starts_with("pytest "))
        );
        assert!(core.iter().all(|n| !n.starts_with("numpy ")), "{core:?}");
        let ml = names(&lock, &["ml"], &["gpu"], "3.11.2");
        assert!(ml.contains(&"numpy 2.4.6".to_string()), "{ml:?}");
        assert!(ml.iter().any(|n| n.starts_with("tabulate ")), "{ml:?}");
        let ml312 = names(&lock, &["ml"], &[], "3.12.1");
        assert!(ml312.contains(&"numpy 2.5.5".to_string()), "{ml312:?}");
        let target = Interpreter::assumed("3.11", "amd64").unwrap();
        assert!(
            lock.select(&["nope".into()], &[], &target)
                .unwrap_err()
                .contains("no extra `nope`")
        );
    }

    /// A dependency added to pyproject.toml without `uv lock`: refused, as `uv export
    /// --locked` refuses it; the same dependencies spelt otherwise are not.
    #[test]
    fn a_lock_out_of_date_with_its_project_is_refused() {
        let added = PYPROJECT.replace("\"pydantic>=2.10\",", "\"pydantic>=2.10\",\n    \"six\",");
        assert!(read(LOCK, Some(&added)).unwrap_err().contains("uv lock"));
        let respelt = PYPROJECT.replace("\"httpx>=0.28\"", "\"HTTPX >= 0.28\"");
        read(LOCK, Some(&respelt)).unwrap();
        let group = PYPROJECT.replace("gpu = [\"tabulate>=0.9\"]", "gpu = [\"tabulate>=0.10\"]");
        assert!(
            read(LOCK, Some(&group))
                .unwrap_err()
                .contains("dependency group `gpu`")
        );
    }

    #[test]
    fn a_git_package_is_not_fetched_by_the_engine() {
        let git = LOCK.replacen(
            "source = { registry = \"https://pypi.org/simple\" }",
            "source = { git = \"https://github.com/o/annotated-types?rev=1#abc\" }",
            1,
        );
        let lock = read(&git, None).unwrap();
        assert!(lock.problem.unwrap().contains("from git"));
    }
}
