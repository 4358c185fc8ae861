//! The image's gates (`Compiled::gates`): the `pip check` of each layered group and of
//! the project. None is an input of the image, so no layer and no export waits for one;
//! the frontend solves them beside the image (and beside verify) and returns the image
//! only when every one passed, so nothing is exported after a failed check.
//!
//! What this costs: a gate's result is not part of the returned image, so a registry
//! cache (`--cache-to`) does not hold it, and a fresh runner runs each `pip check` again.
//! It reads only the venv's layers, which that runner pulls for verify anyway. (The
//! runtime-library check mounts the builder as well, so it stays in the image's graph.)
//! What it saves: on a build that changes the venv, the checks are off the path to the
//! image (docs/benchmarks.md has the figures).

use std::time::Instant;

use super::blame::blame_step;
use super::bridge::{Bridge, Failure};
use crate::diag::SourceFile;
use crate::llb::pb;

/// Solve every gate of the `image` at once. Errors: the first failed gate in `gates`'
/// order (the plan's: the groups', then the project's), as its step's failure at its
/// spec line (`blame_step`).
pub async fn run(
    bridge: Bridge,
    gates: Vec<pb::Definition>,
    image: String,
    files: Vec<SourceFile>,
) -> Result<(), Failure> {
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for (i, def) in gates.iter().cloned().enumerate() {
        let b = bridge.clone();
        running.spawn(async move { (i, b.solve(def, true).await) });
    }
    let mut failed: Vec<(usize, Failure)> = vec![];
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok((i, Err(f))) => failed.push((i, f)),
            Ok((_, Ok(_))) => {}
            Err(e) => return Err(Failure::invalid(format!("check task: {e}"))),
        }
    }
    if let Some((i, f)) = failed.into_iter().min_by_key(|(i, _)| *i) {
        return Err(blame_step(&gates[i], &files, f));
    }
    if !gates.is_empty() {
        eprintln!(
            "kiln: {} checks of {image} passed in {} ms",
            gates.len(),
            started.elapsed().as_millis()
        );
    }
    Ok(())
}
