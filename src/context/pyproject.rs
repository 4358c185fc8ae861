//! What kiln reads from a project's `pyproject.toml`: the members of a uv workspace,
//! whose `pyproject.toml` files `uv sync --locked` checks against `uv.lock`.

use serde::Deserialize;

#[derive(Deserialize, Default)]
struct PyProject {
    #[serde(default)]
    tool: Tool,
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
}
