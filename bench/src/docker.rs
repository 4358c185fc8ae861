//! The Docker engine as the harness uses it: `docker` client calls, the engine's start
//! script, and a look at which other builds run on it.
//!
//! The client is `/usr/bin/docker` (20.10, from docker.io): a newer `docker` on PATH may
//! lack buildx and refuse BuildKit builds. `DOCKER_HOST`, when set, reaches it through the
//! inherited environment.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The docker client every call uses.
pub const CLIENT: &str = "/usr/bin/docker";

/// One `docker build --progress=plain`; its output goes to `<logs>/<name>.log`.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Names the log file and the build in notes.
    pub name: String,
    /// Everything after `docker build --progress=plain`.
    pub args: Vec<OsString>,
    /// Built by `docker buildx build` with the `docker` first on PATH (a modern engine's
    /// client from `scripts/engine.sh env NAME`, with its buildx): registry cache import
    /// and export, pushes. Otherwise by [`CLIENT`]'s `docker build`.
    pub buildx: bool,
}

/// How one build ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// `docker build` exited 0.
    pub ok: bool,
    /// Wall time from spawning the client to its exit, in ms.
    pub ms: f64,
    /// The exit status as text, for messages.
    pub status: String,
}

/// What the build policy (`runner`) needs from an engine; the real one is [`Docker`],
/// tests use a scripted fake.
pub trait Engine {
    /// Starts all `jobs` at once and waits for every one of them.
    fn build_all(&mut self, jobs: &[&Job], logs: &Path) -> Vec<Finished>;
    /// The engine answers (`docker version`).
    fn alive(&mut self) -> bool;
    /// Starts the engine (`scripts/engine.sh up`, idempotent).
    fn start(&mut self) -> bool;
    /// Drops BuildKit's whole cache, cache mounts included (`docker builder prune -af`).
    fn prune(&mut self) -> bool;
    /// How many docker builds that are not ours run right now.
    fn others_building(&mut self) -> usize;
    /// Waits (a fake engine only counts the time).
    fn pause(&mut self, d: Duration);
}

/// The local Docker engine.
#[derive(Debug, Clone)]
pub struct Docker {
    /// The repository root (for `scripts/engine.sh`).
    pub root: PathBuf,
    /// A string in the command line of every build of ours (the work directory): a build
    /// without it belongs to someone else.
    pub ours: String,
}

impl Docker {
    /// A `docker` command with BuildKit on.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(CLIENT);
        c.env("DOCKER_BUILDKIT", "1");
        c
    }

    /// Runs `docker ARGS` and returns its stdout when it exits 0 (stderr is dropped).
    pub fn output<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Option<String> {
        let out = self.cmd().args(args).stderr(Stdio::null()).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// An image's size in bytes.
    pub fn image_size(&self, image: &str) -> Option<u64> {
        self.output(&["image", "inspect", "-f", "{{.Size}}", image])?
            .trim()
            .parse()
            .ok()
    }

    /// `Docker 20.10.24+dfsg1`, the engine's version for the report.
    pub fn server_version(&self) -> Option<String> {
        let v = self.output(&["version", "--format", "{{.Server.Version}}"])?;
        Some(format!("Docker {}", v.trim()))
    }
}

impl Engine for Docker {
    fn build_all(&mut self, jobs: &[&Job], logs: &Path) -> Vec<Finished> {
        std::thread::scope(|s| {
            let waits: Vec<_> = jobs
                .iter()
                .map(|job| {
                    let log = logs.join(format!("{}.log", job.name));
                    let t0 = Instant::now();
                    let child = File::create(&log).and_then(|out| {
                        let mut cmd = if job.buildx {
                            let mut c = Command::new("docker");
                            c.env("DOCKER_BUILDKIT", "1").arg("buildx");
                            c
                        } else {
                            self.cmd()
                        };
                        cmd.args(["build", "--progress=plain"])
                            .args(&job.args)
                            .stdout(out.try_clone()?)
                            .stderr(out)
                            .stdin(Stdio::null())
                            .spawn()
                    });
                    // One waiting thread per build, so each wall time ends at its own exit.
                    s.spawn(move || {
                        let status = child.and_then(|mut c| c.wait());
                        let ms = t0.elapsed().as_secs_f64() * 1000.0;
                        match status {
                            Ok(st) => Finished {
                                ok: st.success(),
                                ms,
                                status: st.to_string(),
                            },
                            Err(e) => Finished {
                                ok: false,
                                ms,
                                status: format!("cannot run {CLIENT}: {e}"),
                            },
                        }
                    })
                })
                .collect();
            waits
                .into_iter()
                .map(|w| w.join().expect("wait thread"))
                .collect()
        })
    }

    fn alive(&mut self) -> bool {
        self.cmd()
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn start(&mut self) -> bool {
        // Its chatter goes to our stderr: stdout carries only the report.
        Command::new(self.root.join("scripts/engine.sh"))
            .arg("up")
            .stdout(std::io::stderr())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn prune(&mut self) -> bool {
        self.cmd()
            .args(["builder", "prune", "-af"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn others_building(&mut self) -> usize {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return 0;
        };
        procs
            .flatten()
            .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
            .filter(|raw| is_foreign_build(raw, &self.ours))
            .count()
    }

    fn pause(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// A process command line (NUL-separated, as in `/proc/PID/cmdline`) that is a
/// `/usr/bin/docker build...` (`builder prune` too: it disturbs as much) without `ours`.
pub fn is_foreign_build(cmdline: &[u8], ours: &str) -> bool {
    let text = String::from_utf8_lossy(cmdline);
    let mut argv = text.split('\0');
    argv.next() == Some(CLIENT)
        && argv.next().is_some_and(|a| a.starts_with("build"))
        && !text.contains(ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_builds() {
        let ours = "/tmp/kiln-bench.abc";
        assert!(is_foreign_build(
            b"/usr/bin/docker\0build\0--progress=plain\0-f\0/tmp/kiln-e2e.x/spec.yaml\0/tmp/kiln-e2e.x/ctx\0",
            ours
        ));
        assert!(is_foreign_build(
            b"/usr/bin/docker\0builder\0prune\0-af\0",
            ours
        ));
        assert!(!is_foreign_build(
            b"/usr/bin/docker\0build\0--progress=plain\0/tmp/kiln-bench.abc/ctx\0",
            ours
        ));
        assert!(!is_foreign_build(b"/usr/bin/docker\0run\0--rm\0x\0", ours));
        assert!(!is_foreign_build(
            b"/usr/local/bin/docker\0build\0.\0",
            ours
        ));
        assert!(!is_foreign_build(b"", ours));
    }
}
