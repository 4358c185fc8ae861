//! The image's gates: the `pip check` of each layered group and of the project, and the
//! runtime-library check's scans (`Compiled::gates`, `Compiled::runtime_check`). None is
//! an input of the image, so no layer and no export waits for one; the frontend solves
//! them beside the image (and beside verify) and returns the image only when every one
//! passed, so nothing is exported after a failed check.
//!
//! What this costs: a gate's result is not part of the returned image, so a registry
//! cache (`--cache-to`) does not hold it, and a fresh runner runs the checks again, as it
//! runs verify. What it saves: on every build that changes the venv, the checks are off
//! the path to the image (docs/benchmarks.md has the figures).

use std::time::Instant;

use super::bridge::{Bridge, Failure};
use super::build::blame_step;
use crate::diag::SourceFile;
use crate::llb::pb;
use crate::plan::RuntimeCheckRun;

/// What one gate's solve gave: its index, and its report's text for a scan.
type Outcome = (usize, Result<Option<String>, Failure>);

/// Solve every gate of the `image` at once, and read the runtime-library reports.
/// Errors, in this order: the first failed gate (by its place in `gates`, then the
/// scans), as its step's failure at its spec line (`blame_step`); a report that cannot be
/// read; each missing library, at its place (`runtime_libs::diagnostics`).
pub async fn run(
    bridge: Bridge,
    gates: Vec<pb::Definition>,
    runtime_check: Option<RuntimeCheckRun>,
    image: String,
    files: Vec<SourceFile>,
) -> Result<(), Failure> {
    let started = Instant::now();
    let scans = runtime_check.as_ref().map_or(&[][..], |r| &r.defs[..]);
    let misses = runtime_check.as_ref().map(|r| r.misses);
    let defs: Vec<pb::Definition> = gates.iter().chain(scans).cloned().collect();
    let mut running = tokio::task::JoinSet::new();
    for (i, def) in defs.iter().cloned().enumerate() {
        let mut b = bridge.clone();
        // Gates come first in `defs`; the scans after them have a report to read.
        let report = misses.filter(|_| i >= gates.len());
        running.spawn(async move {
            let solved = b.solve(def, true).await;
            let outcome = match (solved, report) {
                (Err(f), _) => Err(f),
                (Ok(_), None) => Ok(None),
                (Ok(r), Some(path)) => match b.read_file(&r, path).await {
                    Ok(text) => Ok(Some(String::from_utf8_lossy(&text).into_owned())),
                    Err(s) => Err(Failure::invalid(format!(
                        "the runtime-library check's report could not be read: {}",
                        s.message()
                    ))),
                },
            };
            (i, outcome)
        });
    }
    let mut outcomes: Vec<Outcome> = vec![];
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => return Err(Failure::invalid(format!("check task: {e}"))),
        }
    }
    outcomes.sort_by_key(|(i, _)| *i);
    let mut report = String::new();
    for (i, outcome) in outcomes {
        match outcome {
            Err(f) => return Err(blame_step(&defs[i], &files, f)),
            Ok(text) => report.push_str(&text.unwrap_or_default()),
        }
    }
    if let Some(run) = &runtime_check {
        let missing = super::runtime_libs::diagnostics(&report, &run.locs, &image);
        if !missing.is_empty() {
            return Err(Failure::from_diagnostics(&files, &missing));
        }
    }
    if !defs.is_empty() {
        eprintln!(
            "kiln: {} checks of {image} passed in {} ms",
            defs.len(),
            started.elapsed().as_millis()
        );
    }
    Ok(())
}
