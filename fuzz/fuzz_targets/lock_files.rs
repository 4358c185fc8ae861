//! A lock-file project's files as the frontend reads them: `pyproject.toml` (requires-python,
//! uv workspace members), `.python-version`, then the whole context walk for a uv, a Poetry
//! and a PEP 751 lock. Never a panic or a loop.
#![no_main]

use kiln::context::pyproject;
use libfuzzer_sys::fuzz_target;

#[path = "feed.rs"]
mod feed;

const SPECS: [&[u8]; 3] = [
    b"version: 1\nname: w\npython: {base: python:3, installer: uv}\nrequirements:\n  core: {lock: svc/uv.lock, groups: [dev]}\napp: {project: svc}\n",
    b"version: 1\nname: w\npython: {base: python:3}\nrequirements:\n  core: {lock: poetry.lock, groups: [main]}\napp: {src: [app]}\n",
    b"version: 1\nname: w\npython: {base: python:3, installer: uv}\nrequirements:\n  core: {lock: pylock.toml}\napp: {src: [app]}\n",
];

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let _ = pyproject::workspace_members(&text);
    let _ = pyproject::requires_python(&text);
    let _ = pyproject::pinned_version(&text);
    feed::gather(SPECS[*which as usize % SPECS.len()], rest);
});
