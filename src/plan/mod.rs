//! From a checked spec to a graph of stages, and on to BuildKit definitions.
//!
//! `Plan::new` lays out what runs where; stages are memoised by what they do (their
//! `StageKind`, which holds no source positions), their parent and their inputs, so a base,
//! an apt step or a requirement group that several variants need appears once and BuildKit
//! runs it once. `lower` turns the stages into LLB; `compile` is the whole way for one target.

pub mod config;
pub mod graph;
pub mod lower;
pub mod shell;
mod stage;

use std::collections::BTreeMap;

pub use stage::*;

use crate::context::ContextInfo;
use crate::context::pylock::Pylock;
use crate::diag::{Loc, SourceFile};
use crate::llb::{self, pb};
use crate::spec::{self, LockKind, S, Spec, Variant};
use lower::{LowerOpts, lower};

pub type StageId = usize;

#[derive(Clone, Debug)]
pub struct Stage {
    pub id: StageId,
    pub kind: StageKind,
    /// The filesystem this stage starts from.
    pub parent: Option<StageId>,
    /// Other stages it reads from (the venv for an install or a final image).
    pub deps: Vec<StageId>,
    /// Where the spec asks for this work (the first place, when several do).
    pub loc: Loc,
}

impl Stage {
    /// A short label for progress output and graphs.
    pub fn label(&self) -> String {
        match &self.kind {
            StageKind::Base { image } => format!("base {image}"),
            StageKind::Apt(a) => {
                let role = match a.role {
                    AptRole::Build => "build",
                    AptRole::Runtime => "runtime",
                };
                format!("apt {role}: {}", a.packages.join(" "))
            }
            StageKind::Python(p) => {
                let check = p
                    .version
                    .as_ref()
                    .map(|(v, _)| format!(" {v} check,"))
                    .unwrap_or_default();
                let tool = match p.toolchain.installer {
                    crate::spec::Installer::Uv => " + uv",
                    crate::spec::Installer::Pip => "",
                };
                format!("python:{check} venv {}{tool}", p.toolchain.venv)
            }
            StageKind::Install(i) => format!("{} install: {}", i.toolchain.installer, i.group),
            StageKind::Project(p) => {
                let dir = if p.dir.is_empty() { "." } else { &p.dir };
                format!("{} install: project {dir}", p.toolchain.installer)
            }
            StageKind::Final(f) => format!("image {}", f.variant),
            StageKind::Step(s) => {
                let place = match s.step.place {
                    spec::StepPlace::Builder => "builder",
                    spec::StepPlace::Image => "image",
                };
                format!("step {} ({place})", s.step.name)
            }
            StageKind::Verify(v) => {
                let commands: Vec<&str> = v
                    .checks
                    .iter()
                    .filter(|c| c.kind == CheckKind::Command)
                    .map(|c| c.command.as_str())
                    .collect();
                let health = v.checks.iter().any(|c| c.kind == CheckKind::Healthcheck);
                let mut label = format!("verify {}: {}", v.variant, commands.join("; "));
                if health {
                    label.push_str(if commands.is_empty() {
                        "healthcheck"
                    } else {
                        " + healthcheck"
                    });
                }
                label
            }
        }
    }
}

/// What one variant's image is made of.
#[derive(Clone, Debug)]
pub struct Target {
    pub variant: String,
    pub base: StageId,
    pub runtime: StageId,
    /// The last install stage (or the Python stage when there are no requirements).
    pub venv: StageId,
    pub image: StageId,
    /// The one verify stage (all commands and the health check), if there is anything
    /// to verify.
    pub verify: Option<StageId>,
    /// Where each of its checks is written, in the order they run.
    pub verify_locs: Vec<Loc>,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub stages: Vec<Stage>,
    pub targets: Vec<Target>,
    /// The spec's files: progress names and source maps point into them.
    pub files: Vec<SourceFile>,
    /// `SOURCE_DATE_EPOCH`, given to every build step (pip's bytecode, useradd's dates).
    pub epoch: Option<u64>,
}

