//! What kiln reads from a project's `pyproject.toml`: `requires-python` (PEP 621), and
//! the members of a uv workspace, whose `pyproject.toml` files `uv export --locked`
//! checks against `uv.lock`.

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
}
