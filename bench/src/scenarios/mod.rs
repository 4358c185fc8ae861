//! The benchmark itself: kiln against the hand-written multi-stage Dockerfiles it replaces
//! (`bench/peer/`), built from the same context on the same engine in the same run: the
//! example worker against the seed's style, and (`--uv`) a uv project against uv's Docker
//! guide and the seed's style at once.
//!
//! Each scenario sets up its own state (prune, warm build, edit) from private copies of
//! the context, spec and Dockerfiles in a work directory; the progress log of every build
//! stays there. Cold rows prune BuildKit's whole cache on this engine (full mode only).

mod cold;
mod frontend;
mod images;
mod locked;
mod uv;
mod warm;

pub use uv::UvScenario;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::docker::{Docker, Engine, Job};
use crate::progress::{self, Step};
use crate::report::{Report, Row};
use crate::runner::Runner;

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every scenario, `--runs` times (prunes the engine's whole build cache).
    Full,
    /// 1 run, warm scenarios only: no prune, no cold, apt or uv rows, minimal image only.
    Quick,
    /// 1 run: the no-op rebuild, app-code change, frontend-cost and LLB rows only.
    Smoke,
    /// Issue 14: the example with its groups locked by `kiln lock` (PEP 751, files fetched
    /// by the engine), `--runs` times: cold, warm, fresh-runner and pushed-bytes rows
    /// (the last two on a modern engine only), and a 300-package lock.
    Locked,
    /// Issue 24: the uv project `bench/projects/uv-worker` against uv's Docker guide and
    /// the seed's pip style, `--runs` times; every row shows both peers.
    Uv,
}

/// What a run does besides its mode.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Locked mode: the heavy CUDA variant too.
    pub heavy: bool,
    /// Uv mode: only these scenarios (all when empty).
    pub only: Vec<UvScenario>,
    /// Uv mode: never prune; cold rows start from a fresh copy of the base instead.
    pub no_prune: bool,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Quick => "quick",
            Mode::Smoke => "smoke",
            Mode::Locked => "locked",
            Mode::Uv => "uv",
        }
    }
}

/// Which side of the comparison builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// kiln, through its frontend image.
    Kiln = 0,
    /// The hand-written Dockerfile.
    Peer = 1,
}

impl Tool {
    /// The name in build names (`cold-kiln-minimal-1`) and image tags.
    pub fn label(self) -> &'static str {
        match self {
            Tool::Kiln => "kiln",
            Tool::Peer => "peer",
        }
    }
}

/// Who builds first in run `i` (1-based): they alternate, so neither always gets the
/// warmer machine or network.
pub fn turns(i: usize) -> [Tool; 2] {
    if i % 2 == 1 {
        [Tool::Kiln, Tool::Peer]
    } else {
        [Tool::Peer, Tool::Kiln]
    }
}

