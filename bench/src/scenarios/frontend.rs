//! The frontend's own work, outside BuildKit: `kiln llb` (read, validate, plan, lower,
//! marshal, write; process start included) against a process that does nothing, for the
//! example and for generated specs of growing size.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{Bench, Mode, mkdir, write};
use crate::report::{Row, Unit};
use crate::stats::median;

/// How the timings are taken, for the report's footer.
pub(super) const TIMER: &str = "kiln-bench's spawn-and-wait loop after 10 warm-ups";
const WARMUPS: usize = 10;

impl Bench {
    /// The `kiln llb` rows, the frontend's own log lines, and LLB growth.
    pub(super) fn frontend_cost(&mut self) -> Result<(), String> {
        let runs = if self.mode == Mode::Smoke { 30 } else { 200 };
        self.run
            .say(&format!("timing the frontend ({TIMER}, {runs} runs)"));
        let t_true = time(runs, || Command::new("/bin/true"));
        let example = self.root.join("examples/worker");
        let spec = self.root.join("specs/worker.yaml");
        let t_example = time(runs, || {
            let mut c = Command::new(&self.kiln_bin);
            c.current_dir(&example)
                .arg("llb")
                .arg(&spec)
                .args(["--target", "cuda"]);
            c
        });
        self.row(Row::new(
            "`kiln llb specs/worker.yaml --target cuda` (left) vs `/bin/true` (right)",
            Unit::MsFine,
            &t_example,
            &t_true,
        ));
        let (front, defs) = (self.front.clone(), self.defs.clone());
        self.row(Row::new(
            "kiln frontend, start to Return on a no-op build (its own log line)",
            Unit::MsFine,
            &front,
            &[],
        ));
        self.row(Row::new(
            "kiln frontend, definition of the example made (its own log line)",
            Unit::MsFine,
            &defs,
            &[],
        ));

        let dir = self.work.join("synth");
        mkdir(&dir.join("app"))?;
        let mut net = Vec::new();
        for (lines, variants) in [(10, 1), (100, 1), (1000, 1), (10, 10), (10, 50)] {
            let file = dir.join(format!("l{lines}-v{variants}.yaml"));
            write(&file, &synth(lines, variants))?;
            let llb = || {
                let mut c = Command::new(&self.kiln_bin);
                c.arg("llb")
                    .arg(&file)
                    .args(["--target", &format!("v{variants}"), "--context"])
                    .arg(&dir);
                c
            };
            // Once with its errors kept: a spec kiln refuses would time an error path.
            let err_log = self.run.logs.join(format!("synth-{lines}-{variants}.err"));
            if let Err(e) = run_once(llb(), &err_log) {
                self.run
                    .say(&format!("kiln llb failed on {}: {e}", file.display()));
                self.run.failed.push(format!("llb-{lines}-{variants}"));
                continue;
            }
            let t = time(runs, llb);
            self.row(Row::new(
                format!("`kiln llb`, {lines} requirement lines, {variants} variant(s) (left) vs `/bin/true` (right)"),
                Unit::MsFine,
                &t,
                &t_true,
            ));
            if let (Some(k), Some(z)) = (median(&t), median(&t_true)) {
                net.push(format!(
                    "{lines} lines/{variants} variants: {:.2} ms",
                    k - z
                ));
            }
        }
        self.note(format!(
            "kiln llb minus /bin/true (medians), the definition's own cost as the spec grows: {}",
            net.join("; ")
        ));
        self.check_at_the_limit(&dir)
    }

