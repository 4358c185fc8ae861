//! Issue 24: a uv project (`bench/projects/uv-worker`: an arq worker, psycopg2 from its
//! sdist, the project a wheel with console scripts; about 20 packages) built by kiln and
//! by two peers, from the same context on the same engine in the same run: the Dockerfile
//! uv's Docker guide recommends (`bench/peer/Dockerfile.uv-worker`: cache mount on uv's
//! cache, the lock bind-mounted, the project after its dependencies) and the seed's pip
//! style (`bench/peer/Dockerfile.uv-worker.pip`: no cache mounts). Every row shows both.

use std::path::PathBuf;
use std::process::Stdio;

use super::locked::pushed_job;
use super::{BASE, Bench, append, cold_pair_ok, copy_dir, read, write};
use crate::docker::Job;
use crate::progress::{self, Step};
use crate::report::{Row, Unit, num};
use crate::stats::median;

/// One more dependency per run of the "+1 dependency" rows, in this order: each has its
/// `pyproject.toml`, `uv.lock` and exported requirements in `bench/projects/uv-worker.plus/NAME/`
/// (`bench/projects/lock.sh` writes them with uv, `uv add NAME` on the fixture).
pub const PLUS: [&str; 3] = ["humanize", "tabulate", "toolz"];

/// The progress flag of the timeline builds (after the harness's `--progress=plain`: the
/// last one counts).
const RAWJSON: &[&str] = &["--progress=rawjson"];
/// `job` by the modern engine's own `docker buildx` (the harness's `docker build` is
/// Docker 20.10's client, which has no rawjson); the docker driver loads the image.
fn buildx(job: Job) -> Job {
    Job {
        buildx: true,
        ..job
    }
}

/// How many steps a timeline note names.
const TIMELINE_STEPS: usize = 12;

/// The project's variants: its dependencies, and those plus the `api` extra.
const VARIANTS: [&str; 2] = ["minimal", "api"];

/// A scenario of uv mode, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UvScenario {
    /// Cold build of each variant (after a prune).
    Cold,
    /// Both variants from cold, each side's two builds started at once.
    Both,
    /// No-op rebuild.
    Noop,
    /// App-code change, kiln with verify and without.
    App,
    /// One dependency added (`uv add`), warm.
    Dep,
    /// One dependency added on a fresh runner with registry cache, and the bytes pushed
    /// (modern engine only).
    Fresh,
    /// Image size of each variant.
    Size,
    /// A cold and a +1 build of kiln and the uv-guide peer with `--progress=rawjson`:
    /// their timelines (modern engine only).
    Timeline,
}

/// Who builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// kiln, through its frontend image, from `bench/projects/uv-worker.yaml`.
    Kiln = 0,
    /// `bench/peer/Dockerfile.uv-worker`: uv's Docker guide.
    UvGuide = 1,
    /// `bench/peer/Dockerfile.uv-worker.pip`: the seed's style.
    Pip = 2,
}

impl Side {
    /// In build names (`uv-cold-uvguide-minimal-1`) and image names.
    pub fn label(self) -> &'static str {
        match self {
            Side::Kiln => "kiln",
            Side::UvGuide => "uvguide",
            Side::Pip => "pip",
        }
    }

    /// Part of the name of the step that installs the project's dependencies (the one
    /// that compiles psycopg2): a cold sample counts only if it ran.
    pub fn heavy(self) -> &'static str {
        match self {
            Side::Kiln => "wheel from sdist: psycopg2",
            Side::UvGuide => "uv sync --frozen --no-install-project",
            Side::Pip => "-r requirements/core.txt",
        }
    }

    /// Part of the name of the step that installs a dependency added to the lock; a "+1"
    /// sample counts only if such a step ran (it did not when the engine had the edit
    /// from an earlier run).
    pub fn installs(self) -> &'static str {
        match self {
            Side::Kiln => "uv install: core",
            Side::UvGuide => "uv sync --frozen --no-install-project",
            Side::Pip => "-r requirements/core.txt",
        }
    }
}

/// Who builds first in run `i` (1-based): each side goes first, second and last once in
/// every three runs.
pub fn order(i: usize) -> [Side; 3] {
    let mut sides = [Side::Kiln, Side::UvGuide, Side::Pip];
    sides.rotate_left((i + 2) % 3);
    sides
}