/// `commit ABC`, with ` plus uncommitted changes in src/` when the tree differs: what
/// the frontend of this run is built from.
fn kiln_commit(root: &Path) -> String {
    let commit = git(root, &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let dirty = git(
        root,
        &[
            "status",
            "--porcelain",
            "--",
            "src",
            "Cargo.toml",
            "Cargo.lock",
        ],
    )
    .is_some_and(|s| !s.trim().is_empty());
    let changes = if dirty {
        " plus uncommitted changes in src/"
    } else {
        ""
    };
    format!("commit {}{changes} (the frontend's tree)", commit.trim())
}

/// Whether a cold sample counts: its heavy step ran. A build right after a prune may
/// still find records that someone else's running build kept alive.
pub fn cold_sample_ok(steps: &[Step], heavy: &str) -> bool {
    progress::was_cached(steps, heavy) != Some(true)
}

/// Two builds started together share their heavy step: one runs it, the other shows it
/// `CACHED`. The pair is cold when it ran in at least one of them.
pub fn cold_pair_ok(a: &[Step], b: &[Step], heavy: &str) -> bool {
    cold_sample_ok(a, heavy) || cold_sample_ok(b, heavy)
}

const BASE: &str = "kiln-local/python:3.11";
/// The frontend's tag (`kiln/frontend:TAG`; on a modern engine in locked and uv mode,
/// pushed to its registry as `localhost:5000/kiln/frontend:TAG`): `KILN_BENCH_TAG`, so
/// that a run beside someone else's keeps its own image; else one per mode.
fn frontend_tag(mode: Mode) -> String {
    std::env::var("KILN_BENCH_TAG")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| {
            match mode {
                Mode::Locked => "bench14",
                Mode::Uv => "bench24",
                _ => "bench",
            }
            .to_string()
        })
}
/// The step of a kiln cold build that must have run for the sample to count.
const KILN_HEAVY: &str = "uv install: core";
const KILN_HEAVY_PIP: &str = "pip install: core";
const PEER_HEAVY: &str =
    "pip install --no-cache-dir --timeout=1000 --retries=5 -r requirements/core.txt";

/// The engine's log, where kiln's frontend logs its timings: `KILN_DOCKERD_LOG`; else, when
/// `DOCKER_HOST` is a modern engine's socket (`eval "$(scripts/engine.sh env docker28)"`:
/// `/run/kiln/NAME/docker.sock`), its container's log on the host's dockerd; else the
/// host dockerd's own log (scripts/engine.sh's default).
fn dockerd_log() -> PathBuf {
    if let Some(path) = std::env::var_os("KILN_DOCKERD_LOG") {
        return PathBuf::from(path);
    }
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    if let Some(name) = engine_of_socket(&host) {
        let out = Command::new(crate::docker::CLIENT)
            .args([
                "-H",
                "unix:///var/run/docker.sock",
                "inspect",
                "-f",
                "{{.LogPath}}",
            ])
            .arg(format!("kiln-engine-{name}"))
            .output();
        if let Some(out) = out.ok().filter(|o| o.status.success()) {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !path.is_empty() {
                return PathBuf::from(path);
            }
        }
    }
    PathBuf::from("/var/log/kiln-dockerd.log")
}

