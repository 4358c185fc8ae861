//! Rebuilds on a warm cache: nothing changed, the app edited, one requirement added.

use std::path::Path;

use super::{Bench, Mode, Tool, append, turns};
use crate::report::{Row, Unit, num};
use crate::stats::median;

/// Requirements added one per run (a different one each run, so no run meets a layer an
/// earlier run made).
pub(super) const REQS: [&str; 3] = ["humanize==4.12.3", "tabulate==0.9.0", "toolz==1.0.0"];

impl Bench {
    /// The no-op, app-edit and (unless smoke) requirement rows.
    pub(super) fn warm(&mut self) -> Result<(), String> {
        self.no_op()?;
        self.app_edit()?;
        if self.mode != Mode::Smoke {
            self.requirement_added()?;
        }
        Ok(())
    }

    fn no_op(&mut self) -> Result<(), String> {
        self.scenario("no-op rebuild");
        self.run.say("warming the cache (minimal, both tools)");
        if self.run.build(self.kiln("warm-kiln", "minimal")).is_none() {
            return Err("the kiln build of the example fails".into());
        }
        if self.run.build(self.peer("warm-peer", "minimal")).is_none() {
            return Err("the peer build of the example fails".into());
        }
        self.run.disturbed = 0;
        let (mut ks, mut ps, mut kexp, mut pexp) = (vec![], vec![], vec![], vec![]);
        for i in 1..=self.runs {
            let mark = dlog_len(&self.run.dlog);
            let name = format!("noop-kiln-{i}");
            if let Some(ms) = self.run.build(self.kiln(&name, "minimal")) {
                ks.push(ms);
                kexp.push(self.export_ms(&name));
            }
            // The frontend writes these to its stderr, which lands in dockerd's log.
            let since = dlog_since(&self.run.dlog, mark);
            self.front
                .extend(last_value(&since, "kiln: frontend start to Return:"));
            self.defs
                .extend(last_value(&since, "kiln: definition for").map(|us| us / 1000.0));
            let name = format!("noop-peer-{i}");
            if let Some(ms) = self.run.build(self.peer(&name, "minimal")) {
                ps.push(ms);
                pexp.push(self.export_ms(&name));
            }
        }
        self.row(Row::new("no-op rebuild", Unit::Ms, &ks, &ps));
        let (k, front) = (median(&ks), median(&self.front));
        let rest = k.zip(front).map(|(k, f)| (k - f).round());
        let line = format!(
            "no-op: kiln median {} ms, of which exporting {} ms (peer: {} ms, exporting {} ms); kiln's frontend process, start to Return (its own log line): {} ms, the definition in it: {} ms; the rest of kiln's time (client, session, the engine starting and stopping the frontend's container, cache lookups): {} ms",
            num(k.map(f64::round)),
            num(median(&kexp)),
            num(median(&ps).map(f64::round)),
            num(median(&pexp)),
            num(front),
            num(median(&self.defs)),
            num(rest)
        );
        self.note(line);
        Ok(())
    }

    fn app_edit(&mut self) -> Result<(), String> {
        self.scenario("app-code change");
        let (mut ks, mut ps, mut ns, mut kexp) = (vec![], vec![], vec![], vec![]);
        for i in 1..=self.runs {
            self.edit_app()?;
            let name = format!("app-kiln-{i}");
            if let Some(ms) = self.run.build(self.kiln(&name, "minimal")) {
                ks.push(ms);
                kexp.push(self.export_ms(&name));
            }
            ps.extend(
                self.run
                    .build(self.peer(&format!("app-peer-{i}"), "minimal")),
            );
            self.edit_app()?;
            let job = self.kiln_with(
                &format!("app-kiln-noverify-{i}"),
                &self.spec,
                "minimal",
                "bench/kiln:minimal",
                &["--build-arg", "KILN_SKIP_VERIFY=1"],
            );
            ns.extend(self.run.build(job));
        }
        self.row(Row::new("app-code change", Unit::Ms, &ks, &ps));
        let line = format!(
            "app-code change: kiln median {} ms, of which exporting {} ms; slowest steps of kiln's last run: {}; with --build-arg KILN_SKIP_VERIFY=1 kiln takes {} ms (median)",
            num(median(&ks).map(f64::round)),
            num(median(&kexp)),
            self.slowest(&format!("app-kiln-{}", self.runs), 3),
            num(median(&ns).map(f64::round))
        );
        self.note(line);
        if self.mode != Mode::Smoke {
            self.row(Row::new(
                "app-code change, kiln with KILN_SKIP_VERIFY=1",
                Unit::Ms,
                &ns,
                &ps,
            ));
        }
        Ok(())
    }