impl Plan {
    /// The plan for `variants` (typically from `Spec::target`, or all of `spec.variants`);
    /// `context` is what was read from the build context (`ContextInfo::default()` when
    /// it was not: then each requirement file stands for itself alone).
    pub fn new(spec: &Spec, variants: &[&Variant], context: &ContextInfo) -> Plan {
        let mut b = Builder {
            stages: vec![],
            memo: BTreeMap::new(),
            context,
        };
        let targets = variants.iter().map(|v| b.variant(spec, v)).collect();
        Plan {
            stages: b.stages,
            targets,
            files: spec.files.clone(),
            epoch: spec.source_date_epoch,
        }
    }

    pub fn stage(&self, id: StageId) -> &Stage {
        &self.stages[id]
    }
}

/// One variant, ready for BuildKit: its definition, image config and verify definitions.
pub struct Compiled {
    pub def: pb::Definition,
    /// The OCI image config (`containerimage.config`).
    pub config: serde_json::Value,
    /// The verify run: every check (with its spec position) and the one definition that
    /// runs them all.
    pub verify: Option<VerifyRun>,
}

/// What verifying one image takes: the checks in order and where each is written, the
/// definition of the exec that runs them, and where it writes their results.
pub struct VerifyRun {
    pub checks: Vec<S<VerifyCheck>>,
    pub def: pb::Definition,
    /// The results file in that definition's result: one `<index> <exit status>` or
    /// `<index> timeout` line per check (1-based index).
    pub results: &'static str,
}

/// Plan, lower and marshal one variant: the pipeline from a checked spec (and what was
/// read from the context) to what BuildKit solves.
pub fn compile(
    spec: &Spec,
    variant: &Variant,
    context: &ContextInfo,
    opts: &LowerOpts,
) -> Compiled {
    let plan = Plan::new(spec, &[variant], context);
    let mut lowered = lower(&plan, opts);
    let target = &variant.name.v;
    let image = lowered
        .images
        .remove(target)
        .expect("the target is lowered");
    let verify = lowered.verify.remove(target);
    Compiled {
        def: llb::marshal(&image, &spec.files),
        config: lowered
            .configs
            .remove(target)
            .expect("each target has a config"),
        verify: verify.map(|(checks, state)| VerifyRun {
            checks,
            def: llb::marshal(&state, &spec.files),
            results: lower::VERIFY_RESULTS,
        }),
    }
}

/// Identity of a stage: what it does, what it starts from, what else it reads.
type StageKey = (StageKind, Option<StageId>, Vec<StageId>);

struct Builder<'c> {
    stages: Vec<Stage>,
    memo: BTreeMap<StageKey, StageId>,
    context: &'c ContextInfo,
}