    /// `kiln check` of specs just under the 1 MiB limit, made of one kind of key each:
    /// checking must stay linear in the number of keys (issue 11; 100,000 unknown keys
    /// took 84 s, 100,000 env keys 129 s in the frontend, when it was quadratic).
    fn check_at_the_limit(&mut self, dir: &Path) -> Result<(), String> {
        let runs = if self.mode == Mode::Smoke { 3 } else { 10 };
        let head = "version: 1\nname: w\npython: {base: python:3}\n";
        let specs = [
            (
                "100,000 unknown top-level keys (refused)",
                format!(
                    "{head}{}",
                    (0..100_000)
                        .map(|i| format!("u{i}: 1\n"))
                        .collect::<String>()
                ),
            ),
            (
                "85,000 env keys",
                format!(
                    "{head}env:\n{}",
                    (0..85_000)
                        .map(|i| format!("  K{i}: v\n"))
                        .collect::<String>()
                ),
            ),
        ];
        for (what, text) in specs {
            let file = dir.join(format!(
                "limit-{}.yaml",
                what.split(' ').next().unwrap_or("x")
            ));
            write(&file, &text)?;
            let t = time_n(runs, 1, || {
                let mut c = Command::new(&self.kiln_bin);
                c.arg("check").arg(&file);
                c
            });
            self.row(Row::new(
                format!("`kiln check` of a {} KiB spec: {what}", text.len() >> 10),
                Unit::MsFine,
                &t,
                &[],
            ));
        }
        Ok(())
    }
}

/// Wall times (ms) of `runs` runs of a command, after some warm-ups; output discarded.
/// Empty when the command cannot be started.
pub(super) fn time(runs: usize, command: impl FnMut() -> Command) -> Vec<f64> {
    time_n(runs, WARMUPS, command)
}

/// `time` with `warmups` warm-up runs.
fn time_n(runs: usize, warmups: usize, mut command: impl FnMut() -> Command) -> Vec<f64> {
    let mut once = || {
        let t0 = Instant::now();
        let ok = command()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        ok.then(|| t0.elapsed().as_secs_f64() * 1000.0)
    };
    for _ in 0..warmups {
        if once().is_none() {
            return Vec::new();
        }
    }
    (0..runs).map_while(|_| once()).collect()
}

/// Runs a command once, its stderr in `err_log`; the first lines of it on failure.
fn run_once(mut command: Command, err_log: &Path) -> Result<(), String> {
    let out = command
        .stdout(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let _ = std::fs::write(err_log, &out.stderr);
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    Err(text.lines().take(5).collect::<Vec<_>>().join("\n"))
}

/// A generated spec: `lines` inline requirement lines in a shared group, `variants`
/// variants each adding a group of its own on top of it.
fn synth(lines: usize, variants: usize) -> String {
    let mut s = String::from(
        "version: 1\nname: synth\npython: {base: \"python:3.12-slim\", version: \"3.12\"}\n\
         system: {build: [build-essential, libpq-dev], runtime: [libpq5]}\n\
         requirements:\n  core:\n    packages:\n",
    );
    for n in 1..=lines {
        let _ = writeln!(s, "      - \"package-{n}==1.{n}.0\"");
    }
    for v in 1..=variants {
        let _ = writeln!(s, "  extra{v}: {{packages: [\"extra-{v}==0.{v}\"]}}");
    }
    s.push_str(
        "app: {src: [app]}\nuser: {name: worker, uid: 10001}\ncmd: [python, -m, app]\n\
         verify: [\"python -m app.health\"]\nvariants:\n",
    );
    for v in 1..=variants {
        let _ = writeln!(
            s,
            "  v{v}: {{requirements: [core, extra{v}], env: {{VARIANT: \"v{v}\"}}}}"
        );
    }
    s.push_str("default_variant: v1\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_spec_shape() {
        let s = synth(2, 2);
        assert!(s.contains(
            "    packages:\n      - \"package-1==1.1.0\"\n      - \"package-2==1.2.0\"\n"
        ));
        assert!(s.contains("  extra2: {packages: [\"extra-2==0.2\"]}\n"));
        assert!(s.contains("  v2: {requirements: [core, extra2], env: {VARIANT: \"v2\"}}\n"));
        assert!(s.ends_with("default_variant: v1\n"));
    }

    #[test]
    fn timing_a_missing_program_gives_no_samples() {
        assert!(time(3, || Command::new("/nonexistent/kiln")).is_empty());
        assert_eq!(time(3, || Command::new("/bin/true")).len(), 3);
    }
}