/// Whether a step named like `needle` ran (some may be cached: kiln on a modern engine
/// has a step per package set).
pub fn any_ran(steps: &[Step], needle: &str) -> bool {
    progress::named(steps, needle).any(Step::ran)
}

/// The uv project's copies in the work directory and the names of its images.
pub(super) struct Project {
    ctx: PathBuf,
    orig: PathBuf,
    spec: PathBuf,
    uv_df: PathBuf,
    pip_df: PathBuf,
    /// `bench/projects/uv-worker.plus` in the repository (read only).
    plus: PathBuf,
    /// Image repository prefix: `bench-uv`, or `kiln-TAG-uv` with `KILN_BENCH_TAG`.
    ns: String,
    /// Base images this run made (`--no-prune`), removed at the end.
    bases: Vec<String>,
    edits: usize,
}

impl Bench {
    /// Every scenario of uv mode (or those of `only`), in order.
    pub(super) fn uv_project(&mut self, only: &[UvScenario]) -> Result<(), String> {
        self.uv_set_up()?;
        self.report.peers = vec!["uv-guide peer".into(), "pip peer".into()];
        if self.run.no_prune {
            self.note(
                "--no-prune: nothing was pruned. Each \"cold\" build started from a fresh copy of the base image (one small layer of its own), so every step ran, but cache mounts (apt, uv, pip), fetched files and the base's layers stayed warm: those rows are not cold figures."
                    .into(),
            );
        }
        let wants = |s: UvScenario| only.is_empty() || only.contains(&s);
        let mut all = || -> Result<(), String> {
            if wants(UvScenario::Cold) {
                self.uv_cold()?;
            }
            if wants(UvScenario::Both) {
                self.uv_both()?;
            }
            if wants(UvScenario::Noop) {
                self.uv_noop()?;
            }
            if wants(UvScenario::App) {
                self.uv_app()?;
            }
            if wants(UvScenario::Dep) {
                self.uv_dep()?;
            }
            if wants(UvScenario::Fresh) {
                self.uv_fresh()?;
            }
            if wants(UvScenario::Size) {
                self.uv_size()?;
            }
            if wants(UvScenario::Timeline) {
                self.uv_timelines()?;
            }
            Ok(())
        };
        let result = all();
        self.uv_clean_up();
        result
    }

    fn uv_set_up(&mut self) -> Result<(), String> {
        let dir = self.work.join("uv");
        let fixture = self.root.join("bench/projects/uv-worker");
        copy_dir(&fixture, &dir.join("ctx"))?;
        copy_dir(&fixture, &dir.join("ctx.orig"))?;
        let spec_text = read(&self.root.join("bench/projects/uv-worker.yaml"))?;
        let body = spec_text.split_once('\n').map_or("", |(_, rest)| rest);
        let spec = dir.join("uv-worker.yaml");
        write(&spec, &format!("# syntax={}\n{body}", self.frontend))?;
        let (uv_df, pip_df) = (dir.join("Dockerfile.uvguide"), dir.join("Dockerfile.pip"));
        for (from, to) in [
            ("Dockerfile.uv-worker", &uv_df),
            ("Dockerfile.uv-worker.pip", &pip_df),
        ] {
            std::fs::copy(self.root.join("bench/peer").join(from), to)
                .map_err(|e| format!("copy {from}: {e}"))?;
        }
        let ns = match std::env::var("KILN_BENCH_TAG") {
            Ok(tag) if !tag.is_empty() => format!("kiln-{tag}-uv"),
            _ => "bench-uv".to_string(),
        };
        self.uv = Some(Project {
            ctx: dir.join("ctx"),
            orig: dir.join("ctx.orig"),
            spec,
            uv_df,
            pip_df,
            plus: self.root.join("bench/projects/uv-worker.plus"),
            ns,
            bases: Vec::new(),
            edits: 0,
        });
        Ok(())
    }

    fn project(&self) -> &Project {
        self.uv.as_ref().expect("uv_set_up ran")
    }

    /// The image `side` builds for `variant`.
    fn uv_image(&self, side: Side, variant: &str) -> String {
        format!("{}/{}:{variant}", self.project().ns, side.label())
    }

