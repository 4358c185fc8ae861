//! Issue 14: the example with its requirement groups locked by `kiln lock` (PEP 751: each
//! file an HTTP source checked by sha256, fetched by the engine, installed offline)
//! against the peer: cold, warm, +1 requirement on a fresh runner (registry cache,
//! mode=max) and the bytes a push moves after it (modern engine only), a 300-package lock
//! (definition and frontend start-to-Return), and, on request, the heavy CUDA variant.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use super::warm::{REQS, dlog_len, dlog_since, last_value};
use super::{BASE, Bench, Tool, mkdir, read, turns, write};
use crate::docker::{CLIENT, Job};
use crate::progress;
use crate::report::{Row, Unit, num};
use crate::stats::median;

/// Where the bench keeps downloads between runs (uv's cache for `kiln lock`, the heavy
/// variant's wheels): `KILN_BENCH_CACHE`, default /var/cache/kiln-bench.
fn cache_dir() -> PathBuf {
    std::env::var_os("KILN_BENCH_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/kiln-bench"), PathBuf::from)
}

/// Builds the frontend image `kiln/frontend:TAG` for locked and uv mode; on a modern
/// engine pushes it to the engine's registry (`localhost:5000/kiln/frontend:TAG`, as a
/// user's registry).
pub(super) fn frontend_image(
    root: &Path,
    engine: Option<&str>,
    tag: &str,
) -> Result<String, String> {
    let mut cmd = match engine {
        Some(name) => {
            let mut c = Command::new(root.join("scripts/engine.sh"));
            c.args(["frontend", name, tag]);
            c
        }
        None => {
            let mut c = Command::new(root.join("scripts/frontend-image.sh"));
            c.arg(format!("kiln/frontend:{tag}"));
            c
        }
    };
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot build the frontend image: {e}"))?;
    let image = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || image.is_empty() {
        return Err("cannot build the frontend image".into());
    }
    Ok(image)
}

/// The spec with its `requirements:` block replaced by the block `kiln lock` printed
/// (`requirements:` and the indented lines under it); `None` when either has none.
pub fn point_at_locks(spec: &str, printed: &str) -> Option<String> {
    let block: Vec<&str> = printed
        .lines()
        .skip_while(|l| *l != "requirements:")
        .take_while(|l| *l == "requirements:" || l.starts_with("  "))
        .collect();
    if block.len() < 2 {
        return None;
    }
    let mut out = Vec::new();
    let mut lines = spec.lines().peekable();
    let mut hit = false;
    while let Some(l) = lines.next() {
        if l == "requirements:" && !hit {
            hit = true;
            out.extend(block.iter().copied());
            while lines.peek().is_some_and(|n| n.starts_with("  ")) {
                lines.next();
            }
        } else {
            out.push(l);
        }
    }
    hit.then(|| out.join("\n") + "\n")
}

/// `(digest, size)` of each layer of an image manifest (the registry's JSON as
/// `imagetools inspect --raw` prints it).
pub fn manifest_layers(raw: &str) -> Vec<(String, u64)> {
    let Some(start) = raw.find("\"layers\"") else {
        return Vec::new();
    };
    let rest = &raw[start..];
    let end = rest.find(']').unwrap_or(rest.len());
    rest[..end]
        .split('}')
        .filter_map(|obj| Some((json_str(obj, "digest")?, json_num(obj, "size")?)))
        .collect()
}

/// The first manifest's digest of an image index (`None` for a plain manifest).
pub fn index_first_manifest(raw: &str) -> Option<String> {
    if raw.contains("\"layers\"") {
        return None;
    }
    let start = raw.find("\"manifests\"")?;
    json_str(&raw[start..], "digest")
}