/// `unix:///run/kiln/NAME/docker.sock` -> NAME.
fn engine_of_socket(host: &str) -> Option<&str> {
    let name = host
        .strip_prefix("unix:///run/kiln/")?
        .strip_suffix("/docker.sock")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// One benchmark run: paths, the build runner and the report being filled.
pub struct Bench {
    mode: Mode,
    runs: usize,
    root: PathBuf,
    work: PathBuf,
    ctx: PathBuf,
    spec: PathBuf,
    peer_minimal: PathBuf,
    peer_cuda: PathBuf,
    kiln_bin: PathBuf,
    ca: PathBuf,
    /// The modern engine's name (`docker28`) when DOCKER_HOST is its socket; `None` on
    /// the host's Docker 20.10.
    engine_name: Option<String>,
    /// `commit ABC` (and whether src/ had uncommitted changes) when the frontend was built.
    built_from: String,
    /// Locked mode: the spec with requirement files that `kiln lock` reads.
    unlocked_spec: PathBuf,
    /// Locked mode: the heavy CUDA scenario (torch from PyPI) runs too.
    heavy: bool,
    /// The frontend image the specs' `# syntax=` lines name.
    frontend: String,
    /// Uv mode: the project's paths and images.
    uv: Option<uv::Project>,
    run: Runner<Docker>,
    report: Report,
    edits: usize,
    /// kiln's cold minimal samples, the uv side of the uv vs pip row.
    cold_kiln_minimal: Vec<f64>,
    /// The frontend's own timings from dockerd's log during the no-op builds (ms).
    front: Vec<f64>,
    defs: Vec<f64>,
}

/// Runs the benchmark from the repository root `root`, prints the report and writes it to
/// `bench/results/latest.md`. `Ok(false)` when some build failed.
pub fn run(root: PathBuf, mode: Mode, runs: usize, opts: Options) -> Result<bool, String> {
    let mut b = Bench::set_up(root, mode, runs)?;
    b.heavy = opts.heavy;
    if mode == Mode::Uv {
        b.run.no_prune = opts.no_prune;
        b.uv_project(&opts.only)?;
        return b.finish();
    }
    if mode == Mode::Locked {
        b.locked()?;
        return b.finish();
    }
    if mode == Mode::Full {
        b.cold()?;
    }
    b.warm()?;
    if mode == Mode::Full {
        b.uv_vs_pip()?;
    }
    if mode != Mode::Smoke {
        b.images()?;
    }
    b.frontend_cost()?;
    b.finish()
}

impl Bench {
    fn set_up(root: PathBuf, mode: Mode, runs: usize) -> Result<Bench, String> {
        let work = make_work_dir()?;
        let logs = work.join("logs");
        mkdir(&logs)?;
        mkdir(&root.join("bench/results"))?;
        let dlog = dockerd_log();
        let docker = Docker {
            root: root.clone(),
            ours: work.display().to_string(),
            host: crate::docker::own_engine(),
        };
        let mut run = Runner::new(docker, logs, dlog);
        run.say(&format!(
            "mode {}, {runs} run(s) per docker scenario, work dir {}",
            mode.name(),
            work.display()
        ));
        if !run.engine.start() {
            return Err("the engine did not start".into());
        }
        let engine_name =
            engine_of_socket(&std::env::var("DOCKER_HOST").unwrap_or_default()).map(str::to_string);
        let tag = frontend_tag(mode);
        // The tree the frontend is built from now: later commits do not reach this run.
        let built_from = kiln_commit(&root);
        let frontend = if matches!(mode, Mode::Locked | Mode::Uv) {
            locked::frontend_image(&root, engine_name.as_deref(), &tag)?
        } else {
            let image = format!("kiln/frontend:{tag}");
            let built = Command::new(root.join("scripts/frontend-image.sh"))
                .arg(&image)
                .stdout(std::process::Stdio::null())
                .status();
            if !built.is_ok_and(|s| s.success()) {
                return Err("cannot build the frontend image".into());
            }
            image
        };
        // scripts/frontend-image.sh builds this one (static, for the image).
        let kiln_bin = root.join(format!(
            "target/{}-unknown-linux-gnu/release/kiln",
            std::env::consts::ARCH
        ));
        if !kiln_bin.is_file() {
            return Err(format!("no release binary at {}", kiln_bin.display()));
        }
        let ca = std::env::var_os("KILN_BENCH_CA").map_or_else(
            || PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
            PathBuf::from,
        );
        if std::fs::metadata(&ca).map_or(true, |m| m.len() == 0) {
            return Err(format!(
                "no CA bundle at {} (set KILN_BENCH_CA)",
                ca.display()
            ));
        }

        // Private copies: the scenarios edit the context, the spec and the Dockerfiles.
        let example = root.join("examples/worker");
        copy_dir(&example, &work.join("ctx"))?;
        copy_dir(&example, &work.join("ctx.orig"))?;
        let spec_text = read(&root.join("specs/worker.yaml"))?;
        let body = spec_text.split_once('\n').map_or("", |(_, rest)| rest);
        write(
            &work.join("worker.yaml"),
            &format!("# syntax={frontend}\n{body}"),
        )?;
        for (from, to) in [
            ("Dockerfile.worker.minimal", "Dockerfile.minimal"),
            ("Dockerfile.worker", "Dockerfile.cuda"),
        ] {
            std::fs::copy(root.join("bench/peer").join(from), work.join(to))
                .map_err(|e| format!("copy {from}: {e}"))?;
        }
        let unlocked_spec = work.join("worker.unlocked.yaml");
        if mode == Mode::Locked {
            std::fs::copy(work.join("worker.yaml"), &unlocked_spec)
                .map_err(|e| format!("copy the spec: {e}"))?;
        }
        Ok(Bench {
            mode,
            runs,
            engine_name,
            built_from,
            unlocked_spec,
            heavy: false,
            frontend,
            uv: None,
            ctx: work.join("ctx"),
            spec: work.join("worker.yaml"),
            peer_minimal: work.join("Dockerfile.minimal"),
            peer_cuda: work.join("Dockerfile.cuda"),
            root,
            work,
            kiln_bin,
            ca,
            run,
            report: Report::default(),
            edits: 0,
            cold_kiln_minimal: Vec::new(),
            front: Vec::new(),
            defs: Vec::new(),
        })
    }

    /// `--build-arg PYTHON_IMAGE=... --secret id=pipca,...`: what both sides get.
    fn common(&self) -> Vec<OsString> {
        self.common_with(BASE)
    }

    /// [`Bench::common`] with `base` as the Python image.
    fn common_with(&self, base: &str) -> Vec<OsString> {
        let mut secret = OsString::from("id=pipca,src=");
        secret.push(&self.ca);
        vec![
            "--build-arg".into(),
            format!("PYTHON_IMAGE={base}").into(),
            "--secret".into(),
            secret,
        ]
    }

    /// A kiln build of `variant` from `spec`, tagged `tag`, with `extra` docker arguments.
    fn kiln_with(&self, name: &str, spec: &Path, variant: &str, tag: &str, extra: &[&str]) -> Job {
        let mut args: Vec<OsString> = vec![
            "-f".into(),
            spec.into(),
            "--target".into(),
            variant.into(),
            "-t".into(),
            tag.into(),
            "--build-arg".into(),
            "PYTHON_VERSION=3.11".into(),
        ];
        args.extend(self.common());
        args.extend(extra.iter().map(OsString::from));
        args.push(self.ctx.clone().into());
        Job {
            name: name.into(),
            args,
            buildx: false,
        }
    }

    /// A kiln build of the example spec.
    fn kiln(&self, name: &str, variant: &str) -> Job {
        self.kiln_with(
            name,
            &self.spec,
            variant,
            &format!("bench/kiln:{variant}"),
            &[],
        )
    }

    /// A peer build from `dockerfile`, tagged `tag`.
    fn peer_with(&self, name: &str, dockerfile: &Path, tag: &str) -> Job {
        let mut args: Vec<OsString> = vec!["-f".into(), dockerfile.into(), "-t".into(), tag.into()];
        args.extend(self.common());
        args.push(self.ctx.clone().into());
        Job {
            name: name.into(),
            args,
            buildx: false,
        }
    }

    /// The peer's Dockerfile for `variant`.
    fn peer(&self, name: &str, variant: &str) -> Job {
        let df = if variant == "cuda" {
            &self.peer_cuda
        } else {
            &self.peer_minimal
        };
        self.peer_with(name, df, &format!("bench/peer:{variant}"))
    }

    /// The example build of `variant` by `who`.
    fn job(&self, who: Tool, name: &str, variant: &str) -> Job {
        match who {
            Tool::Kiln => self.kiln(name, variant),
            Tool::Peer => self.peer(name, variant),
        }
    }

    /// The steps of build `name` (none when its log is missing).
    fn steps(&self, name: &str) -> Vec<Step> {
        std::fs::read(self.run.log(name))
            .map(|raw| progress::parse(&String::from_utf8_lossy(&raw)))
            .unwrap_or_default()
    }

    /// The slowest steps of build `name`, for notes.
    fn slowest(&self, name: &str, count: usize) -> String {
        progress::slowest(&self.steps(name), count)
    }

    /// ms the build `name` spent exporting the image.
    fn export_ms(&self, name: &str) -> f64 {
        progress::secs_of(&self.steps(name), "exporting to image") * 1000.0
    }

    /// A cold build's sample counts only if its heavy step ran; otherwise it is dropped
    /// with a note.
    fn cold_ok(&mut self, name: &str, heavy: &str) -> bool {
        if cold_sample_ok(&self.steps(name), heavy) {
            return true;
        }
        self.note(format!(
            "Dropped {name}: after the prune its step [{heavy}] was still CACHED."
        ));
        self.run.say(&format!(
            "dropping {name}: [{heavy}] was CACHED after the prune"
        ));
        false
    }

    /// Starts a scenario: the disturbance count starts again.
    fn scenario(&mut self, name: &str) {
        self.run.disturbed = 0;
        if matches!(self.mode, Mode::Locked | Mode::Uv) {
            self.frontend_still_there();
        }
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        self.run
            .say(&format!("== {name} (load {})", load.join(" ")));
    }

    /// Adds a row, with a note when builds of others ran during it.
    fn row(&mut self, row: Row) {
        let line = row.render();
        if self.run.disturbed > 0 {
            self.note(format!(
                "Disturbed: {}: {} of its builds started while someone else's docker build ran on this engine.",
                row.name, self.run.disturbed
            ));
        }
        self.run.disturbed = 0;
        self.run.say(&format!("row: {line}"));
        self.report.rows.push(row);
    }

    /// A line for under the table. The runner's list holds them all, so its own notes
    /// (restarts, prune waits) stay in the order things happened.
    fn note(&mut self, line: String) {
        self.run.notes.push(line);
    }

    fn restore_ctx(&self) -> Result<(), String> {
        std::fs::remove_dir_all(&self.ctx)
            .map_err(|e| format!("rm {}: {e}", self.ctx.display()))?;
        copy_dir(&self.work.join("ctx.orig"), &self.ctx)
    }

    /// Appends a unique comment to the app: an edit the engine has never seen.
    fn edit_app(&mut self) -> Result<(), String> {
        self.edits += 1;
        let line = format!("# bench edit {} {}\n", self.edits, nanos());
        append(&self.ctx.join("app/api.py"), &line)
    }

    fn finish(mut self) -> Result<bool, String> {
        self.report.notes = std::mem::take(&mut self.run.notes);
        self.report.failed = std::mem::take(&mut self.run.failed);
        let date = Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let mem_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| mem_total_kib(&m))
            .map_or("?".into(), |kib| {
                format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0)
            });
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        self.report.footer = vec![
            format!(
                "Mode {}, {} run(s) per docker scenario; frontend timings by {}.",
                self.mode.name(),
                self.runs,
                frontend::TIMER
            ),
            format!("kiln: {}.", self.built_from),
            format!(
                "Machine: {cores} cores, {mem_gib}, {}, {}; {date}; bench took {} s. Logs: {}",
                self.run.engine.server_version().unwrap_or_default(),
                kernel.trim(),
                self.run.elapsed().as_secs(),
                self.run.logs.display()
            ),
        ];
        let text = self.report.render();
        print!("{text}");
        write(&self.root.join("bench/results/latest.md"), &text)?;
        Ok(self.report.failed.is_empty())
    }
}