impl Builder<'_> {
    /// The stage for this work, made once: a second request returns the first one's id.
    fn add(
        &mut self,
        kind: StageKind,
        parent: Option<StageId>,
        deps: Vec<StageId>,
        loc: Loc,
    ) -> StageId {
        let key = (kind, parent, deps);
        if let Some(id) = self.memo.get(&key) {
            return *id;
        }
        let id = self.stages.len();
        let (kind, parent, deps) = key.clone();
        self.stages.push(Stage {
            id,
            kind,
            parent,
            deps,
            loc,
        });
        self.memo.insert(key, id);
        id
    }

    /// The stages of one variant's image and its verify commands.
    fn variant(&mut self, spec: &Spec, v: &Variant) -> Target {
        let py = &v.python;
        let base = self.add(
            StageKind::Base {
                image: py.base.v.clone(),
            },
            None,
            vec![],
            py.base.loc,
        );
        let repos: Vec<_> = v.repositories.iter().map(|r| r.v.clone()).collect();
        let runtime = self.apt(base, AptRole::Runtime, &runtime_packages(v), &repos);
        let builder = self.apt(base, AptRole::Build, &v.build_packages, &repos);
        let uses_poetry = v.groups.iter().any(|g| {
            matches!(&spec.group(&g.v).map(|g| &g.source), Some(spec::GroupSource::Lock(l)) if l.kind == LockKind::Poetry)
        });
        let toolchain = Toolchain {
            installer: py.installer,
            uv_version: py.uv_version.clone(),
            venv: py.venv.clone(),
            poetry: uses_poetry.then(|| spec::format::POETRY_VERSION.to_string()),
        };
        // The venv (and uv) are made on the base, beside the build packages rather than
        // after them: the first install copies them into the builder.
        let python = self.add(
            StageKind::Python(PythonStep {
                version: match (&py.version, &self.context.python_pin) {
                    (Some(v), _) => Some((v.v.clone(), "python.version".into())),
                    (None, Some((pin, file))) => Some((pin.clone(), file.clone())),
                    (None, None) => None,
                },
                toolchain: toolchain.clone(),
                secrets: spec.secrets.clone(),
            }),
            Some(base),
            vec![],
            py.version.as_ref().map(|s| s.loc).unwrap_or(py.base.loc),
        );
        let first = (builder != base).then_some((builder, python));
        let mut venv = self.installs(spec, v, &toolchain, first, python);
        if let Some(dir) = spec.app.as_ref().and_then(|a| a.project.as_ref()) {
            let step = ProjectStep {
                dir: dir.v.clone(),
                exclude: self.app_exclude(spec),
                pip: pip_options(v),
                toolchain: toolchain.clone(),
                secrets: spec.secrets.clone(),
            };
            // With no group to install, the venv still has to reach the builder.
            let (on, deps) = match first {
                Some((builder, python)) if venv == python => (builder, vec![python]),
                _ => (venv, vec![]),
            };
            venv = self.add(StageKind::Project(step), Some(on), deps, dir.loc);
        }
        let image = self.custom_steps(spec, v, runtime, venv);
        // Every check runs on the image itself, all at once in one container.
        let (checks, verify_locs) = verify_checks(v);
        let verify = (!checks.is_empty()).then(|| {
            let kind = StageKind::Verify(VerifyStep {
                variant: v.name.v.clone(),
                checks,
            });
            self.add(kind, Some(image), vec![], verify_locs[0])
        });
        Target {
            variant: v.name.v.clone(),
            base,
            runtime,
            venv,
            image,
            verify,
            verify_locs,
        }
    }

    /// The variant's groups, each installed on the previous one. The first runs on the
    /// builder with the venv copied in (`first`: builder and Python stage) when there are
    /// build packages, else on the Python stage (`venv`) itself. Returns the last stage.
    fn installs(
        &mut self,
        spec: &Spec,
        v: &Variant,
        toolchain: &Toolchain,
        first: Option<(StageId, StageId)>,
        mut venv: StageId,
    ) -> StageId {
        let pip = pip_options(v);
        for (i, name) in v.groups.iter().enumerate() {
            let group = spec
                .group(&name.v)
                .expect("variant groups are checked at load");
            let kind = StageKind::Install(InstallStep {
                group: name.v.clone(),
                source: self.source(&group.source, v),
                pip: pip.clone(),
                toolchain: toolchain.clone(),
                secrets: spec.secrets.clone(),
                dockerignore: self.context.dockerignore.clone(),
            });
            venv = match first {
                Some((builder, python)) if i == 0 => {
                    self.add(kind, Some(builder), vec![python], group.name.loc)
                }
                _ => self.add(kind, Some(venv), vec![], group.name.loc),
            };
        }
        venv
    }

    /// A group's source as the install step needs it: every context file it reads.
    fn source(&self, source: &spec::GroupSource, v: &Variant) -> GroupSource {
        let names = |list: &[S<String>]| list.iter().map(|s| s.v.clone()).collect::<Vec<_>>();
        match source {
            spec::GroupSource::Requirements {
                files,
                packages,
                require_hashes,
            } => {
                let constraints = v.pip.constraints.as_ref().map(|c| c.v.clone());
                let build = v.pip.build_constraints.as_ref().map(|c| &c.v);
                let mut reached: Vec<String> = vec![];
                let mut seen = std::collections::HashSet::new();
                for f in files.iter().map(|f| &f.v).chain(&constraints).chain(build) {
                    // Reached already: so is everything it includes.
                    if seen.contains(f.as_str()) {
                        continue;
                    }
                    for r in self.context.requirement_closure(f) {
                        if seen.insert(r.clone()) {
                            reached.push(r);
                        }
                    }
                }
                // As pip does by itself once a file has a hash, so that uv does too.
                let hashed = reached
                    .iter()
                    .any(|f| self.context.hashed_files.contains(f));
                GroupSource::Requirements {
                    files: names(files),
                    packages: names(packages),
                    constraints,
                    reached,
                    require_hashes: require_hashes.unwrap_or(v.pip.require_hashes || hashed),
                }
            }
            spec::GroupSource::Lock(lock) => {
                let (path, project) = (lock.path.v.clone(), lock.project_dir().to_string());
                match lock.kind {
                    LockKind::Uv => GroupSource::UvLock {
                        members: self
                            .context
                            .workspace_files
                            .get(&path)
                            .cloned()
                            .unwrap_or_default(),
                        lock: path,
                        project,
                        extras: names(&lock.extras),
                        groups: names(&lock.groups),
                    },
                    LockKind::Poetry => GroupSource::PoetryLock {
                        lock: path,
                        project,
                        groups: if lock.groups.is_empty() {
                            vec!["main".into()]
                        } else {
                            names(&lock.groups)
                        },
                    },
                    LockKind::Pylock => GroupSource::Pylock {
                        fetch: self.fetch(&path, v),
                        lock: path,
                    },
                }
            }
        }
    }

    /// A PEP 751 lock's files as sources of their own, when the context gave a lock whose
    /// every file has a URL and a sha256 and the variant's Python is known.
    fn fetch(&self, lock: &str, v: &Variant) -> Option<Fetch> {
        let Some(Pylock::Addressable(packages)) = self.context.pylocks.get(lock) else {
            return None;
        };
        let python = match (&v.python.version, &self.context.python_pin) {
            (Some(s), _) => s.v.clone(),
            (None, Some((pin, _))) => pin.clone(),
            (None, None) => return None,
        };
        Some(Fetch {
            python,
            packages: packages.clone(),
        })
    }

    /// What app copies leave out: `.dockerignore`, then `app.exclude`.
    fn app_exclude(&self, spec: &Spec) -> Vec<String> {
        let mut out = self.context.dockerignore.clone();
        if let Some(app) = &spec.app {
            out.extend(app.exclude.iter().cloned());
        }
        out
    }

    /// The image on `runtime` with the venv from `venv`: the builder steps stand on the
    /// venv (their outputs go into the image), the image steps on the image, in order.
    fn custom_steps(
        &mut self,
        spec: &Spec,
        v: &Variant,
        runtime: StageId,
        venv: StageId,
    ) -> StageId {
        let stage = |s: &S<spec::CustomStep>| {
            let kind = StepStage {
                step: s.v.clone(),
                venv: v.python.venv.clone(),
                spec: spec.name.v.clone(),
                dockerignore: self.context.dockerignore.clone(),
            };
            (StageKind::Step(kind), s.loc)
        };
        let place = |p| move |s: &&S<spec::CustomStep>| s.v.place == p;
        let mut deps = vec![venv];
        for s in spec.steps.iter().filter(place(spec::StepPlace::Builder)) {
            let (kind, loc) = stage(s);
            deps.push(self.add(kind, Some(venv), vec![], loc));
        }
        let mut final_step = final_step(spec, v, self.app_exclude(spec));
        if !final_step.files.is_empty() {
            final_step.dockerignore = self.context.dockerignore.clone();
        }
        let final_kind = StageKind::Final(final_step);
        let mut image = self.add(final_kind, Some(runtime), deps, v.name.loc);
        for s in spec.steps.iter().filter(place(spec::StepPlace::Image)) {
            let (kind, loc) = stage(s);
            image = self.add(kind, Some(image), vec![], loc);
        }
        image
    }

    /// An apt step on `base`, or `base` itself when there is nothing to install.
    fn apt(
        &mut self,
        base: StageId,
        role: AptRole,
        packages: &[S<String>],
        repositories: &[spec::AptRepository],
    ) -> StageId {
        let Some(first) = packages.first() else {
            return base;
        };
        let step = AptStep {
            role,
            packages: packages.iter().map(|p| p.v.clone()).collect(),
            repositories: repositories.to_vec(),
            // Only the keys come from the context.
            dockerignore: if repositories.is_empty() {
                vec![]
            } else {
                self.context.dockerignore.clone()
            },
        };
        self.add(StageKind::Apt(step), Some(base), vec![], first.loc)
    }
}

