//! A PEP 751 lock (`pylock.toml`, `pylock.NAME.toml`). When every file has a URL and a
//! sha256 (and the variant's interpreter is known), the engine fetches the files itself
//! and the group installs offline from them (`fetchable`; the plan's fetched-group
//! stages); otherwise `uv pip install -r` of the lock from the index, in the step.

use super::{Cache, ContextInfo, Fetchable, LockAction, Recipe, in_mount, uv_install_pylock};
use crate::context::pylock::Pylock;
use crate::plan::Toolchain;
use crate::spec::{Lock, Variant};

/// uv installs the lock's set itself, from the index.
pub fn recipe(lock: &Lock, toolchain: &Toolchain) -> Recipe {
    let python = format!("{}/bin/python", toolchain.venv);
    Recipe {
        tool: "uv",
        reads: vec![lock.path.v.clone()],
        writes: vec![],
        unread: vec![],
        export: None,
        command: uv_install_pylock(&python, &in_mount(&lock.path.v)),
        cache: Cache::Uv,
    }
}

/// The lock's packages, when the context gave a lock whose every file has a URL and a
/// sha256.
pub fn fetchable<'c>(lock: &Lock, v: &Variant, ctx: &'c ContextInfo) -> Option<Fetchable<'c>> {
    let Some(Pylock::Addressable(packages)) = ctx.pylocks.get(&lock.path.v) else {
        return None;
    };
    Some(Fetchable::packages(
        ctx.python(v).map(|p| p.version.to_string()),
        packages,
    ))
}

/// `kiln lock` only reads a PEP 751 lock back.
pub fn lock(lock: &Lock) -> (LockAction, Vec<String>) {
    let action = LockAction::Check {
        lock: lock.path.v.clone(),
    };
    (action, vec![])
}