/// `MemTotal` of /proc/meminfo, in KiB.
fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Nanoseconds since the epoch: makes edits and directory names unique.
fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn make_work_dir() -> Result<PathBuf, String> {
    let tmp = std::env::temp_dir();
    for attempt in 0..100u32 {
        let dir = tmp.join(format!(
            "kiln-bench.{}{:x}",
            std::process::id(),
            nanos() + u128::from(attempt)
        ));
        if std::fs::create_dir(&dir).is_ok() {
            return Ok(dir);
        }
    }
    Err(format!("cannot make a work directory in {}", tmp.display()))
}

fn mkdir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("append to {}: {e}", path.display()))
}

/// Copies a directory tree; symlinks stay links (as `cp -r` does).
fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    let err = |e: std::io::Error| format!("copy {} to {}: {e}", from.display(), to.display());
    std::fs::create_dir_all(to).map_err(err)?;
    for entry in std::fs::read_dir(from).map_err(err)? {
        let entry = entry.map_err(err)?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(err)?;
        if kind.is_dir() {
            copy_dir(&src, &dst)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&src).map_err(err)?;
            std::os::unix::fs::symlink(target, &dst).map_err(err)?;
        } else {
            std::fs::copy(&src, &dst).map_err(err)?;
        }
    }
    Ok(())
}