fn pip_options(v: &Variant) -> PipOptions {
    PipOptions {
        index_url: v.pip.index_url.clone(),
        extra_index_urls: v.pip.extra_index_urls.clone(),
        timeout: v.pip.timeout,
        retries: v.pip.retries,
        check: v.pip.check,
        build_constraints: v.pip.build_constraints.as_ref().map(|c| c.v.clone()),
        index_strategy: v.pip.index_strategy.as_ref().map(|s| s.v.clone()),
        no_build_isolation: v
            .pip
            .no_build_isolation
            .iter()
            .map(|p| p.v.clone())
            .collect(),
    }
}

/// The variant's verify commands, then its health check (unless opted out), with where
/// each is written.
fn verify_checks(v: &Variant) -> (Vec<VerifyCheck>, Vec<Loc>) {
    let mut checks: Vec<(VerifyCheck, Loc)> = v
        .verify
        .iter()
        .map(|c| {
            let check = VerifyCheck {
                kind: CheckKind::Command,
                command: c.v.run.clone(),
                timeout_s: c.v.timeout_s,
            };
            (check, c.loc)
        })
        .collect();
    if let Some(h) = v.process.healthcheck.as_ref().filter(|h| h.verify) {
        let command = match h.test.split_first() {
            Some((form, rest)) if form == "CMD-SHELL" => rest.join(" "),
            Some((_, args)) => shell::join(args),
            None => String::new(),
        };
        let timeout_s = h.timeout_ns.div_ceil(1_000_000_000).max(1);
        // A verify command that is the same probe, given at least as long, checks it
        // already (the example's `python -m app.health`).
        let covered = checks
            .iter()
            .any(|(c, _)| c.command == command && u64::from(c.timeout_s) >= timeout_s);
        if covered {
            return checks.into_iter().unzip();
        }
        checks.push((
            VerifyCheck {
                kind: CheckKind::Healthcheck,
                command,
                timeout_s: u32::try_from(timeout_s).unwrap_or(u32::MAX),
            },
            h.loc,
        ));
    }
    checks.into_iter().unzip()
}

