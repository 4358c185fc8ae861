//! The Docker engine as the harness uses it: `docker` client calls, the engine's start
//! script, and a look at which other builds run on it (on this engine only: a build on
//! another engine of the same host does not share its cache).
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
    /// How many docker builds that are not ours run on this engine right now.
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
    /// The engine every call reaches, as [`engine_address`] writes it: `DOCKER_HOST`, or
    /// the client's default socket.
    pub host: String,
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
            .filter_map(|p| {
                let cmdline = std::fs::read(p.path().join("cmdline")).ok()?;
                // Read only for docker clients: environ is the larger file.
                is_build_client(&cmdline)
                    .then(|| (cmdline, std::fs::read(p.path().join("environ")).ok()))
            })
            .filter(|(cmdline, environ)| {
                is_foreign_build(cmdline, environ.as_deref(), &self.ours, &self.host)
            })
            .count()
    }

    fn pause(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// The client's default engine when neither `-H` nor `DOCKER_HOST` names one.
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// An engine address as the harness compares them: `DOCKER_HOST`'s form, `/var/run`
/// written `/run` (one directory on Debian) and no trailing `/`; empty means the default.
pub fn engine_address(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    let host = if host.is_empty() { DEFAULT_HOST } else { host };
    match host.strip_prefix("unix:///var/run/") {
        Some(rest) => format!("unix:///run/{rest}"),
        None => host.to_string(),
    }
}

/// The engine this harness's calls reach: `DOCKER_HOST` of its environment.
pub fn own_engine() -> String {
    engine_address(&std::env::var("DOCKER_HOST").unwrap_or_default())
}

/// A process command line (NUL-separated, as in `/proc/PID/cmdline`) of a docker client
/// (`docker`, by any path) that builds: `build`, `builder ...` (a prune disturbs as
/// much), `image build`, `buildx build|b|bake|prune`, after any global flags.
pub fn is_build_client(cmdline: &[u8]) -> bool {
    let text = String::from_utf8_lossy(cmdline);
    let argv: Vec<&str> = text.split('\0').filter(|a| !a.is_empty()).collect();
    if argv.first().and_then(|a| a.rsplit('/').next()) != Some("docker") {
        return false;
    }
    let words = subcommand(&argv[1..]);
    match words.as_slice() {
        ["build", ..] | ["builder", ..] | ["image", "build", ..] => true,
        ["buildx", sub, ..] => matches!(*sub, "build" | "b" | "bake" | "prune"),
        _ => false,
    }
}

/// The client's global flags that take a value (docker's `--flag value` form).
const GLOBAL_WITH_VALUE: [&str; 10] = [
    "-H",
    "--host",
    "-c",
    "--context",
    "--config",
    "-l",
    "--log-level",
    "--tlscacert",
    "--tlscert",
    "--tlskey",
];

/// The words after the client's global flags: the subcommand and what follows it.
fn subcommand<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        i += if GLOBAL_WITH_VALUE.contains(&args[i]) {
            2
        } else {
            1
        };
    }
    args.get(i..).unwrap_or_default().to_vec()
}

/// The engine a docker client process talks to: its `-H`/`--host` flag, else
/// `DOCKER_HOST` in its environment, else the default socket. `None` when that cannot be
/// known: its environment is unreadable, or it names a context (`--context`,
/// `DOCKER_CONTEXT`) other than `default`, whose endpoint lives in that client's config.
pub fn engine_of(cmdline: &[u8], environ: Option<&[u8]>) -> Option<String> {
    let text = String::from_utf8_lossy(cmdline);
    let argv: Vec<&str> = text.split('\0').filter(|a| !a.is_empty()).collect();
    let mut context = None;
    let mut i = 1;
    while i < argv.len() && argv[i].starts_with('-') {
        let (flag, inline) = match argv[i].split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (argv[i], None),
        };
        let value = || inline.or_else(|| argv.get(i + 1).copied());
        match flag {
            "-H" | "--host" => return value().map(engine_address),
            "-c" | "--context" => context = value(),
            _ => {}
        }
        i += if inline.is_none() && GLOBAL_WITH_VALUE.contains(&flag) {
            2
        } else {
            1
        };
    }
    let env = String::from_utf8_lossy(environ?).into_owned();
    let var = |name: &str| {
        env.split('\0')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    let context = context
        .map(str::to_string)
        .or_else(|| var("DOCKER_CONTEXT"));
    if context.is_some_and(|c| c != "default") {
        return None;
    }
    Some(engine_address(&var("DOCKER_HOST").unwrap_or_default()))
}

