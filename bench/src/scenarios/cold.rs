//! Full mode only: builds from an empty cache (each after `docker builder prune -af`),
//! one apt package added, and kiln's uv against kiln's pip.

use super::{
    Bench, KILN_HEAVY, KILN_HEAVY_PIP, Mode, PEER_HEAVY, Tool, cold_pair_ok, read, replace_line,
    turns, write,
};
use crate::report::{Row, Unit};

impl Bench {
    /// Cold builds of each variant, both variants from cold, one apt package added.
    pub(super) fn cold(&mut self) -> Result<(), String> {
        self.run.prune_before_retry = true;
        for v in ["minimal", "cuda"] {
            self.scenario(&format!("cold build, {v}"));
            // Samples per tool, indexed by `Tool as usize`.
            let mut samples = [Vec::new(), Vec::new()];
            for i in 1..=self.runs {
                for who in turns(i) {
                    self.run.prune();
                    let name = format!("cold-{}-{v}-{i}", who.label());
                    let heavy = if who == Tool::Kiln {
                        KILN_HEAVY
                    } else {
                        PEER_HEAVY
                    };
                    if let Some(ms) = self.run.build(self.job(who, &name, v))
                        && self.cold_ok(&name, heavy)
                    {
                        samples[who as usize].push(ms);
                    }
                }
            }
            let [ks, ps] = samples;
            self.row(Row::new(format!("cold build, {v}"), Unit::Secs, &ks, &ps));
            if v == "minimal" {
                self.cold_kiln_minimal = ks;
            }
            let r = self.runs;
            let line = format!(
                "cold {v}, slowest steps of the last run: kiln: {}; peer: {}",
                self.slowest(&format!("cold-kiln-{v}-{r}"), 3),
                self.slowest(&format!("cold-peer-{v}-{r}"), 3)
            );
            self.note(line);
        }
        self.both_from_cold();
        if self.mode == Mode::Locked {
            return Ok(());
        }
        self.apt_added()
    }

    /// Both variants from nothing: kiln's two builds at once (BuildKit runs the shared
    /// steps once), the peer's two Dockerfiles one after the other.
    fn both_from_cold(&mut self) {
        self.scenario("both variants from cold");
        self.run.prune_before_retry = false;
        let (mut ks, mut ps) = (Vec::new(), Vec::new());
        for i in 1..=self.runs {
            for who in turns(i) {
                self.run.prune();
                match who {
                    Tool::Kiln => {
                        let (a, b) = (
                            format!("both-kiln-minimal-{i}"),
                            format!("both-kiln-cuda-{i}"),
                        );
                        let jobs = [self.kiln(&a, "minimal"), self.kiln(&b, "cuda")];
                        if let Some(ms) = self.run.build_together(&jobs) {
                            if cold_pair_ok(&self.steps(&a), &self.steps(&b), KILN_HEAVY) {
                                ks.push(ms);
                            } else {
                                self.cold_ok(&a, KILN_HEAVY);
                            }
                        }
                    }
                    Tool::Peer => {
                        let t0 = std::time::Instant::now();
                        let a = format!("both-peer-minimal-{i}");
                        if self.run.build(self.peer(&a, "minimal")).is_some()
                            && self
                                .run
                                .build(self.peer(&format!("both-peer-cuda-{i}"), "cuda"))
                                .is_some()
                            && self.cold_ok(&a, PEER_HEAVY)
                        {
                            ps.push(t0.elapsed().as_secs_f64() * 1000.0);
                        }
                    }
                }
            }
        }
        self.row(Row::new("both variants from cold", Unit::Secs, &ks, &ps));
        let r = self.runs;
        let line = format!(
            "both variants, slowest steps of the last run: kiln minimal: {}; kiln cuda: {}; peer cuda (after minimal): {}",
            self.slowest(&format!("both-kiln-minimal-{r}"), 2),
            self.slowest(&format!("both-kiln-cuda-{r}"), 2),
            self.slowest(&format!("both-peer-cuda-{r}"), 2)
        );
        self.note(line);
    }

