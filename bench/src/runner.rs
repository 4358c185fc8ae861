//! How the harness runs builds on a shared, sometimes failing engine: restart a dead
//! engine and retry once, prune only when no one else builds, count the builds that met
//! someone else's, and keep the failures and notes for the report.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::docker::{Engine, Finished, Job};

/// A prune waits at most this long for other builds to end.
const PRUNE_WAIT_MAX: Duration = Duration::from_secs(300);
const PRUNE_WAIT_STEP: Duration = Duration::from_secs(5);

/// Runs builds through an [`Engine`] and keeps what the report needs to say about them.
pub struct Runner<E: Engine> {
    /// The engine.
    pub engine: E,
    /// Where every build's progress log goes (`NAME.log`).
    pub logs: PathBuf,
    /// dockerd's log (kept when the engine died, read for the frontend's own timings).
    pub dlog: PathBuf,
    /// Lines for under the table.
    pub notes: Vec<String>,
    /// Names of the builds that failed.
    pub failed: Vec<String>,
    /// Builds of the current scenario that started while someone else's ran.
    pub disturbed: usize,
    /// Prune before retrying a build the engine died under (cold scenarios: the retry
    /// must start from nothing too).
    pub prune_before_retry: bool,
    /// Never prune (`--no-prune`, for a check of the harness on a shared engine): the
    /// caller makes the state a prune would have made some other way, or says it did not.
    pub no_prune: bool,
    restarts: usize,
    started: Instant,
}

impl<E: Engine> Runner<E> {
    /// A runner whose clock (for `say`) starts now.
    pub fn new(engine: E, logs: PathBuf, dlog: PathBuf) -> Self {
        Runner {
            engine,
            logs,
            dlog,
            notes: Vec::new(),
            failed: Vec::new(),
            disturbed: 0,
            prune_before_retry: false,
            no_prune: false,
            restarts: 0,
            started: Instant::now(),
        }
    }

