//! BuildKit's plain progress output (`docker build --progress=plain`) read into steps.
//!
//! Every line of a vertex starts with `#<id> `. The first such line names the vertex; later
//! ones are its digest (`sha256:...`), status lines (`transferring context: 2B done`), log
//! lines with a timestamp (`#12 0.345 Get:1 ...`), a `...` marker where the printer switched
//! to another vertex (the name is printed again when it comes back), and one final line:
//! `CACHED`, `DONE 1.2s`, `ERROR: ...` or `CANCELED`. A vertex can be printed twice with
//! the same id, so every fact is merged into one step per id.

use std::collections::BTreeMap;

/// One vertex of a build as the progress shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Step {
    /// The `#<id>` of the vertex.
    pub id: u32,
    /// The vertex name (its first line), e.g. `[builder 2/6] RUN ...` or `uv install: core (...)`.
    pub name: String,
    /// BuildKit found the result in its cache and did not run it.
    pub cached: bool,
    /// Seconds from the `DONE` line, when the step completed.
    pub secs: Option<f64>,
    /// The text after `ERROR: `, or `canceled`.
    pub error: Option<String>,
    /// Log lines (timestamped output of the step's process) seen.
    pub output_lines: usize,
}

impl Step {
    /// The step was executed in this build: it finished or failed, and was not cached.
    pub fn ran(&self) -> bool {
        !self.cached && (self.secs.is_some() || self.error.is_some())
    }
}

/// Parses a whole plain progress log; steps come back in order of id.
pub fn parse(log: &str) -> Vec<Step> {
    let mut steps: BTreeMap<u32, Step> = BTreeMap::new();
    for line in log.lines() {
        let Some((id, rest)) = vertex_line(line) else {
            continue;
        };
        let step = steps.entry(id).or_insert_with(|| Step {
            id,
            ..Step::default()
        });
        if rest == "CACHED" {
            step.cached = true;
        } else if rest == "CANCELED" {
            step.error.get_or_insert_with(|| "canceled".to_string());
        } else if let Some(err) = rest.strip_prefix("ERROR:") {
            step.error = Some(err.trim().to_string());
        } else if let Some(secs) = done_secs(rest) {
            step.secs = Some(secs);
        } else if rest == "..." || is_digest(rest) {
            // Printer bookkeeping, nothing about the step.
        } else if is_timestamp(rest.split(' ').next().unwrap_or("")) {
            step.output_lines += 1;
        } else if step.name.is_empty() {
            step.name = rest.to_string();
        }
        // Anything else is the name printed again or a status line.
    }
    steps.into_values().collect()
}

/// `#12 rest` -> (12, "rest").
fn vertex_line(line: &str) -> Option<(u32, &str)> {
    let (id, rest) = line.strip_prefix('#')?.split_once(' ')?;
    Some((id.parse().ok()?, rest.trim_end()))
}

/// `DONE 1.2s` -> 1.2.
fn done_secs(rest: &str) -> Option<f64> {
    rest.strip_prefix("DONE ")?.strip_suffix('s')?.parse().ok()
}