    /// One apt package added to the runtime packages (a different one each run). A spec
    /// cannot carry a comment into the step the way a requirements file can, so this row
    /// relies on the prunes of the rows before it to start with no such step cached:
    /// full mode only.
    fn apt_added(&mut self) -> Result<(), String> {
        self.scenario("one apt package added");
        let spec = read(&self.spec)?;
        let peer = read(&self.peer_minimal)?;
        let (apt_spec, apt_peer) = (self.work.join("apt.yaml"), self.work.join("Dockerfile.apt"));
        let (mut ks, mut ps) = (Vec::new(), Vec::new());
        for i in 1..=self.runs {
            let pkg = ["curl", "less", "file"][(i - 1) % 3];
            let runtime = "  runtime: [libpq5, libjpeg62-turbo]";
            let edited_spec = replace_line(
                &spec,
                |l| l == runtime,
                &format!("  runtime: [libpq5, libjpeg62-turbo, {pkg}]"),
            );
            let install = "--no-install-recommends libpq5 libjpeg62-turbo";
            let edited_peer = peer
                .contains(install)
                .then(|| peer.replace(install, &format!("{install} {pkg}")));
            let (Some(edited_spec), Some(edited_peer)) = (edited_spec, edited_peer) else {
                return Err(
                    "the apt edit did not apply (spec or peer Dockerfile changed shape)".into(),
                );
            };
            write(&apt_spec, &edited_spec)?;
            write(&apt_peer, &edited_peer)?;
            for who in turns(i) {
                match who {
                    Tool::Kiln => {
                        let job = self.kiln_with(
                            &format!("apt-kiln-{i}"),
                            &apt_spec,
                            "minimal",
                            "bench/kiln:apt",
                            &[],
                        );
                        ks.extend(self.run.build(job));
                    }
                    Tool::Peer => {
                        let job =
                            self.peer_with(&format!("apt-peer-{i}"), &apt_peer, "bench/peer:apt");
                        ps.extend(self.run.build(job));
                    }
                }
            }
        }
        self.row(Row::new(
            "one apt package added (runtime)",
            Unit::Secs,
            &ks,
            &ps,
        ));
        let r = self.runs;
        let line = format!(
            "one apt package added, slowest steps of the last run: kiln: {}; peer: {}",
            self.slowest(&format!("apt-kiln-{r}"), 3),
            self.slowest(&format!("apt-peer-{r}"), 3)
        );
        self.note(line);
        Ok(())
    }

    /// `installer: uv` (the example's) against `installer: pip`, both kiln, cold, minimal.
    /// The uv samples are the cold minimal kiln builds of the first row.
    pub(super) fn uv_vs_pip(&mut self) -> Result<(), String> {
        self.scenario("uv vs pip");
        self.run.prune_before_retry = true;
        let pip_spec = self.work.join("pip.yaml");
        let edited = replace_line(
            &read(&self.spec)?,
            |l| l.starts_with("  installer: uv "),
            "  installer: pip",
        )
        .ok_or("the installer edit did not apply")?;
        write(&pip_spec, &edited)?;
        let mut pips = Vec::new();
        for i in 1..=self.runs {
            self.run.prune();
            let name = format!("pip-kiln-{i}");
            let job = self.kiln_with(&name, &pip_spec, "minimal", "bench/kiln:minimal", &[]);
            if let Some(ms) = self.run.build(job)
                && self.cold_ok(&name, KILN_HEAVY_PIP)
            {
                pips.push(ms);
            }
        }
        self.run.prune_before_retry = false;
        let uv = self.cold_kiln_minimal.clone();
        self.row(Row::new(
            "cold build, minimal: kiln `installer: uv` (left) vs kiln `installer: pip` (right)",
            Unit::Secs,
            &uv,
            &pips,
        ));
        let line = format!(
            "pip, slowest steps of the last run: {}",
            self.slowest(&format!("pip-kiln-{}", self.runs), 3)
        );
        self.note(line);
        Ok(())
    }
}