    /// Progress on stderr, with the seconds since the start.
    pub fn say(&self, msg: &str) {
        eprintln!("bench [{}s]: {msg}", self.started.elapsed().as_secs());
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The log of build `name`.
    pub fn log(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    /// Makes sure the engine answers; starts it when it does not. BuildKit 0.8 in Docker
    /// 20.10 panics now and then ("failed to get edge", moby/moby#42414) and others may
    /// restart it: dockerd's log is kept first, since starting again may rotate it.
    pub fn ensure_engine(&mut self) -> bool {
        if self.engine.alive() {
            return true;
        }
        self.restarts += 1;
        let kept = self
            .logs
            .join(format!("dockerd-before-restart-{}.log", self.restarts));
        let _ = std::fs::copy(&self.dlog, &kept);
        let why = std::fs::read(&self.dlog)
            .ok()
            .and_then(|raw| {
                String::from_utf8_lossy(&raw)
                    .lines()
                    .find(|l| l.starts_with("panic:"))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "no panic in its log".to_string());
        self.notes.push(format!(
            "The engine was down and was started again ({why}); its log is in {}.",
            kept.display()
        ));
        self.say(&format!("the engine is down ({why}); starting it again"));
        self.engine.start()
    }

    /// Prunes BuildKit's whole cache once no one else builds. Pruning under someone
    /// else's running build corrupts BuildKit 0.8's cache index ("index pointing to
    /// missing record") and can panic the daemon, so it waits up to 5 minutes; cold rows
    /// check afterwards that their heavy step really ran.
    pub fn prune(&mut self) {
        if self.no_prune {
            return;
        }
        let mut waited = Duration::ZERO;
        while waited < PRUNE_WAIT_MAX && self.engine.others_building() > 0 {
            if waited.is_zero() {
                self.say("waiting for other builds on this engine to end before pruning");
            }
            self.engine.pause(PRUNE_WAIT_STEP);
            waited += PRUNE_WAIT_STEP;
        }
        if !waited.is_zero() {
            self.notes.push(format!(
                "A prune waited {} s for someone else's builds to end.",
                waited.as_secs()
            ));
        }
        self.ensure_engine();
        if !self.engine.prune() {
            self.say("warning: builder prune failed");
        }
    }

    /// One build; its wall time in ms when it succeeded.
    pub fn build(&mut self, job: Job) -> Option<f64> {
        let done = self.run(&[job]);
        done[0].ok.then_some(done[0].ms)
    }

    /// Builds started at once (BuildKit runs their shared steps once); the wall time
    /// until the last one ended, in ms, when all succeeded.
    pub fn build_together(&mut self, jobs: &[Job]) -> Option<f64> {
        let t0 = Instant::now();
        let done = self.run(jobs);
        done.iter()
            .all(|f| f.ok)
            .then(|| t0.elapsed().as_secs_f64() * 1000.0)
    }

    /// Runs `jobs` at once; the ones that failed because the engine died under them run
    /// once more after the engine is back (and, for cold rows, after a prune).
    fn run(&mut self, jobs: &[Job]) -> Vec<Finished> {
        let mut results: Vec<Option<Finished>> = vec![None; jobs.len()];
        let mut pending: Vec<usize> = (0..jobs.len()).collect();
        for attempt in 1..=2 {
            self.ensure_engine();
            if self.engine.others_building() > 0 {
                self.disturbed += 1;
            }
            let batch: Vec<&Job> = pending.iter().map(|&i| &jobs[i]).collect();
            let done = self.engine.build_all(&batch, &self.logs);
            let mut died = Vec::new();
            let engine_dead = done.iter().any(|f| !f.ok) && !self.engine.alive();
            for (&i, fin) in pending.iter().zip(done) {
                if !fin.ok && engine_dead {
                    let name = &jobs[i].name;
                    let _ = std::fs::copy(
                        self.log(name),
                        self.logs.join(format!("{name}.engine-died.log")),
                    );
                    self.say(&format!("build {name}: the engine died under it"));
                    died.push(i);
                }
                results[i] = Some(fin);
            }
            if died.is_empty() || attempt == 2 {
                break;
            }
            self.ensure_engine();
            if self.prune_before_retry {
                self.prune();
            }
            pending = died;
        }
        let results: Vec<Finished> = results.into_iter().map(|r| r.expect("ran")).collect();
        for (job, fin) in jobs.iter().zip(&results) {
            if fin.ok {
                self.say(&format!("build {}: {:.0} ms", job.name, fin.ms));
            } else {
                self.failed.push(job.name.clone());
                let log = self.log(&job.name);
                self.say(&format!(
                    "build {} FAILED ({}); last lines of {}:",
                    job.name,
                    fin.status,
                    log.display()
                ));
                eprint!("{}", tail(&log, 12));
            }
        }
        results
    }
}

/// The last `n` lines of a file, indented (a failed build's error).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path)
        .map(|raw| String::from_utf8_lossy(&raw).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    {l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// An engine that plays a script: each build's outcome, and whether the engine is
    /// alive after it.
    #[derive(Default)]
    struct Fake {
        /// Per build_all call: (ok per job, engine alive afterwards).
        builds: VecDeque<(Vec<bool>, bool)>,
        /// Answers of others_building, in order; then 0.
        others: VecDeque<usize>,
        alive: bool,
        events: Vec<String>,
        paused: Duration,
    }

    impl Engine for Fake {
        fn build_all(&mut self, jobs: &[&Job], _logs: &Path) -> Vec<Finished> {
            let (oks, alive) = self.builds.pop_front().expect("scripted build");
            self.alive = alive;
            let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
            self.events.push(format!("build {}", names.join("+")));
            oks.into_iter()
                .map(|ok| Finished {
                    ok,
                    ms: 10.0,
                    status: String::new(),
                })
                .collect()
        }
        fn alive(&mut self) -> bool {
            self.alive
        }
        fn start(&mut self) -> bool {
            self.events.push("start".into());
            self.alive = true;
            true
        }
        fn prune(&mut self) -> bool {
            self.events.push("prune".into());
            true
        }
        fn others_building(&mut self) -> usize {
            self.others.pop_front().unwrap_or(0)
        }
        fn pause(&mut self, d: Duration) {
            self.paused += d;
        }
    }

    fn runner(fake: Fake) -> Runner<Fake> {
        let dir = std::env::temp_dir().join(format!("kiln-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Runner::new(
            Fake {
                alive: true,
                ..fake
            },
            dir.clone(),
            dir.join("no-dockerd.log"),
        )
    }

    fn job(name: &str) -> Job {
        Job {
            name: name.into(),
            args: vec![],
            buildx: false,
        }
    }

    #[test]
    fn a_build_the_engine_died_under_runs_again_after_a_restart_and_a_prune() {
        let mut r = runner(Fake {
            builds: [(vec![false], false), (vec![true], true)].into(),
            ..Fake::default()
        });
        r.prune_before_retry = true;
        assert_eq!(r.build(job("cold-kiln-minimal-1")), Some(10.0));
        assert_eq!(
            r.engine.events,
            [
                "build cold-kiln-minimal-1",
                "start",
                "prune",
                "build cold-kiln-minimal-1"
            ]
        );
        assert!(r.failed.is_empty());
        assert!(r.notes[0].starts_with("The engine was down and was started again (no panic"));
    }

    #[test]
    fn a_plain_failure_is_not_retried() {
        let mut r = runner(Fake {
            builds: [(vec![false], true)].into(),
            ..Fake::default()
        });
        r.prune_before_retry = true;
        assert_eq!(r.build(job("noop-kiln-1")), None);
        assert_eq!(r.engine.events, ["build noop-kiln-1"]);
        assert_eq!(r.failed, ["noop-kiln-1"]);
    }

    #[test]
    fn retried_once_only_and_without_prune_in_warm_rows() {
        let mut r = runner(Fake {
            builds: [(vec![false], false), (vec![false], false)].into(),
            ..Fake::default()
        });
        assert_eq!(r.build(job("app-kiln-1")), None);
        assert_eq!(
            r.engine.events,
            ["build app-kiln-1", "start", "build app-kiln-1"]
        );
        assert_eq!(r.failed, ["app-kiln-1"]);
    }

    #[test]
    fn builds_together_retry_only_the_ones_that_died() {
        let mut r = runner(Fake {
            builds: [(vec![true, false], false), (vec![true], true)].into(),
            ..Fake::default()
        });
        assert!(r.build_together(&[job("a"), job("b")]).is_some());
        assert_eq!(r.engine.events, ["build a+b", "start", "build b"]);
        let mut r = runner(Fake {
            builds: [(vec![true, false], true)].into(),
            ..Fake::default()
        });
        assert!(r.build_together(&[job("a"), job("b")]).is_none());
        assert_eq!(r.failed, ["b"]);
    }

    #[test]
    fn prune_waits_for_other_builds_then_notes_it() {
        let mut r = runner(Fake {
            others: [2, 1, 0].into(),
            ..Fake::default()
        });
        r.prune();
        assert_eq!(r.engine.paused, Duration::from_secs(10));
        assert_eq!(r.engine.events, ["prune"]);
        assert_eq!(
            r.notes,
            ["A prune waited 10 s for someone else's builds to end."]
        );
    }

    #[test]
    fn prune_gives_up_waiting_after_five_minutes() {
        let mut r = runner(Fake {
            others: std::iter::repeat_n(1, 1000).collect(),
            ..Fake::default()
        });
        r.prune();
        assert_eq!(r.engine.paused, PRUNE_WAIT_MAX);
        assert_eq!(r.engine.events, ["prune"]);
    }

    #[test]
    fn prune_without_other_builds_does_not_wait() {
        let mut r = runner(Fake::default());
        r.prune();
        assert_eq!(r.engine.paused, Duration::ZERO);
        assert!(r.notes.is_empty());
    }

    #[test]
    fn no_prune_neither_prunes_nor_waits_even_before_a_retry() {
        let mut r = runner(Fake {
            builds: [(vec![false], false), (vec![true], true)].into(),
            others: std::iter::repeat_n(1, 10).collect(),
            ..Fake::default()
        });
        r.no_prune = true;
        r.prune_before_retry = true;
        r.prune();
        assert_eq!(r.build(job("cold-kiln-minimal-1")), Some(10.0));
        assert_eq!(
            r.engine.events,
            [
                "build cold-kiln-minimal-1",
                "start",
                "build cold-kiln-minimal-1"
            ]
        );
        assert_eq!(r.engine.paused, Duration::ZERO);
    }

    #[test]
    fn builds_that_met_someone_elses_are_counted() {
        let mut r = runner(Fake {
            builds: [(vec![true], true), (vec![true], true)].into(),
            others: [1, 0].into(),
            ..Fake::default()
        });
        r.build(job("a"));
        r.build(job("b"));
        assert_eq!(r.disturbed, 1);
    }
}
