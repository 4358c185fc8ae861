//! A Poetry project's lock (`poetry.lock`): the group's exact set is exported in its own
//! step (`poetry export`, from the `poetry-plugin-export` plugin, with the project's
//! `pyproject.toml` beside the lock), then the variant's installer installs exactly that
//! file, every file checked against its hash. `kiln lock` leaves the lock as it is
//! (Poetry's own format, installed exactly as locked already).

use super::{Cache, EXPORT_MOUNT, Export, LockAction, POETRY_HOME, Recipe, in_mount};
use crate::context::join;
use crate::plan::Toolchain;
use crate::plan::shell::quote;
use crate::spec::{Installer, Lock};

/// The exported set, in the export step's output (requirements.txt format: PEP 508 pins
/// with markers and `--hash` options, the lock's sources as `--index-url` lines).
const EXPORTED: &str = "requirements.txt";

/// `poetry export` of the groups (the spec's, or the kind's default `main`) with every
/// file's hash, then the installer on exactly that file: `--require-hashes` (a file whose
/// hash the lock does not list fails), `--no-deps` (the export is the whole closure of
/// the groups; nothing is resolved). The install reads only the exported file, so a lock
/// edit that leaves this group's set alone leaves its install cached (BuildKit keys
/// read-only mounts by content).
///
/// The export reads the lock without resolving: a lock that no longer matches
/// `pyproject.toml` fails with Poetry's own message (`pyproject.toml changed significantly
/// since poetry.lock was last generated`), as `poetry install` and `poetry check --lock`
/// do (poetry-plugin-export's `ExportCommand.handle`, 1.9 and 1.10). The lock is always
/// there (the context was read), so the plugin never locks.
pub fn recipe(lock: &Lock, toolchain: &Toolchain) -> Recipe {
    let project = lock.project_dir();
    let groups: Vec<String> = match lock.groups.is_empty() {
        true => lock
            .kind
            .default_groups()
            .iter()
            .map(|g| g.to_string())
            .collect(),
        false => lock.groups.iter().map(|g| g.v.clone()).collect(),
    };
    let python = quote(&format!("{}/bin/python", toolchain.venv));
    let exported = format!("{EXPORT_MOUNT}/{EXPORTED}");
    let (command, cache) = match toolchain.installer {
        Installer::Uv => (
            format!("uv pip install --python {python} --require-hashes --no-deps -r {exported}"),
            Cache::Uv,
        ),
        Installer::Pip => (
            format!("{python} -m pip install --require-hashes --no-deps -r {exported}"),
            Cache::Pip,
        ),
    };
    Recipe {
        tool: "poetry",
        reads: vec![join(project, "pyproject.toml"), lock.path.v.clone()],
        writes: vec![],
        unread: vec![],
        export: Some(Export {
            name: "poetry export",
            command: format!(
                "cd {}\nPOETRY_CACHE_DIR=/root/.cache/pypoetry {POETRY_HOME}/bin/poetry export --no-interaction --no-ansi --format requirements.txt --only {} --output {exported}",
                quote(&in_mount(project)),
                quote(&groups.join(",")),
            ),
            cache: Cache::Poetry,
        }),
        command,
        cache,
    }
}

/// `kiln lock` skips a Poetry group, saying why and what to do instead.
pub fn lock(lock: &Lock) -> (LockAction, Vec<String>) {
    let action = LockAction::Skip {
        why: format!("`{}` is Poetry's lock, which kiln does not re-lock", lock.path.v),
        help: "it is installed exactly as locked already (`poetry export` of its groups, every file checked against its hash); update it with `poetry lock`, or move the project to uv (`uv.lock`) to get a PEP 751 export".into(),
    };
    (action, vec![])
}
