//! A `poetry.lock` as `kiln init` reads it: each package's name, version, groups and file
//! names, so that the packages a group installs from a sdist can be found. (The build
//! never reads the lock: Poetry exports each group's set in a step.)
//!
//! Facts used: Poetry's lock format (`[[package]]` with `name`, `version`, `optional`
//! (installed only for an extra), `groups` (lock-version 2.1) or `category` (2.0),
//! `markers` (a string, or a table per group), `files = [{file, hash}]`; `[metadata]
//! lock-version`).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::context::pylock::{LockedFile, LockedPackage, normalize};

/// One locked package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// PEP 503 normalised.
    pub name: String,
    pub version: String,
    /// The groups that install it (`main`, ...), normalised.
    pub groups: Vec<String>,
    /// Installed only for an extra (`optional = true`).
    pub optional: bool,
    markers: Markers,
    files: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Markers {
    None,
    All(String),
    PerGroup(BTreeMap<String, String>),
}

#[derive(Deserialize)]
struct File {
    #[serde(rename = "package", default)]
    packages: Vec<RawPackage>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    version: String,
    #[serde(default)]
    optional: bool,
    groups: Option<Vec<String>>,
    category: Option<String>,
    markers: Option<toml::Value>,
    #[serde(default)]
    files: Vec<RawFile>,
}

#[derive(Deserialize)]
struct RawFile {
    file: String,
}

/// Every package of a `poetry.lock`. Errors: not TOML, or not a lock's shape (TOML's
/// message, one line).
pub fn read(text: &str) -> Result<Vec<Package>, String> {
    let file: File = toml::from_str(text).map_err(|e| e.message().to_string())?;
    Ok(file
        .packages
        .into_iter()
        .map(|p| {
            let groups = p
                .groups
                .or_else(|| p.category.map(|c| vec![c]))
                .unwrap_or_else(|| vec!["main".into()]);
            let markers = match p.markers {
                Some(toml::Value::String(m)) => Markers::All(m),
                Some(toml::Value::Table(t)) => Markers::PerGroup(
                    t.into_iter()
                        .filter_map(|(g, m)| Some((normalize(&g), m.as_str()?.to_string())))
                        .collect(),
                ),
                _ => Markers::None,
            };
            Package {
                name: normalize(&p.name),
                version: p.version,
                groups: groups.iter().map(|g| normalize(g)).collect(),
                optional: p.optional,
                markers,
                files: p.files.into_iter().map(|f| f.file).collect(),
            }
        })
        .collect())
}

impl Package {
    /// Whether it has a file list at all (Poetry 1's lock-version 1 keeps them elsewhere).
    pub fn has_files(&self) -> bool {
        !self.files.is_empty()
    }

    /// The package as `pylock::choose` reads it, for installing `group`: its wheels and
    /// sdist by file name (the lock has no URLs; `choose` reads names only) and the
    /// group's marker.
    pub fn locked(&self, group: &str) -> LockedPackage {
        let file = |name: &String| LockedFile {
            filename: name.clone(),
            url: String::new(),
            sha256: String::new(),
            size: None,
        };
        let is_sdist = |f: &&String| f.ends_with(".tar.gz") || f.ends_with(".zip");
        LockedPackage {
            name: self.name.clone(),
            version: Some(self.version.clone()),
            marker: match &self.markers {
                Markers::None => None,
                Markers::All(m) => Some(m.clone()),
                Markers::PerGroup(t) => t.get(group).cloned(),
            },
            wheels: self
                .files
                .iter()
                .filter(|f| f.ends_with(".whl"))
                .map(file)
                .collect(),
            sdist: self.files.iter().find(is_sdist).map(file),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::interpreter::Interpreter;
    use crate::context::pylock::{Chosen, choose};

    #[test]
    fn the_example_lock_psycopg2_is_a_sdist_on_linux() {
        let lock = read(include_str!("../../examples/init-poetry/poetry.lock")).unwrap();
        let main: Vec<LockedPackage> = lock
            .iter()
            .filter(|p| p.groups.contains(&"main".to_string()) && !p.optional)
            .map(|p| p.locked("main"))
            .collect();
        let target = Interpreter::assumed("3.11", "amd64").unwrap();
        let chosen = choose(&main, &target).unwrap();
        let sdists: Vec<&str> = chosen
            .iter()
            .filter(|(_, c)| matches!(c, Chosen::Sdist(_)))
            .map(|(p, _)| p.name.as_str())
            .collect();
        assert_eq!(sdists, ["psycopg2"]);
        let report: Vec<&str> = lock
            .iter()
            .filter(|p| p.groups.contains(&"report".to_string()))
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(report, ["tabulate"]);
    }

    #[test]
    fn poetry_1_categories_and_markers_per_group() {
        let text = r#"
[[package]]
name = "Colorama"
version = "0.4.6"
category = "dev"
markers = "sys_platform == 'win32'"
files = [{file = "colorama-0.4.6.tar.gz", hash = "sha256:00"}]

[[package]]
name = "x"
version = "1"
groups = ["main", "ml"]
markers = {main = "python_version < '3.12'"}
files = [{file = "x-1-py3-none-any.whl", hash = "sha256:00"}]
"#;
        let lock = read(text).unwrap();
        assert_eq!(lock[0].name, "colorama");
        assert_eq!(lock[0].groups, ["dev"]);
        let c = lock[0].locked("dev");
        assert_eq!(c.marker.as_deref(), Some("sys_platform == 'win32'"));
        assert_eq!(c.sdist.unwrap().filename, "colorama-0.4.6.tar.gz");
        assert_eq!(
            lock[1].locked("main").marker.as_deref(),
            Some("python_version < '3.12'")
        );
        assert_eq!(lock[1].locked("ml").marker, None);
        assert!(read("[[package]]\nname = 1\n").is_err());
    }
}
