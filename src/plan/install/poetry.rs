//! A Poetry project's lock (`poetry.lock`): `poetry install --no-root --only GROUPS` into
//! the venv, with the project's `pyproject.toml` beside the lock. `kiln lock` leaves it as
//! it is (Poetry's own format, installed exactly as locked already).

use super::{Cache, LockAction, POETRY_HOME, Recipe, in_mount};
use crate::context::join;
use crate::plan::Toolchain;
use crate::plan::shell::quote;
use crate::spec::Lock;

/// Poetry installs into the active venv when it makes none of its own; the groups are the
/// spec's, or the kind's default (`main`).
pub fn recipe(lock: &Lock, toolchain: &Toolchain) -> Recipe {
    let project = lock.project_dir();
    let venv = &toolchain.venv;
    let groups: Vec<String> = match lock.groups.is_empty() {
        true => lock
            .kind
            .default_groups()
            .iter()
            .map(|g| g.to_string())
            .collect(),
        false => lock.groups.iter().map(|g| g.v.clone()).collect(),
    };
    Recipe {
        tool: "poetry",
        reads: vec![join(project, "pyproject.toml"), lock.path.v.clone()],
        writes: vec![],
        unread: vec![],
        export: None,
        command: format!(
            "cd {}\nVIRTUAL_ENV={venv} PATH={venv}/bin:$PATH POETRY_VIRTUALENVS_CREATE=false POETRY_CACHE_DIR=/root/.cache/pypoetry {POETRY_HOME}/bin/poetry install --no-root --no-interaction --only {}",
            quote(&in_mount(project)),
            quote(&groups.join(",")),
            venv = quote(venv),
        ),
        cache: Cache::Poetry,
    }
}

/// `kiln lock` skips a Poetry group, saying why and what to do instead.
pub fn lock(lock: &Lock) -> (LockAction, Vec<String>) {
    let action = LockAction::Skip {
        why: format!("`{}` is Poetry's lock, which kiln does not re-lock", lock.path.v),
        help: "it is installed exactly as locked already (`poetry install --no-root`); update it with `poetry lock`, or move the project to uv (`uv.lock`) to get a PEP 751 export".into(),
    };
    (action, vec![])
}