    /// One requirement added to core.txt, from a warm cache of the unedited context.
    fn requirement_added(&mut self) -> Result<(), String> {
        self.scenario("one requirement added");
        self.restore_ctx()?;
        self.run.build(self.kiln("warm2-kiln", "minimal"));
        self.run.build(self.peer("warm2-peer", "minimal"));
        self.run.disturbed = 0;
        let mut samples = [vec![], vec![]];
        // Locked mode: kiln's time is `kiln lock` of the edited context plus the build.
        let (mut locks, mut builds) = (vec![], vec![]);
        for i in 1..=self.runs {
            self.restore_ctx()?;
            // The comment makes the file new to the engine even if an earlier bench added
            // the same package (quick mode does not prune).
            let line = format!(
                "{}  # bench {}\n",
                REQS[(i - 1) % REQS.len()],
                super::nanos()
            );
            append(&self.ctx.join("requirements/core.txt"), &line)?;
            for who in turns(i) {
                let lock = if who == Tool::Kiln && self.mode == Mode::Locked {
                    let ms = self.relock()?;
                    locks.push(ms);
                    ms
                } else {
                    0.0
                };
                let job = self.job(who, &format!("req-{}-{i}", who.label()), "minimal");
                if let Some(ms) = self.run.build(job) {
                    samples[who as usize].push(ms + lock);
                    if who == Tool::Kiln {
                        builds.push(ms);
                    }
                }
            }
        }
        let [ks, ps] = samples;
        self.restore_ctx()?;
        if self.mode == Mode::Locked {
            self.row(Row::new(
                "one requirement added, warm (kiln: `kiln lock` + build)",
                Unit::Secs,
                &ks,
                &ps,
            ));
            self.row(Row::new(
                "one requirement added, warm: kiln's build alone",
                Unit::Secs,
                &builds,
                &ps,
            ));
            self.row(Row::new(
                "one requirement added: `kiln lock` of the edited context (kiln only)",
                Unit::Secs,
                &locks,
                &[],
            ));
        } else {
            self.row(Row::new("one requirement added", Unit::Secs, &ks, &ps));
        }
        let r = self.runs;
        let line = format!(
            "one requirement added, slowest steps of the last run: kiln: {}; peer: {}",
            self.slowest(&format!("req-kiln-{r}"), 3),
            self.slowest(&format!("req-peer-{r}"), 3)
        );
        self.note(line);
        Ok(())
    }
}

/// The length of dockerd's log now (0 when there is none).
pub(super) fn dlog_len(dlog: &Path) -> u64 {
    std::fs::metadata(dlog).map_or(0, |m| m.len())
}

/// What dockerd logged after byte `mark` (all of it if the log was started again).
pub(super) fn dlog_since(dlog: &Path, mark: u64) -> String {
    let raw = std::fs::read(dlog).unwrap_or_default();
    let from = usize::try_from(mark).map_or(0, |m| if m > raw.len() { 0 } else { m });
    String::from_utf8_lossy(&raw[from..]).into_owned()
}

/// The number before the last word of the last line holding `pattern`: `... 35 ms` -> 35.
pub(super) fn last_value(text: &str, pattern: &str) -> Option<f64> {
    let line = text.lines().rev().find(|l| l.contains(pattern))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    words.get(words.len().checked_sub(2)?)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontend_lines_in_dockerds_log() {
        let log = "time=\"x\" level=info msg=\"kiln: frontend start to Return: 41 ms\"\n\
                   kiln: definition for minimal made in 480 us\n\
                   kiln: frontend start to Return: 35 ms\n\
                   unrelated line\n";
        assert_eq!(
            last_value(log, "kiln: frontend start to Return:"),
            Some(35.0)
        );
        assert_eq!(last_value(log, "kiln: definition for"), Some(480.0));
        assert_eq!(last_value(log, "absent"), None);
    }
}