fn json_str(obj: &str, key: &str) -> Option<String> {
    let at = obj.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = obj[at..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

fn json_num(obj: &str, key: &str) -> Option<u64> {
    let at = obj.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = obj[at..].trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Bytes of the layers of `after` that `before` lacks, and all of `after`'s bytes.
pub fn new_bytes(before: &[(String, u64)], after: &[(String, u64)]) -> (u64, u64) {
    let total = after.iter().map(|l| l.1).sum();
    let moved = after
        .iter()
        .filter(|l| !before.iter().any(|b| b.0 == l.0))
        .map(|l| l.1)
        .sum();
    (moved, total)
}

/// Generates `n` small pure-Python wheels in DIR and a pylock.toml naming them at
/// BASE_URL with their sha256 and size (argv: DIR N BASE_URL LOCK).
const GEN_WHEELS: &str = r#"
import hashlib, os, sys, zipfile, base64
d, n, url, lock = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
os.makedirs(d, exist_ok=True)
out = ['lock-version = "1.0"', 'created-by = "kiln-bench"', 'requires-python = ">=3.11"']
for i in range(1, n + 1):
    name, mod, ver = f"bench-pkg-{i:03d}", f"bench_pkg_{i:03d}", f"1.{i % 7}.{i}"
    fn = f"{mod}-{ver}-py3-none-any.whl"
    path = os.path.join(d, fn)
    dist = f"{mod}-{ver}.dist-info"
    files = {
        f"{mod}/__init__.py": f"VALUE = {i}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\nSummary: bench package {i}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: kiln-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    rec = []
    for k, v in files.items():
        h = base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest()).rstrip(b"=").decode()
        rec.append(f"{k},sha256={h},{len(v.encode())}")
    rec.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(rec) + "\n"
    with zipfile.ZipFile(path, "w") as z:
        for k, v in files.items():
            zi = zipfile.ZipInfo(k, (2020, 1, 1, 0, 0, 0))
            z.writestr(zi, v)
    raw = open(path, "rb").read()
    sha = hashlib.sha256(raw).hexdigest()
    out.append(f'\n[[packages]]\nname = "{name}"\nversion = "{ver}"\n'
               f'wheels = [{{ url = "{url}/{fn}", upload-time = 2025-01-01T00:00:00Z, size = {len(raw)}, hashes = {{ sha256 = "{sha}" }} }}]')
open(lock, "w").write("\n".join(out) + "\n")
"#;

/// A threading file server for `argv[3]` on `argv[2]:argv[1]`, with a listen backlog
/// that takes a build's every fetch at once.
const FILE_SERVER: &str = "import functools, http.server, sys\n\
class S(http.server.ThreadingHTTPServer):\n    request_queue_size = 1024\n\
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[3])\n\
S((sys.argv[2], int(sys.argv[1])), h).serve_forever()\n";

/// The host's docker0 address: where a file server on the host is reachable from the
/// host's dockerd and from a modern engine's container alike.
fn docker0_ip() -> Option<String> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "docker0"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let cidr = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)?;
    Some(cidr.split('/').next()?.to_string())
}

/// A file server the harness started; stopped (by its own pid) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Bench {
    /// Every locked-mode scenario, in order.
    pub(super) fn locked(&mut self) -> Result<(), String> {
        // KILN_BENCH_LOCKED_ONLY=lock300: only the 300-package rows (to rerun them alone).
        let only = std::env::var("KILN_BENCH_LOCKED_ONLY").ok();
        if only.as_deref() == Some("lock300") {
            return self.lock300();
        }
        self.scenario("kiln lock of the example");
        let ms = self.relock()?;
        self.row(Row::new(
            "`kiln lock` of the example (2 groups, uv)",
            Unit::Secs,
            &[ms],
            &[],
        ));
        // The original the scenarios restore is the locked context.
        let orig = self.work.join("ctx.orig");
        std::fs::remove_dir_all(&orig).map_err(|e| format!("rm {}: {e}", orig.display()))?;
        super::copy_dir(&self.ctx, &orig)?;
        // KILN_BENCH_LOCKED_ONLY=heavy: only the heavy CUDA rows; heavy-req: only its +1
        // rows; heavy-fresh: only its fresh runner's.
        if matches!(only.as_deref(), Some("heavy" | "heavy-req" | "heavy-fresh")) {
            return self.heavy_cuda();
        }
        self.cold()?;
        self.warm()?;
        if self.engine_name.is_some() {
            self.fresh_runner()?;
        } else {
            self.note(
                "Fresh-runner and pushed-bytes rows: modern engine only (Docker 20.10's `docker build` has no registry cache export and no buildx)."
                    .into(),
            );
        }
        self.lock300()?;
        if self.heavy {
            self.heavy_cuda()?;
        }
        Ok(())
    }

    /// On a modern engine the frontend lives in the engine's registry, which others'
    /// test runs share: when the tag is gone (seen here: an e2e run on the same engine
    /// dropped it mid-bench), it is pushed again, with a note.
    pub(super) fn frontend_still_there(&mut self) {
        let Some(name) = self.engine_name.clone() else {
            return;
        };
        let there = Command::new(CLIENT)
            .args(["-H", "unix:///var/run/docker.sock", "exec"])
            .arg(format!("kiln-engine-{name}"))
            .args(["docker", "buildx", "imagetools", "inspect", &self.frontend])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !there {
            self.run
                .say("the frontend is gone from the engine's registry: pushing it again");
            let tag = self
                .frontend
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_string();
            let ok = frontend_image(&self.root, Some(&name), &tag).is_ok();
            self.note(format!(
                "The frontend {} was gone from {name}'s registry (someone else's run) and was pushed again{}.",
                self.frontend,
                if ok { "" } else { " (that failed)" }
            ));
        }
    }

    /// `kiln lock` of the work context from the spec with requirement files, then the
    /// work spec pointed at the locks; ms of `kiln lock`.
    pub(super) fn relock(&mut self) -> Result<f64, String> {
        let spec = self.unlocked_spec.clone();
        let ctx = self.ctx.clone();
        self.lock_into(&spec, &ctx, &self.spec.clone())
    }

    /// `kiln lock SPEC --context CTX` (uv 0.9.7 from scripts/ensure-uv.sh, its cache in
    /// the bench's cache dir), and OUT written as SPEC pointed at the locks; ms.
    fn lock_into(&mut self, spec: &Path, ctx: &Path, out: &Path) -> Result<f64, String> {
        let uv_dir = Command::new(self.root.join("scripts/ensure-uv.sh"))
            .stderr(Stdio::inherit())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .ok_or("scripts/ensure-uv.sh found no uv")?;
        let path = format!("{uv_dir}:{}", std::env::var("PATH").unwrap_or_default());
        let t0 = Instant::now();
        let res = Command::new(&self.kiln_bin)
            .arg("lock")
            .arg(spec)
            .arg("--context")
            .arg(ctx)
            .args(["--build-arg", "PYTHON_VERSION=3.11"])
            .env("PATH", path)
            .env("UV_NATIVE_TLS", "1")
            .env("UV_CACHE_DIR", cache_dir().join("uv"))
            .output()
            .map_err(|e| format!("kiln lock: {e}"))?;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        let log = self
            .run
            .logs
            .join(format!("kiln-lock-{}.log", super::nanos()));
        let _ = std::fs::write(&log, [&res.stderr[..], &res.stdout[..]].concat());
        if !res.status.success() {
            return Err(format!("kiln lock failed: see {}", log.display()));
        }
        let printed = String::from_utf8_lossy(&res.stdout);
        let text = point_at_locks(&read(spec)?, &printed)
            .ok_or_else(|| format!("kiln lock printed no requirements block: {printed}"))?;
        write(out, &text)?;
        self.run.say(&format!("kiln lock: {ms:.0} ms"));
        Ok(ms)
    }

    /// A buildx build of the minimal image by `who`, pushed to the engine's registry as
    /// `localhost:5000/kiln-bench/TOOL:TAG`, with `cache` flags.
    fn pushed(&self, who: Tool, name: &str, tag: &str, cache: &[String]) -> Job {
        let image = format!("localhost:5000/kiln-bench/{}:{tag}", who.label());
        pushed_job(self.job(who, name, "minimal"), &image, cache)
    }

    /// What a push of `REPO:after` moved over `REPO:before` (`new_bytes` of their layers):
    /// (new compressed bytes, all of `after`'s); (0, 0) when the registry has neither.
    pub(super) fn pushed_after(&self, repo: &str) -> (u64, u64) {
        new_bytes(
            &self.layers(&format!("{repo}:before")),
            &self.layers(&format!("{repo}:after")),
        )
    }

    /// `(digest, size)` of the layers of an image in the modern engine's registry.
    pub(super) fn layers(&self, reference: &str) -> Vec<(String, u64)> {
        let Some(name) = &self.engine_name else {
            return Vec::new();
        };
        let inspect = |r: &str| {
            Command::new(CLIENT)
                .args(["-H", "unix:///var/run/docker.sock", "exec"])
                .arg(format!("kiln-engine-{name}"))
                .args(["docker", "buildx", "imagetools", "inspect", "--raw", r])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let raw = inspect(reference);
        match index_first_manifest(&raw) {
            Some(digest) => {
                let repo = reference.rsplit_once(':').map_or(reference, |(r, _)| r);
                manifest_layers(&inspect(&format!("{repo}@{digest}")))
            }
            None => manifest_layers(&raw),
        }
    }

    /// +1 requirement on a fresh runner: a build that exports its cache to the registry
    /// (mode=max) and pushes, `docker builder prune -af`, the edit (kiln: and `kiln lock`),
    /// then a build importing that cache that pushes again. Both tools, the same flags.
    fn fresh_runner(&mut self) -> Result<(), String> {
        self.scenario("one requirement added on a fresh runner");
        self.run.prune_before_retry = false;
        let (mut samples, mut builds, mut locks) = ([vec![], vec![]], vec![], vec![]);
        let (mut moved, mut share) = ([vec![], vec![]], [vec![], vec![]]);
        for i in 1..=self.runs {
            for who in turns(i) {
                self.restore_ctx()?;
                if who == Tool::Kiln {
                    // The spec as locked from the restored context.
                    let spec = self.unlocked_spec.clone();
                    let ctx = self.ctx.clone();
                    let out = self.spec.clone();
                    self.lock_into(&spec, &ctx, &out)?;
                }
                let l = who.label();
                let cache = format!("localhost:5000/kiln-bench-cache:{l}");
                let before = self.pushed(
                    who,
                    &format!("fresh-before-{l}-{i}"),
                    "before",
                    &[
                        "--cache-to".into(),
                        format!("type=registry,ref={cache},mode=max"),
                    ],
                );
                if self.run.build(before).is_none() {
                    continue;
                }
                self.run.prune();
                let line = format!(
                    "{}  # bench fresh {}\n",
                    REQS[(i - 1) % REQS.len()],
                    super::nanos()
                );
                super::append(&self.ctx.join("requirements/core.txt"), &line)?;
                let lock = if who == Tool::Kiln {
                    let ms = self.relock()?;
                    locks.push(ms);
                    ms
                } else {
                    0.0
                };
                let name = format!("fresh-{l}-{i}");
                let after = self.pushed(
                    who,
                    &name,
                    "after",
                    &["--cache-from".into(), format!("type=registry,ref={cache}")],
                );
                if let Some(ms) = self.run.build(after) {
                    samples[who as usize].push(ms + lock);
                    if who == Tool::Kiln {
                        builds.push(ms);
                    }
                    let repo = format!("localhost:5000/kiln-bench/{l}");
                    let (m, total) = self.pushed_after(&repo);
                    if total > 0 {
                        moved[who as usize].push(m as f64 / 1e6);
                        share[who as usize].push(m as f64 * 100.0 / total as f64);
                        self.note(format!(
                            "pushed after +1 requirement, {l} run {i}: {m} of {total} bytes (compressed layers)"
                        ));
                    }
                }
            }
        }
        self.restore_ctx()?;
        let [ks, ps] = samples;
        self.row(Row::new(
            "one requirement added, fresh runner (pruned, --cache-from registry, mode=max; kiln: `kiln lock` + build)",
            Unit::Secs,
            &ks,
            &ps,
        ));
        self.row(Row::new(
            "one requirement added, fresh runner: kiln's build alone",
            Unit::Secs,
            &builds,
            &ps,
        ));
        let [km, pm] = moved;
        self.row(Row::new(
            "bytes pushed after one requirement added (new compressed layers)",
            Unit::MbFine,
            &km,
            &pm,
        ));
        let [kp, pp] = share;
        self.row(Row::new(
            "bytes pushed after one requirement added, share of the image",
            Unit::Pct,
            &kp,
            &pp,
        ));
        let r = self.runs;
        let line = format!(
            "fresh runner, slowest steps of the last run: kiln: {}; peer: {}; `kiln lock` median {} ms",
            self.slowest(&format!("fresh-kiln-{r}"), 4),
            self.slowest(&format!("fresh-peer-{r}"), 3),
            num(median(&locks).map(f64::round))
        );
        self.note(line);
        Ok(())
    }

    /// A 300-package lock (small generated wheels on a file server on the host): `kiln
    /// llb` as a process, and the frontend's own lines on no-op builds.
    fn lock300(&mut self) -> Result<(), String> {
        self.scenario("300-package lock");
        let dir = self.work.join("lock300");
        mkdir(&dir.join("ctx/app"))?;
        write(&dir.join("ctx/app/__init__.py"), "")?;
        write(&dir.join("ctx/app/__main__.py"), "print('ok')\n")?;
        let ip = docker0_ip().ok_or("no docker0 address")?;
        let port = 20000 + (super::nanos() % 20000) as u16;
        let url = format!("http://{ip}:{port}");
        let gen_ok = Command::new("python3")
            .args(["-c", GEN_WHEELS])
            .arg(dir.join("files"))
            .arg("300")
            .arg(&url)
            .arg(dir.join("ctx/pylock.toml"))
            .status()
            .is_ok_and(|s| s.success());
        if !gen_ok {
            return Err("cannot generate the 300 wheels".into());
        }
        // The server is plain http: named as an index (the user's own mirror), its files are
        // fetched by the engine, one op each; unnamed, the group would install in its step
        // (KilnLockInStep) and these rows would time another path.
        let spec = dir.join("lock300.yaml");
        write(
            &spec,
            &format!(
                "# syntax={}\nversion: 1\nname: lock300\npython: {{base: \"{BASE}\", version: \"3.11\", installer: uv}}\n\
                 requirements: {{core: {{lock: pylock.toml}}}}\nbuild_secrets: {{ca_bundle: pipca}}\n\
                 pip: {{extra_index_urls: [\"{url}/\"]}}\n\
                 app: {{src: [app], workdir: /app}}\n\
                 user: {{name: app, uid: 10001}}\ncmd: [python, -m, app]\n",
                self.frontend
            ),
        )?;
        let runs = 50;
        let t_true = super::frontend::time(runs, || Command::new("/bin/true"));
        for (merge, what) in [
            (false, "one install step (Docker 20.10)"),
            (true, "a layer per package (--merge)"),
        ] {
            let t = super::frontend::time(runs, || {
                let mut c = Command::new(&self.kiln_bin);
                c.arg("llb")
                    .arg(&spec)
                    .arg("--context")
                    .arg(dir.join("ctx"));
                if merge {
                    c.arg("--merge");
                }
                c
            });
            self.row(Row::new(
                format!("`kiln llb`, 300-package lock, {what} (left) vs `/bin/true` (right)"),
                Unit::MsFine,
                &t,
                &t_true,
            ));
        }
        let log = std::fs::File::create(self.run.logs.join("lock300-http.log"))
            .map_err(|e| format!("http log: {e}"))?;
        // `python3 -m http.server` listens with a backlog of 5: the engine's 300 fetches at
        // once then met resets (seen on Docker 28, session 9). The same server, backlog 1024.
        let server = Command::new("python3")
            .args(["-c", FILE_SERVER, &port.to_string(), &ip])
            .arg(dir.join("files"))
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("file server: {e}"))?;
        let _server = Server(server);
        std::thread::sleep(std::time::Duration::from_millis(500));
        // The venv step installs uv from PyPI: it needs the CA bundle, as the example's.
        let common = self.common();
        let job = |name: &str| {
            let mut args: Vec<std::ffi::OsString> = vec![
                "-f".into(),
                spec.clone().into(),
                "-t".into(),
                "bench/kiln:lock300".into(),
            ];
            args.extend(common.iter().cloned());
            args.push(dir.join("ctx").into());
            Job {
                name: name.into(),
                args,
                buildx: false,
            }
        };
        let t0 = Instant::now();
        let first = self.run.build(job("lock300-first"));
        let cold_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let fetched = progress::named(&self.steps("lock300-first"), "fetch bench_pkg_").count();
        if first.is_some() && fetched < 300 {
            return Err(format!(
                "the 300-package build fetched {fetched} files by the engine, not 300: it took another path (see its log)"
            ));
        }
        let (mut front, mut defs) = (vec![], vec![]);
        if first.is_some() {
            for i in 1..=3 {
                let mark = dlog_len(&self.run.dlog);
                self.run.build(job(&format!("lock300-noop-{i}")));
                let since = dlog_since(&self.run.dlog, mark);
                front.extend(last_value(&since, "kiln: frontend start to Return:"));
                defs.extend(last_value(&since, "kiln: definition for").map(|us| us / 1000.0));
            }
        }
        self.row(Row::new(
            "kiln frontend, 300-package lock, start to Return on a no-op build (its own log line)",
            Unit::MsFine,
            &front,
            &[],
        ));
        self.row(Row::new(
            "kiln frontend, 300-package lock, definition made (its own log line)",
            Unit::MsFine,
            &defs,
            &[],
        ));
        self.note(format!(
            "300-package lock: the first (cold) build took {:.1} s (300 files fetched from a server on the host); slowest steps: {}",
            cold_ms / 1000.0,
            self.slowest("lock300-first", 3)
        ));
        // The example's own lines from the no-op rows.
        let (front, defs) = (self.front.clone(), self.defs.clone());
        self.row(Row::new(
            "kiln frontend, the locked example, start to Return on a no-op build",
            Unit::MsFine,
            &front,
            &[],
        ));
        self.row(Row::new(
            "kiln frontend, the locked example, definition made",
            Unit::MsFine,
            &defs,
            &[],
        ));
        let _ = std::fs::remove_dir_all(dir.join("files"));
        Ok(())
    }

    /// The heavy CUDA variant: the ml group with torch from PyPI (its CUDA wheels: about
    /// 3 GB), locked; one cold cuda build per side, the line rate measured in the same run
    /// (the lock's largest wheels downloaded to /dev/null), then +1 requirement warm.
    /// Refused when the disk has less than 15 GB free.
    fn heavy_cuda(&mut self) -> Result<(), String> {
        self.scenario("heavy CUDA (torch)");
        let free = free_bytes(&self.work);
        if free < 15_000_000_000 {
            self.note(format!(
                "Heavy CUDA not run: {:.1} GB free, it needs about 15 GB (two images with torch, the fetched wheels, the peer's builder layer).",
                free as f64 / 1e9
            ));
            return Ok(());
        }
        self.restore_ctx()?;
        super::append(
            &self.ctx.join("requirements/ml.txt"),
            "torch==2.5.1  # bench heavy\n",
        )?;
        self.relock()?;
        let heavy_orig = self.work.join("ctx.heavy");
        let _ = std::fs::remove_dir_all(&heavy_orig);
        super::copy_dir(&self.ctx, &heavy_orig)?;
        // The line rate: the lock's three largest wheels, downloaded now.
        let lock = read(&self.ctx.join("pylock.ml.toml"))?;
        let mut wheels = lock_wheels(&lock);
        wheels.sort_by_key(|w| std::cmp::Reverse(w.1));
        let (mut bytes, t0) = (0u64, Instant::now());
        for (url, size) in wheels.iter().take(3) {
            let ok = Command::new("curl")
                .args(["-fsS", "-o", "/dev/null", url])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                bytes += size;
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let rate = bytes as f64 / secs.max(0.001);
        // KILN_BENCH_LOCKED_ONLY=heavy-req: only the +1 rows (the cold rows ran before);
        // heavy-fresh: only the fresh runner's.
        let only = std::env::var("KILN_BENCH_LOCKED_ONLY").ok();
        let cold = !matches!(only.as_deref(), Some("heavy-req" | "heavy-fresh"));
        let warm = only.as_deref() != Some("heavy-fresh");
        let mut samples = [vec![], vec![]];
        for who in turns(1).into_iter().filter(|_| cold) {
            self.run.prune();
            let name = format!("heavy-cold-{}", who.label());
            samples[who as usize].extend(self.run.build(self.job(who, &name, "cuda")));
        }
        let [ks, ps] = samples;
        let mut ks_cold = ks.clone();
        if cold {
            self.row(Row::new(
                "heavy CUDA (torch), cold build",
                Unit::Secs,
                &ks,
                &ps,
            ));
            self.export_note("gzip", "heavy-cold");
        }
        // The same cold build with zstd layers (modern engine: the docker driver's
        // `type=image` output takes compression options with the containerd store).
        if cold && self.engine_name.is_some() {
            let mut samples = [vec![], vec![]];
            for who in turns(1) {
                self.run.prune();
                drop_heavy_images();
                let name = format!("heavy-zstd-{}", who.label());
                let output = format!("type=image,name=bench/{}:cuda,{ZSTD}", who.label());
                let job = output_job(self.job(who, &name, "cuda"), &output, &[]);
                samples[who as usize].extend(self.run.build(job));
            }
            let [ks, ps] = samples;
            self.row(Row::new(
                format!("heavy CUDA (torch), cold build, `{ZSTD}`"),
                Unit::Secs,
                &ks,
                &ps,
            ));
            self.export_note("zstd", "heavy-zstd");
        }
        // +1 requirement, one side at a time from a pruned engine (both sides' heavy
        // states together do not fit this disk): a warm-up build of the unedited context,
        // untimed, then the edit (kiln: and `kiln lock`) and the timed build.
        let mut samples = [vec![], vec![]];
        for who in turns(1).into_iter().filter(|_| warm) {
            self.run.prune();
            drop_heavy_images();
            self.restore_heavy(&heavy_orig)?;
            let name = format!("heavy-warm-{}", who.label());
            match self.run.build(self.job(who, &name, "cuda")) {
                None => return Err(format!("the heavy {} build fails", who.label())),
                // From a pruned engine: a cold build too.
                Some(ms) if !cold && who == Tool::Kiln => ks_cold.push(ms),
                Some(_) => {}
            }
            let lock = self.add_heavy_requirement(who)?;
            let name = format!("heavy-req-{}", who.label());
            if let Some(ms) = self.run.build(self.job(who, &name, "cuda")) {
                samples[who as usize].push(ms + lock);
            }
        }
        let [ks, ps] = samples;
        if warm {
            self.row(Row::new(
                "heavy CUDA, one requirement added, warm (kiln: `kiln lock` + build)",
                Unit::Secs,
                &ks,
                &ps,
            ));
        }
        self.run.prune();
        drop_heavy_images();
        if self.engine_name.is_some() {
            self.heavy_fresh(&heavy_orig)?;
        }
        // What kiln fetched (its cold build's `fetch FILE` steps; the warm-up build is one
        // too), by the sizes in the locks: not the lock's every wheel, which covers every
        // Python version and platform.
        let mut sizes = lock_wheels(&lock);
        sizes.extend(lock_wheels(&read(&heavy_orig.join("pylock.core.toml"))?));
        let kiln_cold = match (cold, warm) {
            (true, _) => "heavy-cold-kiln",
            (false, true) => "heavy-warm-kiln",
            (false, false) => "heavy-fresh-before-kiln",
        };
        let total = fetched_bytes(&self.steps(kiln_cold), &sizes);
        let download_s = total as f64 / rate.max(1.0);
        self.note(format!(
            "heavy CUDA: line rate {:.1} MB/s ({} MB of the largest wheels in {secs:.1} s); kiln's cold build fetched {:.0} MB, {download_s:.0} s at that rate; kiln's cold build ({kiln_cold}) took {} of that",
            rate / 1e6,
            bytes / 1_000_000,
            total as f64 / 1e6,
            median(&ks_cold).map_or("-".into(), |k| format!("{:.2}x", k / 1000.0 / download_s))
        ));
        let line = format!(
            "heavy CUDA, slowest steps: cold kiln: {}; cold peer: {}; +1 kiln: {}; +1 peer: {}",
            self.slowest("heavy-cold-kiln", 4),
            self.slowest("heavy-cold-peer", 3),
            self.slowest("heavy-req-kiln", 4),
            self.slowest("heavy-req-peer", 3)
        );
        self.note(line);
        self.restore_ctx()?;
        self.relock()?;
        Ok(())
    }

    /// A note with each side's export time in the builds `PREFIX-kiln` and `PREFIX-peer`.
    fn export_note(&mut self, compression: &str, prefix: &str) {
        self.note(format!(
            "heavy CUDA, cold, {compression}: export kiln {:.1} s, peer {:.1} s",
            self.export_ms(&format!("{prefix}-kiln")) / 1000.0,
            self.export_ms(&format!("{prefix}-peer")) / 1000.0
        ));
    }

    /// The context as the heavy rows lock it (`orig`, with torch), over the current one.
    fn restore_heavy(&self, orig: &Path) -> Result<(), String> {
        std::fs::remove_dir_all(&self.ctx)
            .map_err(|e| format!("rm {}: {e}", self.ctx.display()))?;
        super::copy_dir(orig, &self.ctx)
    }

    /// The heavy rows' +1 requirement (humanize in `core`); for kiln, `kiln lock` again.
    /// The lock's ms (0 for the peer).
    fn add_heavy_requirement(&mut self, who: Tool) -> Result<f64, String> {
        super::append(
            &self.ctx.join("requirements/core.txt"),
            "humanize==4.12.3  # bench heavy\n",
        )?;
        match who {
            Tool::Kiln => self.relock(),
            Tool::Peer => Ok(0.0),
        }
    }

    /// Heavy CUDA, +1 requirement on a fresh runner, one side at a time from a pruned
    /// engine and an empty registry: the unedited build pushing `:before` and its cache
    /// (mode=max), a prune, the edit (kiln: and `kiln lock`), then the build importing
    /// that cache and pushing `:after`, timed. Notes what `:after` pushed that `:before`
    /// had not, and the edited build's slowest steps (where unchanged torch layers would
    /// show, had they been pulled or unpacked).
    fn heavy_fresh(&mut self, heavy_orig: &Path) -> Result<(), String> {
        let engine = self.engine_name.clone().expect("modern engine only");
        let mut samples = [vec![], vec![]];
        for who in turns(1) {
            let l = who.label();
            drop_heavy_registry(&engine);
            self.restore_heavy(heavy_orig)?;
            let image = format!("localhost:5000/kiln-bench-heavy/{l}");
            let cache = format!("localhost:5000/kiln-bench-heavy-cache:{l}");
            let before = pushed_job(
                self.job(who, &format!("heavy-fresh-before-{l}"), "cuda"),
                &format!("{image}:before"),
                &[
                    "--cache-to".into(),
                    format!("type=registry,ref={cache},mode=max"),
                ],
            );
            if self.run.build(before).is_none() {
                continue;
            }
            self.run.prune();
            drop_heavy_images();
            let lock = self.add_heavy_requirement(who)?;
            let name = format!("heavy-fresh-{l}");
            let after = pushed_job(
                self.job(who, &name, "cuda"),
                &format!("{image}:after"),
                &["--cache-from".into(), format!("type=registry,ref={cache}")],
            );
            if let Some(ms) = self.run.build(after) {
                samples[who as usize].push(ms + lock);
                let (m, total) = self.pushed_after(&image);
                self.note(format!(
                    "heavy CUDA, fresh runner, {l}: `:after` pushed {:.1} MB of its {:.0} MB (compressed layers); slowest steps: {}",
                    m as f64 / 1e6,
                    total as f64 / 1e6,
                    self.slowest(&name, 5)
                ));
            }
            self.run.prune();
            drop_heavy_images();
        }
        drop_heavy_registry(&engine);
        let [ks, ps] = samples;
        self.row(Row::new(
            "heavy CUDA, one requirement added, fresh runner (pruned, --cache-from registry, mode=max; kiln: `kiln lock` + build)",
            Unit::Secs,
            &ks,
            &ps,
        ));
        Ok(())
    }
}

/// The exporter options of the zstd rows, as docs/usage.md gives them.
const ZSTD: &str = "compression=zstd,oci-mediatypes=true,force-compression=true";

/// `job` (a `docker build` whose last argument is the context) as a `docker buildx build`
/// that pushes its image as `image` (no provenance: only the image's own layers), with
/// `cache` flags (`--cache-to ...`, `--cache-from ...`).
pub(super) fn pushed_job(job: Job, image: &str, cache: &[String]) -> Job {
    output_job(job, &format!("type=image,name={image},push=true"), cache)
}

/// `job` as a `docker buildx build` with `--output OUTPUT` in place of its `-t TAG`, no
/// provenance, and `cache` flags.
pub(super) fn output_job(mut job: Job, output: &str, cache: &[String]) -> Job {
    // Drop `-t TAG`: the output names the image.
    if let Some(i) = job.args.iter().position(|a| a == "-t") {
        job.args.drain(i..i + 2);
    }
    let ctx = job.args.pop().expect("the context is last");
    job.args.extend(cache.iter().map(Into::into));
    job.args.push("--provenance=false".into());
    job.args.push("--output".into());
    job.args.push(output.into());
    job.args.push(ctx);
    job.buildx = true;
    job
}

/// Empties the modern engine's registry of the heavy rows' repositories (`kiln-bench-heavy*`)
/// and collects their blobs: each side's image and cache hold about 6 GB.
fn drop_heavy_registry(engine: &str) {
    let script = "rm -rf /var/lib/docker-registry/docker/registry/v2/repositories/kiln-bench-heavy* \
        && docker-registry garbage-collect --delete-untagged /etc/kiln/registry.yml >/dev/null";
    let _ = Command::new(CLIENT)
        .args(["-H", "unix:///var/run/docker.sock", "exec"])
        .arg(format!("kiln-engine-{engine}"))
        .args(["sh", "-c", script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// The heavy images, and those their rebuilds left untagged: a prune keeps images, and
/// on this disk two sides' 6 GB images and their predecessors do not fit.
fn drop_heavy_images() {
    for args in [
        &[
            "image",
            "rm",
            "-f",
            "bench/kiln:cuda",
            "bench/peer:cuda",
            "localhost:5000/kiln-bench-heavy/kiln:before",
            "localhost:5000/kiln-bench-heavy/kiln:after",
            "localhost:5000/kiln-bench-heavy/peer:before",
            "localhost:5000/kiln-bench-heavy/peer:after",
        ][..],
        &["image", "prune", "-f"][..],
    ] {
        let _ = Command::new(CLIENT)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Bytes of the files a build's `fetch FILE` steps fetched, by `(url, size)` from the locks.
pub fn fetched_bytes(steps: &[crate::progress::Step], sizes: &[(String, u64)]) -> u64 {
    let mut files: Vec<&str> = steps
        .iter()
        .filter_map(|s| s.name.strip_prefix("fetch "))
        .collect();
    files.sort_unstable();
    files.dedup();
    files
        .iter()
        .filter_map(|f| {
            sizes
                .iter()
                .find(|(url, _)| url.rsplit('/').next() == Some(f))
        })
        .map(|(_, n)| n)
        .sum()
}

/// `(url, size)` of every wheel a pylock.toml names (`url = "..."` and `size = N` on one
/// line, as uv writes them).
pub fn lock_wheels(lock: &str) -> Vec<(String, u64)> {
    lock.lines()
        .filter(|l| l.contains(".whl\""))
        .filter_map(|l| {
            let url = l.split("url = \"").nth(1)?.split('"').next()?.to_string();
            let size = l
                .split("size = ")
                .nth(1)?
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()?;
            Some((url, size))
        })
        .collect()
}

/// Free bytes on the file system of `dir` (`df`), 0 when unknown.
fn free_bytes(dir: &Path) -> u64 {
    Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .nth(1)?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn the_spec_points_at_the_locks_kiln_lock_printed() {
        let spec = "name: w\nrequirements:\n  core: [requirements/core.txt]\n  ml: [requirements/ml.txt]\npip:\n  timeout: 1\n";
        let printed =
            "requirements:\n  core: {lock: pylock.core.toml}\n  ml: {lock: pylock.ml.toml}\n";
        assert_eq!(
            point_at_locks(spec, printed).unwrap(),
            "name: w\nrequirements:\n  core: {lock: pylock.core.toml}\n  ml: {lock: pylock.ml.toml}\npip:\n  timeout: 1\n"
        );
        assert_eq!(point_at_locks(spec, "nothing\n"), None);
        assert_eq!(point_at_locks("name: w\n", printed), None);
    }

    #[test]
    fn an_index_points_at_its_first_manifest() {
        let index = r#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"x","digest":"sha256:ab","size":3}]}"#;
        assert_eq!(index_first_manifest(index).as_deref(), Some("sha256:ab"));
        let manifest = r#"{"config":{"digest":"sha256:c","size":9},"layers":[]}"#;
        assert_eq!(index_first_manifest(manifest), None);
    }

    /// A cold kiln build of the locked example on Docker 28 (MergeOp + DiffOp): every
    /// file fetched, psycopg2's sdist built into a wheel, a step per package, the check.
    #[test]
    fn recorded_locked_cold_build_on_docker28() {
        let steps = crate::progress::parse(&fixture("kiln-locked-cold-docker28.log"));
        let fetched = crate::progress::named(&steps, "fetch ").count();
        let installs = crate::progress::named(&steps, "uv install: core: ").count();
        assert!(fetched >= 28, "{fetched} fetch steps");
        assert_eq!(installs, 28);
        assert!(crate::progress::ran(
            &steps,
            "wheel from sdist: psycopg2 2.9.10 (core)"
        ));
        assert!(crate::progress::ran(&steps, "uv install: core: pillow"));
        assert!(crate::progress::ran(&steps, "check: core"));
        // The cold-sample rule of the harness holds for the per-package names.
        assert!(super::super::cold_sample_ok(
            &steps,
            super::super::KILN_HEAVY
        ));
        assert!(crate::progress::secs_of(&steps, "wheel from sdist: psycopg2") > 1.0);
    }

    #[test]
    fn a_pushed_build_names_its_image_in_the_output_and_keeps_the_context_last() {
        let job = Job {
            name: "fresh".into(),
            args: [
                "-f",
                "s.yaml",
                "-t",
                "bench/kiln:minimal",
                "--target",
                "minimal",
                "/ctx",
            ]
            .map(Into::into)
            .to_vec(),
            buildx: false,
        };
        let cache = [
            "--cache-from".to_string(),
            "type=registry,ref=r".to_string(),
        ];
        let out = pushed_job(job, "localhost:5000/x/kiln:after", &cache);
        assert!(out.buildx);
        let args: Vec<String> = out
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-f",
                "s.yaml",
                "--target",
                "minimal",
                "--cache-from",
                "type=registry,ref=r",
                "--provenance=false",
                "--output",
                "type=image,name=localhost:5000/x/kiln:after,push=true",
                "/ctx"
            ]
        );
    }

    #[test]
    fn manifest_layers_inline() {
        let raw = r#"{"config":{"digest":"sha256:c","size":9},"layers":[{"mediaType":"m","digest":"sha256:a","size":10},{"mediaType":"m","size":20,"digest":"sha256:b"}]}"#;
        assert_eq!(
            manifest_layers(raw),
            [("sha256:a".to_string(), 10), ("sha256:b".to_string(), 20)]
        );
        assert_eq!(
            new_bytes(&manifest_layers(raw)[..1], &manifest_layers(raw)),
            (20, 30)
        );
    }

    #[test]
    fn bytes_a_build_fetched() {
        let log = "#5 fetch a-1-py3-none-any.whl\n#5 DONE 0.1s\n\n#6 fetch b-2-py3-none-any.whl\n#6 CACHED\n\n#7 uv install: core: a 1\n#7 DONE 0.2s\n";
        let sizes = [
            ("https://files.example/a-1-py3-none-any.whl".to_string(), 10),
            ("https://files.example/b-2-py3-none-any.whl".to_string(), 20),
            ("https://files.example/c-3-py3-none-any.whl".to_string(), 40),
        ];
        assert_eq!(fetched_bytes(&crate::progress::parse(log), &sizes), 30);
    }

    #[test]
    fn wheels_of_a_lock() {
        let lock = "[[packages]]\nname = \"a\"\nwheels = [{ url = \"https://files.example/a-1-py3-none-any.whl\", upload-time = 2025-01-01T00:00:00Z, size = 1234, hashes = { sha256 = \"00\" } }]\nsdist = { url = \"https://files.example/a-1.tar.gz\", size = 9 }\n";
        assert_eq!(
            lock_wheels(lock),
            [(
                "https://files.example/a-1-py3-none-any.whl".to_string(),
                1234
            )]
        );
    }
}