/// Everything the final image of `v` is made of, from the spec-wide and variant settings;
/// `exclude` is what the app's copy leaves out.
fn final_step(spec: &Spec, v: &Variant, exclude: Vec<String>) -> FinalStep {
    let p = &v.process;
    let mut dirs: Vec<String> = p
        .writable
        .iter()
        .chain(&p.volumes)
        .map(|d| d.v.clone())
        .collect();
    dirs.sort();
    dirs.dedup();
    FinalStep {
        variant: v.name.v.clone(),
        venv: v.python.venv.clone(),
        user: RuntimeUser {
            name: p.user.name.clone(),
            uid: p.user.uid,
            gid: p.user.gid,
        },
        dirs,
        files: p.files.iter().map(|f| f.v.clone()).collect(),
        dockerignore: vec![],
        app: spec.app.as_ref().map(|a| AppCopy {
            src: a.src.iter().map(|s| s.v.clone()).collect(),
            exclude,
            workdir: a.workdir.clone(),
            owner: a.owner,
        }),
        config: image_settings(spec, v),
    }
}

/// What `v` sets in the image config.
fn image_settings(spec: &Spec, v: &Variant) -> ImageSettings {
    let p = &v.process;
    ImageSettings {
        title: spec.name.v.clone(),
        description: spec.description.clone(),
        base: v.python.base.v.clone(),
        env: v.env.clone(),
        labels: v.labels.clone(),
        workdir: spec.app.as_ref().map(|a| a.workdir.clone()),
        entrypoint: p.entrypoint.as_ref().map(|e| e.v.clone()),
        cmd: p.cmd.as_ref().map(|c| c.v.clone()),
        healthcheck: p.healthcheck.as_ref().map(|h| HealthcheckSettings {
            test: h.test.clone(),
            interval_ns: h.interval_ns,
            timeout_ns: h.timeout_ns,
            start_period_ns: h.start_period_ns,
            retries: h.retries,
        }),
        ports: p.ports.iter().map(|p| p.v.clone()).collect(),
        stop_signal: p.stop_signal.as_ref().map(|s| s.v.clone()),
        init: p.init(),
        volumes: p.volumes.iter().map(|d| d.v.clone()).collect(),
        created: spec.source_date_epoch.map(config::rfc3339),
    }
}

