//! What kiln reads from a project's `pyproject.toml`: `requires-python` (PEP 621), the
//! members of a uv workspace, whose `pyproject.toml` files `uv export --locked` checks
//! against `uv.lock`, and for `kiln init` the project's name, scripts, extras and groups
//! (`Metadata`).
//!
//! Facts used: PEP 517/518 (`[build-system]`), PEP 621 (`[project]`: `name`,
//! `description`, `requires-python`, `scripts`, `optional-dependencies`), PEP 735
//! (`[dependency-groups]`), Poetry's `[tool.poetry]` (`name`, `description`, `scripts`,
//! `group.NAME.optional`, Poetry 1's `dev-dependencies`, `extras`, `package-mode`).

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Deserialize, Default)]
struct PyProject {
    #[serde(default)]
    project: Project,
    #[serde(default)]
    tool: Tool,
}

#[derive(Deserialize, Default)]
struct Project {
    #[serde(rename = "requires-python")]
    requires_python: Option<String>,
}

#[derive(Deserialize, Default)]
struct Tool {
    #[serde(default)]
    uv: Uv,
}

/// The whole file as `metadata` reads it (a view of its own, so that a value `metadata`
/// cannot read never stops the build's reading of `requires-python`).
#[derive(Deserialize, Default)]
struct Described {
    #[serde(default)]
    project: Described621,
    #[serde(default)]
    tool: DescribedTool,
    #[serde(rename = "build-system")]
    build_system: Option<toml::Value>,
    #[serde(rename = "dependency-groups", default)]
    dependency_groups: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize, Default)]
struct Described621 {
    name: Option<String>,
    description: Option<String>,
    #[serde(rename = "requires-python")]
    requires_python: Option<String>,
    #[serde(default)]
    scripts: BTreeMap<String, toml::Value>,
    #[serde(rename = "optional-dependencies", default)]
    optional_dependencies: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize, Default)]
struct DescribedTool {
    poetry: Option<Poetry>,
}

#[derive(Deserialize, Default)]
struct Poetry {
    name: Option<String>,
    description: Option<String>,
    #[serde(default)]
    scripts: BTreeMap<String, toml::Value>,
    #[serde(default)]
    group: BTreeMap<String, PoetryGroup>,
    #[serde(rename = "dev-dependencies")]
    dev_dependencies: Option<toml::Value>,
    #[serde(default)]
    extras: BTreeMap<String, toml::Value>,
    #[serde(rename = "package-mode", default = "yes")]
    package_mode: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
struct PoetryGroup {
    #[serde(default)]
    optional: bool,
}

#[derive(Deserialize, Default)]
struct Uv {
    workspace: Option<Workspace>,
}

#[derive(Deserialize, Default)]
struct Workspace {
    #[serde(default)]
    members: Vec<String>,
}

/// `[tool.uv.workspace] members` of a `pyproject.toml`, as written (directories relative
/// to the project). Errors: the TOML error, one line.
pub fn workspace_members(text: &str) -> Result<Vec<String>, String> {
    let doc: PyProject = toml::from_str(text).map_err(|e| e.message().to_string())?;
    Ok(doc.tool.uv.workspace.map(|w| w.members).unwrap_or_default())
}

/// `[project] requires-python` (a PEP 440 specifier set), when there is one. Errors: the
/// TOML error, one line.
pub fn requires_python(text: &str) -> Result<Option<String>, String> {
    let doc: PyProject = toml::from_str(text).map_err(|e| e.message().to_string())?;
    Ok(doc.project.requires_python)
}

/// What `kiln init` reads of a `pyproject.toml`. Names as written; lists in name order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// `[project] name`, else Poetry's `[tool.poetry] name`.
    pub name: Option<String>,
    /// `[project] description`, else Poetry's.
    pub description: Option<String>,
    /// `[project] requires-python` (a PEP 440 specifier set).
    pub requires_python: Option<String>,
    /// The project is a package a build backend makes a wheel of: it has a
    /// `[build-system]`, and Poetry's `package-mode` is not `false`.
    pub package: bool,
    /// Console scripts, name -> entry point (`pkg.cli:main`): `[project.scripts]`, then
    /// Poetry's `[tool.poetry.scripts]` written as strings.
    pub scripts: BTreeMap<String, String>,
    /// PEP 621 extras (`[project.optional-dependencies]`), then Poetry's `[tool.poetry.extras]`.
    pub extras: Vec<String>,
    /// PEP 735 dependency groups (`[dependency-groups]`).
    pub groups: Vec<String>,
    /// Poetry groups (`[tool.poetry.group.NAME]`, `dev` for Poetry 1's
    /// `[tool.poetry.dev-dependencies]`), each with whether it is `optional`.
    pub poetry_groups: Vec<(String, bool)>,
}