    /// A build of `variant` by `side` on `base`, with `extra` docker arguments.
    fn uv_job(&self, side: Side, name: &str, variant: &str, base: &str, extra: &[&str]) -> Job {
        let p = self.project();
        let file = match side {
            Side::Kiln => &p.spec,
            Side::UvGuide => &p.uv_df,
            Side::Pip => &p.pip_df,
        };
        let mut args: Vec<std::ffi::OsString> = vec![
            "-f".into(),
            file.into(),
            "--target".into(),
            variant.into(),
            "-t".into(),
            self.uv_image(side, variant).into(),
        ];
        args.extend(self.common_with(base));
        args.extend(extra.iter().map(Into::into));
        args.push(p.ctx.clone().into());
        Job {
            name: name.into(),
            args,
            buildx: false,
        }
    }

    fn uv_restore(&self) -> Result<(), String> {
        let p = self.project();
        std::fs::remove_dir_all(&p.ctx).map_err(|e| format!("rm {}: {e}", p.ctx.display()))?;
        copy_dir(&p.orig, &p.ctx)
    }

    /// The context with one more dependency: `NAME`'s pyproject.toml, uv.lock and
    /// requirements over the unedited ones.
    fn uv_add(&self, name: &str) -> Result<(), String> {
        let p = self.project();
        self.uv_restore()?;
        copy_dir(&p.plus.join(name), &p.ctx)
    }