/// A build by someone else on the engine `host` (as [`engine_address`] writes it): a
/// building docker client ([`is_build_client`]) without `ours` in its command line whose
/// engine ([`engine_of`]) is `host`. A client whose engine cannot be known counts: a
/// prune under someone's build is what the count guards against.
pub fn is_foreign_build(cmdline: &[u8], environ: Option<&[u8]>, ours: &str, host: &str) -> bool {
    is_build_client(cmdline)
        && !String::from_utf8_lossy(cmdline).contains(ours)
        && engine_of(cmdline, environ).is_none_or(|e| e == host)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST20: &str = "unix:///run/docker.sock";
    const HOST28: &str = "unix:///run/kiln/docker28/docker.sock";
    const ENV28: &[u8] = b"PATH=/var/cache/kiln/engines/docker28/bin:/usr/bin\0DOCKER_HOST=unix:///run/kiln/docker28/docker.sock\0DOCKER_BUILDKIT=1\0";
    const ENV20: &[u8] = b"PATH=/usr/bin\0HOME=/root\0";

    #[test]
    fn building_clients() {
        for yes in [
            &b"/usr/bin/docker\0build\0--progress=plain\0."[..],
            b"docker\0buildx\0build\0--load\0.",
            b"/var/cache/kiln/engines/docker28/bin/docker\0buildx\0bake\0",
            b"docker\0-H\0unix:///x.sock\0build\0.",
            b"docker\0--host=unix:///x.sock\0--debug\0builder\0prune\0-af",
            b"docker\0image\0build\0.",
            b"docker\0buildx\0prune\0-f",
        ] {
            assert!(is_build_client(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b"/usr/bin/docker\0run\0--rm\0x"[..],
            b"docker\0buildx\0imagetools\0inspect\0x",
            b"docker\0-H\0build\0ps",
            b"dockerd\0--host=unix:///x.sock",
            b"/usr/libexec/docker/cli-plugins/docker-buildx\0buildx\0build\0.",
            b"/usr/bin/docker",
            b"",
        ] {
            assert!(!is_build_client(no), "{}", String::from_utf8_lossy(no));
        }
    }

    #[test]
    fn the_engine_a_client_talks_to() {
        let cmd = b"docker\0buildx\0build\0.";
        assert_eq!(engine_of(cmd, Some(ENV28)).as_deref(), Some(HOST28));
        assert_eq!(engine_of(cmd, Some(ENV20)).as_deref(), Some(HOST20));
        // -H wins over DOCKER_HOST, in both spellings; /var/run is /run.
        let cmd = b"/usr/bin/docker\0-H\0unix:///var/run/docker.sock\0build\0.";
        assert_eq!(engine_of(cmd, Some(ENV28)).as_deref(), Some(HOST20));
        let cmd = b"docker\0--host=unix:///run/kiln/docker28/docker.sock\0build\0.";
        assert_eq!(engine_of(cmd, None).as_deref(), Some(HOST28));
        // Unknown: no environment, or a context whose endpoint is in the client's config.
        assert_eq!(engine_of(b"docker\0build\0.", None), None);
        assert_eq!(
            engine_of(b"docker\0--context\0remote\0build\0.", Some(ENV20)),
            None
        );
        assert_eq!(
            engine_of(b"docker\0build\0.", Some(b"DOCKER_CONTEXT=ci\0")),
            None
        );
        assert_eq!(
            engine_of(b"docker\0build\0.", Some(b"DOCKER_CONTEXT=default\0")).as_deref(),
            Some(HOST20)
        );
    }

    #[test]
    fn addresses_compare_as_the_engine_they_name() {
        assert_eq!(engine_address(""), HOST20);
        assert_eq!(engine_address("unix:///var/run/docker.sock"), HOST20);
        assert_eq!(engine_address("unix:///run/docker.sock/"), HOST20);
        assert_eq!(engine_address("tcp://10.0.0.1:2375"), "tcp://10.0.0.1:2375");
    }

    #[test]
    fn foreign_builds_count_only_on_our_engine() {
        let ours = "/tmp/kiln-bench.abc";
        let e2e20 = b"/usr/bin/docker\0build\0--progress=plain\0-f\0/tmp/kiln-e2e.x/spec.yaml\0/tmp/kiln-e2e.x/ctx\0";
        let e2e28 = b"docker\0buildx\0build\0--progress=plain\0--load\0/tmp/kiln-e2e.y/ctx\0";
        // The bench on Docker 20.10: the 20.10 build counts, the one on docker28 does not.
        assert!(is_foreign_build(e2e20, Some(ENV20), ours, HOST20));
        assert!(!is_foreign_build(e2e28, Some(ENV28), ours, HOST20));
        // The bench on docker28: the other way round.
        assert!(!is_foreign_build(e2e20, Some(ENV20), ours, HOST28));
        assert!(is_foreign_build(e2e28, Some(ENV28), ours, HOST28));
        // A prune on our engine counts; our own builds never do.
        let prune = b"/usr/bin/docker\0builder\0prune\0-af\0";
        assert!(is_foreign_build(prune, Some(ENV20), ours, HOST20));
        let mine = b"/usr/bin/docker\0build\0--progress=plain\0/tmp/kiln-bench.abc/ctx\0";
        assert!(!is_foreign_build(mine, Some(ENV28), ours, HOST28));
        // Not builds.
        assert!(!is_foreign_build(
            b"/usr/bin/docker\0run\0--rm\0x\0",
            Some(ENV20),
            ours,
            HOST20
        ));
        assert!(!is_foreign_build(b"", Some(ENV20), ours, HOST20));
        // An engine that cannot be known counts (its environment could not be read).
        assert!(is_foreign_build(e2e28, None, ours, HOST20));
    }
}