fn is_digest(rest: &str) -> bool {
    rest.strip_prefix("sha256:")
        .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The seconds-since-start prefix of a log line: `0.345`, `10.31`.
fn is_timestamp(word: &str) -> bool {
    let (int, frac) = word.split_once('.').unwrap_or((word, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// The steps whose name contains `needle`.
pub fn named<'a>(steps: &'a [Step], needle: &'a str) -> impl Iterator<Item = &'a Step> + 'a {
    steps.iter().filter(move |s| s.name.contains(needle))
}

/// Whether a step named like `needle` was cached: `None` when no step has such a name.
/// Several vertices may match (two builds' worth, or the name printed for a retried
/// step); one cached match is enough, as BuildKit shows a reused step once.
pub fn was_cached(steps: &[Step], needle: &str) -> Option<bool> {
    let mut found = false;
    for step in named(steps, needle) {
        if step.cached {
            return Some(true);
        }
        found = true;
    }
    found.then_some(false)
}

/// A step named like `needle` ran in this build and none with that name was cached.
pub fn ran(steps: &[Step], needle: &str) -> bool {
    was_cached(steps, needle) == Some(false) && named(steps, needle).any(Step::ran)
}

/// Seconds of the first completed step named like `needle` (0 when none completed).
pub fn secs_of(steps: &[Step], needle: &str) -> f64 {
    named(steps, needle).find_map(|s| s.secs).unwrap_or(0.0)
}

/// The `count` slowest completed steps as `name (N.N s); ...`, names squeezed to one line
/// and cut at 70 characters: what a slow build was made of.
pub fn slowest(steps: &[Step], count: usize) -> String {
    let mut done: Vec<(&Step, f64)> = steps
        .iter()
        .filter_map(|s| s.secs.map(|t| (s, t)))
        .collect();
    done.sort_by(|a, b| b.1.total_cmp(&a.1));
    done.iter()
        .take(count)
        .map(|(s, t)| format!("{} ({t:.1} s)", short_name(&s.name)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn short_name(name: &str) -> String {
    let squeezed = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if squeezed.chars().count() > 70 {
        format!("{}...", squeezed.chars().take(67).collect::<String>())
    } else {
        squeezed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<Step> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        parse(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
    }

    #[test]
    fn line_kinds() {
        let steps = parse(
            "#3 [internal] load metadata for docker.io/x\n\
             #3 sha256:50c82ee92683845c93616a65386cb6f9f8f70fce54b8148b19297b4fc7fd20e6\n\
             #3 DONE 0.0s\n\
             \n\
             #5 [runtime 2/6] RUN apt-get update\n\
             #5 0.807 Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]\n\
             #5 ...\n\
             #5 [runtime 2/6] RUN apt-get update\n\
             #5 10.31 Reading package lists...\n\
             #5 DONE 12.5s\n\
             #7 [builder 3/6] RUN false\n\
             #7 0.2 oops\n\
             #7 ERROR: executor failed running [/bin/sh -c false]: exit code: 1\n\
             #8 [stage] COPY x\n\
             #8 CACHED\n\
             #9 transfer\n\
             #9 transferring context: 2B done\n\
             #9 CANCELED\n\
             not a vertex line\n",
        );
        let ids: Vec<u32> = steps.iter().map(|s| s.id).collect();
        assert_eq!(ids, [3, 5, 7, 8, 9]);
        assert_eq!(steps[0].name, "[internal] load metadata for docker.io/x");
        assert_eq!(steps[1].secs, Some(12.5));
        assert_eq!(steps[1].output_lines, 2);
        assert!(steps[1].ran());
        assert_eq!(
            steps[2].error.as_deref(),
            Some("executor failed running [/bin/sh -c false]: exit code: 1")
        );
        assert!(steps[2].ran());
        assert!(steps[3].cached && !steps[3].ran());
        assert_eq!(steps[4].name, "transfer");
        assert_eq!(steps[4].error.as_deref(), Some("canceled"));
    }

    #[test]
    fn a_name_that_looks_like_a_number_is_not_output() {
        assert!(!is_timestamp("1."));
        assert!(!is_timestamp(".5"));
        assert!(!is_timestamp("[1/2]"));
        assert!(is_timestamp("12"));
        assert!(is_timestamp("0.345"));
    }

    #[test]
    fn slowest_sorts_squeezes_and_cuts() {
        let long = format!("#2 RUN   {}\n#2 DONE 3.0s\n", "x".repeat(100));
        let steps = parse(&format!("#1 a  b\n#1 DONE 1.25s\n{long}#3 c\n#3 CACHED\n"));
        let s = slowest(&steps, 3);
        assert_eq!(s, format!("RUN {}... (3.0 s); a b (1.2 s)", "x".repeat(63)));
    }

    /// A kiln build of the example with a warm cache: every step CACHED (recorded here).
    #[test]
    fn recorded_noop_kiln_build() {
        let steps = fixture("kiln-noop.log");
        for name in [
            "apt build:",
            "apt runtime:",
            "uv install: core",
            "python: 3.11 check",
        ] {
            assert_eq!(was_cached(&steps, name), Some(true), "{name}");
            assert!(!ran(&steps, name), "{name}");
        }
        assert_eq!(was_cached(&steps, "no such step"), None);
        assert!(secs_of(&steps, "exporting to image") < 1.0);
    }

    /// The same build after an app edit: the app copy and verify steps ran, installs cached.
    #[test]
    fn recorded_app_edit_kiln_build() {
        let steps = fixture("kiln-app-edit.log");
        assert!(ran(&steps, "[minimal] app"));
        assert!(ran(&steps, "verify minimal"));
        assert_eq!(was_cached(&steps, "uv install: core"), Some(true));
        assert!(named(&steps, "verify minimal").all(|s| s.output_lines > 0 || s.secs.is_some()));
    }

    /// A cold peer build: its pip step ran, with timestamped output and a duration.
    #[test]
    fn recorded_cold_peer_build() {
        let steps = fixture("peer-cold.log");
        let pip = "pip install --no-cache-dir --timeout=1000 --retries=5 -r requirements/core.txt";
        assert!(ran(&steps, pip));
        let step = named(&steps, pip).next().expect("pip step");
        assert!(step.output_lines > 0);
        assert!(step.secs.unwrap() > 1.0);
        assert!(slowest(&steps, 3).contains("RUN"));
    }

    /// A failing verify command: its vertex ends in ERROR, the other verify still ran.
    /// The build's own error (`failed to solve ...`) is not a vertex line and adds no step.
    #[test]
    fn recorded_failing_verify() {
        let steps = fixture("kiln-verify-error.log");
        let failed: Vec<&Step> = steps.iter().filter(|s| s.error.is_some()).collect();
        assert_eq!(failed.len(), 1);
        assert!(failed[0].name.contains("not_installed_anywhere"));
        assert!(
            failed[0]
                .error
                .as_deref()
                .unwrap()
                .ends_with("exit code: 1")
        );
        assert!(failed[0].ran());
        assert!(ran(&steps, "verify minimal: python -m app.health"));
        assert_eq!(was_cached(&steps, "uv install: core"), Some(true));
        assert!(steps.iter().all(|s| !s.name.starts_with("failed to solve")));
    }
}