/// The `Metadata` of a `pyproject.toml`. Errors: the TOML error, one line.
pub fn metadata(text: &str) -> Result<Metadata, String> {
    let doc: Described = toml::from_str(text).map_err(|e| e.message().to_string())?;
    // Poetry's `package-mode` counts only where there is a `[tool.poetry]` to hold it.
    let package_mode = doc.tool.poetry.as_ref().is_none_or(|p| p.package_mode);
    let poetry = doc.tool.poetry.unwrap_or_default();
    let mut scripts: BTreeMap<String, String> = BTreeMap::new();
    for (name, v) in poetry.scripts.iter().chain(&doc.project.scripts) {
        if let Some(entry) = v.as_str() {
            scripts.insert(name.clone(), entry.to_string());
        }
    }
    let mut extras: Vec<String> = doc.project.optional_dependencies.into_keys().collect();
    for e in poetry.extras.into_keys() {
        if !extras.contains(&e) {
            extras.push(e);
        }
    }
    let mut poetry_groups: Vec<(String, bool)> = poetry
        .group
        .into_iter()
        .map(|(name, g)| (name, g.optional))
        .collect();
    if poetry.dev_dependencies.is_some() && !poetry_groups.iter().any(|(n, _)| n == "dev") {
        poetry_groups.push(("dev".into(), false));
        poetry_groups.sort();
    }
    Ok(Metadata {
        name: doc.project.name.or(poetry.name),
        description: doc.project.description.or(poetry.description),
        requires_python: doc.project.requires_python,
        package: doc.build_system.is_some() && package_mode,
        scripts,
        extras,
        groups: doc.dependency_groups.into_keys().collect(),
        poetry_groups,
    })
}

/// A `.python-version` file's version as `major.minor` (its first line that is not a
/// comment; `3.11.4` and `cpython-3.11` count as 3.11). `None`: no such version there.
pub fn pinned_version(text: &str) -> Option<String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))?;
    let v = line.rsplit('-').next().unwrap_or(line);
    let mut parts = v.split('.');
    let (major, minor) = (parts.next()?, parts.next()?);
    let digits = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
    (digits(major) && digits(minor)).then(|| format!("{major}.{minor}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_or_none() {
        let ws =
            "[project]\nname = \"a\"\n[tool.uv.workspace]\nmembers = [\"libs/x\", \"libs/y\"]\n";
        assert_eq!(workspace_members(ws).unwrap(), ["libs/x", "libs/y"]);
        assert!(
            workspace_members("[project]\nname = \"a\"\n")
                .unwrap()
                .is_empty()
        );
        assert!(workspace_members("[project\n").is_err());
    }

    #[test]
    fn requires_python_and_pins() {
        let p = "[project]\nname = \"a\"\nrequires-python = \">=3.11\"\n";
        assert_eq!(requires_python(p).unwrap().as_deref(), Some(">=3.11"));
        assert_eq!(requires_python("[tool.x]\n").unwrap(), None);
        assert_eq!(pinned_version("3.11\n").as_deref(), Some("3.11"));
        assert_eq!(pinned_version("# pin\n3.12.4\n").as_deref(), Some("3.12"));
        assert_eq!(pinned_version("cpython-3.13\n").as_deref(), Some("3.13"));
        assert_eq!(pinned_version("pypy\n"), None);
    }

    #[test]
    fn metadata_for_init() {
        let uv = include_str!("../../examples/uv-project/pyproject.toml");
        let m = metadata(uv).unwrap();
        assert_eq!(m.name.as_deref(), Some("svc"));
        assert_eq!(m.requires_python.as_deref(), Some(">=3.11"));
        assert!(m.package);
        assert_eq!(
            m.scripts.keys().collect::<Vec<_>>(),
            ["svc-health", "svc-serve"]
        );
        assert_eq!(m.scripts["svc-serve"], "svc.serve:main");
        assert_eq!(
            (m.extras, m.groups),
            (vec!["ml".into()], vec!["dev".into(), "gpu".into()])
        );
        let poetry = include_str!("../../examples/poetry-project/pyproject.toml");
        let m = metadata(poetry).unwrap();
        assert_eq!(
            m.poetry_groups,
            [("dev".to_string(), false), ("worker".to_string(), false)]
        );
        // Poetry 1: metadata under [tool.poetry], dev-dependencies, scripts as tables too.
        let old = "[tool.poetry]\nname = \"old\"\ndescription = \"d\"\n[tool.poetry.scripts]\nrun = \"old.cli:main\"\nfile = { reference = \"x.sh\", type = \"file\" }\n[tool.poetry.dev-dependencies]\npytest = \"*\"\n[tool.poetry.extras]\npg = [\"psycopg2\"]\n[build-system]\nrequires = [\"poetry-core\"]\n";
        let m = metadata(old).unwrap();
        assert_eq!(
            (m.name.as_deref(), m.description.as_deref()),
            (Some("old"), Some("d"))
        );
        assert_eq!(
            m.scripts.into_iter().collect::<Vec<_>>(),
            [("run".into(), "old.cli:main".into())]
        );
        assert_eq!(m.poetry_groups, [("dev".to_string(), false)]);
        assert_eq!(m.extras, ["pg"]);
        assert!(m.package);
        // No [build-system], or Poetry's package-mode off: not a package.
        assert!(!metadata("[project]\nname = \"a\"\n").unwrap().package);
        let off = "[tool.poetry]\npackage-mode = false\n[build-system]\nrequires = []\n";
        assert!(!metadata(off).unwrap().package);
        assert!(metadata("[project\n").is_err());
    }
}