/// Replaces every line that `matches` by `to`; `None` when no line matched (the file
/// changed shape and the edit would silently measure nothing).
fn replace_line(text: &str, matches: impl Fn(&str) -> bool, to: &str) -> Option<String> {
    let mut hit = false;
    let out: Vec<&str> = text
        .lines()
        .map(|l| {
            if matches(l) {
                hit = true;
                to
            } else {
                l
            }
        })
        .collect();
    hit.then(|| out.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_modern_engine_is_named_by_its_socket() {
        assert_eq!(
            engine_of_socket("unix:///run/kiln/docker28/docker.sock"),
            Some("docker28")
        );
        assert_eq!(engine_of_socket("unix:///var/run/docker.sock"), None);
        assert_eq!(engine_of_socket("unix:///run/kiln//docker.sock"), None);
        assert_eq!(engine_of_socket(""), None);
    }

    fn steps(log: &str) -> Vec<Step> {
        progress::parse(log)
    }

    #[test]
    fn turns_alternate() {
        assert_eq!(turns(1), [Tool::Kiln, Tool::Peer]);
        assert_eq!(turns(2), [Tool::Peer, Tool::Kiln]);
        assert_eq!(turns(3), [Tool::Kiln, Tool::Peer]);
    }

    #[test]
    fn a_cold_sample_whose_heavy_step_was_cached_is_dropped() {
        let ran = steps("#9 uv install: core (x.yaml:3)\n#9 1.0 Resolved\n#9 DONE 14.0s\n");
        let cached = steps("#9 uv install: core (x.yaml:3)\n#9 CACHED\n");
        assert!(cold_sample_ok(&ran, KILN_HEAVY));
        assert!(!cold_sample_ok(&cached, KILN_HEAVY));
        // A log without the step (a renamed step) keeps the sample, as before.
        assert!(cold_sample_ok(&steps(""), KILN_HEAVY));
        // Two builds at once: one runs the shared step, the other shows it CACHED.
        assert!(cold_pair_ok(&ran, &cached, KILN_HEAVY));
        assert!(cold_pair_ok(&cached, &ran, KILN_HEAVY));
        assert!(!cold_pair_ok(&cached, &cached, KILN_HEAVY));
    }

    #[test]
    fn recorded_logs_decide_cold_samples() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let log = |n: &str| steps(&std::fs::read_to_string(dir.join(n)).unwrap());
        assert!(cold_sample_ok(&log("peer-cold.log"), PEER_HEAVY));
        assert!(!cold_sample_ok(&log("kiln-noop.log"), KILN_HEAVY));
    }

    #[test]
    fn line_edits_must_apply() {
        let text = "a\n  installer: uv   # comment\nb\n";
        let out = replace_line(
            text,
            |l| l.starts_with("  installer: uv "),
            "  installer: pip",
        );
        assert_eq!(out.as_deref(), Some("a\n  installer: pip\nb\n"));
        assert_eq!(replace_line(text, |l| l == "nope", "x"), None);
    }

    #[test]
    fn meminfo() {
        assert_eq!(
            mem_total_kib("MemTotal:       24641604 kB\nMemFree: 1 kB\n"),
            Some(24641604)
        );
        assert_eq!(mem_total_kib("nothing"), None);
    }
}