    /// The base a cold build starts from: after a prune, the base; with `--no-prune`, a
    /// fresh copy of it: a layer of its own (one small file) under every step, so no step
    /// of an earlier build matches. (A LABEL alone is not enough: Docker 20.10's BuildKit
    /// keys a local image by its layers, and the peers' steps stayed CACHED.)
    fn cold_base(&mut self) -> Result<String, String> {
        if !self.run.no_prune {
            self.run.prune();
            return Ok(BASE.to_string());
        }
        let tag = format!("{}/base:cold-{}", self.project().ns, super::nanos());
        let mut child = self
            .run
            .engine
            .cmd()
            .args(["build", "-q", "-t", &tag, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("docker build of a fresh base: {e}"))?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("piped");
            writeln!(stdin, "FROM {BASE}\nRUN echo '{tag}' >/etc/kiln-bench-cold")
                .map_err(|e| format!("fresh base: {e}"))?;
        }
        let ok = child.wait().is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("cannot build the fresh base {tag}"));
        }
        if let Some(p) = self.uv.as_mut() {
            p.bases.push(tag.clone());
        }
        Ok(tag)
    }

    /// Removes the fresh bases this run made (the tags only; their layers are the base's).
    fn uv_clean_up(&mut self) {
        let bases = self.uv.as_mut().map(|p| std::mem::take(&mut p.bases));
        for tag in bases.unwrap_or_default() {
            let _ = self
                .run
                .engine
                .cmd()
                .args(["image", "rm", &tag])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// A row against both peers from per-side samples (indexed by `Side as usize`).
    fn row3(&mut self, name: &str, unit: Unit, samples: &[Vec<f64>; 3]) {
        self.row(Row::against(
            name,
            unit,
            &samples[0],
            &[&samples[1], &samples[2]],
        ));
    }

    /// `label: kiln: ...; uv-guide: ...; pip: ...`, the slowest steps of each side's build
    /// named `prefix-SIDE-suffix`.
    fn uv_slowest(&mut self, label: &str, prefix: &str, suffix: &str, count: usize) {
        let parts: Vec<String> = [Side::Kiln, Side::UvGuide, Side::Pip]
            .iter()
            .map(|s| {
                let name = format!("{prefix}-{}-{suffix}", s.label());
                format!("{}: {}", s.label(), self.slowest(&name, count))
            })
            .collect();
        self.note(format!("{label}, slowest steps: {}", parts.join("; ")));
    }

    /// Cold builds of each variant, one side at a time, each after a prune.
    fn uv_cold(&mut self) -> Result<(), String> {
        self.run.prune_before_retry = true;
        for v in VARIANTS {
            self.scenario(&format!("uv project: cold build, {v}"));
            let mut samples = [vec![], vec![], vec![]];
            for i in 1..=self.runs {
                for side in order(i) {
                    let base = self.cold_base()?;
                    let name = format!("uv-cold-{}-{v}-{i}", side.label());
                    if let Some(ms) = self.run.build(self.uv_job(side, &name, v, &base, &[]))
                        && self.cold_ok(&name, side.heavy())
                    {
                        samples[side as usize].push(ms);
                    }
                }
            }
            self.row3(&format!("cold build, {v}"), Unit::Secs, &samples);
            let r = self.runs;
            self.uv_slowest(
                &format!("cold {v}, the last run"),
                "uv-cold",
                &format!("{v}-{r}"),
                3,
            );
        }
        self.run.prune_before_retry = false;
        Ok(())
    }

    /// Both variants from cold: each side's two builds started at once (BuildKit runs
    /// their shared steps once, as it does kiln's).
    fn uv_both(&mut self) -> Result<(), String> {
        self.scenario("uv project: both variants from cold");
        let mut samples = [vec![], vec![], vec![]];
        for i in 1..=self.runs {
            for side in order(i) {
                let base = self.cold_base()?;
                let l = side.label();
                let (a, b) = (
                    format!("uv-both-{l}-minimal-{i}"),
                    format!("uv-both-{l}-api-{i}"),
                );
                let jobs = [
                    self.uv_job(side, &a, "minimal", &base, &[]),
                    self.uv_job(side, &b, "api", &base, &[]),
                ];
                if let Some(ms) = self.run.build_together(&jobs) {
                    if cold_pair_ok(&self.steps(&a), &self.steps(&b), side.heavy()) {
                        samples[side as usize].push(ms);
                    } else {
                        self.cold_ok(&a, side.heavy());
                    }
                }
            }
        }
        self.row3("both variants from cold", Unit::Secs, &samples);
        let r = self.runs;
        self.uv_slowest(
            "both variants, the api build of the last run",
            "uv-both",
            &format!("api-{r}"),
            3,
        );
        Ok(())
    }

    /// Each side's minimal image built once, untimed: the warm state of the warm rows.
    fn uv_warm(&mut self, what: &str) -> Result<(), String> {
        self.run.say("warming the cache (minimal, every side)");
        self.uv_warm_of(what, &order(1))
    }

    /// `sides`' minimal images built once, untimed (`uv-WHAT-SIDE`).
    fn uv_warm_of(&mut self, what: &str, sides: &[Side]) -> Result<(), String> {
        for &side in sides {
            let name = format!("uv-{what}-{}", side.label());
            if self
                .run
                .build(self.uv_job(side, &name, "minimal", BASE, &[]))
                .is_none()
            {
                return Err(format!(
                    "the {} build of the uv project fails",
                    side.label()
                ));
            }
        }
        self.run.disturbed = 0;
        Ok(())
    }

    fn uv_noop(&mut self) -> Result<(), String> {
        self.scenario("uv project: no-op rebuild");
        self.uv_restore()?;
        self.uv_warm("warm")?;
        let mut samples = [vec![], vec![], vec![]];
        let mut exports = [vec![], vec![], vec![]];
        for i in 1..=self.runs {
            for side in order(i) {
                let name = format!("uv-noop-{}-{i}", side.label());
                if let Some(ms) = self
                    .run
                    .build(self.uv_job(side, &name, "minimal", BASE, &[]))
                {
                    samples[side as usize].push(ms);
                    exports[side as usize].push(self.export_ms(&name));
                }
            }
        }
        self.row3("no-op rebuild", Unit::Ms, &samples);
        let line = format!(
            "no-op, medians: kiln {} ms (exporting {} ms), uv-guide {} ms ({} ms), pip {} ms ({} ms)",
            num(median(&samples[0]).map(f64::round)),
            num(median(&exports[0])),
            num(median(&samples[1]).map(f64::round)),
            num(median(&exports[1])),
            num(median(&samples[2]).map(f64::round)),
            num(median(&exports[2]))
        );
        self.note(line);
        Ok(())
    }

    /// A unique comment appended to the worker module: an edit the engine has never seen.
    fn uv_edit_app(&mut self) -> Result<(), String> {
        let p = self.uv.as_mut().expect("uv_set_up ran");
        p.edits += 1;
        let line = format!("# bench edit {} {}\n", p.edits, super::nanos());
        append(&p.ctx.join("src/uv_worker/worker.py"), &line)
    }

    /// The app edited before each round of builds; kiln with its `verify` (the default)
    /// and, after another edit, with `KILN_SKIP_VERIFY=1`.
    fn uv_app(&mut self) -> Result<(), String> {
        self.scenario("uv project: app-code change");
        self.uv_restore()?;
        self.uv_warm("warm-app")?;
        let mut samples = [vec![], vec![], vec![]];
        let mut no_verify = vec![];
        for i in 1..=self.runs {
            self.uv_edit_app()?;
            for side in order(i) {
                let name = format!("uv-app-{}-{i}", side.label());
                samples[side as usize].extend(self.run.build(self.uv_job(
                    side,
                    &name,
                    "minimal",
                    BASE,
                    &[],
                )));
            }
            self.uv_edit_app()?;
            let name = format!("uv-app-kiln-noverify-{i}");
            let job = self.uv_job(
                Side::Kiln,
                &name,
                "minimal",
                BASE,
                &["--build-arg", "KILN_SKIP_VERIFY=1"],
            );
            no_verify.extend(self.run.build(job));
        }
        self.row3("app-code change, kiln with verify", Unit::Ms, &samples);
        let samples = [no_verify, samples[1].clone(), samples[2].clone()];
        self.row3(
            "app-code change, kiln with KILN_SKIP_VERIFY=1 (peers: the same builds as above)",
            Unit::Ms,
            &samples,
        );
        let r = self.runs;
        self.uv_slowest("app-code change, the last run", "uv-app", &r.to_string(), 3);
        Ok(())
    }

    /// The timelines of a cold build and of a +1 build (the last of `PLUS`, after a prune
    /// and a warm build of the unedited project) of kiln and the uv-guide peer, each
    /// built again with `--progress=rawjson`: where each side's time goes, step by step.
    /// Modern engine only (Docker 20.10's `docker build` has no rawjson).
    fn uv_timelines(&mut self) -> Result<(), String> {
        if self.engine_name.is_none() {
            self.note("uv project, timelines: modern engine only (Docker 20.10's `docker build` has no `--progress=rawjson`).".into());
            return Ok(());
        }
        self.scenario("uv project: timelines of a cold and a +1 build");
        let sides = [Side::Kiln, Side::UvGuide];
        self.uv_restore()?;
        for side in sides {
            let base = self.cold_base()?;
            let name = format!("uv-timeline-cold-{}", side.label());
            let ms = self
                .run
                .build(buildx(self.uv_job(side, &name, "minimal", &base, RAWJSON)));
            self.timeline_note(&format!("cold minimal, {}", side.label()), &name, ms);
        }
        self.run.prune();
        self.uv_warm_of("timeline-warm", &sides)?;
        let plus = PLUS[PLUS.len() - 1];
        self.uv_add(plus)?;
        for side in sides {
            let name = format!("uv-timeline-dep-{}", side.label());
            let ms = self
                .run
                .build(buildx(self.uv_job(side, &name, "minimal", BASE, RAWJSON)));
            self.timeline_note(
                &format!("`uv add {plus}`, warm, {}", side.label()),
                &name,
                ms,
            );
        }
        self.uv_restore()
    }

    /// A note with build `name`'s timeline: its `TIMELINE_STEPS` longest steps.
    fn timeline_note(&mut self, what: &str, name: &str, ms: Option<f64>) {
        let log = std::fs::read_to_string(self.run.log(name)).unwrap_or_default();
        let spans = crate::timeline::parse(&log);
        let total = ms.map_or("failed".to_string(), |ms| format!("{:.1} s", ms / 1000.0));
        self.note(format!(
            "timeline, {what} ({total}; {} steps ran; the {TIMELINE_STEPS} longest, from the first step's start): {}",
            spans.len(),
            crate::timeline::render(&spans, TIMELINE_STEPS)
        ));
    }

    /// One dependency added (`uv add NAME`: pyproject.toml, uv.lock, the exported
    /// requirements), from a warm cache of the unedited project.
    fn uv_dep(&mut self) -> Result<(), String> {
        self.scenario("uv project: one dependency added, warm");
        self.uv_restore()?;
        self.uv_warm("warm-dep")?;
        let mut samples = [vec![], vec![], vec![]];
        for i in 1..=self.runs {
            let plus = PLUS[(i - 1) % PLUS.len()];
            self.uv_add(plus)?;
            for side in order(i) {
                let name = format!("uv-dep-{}-{i}", side.label());
                if let Some(ms) = self
                    .run
                    .build(self.uv_job(side, &name, "minimal", BASE, &[]))
                {
                    if any_ran(&self.steps(&name), side.installs()) {
                        samples[side as usize].push(ms);
                    } else {
                        self.note(format!(
                            "Dropped {name}: no step [{}] ran, the engine had `{plus}` added from an earlier run.",
                            side.installs()
                        ));
                    }
                }
            }
        }
        self.uv_restore()?;
        self.row3(
            "one dependency added (`uv add`), warm",
            Unit::Secs,
            &samples,
        );
        let r = self.runs;
        self.uv_slowest(
            "one dependency added, the last run",
            "uv-dep",
            &r.to_string(),
            3,
        );
        Ok(())
    }

    /// +1 dependency on a fresh runner: a build that exports its cache to the engine's
    /// registry (mode=max) and pushes, a prune, the edit, then a build that imports that
    /// cache and pushes again; and the new compressed layers of that push. Every side
    /// the same flags. Modern engine only (`docker buildx`, a registry).
    fn uv_fresh(&mut self) -> Result<(), String> {
        if self.engine_name.is_none() {
            self.note(
                "uv project, fresh-runner and pushed-bytes rows: modern engine only (Docker 20.10's `docker build` has no registry cache export and no buildx)."
                    .into(),
            );
            return Ok(());
        }
        self.scenario("uv project: one dependency added on a fresh runner");
        let ns = self.project().ns.clone();
        let mut samples = [vec![], vec![], vec![]];
        let (mut moved, mut share) = ([vec![], vec![], vec![]], [vec![], vec![], vec![]]);
        for i in 1..=self.runs {
            for side in order(i) {
                self.uv_restore()?;
                let l = side.label();
                let cache = format!("localhost:5000/{ns}-cache:{l}");
                let repo = format!("localhost:5000/{ns}/{l}");
                let before = pushed_job(
                    self.uv_job(
                        side,
                        &format!("uv-fresh-before-{l}-{i}"),
                        "minimal",
                        BASE,
                        &[],
                    ),
                    &format!("{repo}:before"),
                    &[
                        "--cache-to".into(),
                        format!("type=registry,ref={cache},mode=max"),
                    ],
                );
                if self.run.build(before).is_none() {
                    continue;
                }
                self.run.prune();
                self.uv_add(PLUS[(i - 1) % PLUS.len()])?;
                let name = format!("uv-fresh-{l}-{i}");
                let after = pushed_job(
                    self.uv_job(side, &name, "minimal", BASE, &[]),
                    &format!("{repo}:after"),
                    &["--cache-from".into(), format!("type=registry,ref={cache}")],
                );
                if let Some(ms) = self.run.build(after) {
                    samples[side as usize].push(ms);
                    let (m, total) = self.pushed_after(&repo);
                    if total > 0 {
                        moved[side as usize].push(m as f64 / 1e6);
                        share[side as usize].push(m as f64 * 100.0 / total as f64);
                        self.note(format!(
                            "uv project, pushed after +1 dependency, {l} run {i}: {m} of {total} bytes (compressed layers)"
                        ));
                    }
                }
            }
        }
        self.uv_restore()?;
        self.row3(
            "one dependency added, fresh runner (pruned, --cache-from registry, mode=max)",
            Unit::Secs,
            &samples,
        );
        self.row3(
            "bytes pushed after one dependency added (new compressed layers)",
            Unit::MbFine,
            &moved,
        );
        self.row3(
            "bytes pushed after one dependency added, share of the image",
            Unit::Pct,
            &share,
        );
        let r = self.runs;
        self.uv_slowest("fresh runner, the last run", "uv-fresh", &r.to_string(), 3);
        Ok(())
    }

    /// The size of each side's image of each variant.
    fn uv_size(&mut self) -> Result<(), String> {
        self.scenario("uv project: image size");
        self.uv_restore()?;
        for v in VARIANTS {
            let mut sizes = [vec![], vec![], vec![]];
            for side in order(1) {
                let name = format!("uv-size-{}-{v}", side.label());
                if self
                    .run
                    .build(self.uv_job(side, &name, v, BASE, &[]))
                    .is_some()
                {
                    let bytes = self.run.engine.image_size(&self.uv_image(side, v));
                    // One decimal, as the table's MB cells are rounded from it.
                    sizes[side as usize]
                        .extend(bytes.map(|b| (b as f64 / 1e6 * 10.0).round() / 10.0));
                }
            }
            self.row3(&format!("image size, {v}"), Unit::Mb, &sizes);
        }
        Ok(())
    }
}

/// The package names of a `uv.lock` (each `[[package]]`'s `name`), sorted.
#[cfg(test)]
fn uv_lock_packages(lock: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_package = false;
    for line in lock.lines() {
        if line == "[[package]]" {
            in_package = true;
        } else if in_package && let Some(rest) = line.strip_prefix("name = \"") {
            names.push(rest.trim_end_matches('"').to_string());
            in_package = false;
        }
    }
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn repo(path: &str) -> String {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn each_side_goes_first_second_and_last_once_in_three_runs() {
        assert_eq!(order(1), [Side::Kiln, Side::UvGuide, Side::Pip]);
        assert_eq!(order(2), [Side::UvGuide, Side::Pip, Side::Kiln]);
        assert_eq!(order(3), [Side::Pip, Side::Kiln, Side::UvGuide]);
        assert_eq!(order(4), order(1));
        for pos in 0..3 {
            let mut at: Vec<usize> = (1..=3).map(|i| order(i)[pos] as usize).collect();
            at.sort_unstable();
            assert_eq!(at, [0, 1, 2], "position {pos}");
        }
    }

    /// Each "+1" state is the fixture plus exactly one package, every other pin kept:
    /// what `uv add NAME` does, and what makes the rows comparable between runs.
    #[test]
    fn each_plus_lock_is_the_fixture_and_one_package() {
        let base_lock = uv_lock_packages(&repo("bench/projects/uv-worker/uv.lock"));
        assert!(base_lock.len() >= 20, "{base_lock:?}");
        assert!(base_lock.contains(&"psycopg2".to_string()));
        let base_py = repo("bench/projects/uv-worker/pyproject.toml");
        let base_req = repo("bench/projects/uv-worker/requirements/core.txt");
        for name in PLUS {
            let dir = format!("bench/projects/uv-worker.plus/{name}");
            let lock = uv_lock_packages(&repo(&format!("{dir}/uv.lock")));
            let mut want = base_lock.clone();
            want.push(name.to_string());
            want.sort();
            assert_eq!(lock, want, "{name}");
            // The base's locked versions are kept: every base `name`/`version` pair is there.
            let plus_lock = repo(&format!("{dir}/uv.lock"));
            let base_text = repo("bench/projects/uv-worker/uv.lock");
            for pair in base_text
                .split("[[package]]")
                .skip(1)
                .map(|p| p.lines().take(3).collect::<Vec<_>>().join("\n"))
                .filter(|p| !p.contains("\"uv-worker\""))
            {
                assert!(plus_lock.contains(&pair), "{name}: {pair}");
            }
            let py = repo(&format!("{dir}/pyproject.toml"));
            let added: Vec<&str> = py.lines().filter(|l| !base_py.contains(l)).collect();
            assert_eq!(added.len(), 1, "{name}: {added:?}");
            assert!(
                added[0].trim().starts_with(&format!("\"{name}")),
                "{added:?}"
            );
            let req = repo(&format!("{dir}/requirements/core.txt"));
            assert!(req.contains(&format!("\n{name}==")), "{name}");
            assert!(!base_req.contains(&format!("\n{name}==")), "{name}");
        }
        // bench/projects/lock.sh makes the same ones.
        let script = repo("bench/projects/lock.sh");
        assert!(script.contains(&format!("PLUS=({})", PLUS.join(" "))));
    }

    /// The names the harness reads a build by are in what each side builds from: a
    /// renamed step would otherwise keep every sample, cold or not.
    #[test]
    fn the_steps_the_harness_checks_are_in_each_sides_file() {
        let uv = repo("bench/peer/Dockerfile.uv-worker");
        let pip = repo("bench/peer/Dockerfile.uv-worker.pip");
        assert!(uv.contains(Side::UvGuide.heavy()) && uv.contains(Side::UvGuide.installs()));
        assert!(pip.contains(Side::Pip.heavy()) && pip.contains(Side::Pip.installs()));
        for (file, text) in [("uv", &uv), ("pip", &pip)] {
            for v in VARIANTS {
                assert!(text.contains(&format!(" AS {v}\n")), "{file}: target {v}");
            }
            // Docker 20.10's builtin frontend: no `# syntax=` line.
            assert!(!text.lines().any(|l| l.starts_with("# syntax=")), "{file}");
        }
        let spec = repo("bench/projects/uv-worker.yaml");
        for v in VARIANTS {
            assert!(spec.contains(&format!("\n  {v}:\n")), "spec variant {v}");
        }
    }

    /// The uv-guide peer installs the uv kiln pins, checked by the same sha256.
    #[test]
    fn the_uv_guide_peer_pins_the_uv_kiln_pins() {
        let peer = repo("bench/peer/Dockerfile.uv-worker");
        let pin = peer
            .split("'uv==")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .expect("a uv==VERSION --hash=sha256:HEX line");
        let (version, hash) = pin.split_once(" --hash=sha256:").expect("a hash");
        assert!(
            repo("src/spec/format.rs").contains(&format!(
                "pub const DEFAULT_UV_VERSION: &str = \"{version}\""
            )),
            "kiln's default uv is not {version}"
        );
        let kiln = repo("src/plan/install/tools.rs");
        assert!(
            kiln.contains(&format!("uv-{version}-py3-none-manylinux_2_17_x86_64"))
                && kiln.contains(&format!("\"{hash}\"")),
            "kiln pins no uv {version} wheel with sha256 {hash}"
        );
    }

    fn fixture(name: &str) -> Vec<Step> {
        progress::parse(&repo(&format!("bench/tests/fixtures/{name}")))
    }

    /// Builds recorded on Docker 20.10 by this mode (`--no-prune`): the rules that keep or
    /// drop a sample, on what each side really printed.
    #[test]
    fn recorded_builds_decide_samples() {
        // uv-guide, cold: its dependency sync ran (psycopg2 built), then the project's.
        let cold = fixture("uvguide-cold.log");
        assert!(super::super::cold_sample_ok(&cold, Side::UvGuide.heavy()));
        assert!(progress::ran(
            &cold,
            "uv sync --frozen --no-dev --no-editable"
        ));
        // uv-guide after an app edit: the dependency layer is CACHED (what the guide's
        // bind mounts buy), only the project's sync ran; as a cold sample it is dropped.
        let edit = fixture("uvguide-app-edit.log");
        assert!(!super::super::cold_sample_ok(&edit, Side::UvGuide.heavy()));
        assert!(progress::ran(
            &edit,
            "uv sync --frozen --no-dev --no-editable"
        ));
        // kiln, cold: psycopg2's wheel built from its sdist.
        let kiln_cold = fixture("kiln-uv-cold.log");
        assert!(super::super::cold_sample_ok(&kiln_cold, Side::Kiln.heavy()));
        assert!(progress::ran(&kiln_cold, Side::Kiln.heavy()));
        // kiln, +1 dependency: the group's install ran, psycopg2's wheel was reused.
        let kiln_dep = fixture("kiln-uv-dep.log");
        assert!(any_ran(&kiln_dep, Side::Kiln.installs()));
        assert_eq!(
            progress::was_cached(&kiln_dep, Side::Kiln.heavy()),
            Some(true)
        );
        // The same on Docker 28 (a step per package set): only humanize's set ran.
        let kiln_dep28 = fixture("kiln-uv-dep-docker28.log");
        assert!(any_ran(&kiln_dep28, Side::Kiln.installs()));
        let ran: Vec<&str> = progress::named(&kiln_dep28, "uv install: core: ")
            .filter(|s| s.ran())
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(ran.len(), 1, "{ran:?}");
        assert!(ran[0].contains("humanize 4.17.0"), "{ran:?}");
        assert!(progress::named(&kiln_dep28, "uv install: core: ").count() >= 10);
        // pip, +1 dependency: the whole requirement set again, psycopg2 compiled again.
        let pip_dep = fixture("pip-uv-dep.log");
        assert!(any_ran(&pip_dep, Side::Pip.installs()));
    }

    #[test]
    fn a_dependency_install_counts_when_one_such_step_ran() {
        let log = "#5 uv install: core: annotated-types 0.8.0 (s.yaml:19)\n#5 CACHED\n\n\
                   #6 uv install: core: humanize 4.17.0 (s.yaml:19)\n#6 DONE 0.5s\n";
        let steps = progress::parse(log);
        assert!(any_ran(&steps, Side::Kiln.installs()));
        let cached = progress::parse("#5 uv install: core (s.yaml:19)\n#5 CACHED\n");
        assert!(!any_ran(&cached, Side::Kiln.installs()));
        assert!(!any_ran(&[], Side::Kiln.installs()));
    }
}