/// The variant's runtime packages, with `tini` when it runs under an init (at `init`'s
/// line when that is the only package).
fn runtime_packages(v: &Variant) -> Vec<S<String>> {
    let mut packages = v.runtime_packages.clone();
    if let Some(init) = v.process.init.as_ref().filter(|i| i.v)
        && !packages.iter().any(|p| p.v == "tini")
    {
        packages.push(S::new("tini".into(), init.loc));
    }
    packages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{LoadOptions, load_str};

    fn plan(yaml: &str) -> Plan {
        let spec = load_str("t.yaml", yaml, &LoadOptions::default())
            .unwrap()
            .spec;
        let all: Vec<&Variant> = spec.variants.iter().collect();
        Plan::new(&spec, &all, &ContextInfo::default())
    }

    fn count(plan: &Plan, what: fn(&StageKind) -> bool) -> usize {
        plan.stages.iter().filter(|s| what(&s.kind)).count()
    }

    /// The same settings written in two places are the same work: one stage, not two.
    #[test]
    fn equal_work_written_twice_is_one_stage() {
        let p = plan(
            "version: 1\nname: w\npython: {base: python:3}\n\
             requirements: {core: {packages: [arq]}}\n\
             variants:\n\
             \x20 a: {pip: {constraints: c.txt}, system: {runtime: [libpq5]}}\n\
             \x20 b: {pip: {constraints: c.txt}, system: {runtime: [libpq5]}}\n",
        );
        assert_eq!(count(&p, |k| matches!(k, StageKind::Install(_))), 1);
        assert_eq!(count(&p, |k| matches!(k, StageKind::Apt(_))), 1);
        assert_eq!(count(&p, |k| matches!(k, StageKind::Final(_))), 2);
        // And different settings are different work.
        let p = plan(
            "version: 1\nname: w\npython: {base: python:3}\n\
             requirements: {core: {packages: [arq]}}\n\
             variants: {a: {pip: {constraints: c.txt}}, b: {pip: {constraints: d.txt}}}\n",
        );
        assert_eq!(count(&p, |k| matches!(k, StageKind::Install(_))), 2);
    }
}
