//! From a checked spec to a graph of stages, and on to BuildKit definitions.
//!
//! `Plan::new` lays out what runs where; stages are memoised by what they do (their
//! `StageKind`, which holds no source positions), their parent and their inputs, so a base,
//! an apt step or a requirement group that several variants need appears once and BuildKit
//! runs it once. `lower` turns the stages into LLB; `compile` is the whole way for one target.

pub mod build_hints;
pub mod config;
mod fetched;
pub mod graph;
pub mod install;
pub mod lower;
mod project;
mod runtime_libs;
pub mod shell;
mod stage;

use std::collections::BTreeMap;

pub use fetched::MAX_PACKAGE_LAYERS;
pub use stage::*;

use crate::context::ContextInfo;
use crate::context::interpreter::{Interpreter, Libc};
use crate::diag::{Diagnostic, Loc, SourceFile};
use crate::llb::{self, pb};
use crate::spec::{self, LockTool, S, Spec, Variant};
use lower::{LowerOpts, lower};

pub type StageId = usize;

#[derive(Clone, Debug)]
pub struct Stage {
    pub id: StageId,
    pub kind: StageKind,
    /// The filesystem this stage starts from.
    pub parent: Option<StageId>,
    /// Other stages it reads, each in its role (the venv copied into the builder, the
    /// files an install mounts, the layers an image stacks), in order.
    pub inputs: Vec<(Role, StageId)>,
    /// Where the spec asks for this work (the first place, when several do).
    pub loc: Loc,
}

impl Stage {
    /// The first input in `role`.
    pub fn input(&self, role: Role) -> Option<StageId> {
        self.inputs_of(role).next()
    }

    /// Every input in `role`, in order.
    pub fn inputs_of(&self, role: Role) -> impl Iterator<Item = StageId> + '_ {
        self.inputs
            .iter()
            .filter(move |(r, _)| *r == role)
            .map(|(_, id)| *id)
    }

    /// A short label for progress output and graphs.
    pub fn label(&self) -> String {
        match &self.kind {
            StageKind::Base { image } => format!("base {image}"),
            StageKind::Apt(a) => {
                let role = match a.role {
                    AptRole::Build => "build",
                    AptRole::Runtime => "runtime",
                };
                let auto = a.auto.then_some(spec::format::RUNTIME_AUTO);
                let packages: Vec<&str> = auto
                    .into_iter()
                    .chain(a.packages.iter().map(String::as_str))
                    .collect();
                format!("apt {role}: {}", packages.join(" "))
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
            StageKind::Install(i) => format!("{} install: {}", i.tool(), i.group),
            StageKind::Fetch(f) => format!("fetch {}", f.file.filename),
            StageKind::Wheel(w) => format!("wheel from sdist: {} ({})", w.package, w.group),
            StageKind::Layer(l) => format!(
                "{} install: {}: {}",
                l.toolchain.installer,
                l.group,
                fetched::packages_label(&l.packages)
            ),
            StageKind::Check(c) => format!("check: {}", c.group),
            StageKind::ProjectWheel(p) => format!("wheel from project: {}", shown(&p.dir)),
            StageKind::Project(p) => {
                format!(
                    "{} install: project {}",
                    p.toolchain.installer,
                    shown(&p.dir)
                )
            }
            StageKind::ProjectCheck(p) => format!("check: project {}", shown(&p.dir)),
            StageKind::RuntimeCheck(c) => {
                format!("check: runtime libraries: {}", runtime_libs::sources(c))
            }
            StageKind::RuntimePackages(c) => {
                format!("runtime packages (auto): {}", runtime_libs::sources(c))
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

/// A context directory for a label (`.` for the context itself).
fn shown(dir: &str) -> &str {
    if dir.is_empty() { "." } else { dir }
}

/// What one variant's image is made of.
#[derive(Clone, Debug)]
pub struct Target {
    pub variant: String,
    pub base: StageId,
    pub runtime: StageId,
    /// The last install stage (or the Python stage when there are no requirements);
    /// `None` when the image takes the venv as layers and nothing else reads it.
    pub venv: Option<StageId>,
    pub image: StageId,
    /// The one verify stage (all commands and the health check), if there is anything
    /// to verify.
    pub verify: Option<StageId>,
    /// Where each of its checks is written, in the order they run.
    pub verify_locs: Vec<Loc>,
    /// The image's gates: the `pip check` of each layered group and of the project.
    /// They are not inputs of the image (its layers never wait for them): the frontend
    /// solves them beside it and returns the image only when every one passed, as it does
    /// with verify.
    pub gates: Vec<StageId>,
    /// The runtime-library check the image waits for (`system.check`), and where each
    /// place its report names is written: the variant's groups in order, then
    /// `app.project`. Not a gate: it mounts the builder, which a fresh runner would
    /// otherwise pull on every build (a gate is not in the exported cache).
    pub runtime_check: Option<StageId>,
    pub runtime_check_locs: Vec<Loc>,
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
    pub fn new(spec: &Spec, variants: &[&Variant], context: &ContextInfo, opts: &PlanOpts) -> Plan {
        let mut b = Builder {
            stages: vec![],
            memo: BTreeMap::new(),
            context,
            opts,
        };
        let mut targets: Vec<Target> = variants.iter().map(|v| b.variant(spec, v)).collect();
        Plan {
            stages: reachable(b.stages, &mut targets),
            targets,
            files: spec.files.clone(),
            epoch: spec.source_date_epoch,
        }
    }

    pub fn stage(&self, id: StageId) -> &Stage {
        &self.stages[id]
    }

    /// Errors: the first install whose context files were not read (the plan was made
    /// without the context), at its group's line.
    pub fn unread(&self) -> Result<(), Diagnostic> {
        for s in &self.stages {
            if let StageKind::Install(InstallStep {
                install: Install::InStep { recipe, .. },
                group,
                ..
            }) = &s.kind
                && let Some(file) = recipe.unread.first()
            {
                return Err(Diagnostic::error(
                    s.loc,
                    format!(
                        "group `{group}`'s requirement file `{file}` was not read: kiln reads requirement files from the build context, and the installer reads only what kiln wrote"
                    ),
                    "pass the build context: `--context DIR`",
                ));
            }
        }
        Ok(())
    }
}

/// What a plan depends on besides the spec and the context: the engine and the bases it
/// is for.
#[derive(Clone, Debug)]
pub struct PlanOpts {
    /// The target platform: which of a lock's files are installed.
    pub platform: pb::Platform,
    /// The engine stacks layers (MergeOp and DiffOp): each package of a fetched lock is
    /// installed into a layer of its own.
    pub layers: bool,
    /// Each base's interpreter on this platform as read from it (by the base as written in
    /// the spec): what a lock's markers and wheel tags are decided against. A base without
    /// one is assumed from `python.version` (offline `kiln llb`), and its Python stage then
    /// checks the guess where a marker depends on it.
    pub interpreters: BTreeMap<String, Interpreter>,
}

impl PlanOpts {
    /// The plan that `opts` lowers: its platform, its bases' interpreters, and layers
    /// where its engine merges.
    pub fn of(opts: &LowerOpts) -> PlanOpts {
        PlanOpts {
            platform: opts.platform.clone(),
            layers: opts.caps.merge_layers(),
            interpreters: opts
                .images
                .iter()
                .filter_map(|(base, info)| Some((base.clone(), info.interpreter.clone()?)))
                .collect(),
        }
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
    /// The image's gates (`Target::gates`), each solved beside the image: a failed one
    /// fails the build at its step.
    pub gates: Vec<pb::Definition>,
    /// The runtime-library check's report, read after its verdict fails the image.
    pub runtime_check: Option<RuntimeCheckRun>,
}

/// Where a failed runtime-library check says what is missing: the definitions of its
/// scans (cached once the check has run), the report file in each result, and where each
/// place the reports name is written.
pub struct RuntimeCheckRun {
    pub defs: Vec<pb::Definition>,
    /// One line per miss: `<place>\t<file>\t<soname>\t<package>` (`<package>` empty when
    /// the builder has none), `<place>` indexing `locs`.
    pub misses: &'static str,
    /// The variant's groups in order, then `app.project`.
    pub locs: Vec<Loc>,
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
/// read from the context) to what BuildKit solves. Errors: a group whose requirement
/// files were not read from the context (kiln never lets an installer read one itself).
pub fn compile(
    spec: &Spec,
    variant: &Variant,
    context: &ContextInfo,
    opts: &LowerOpts,
) -> Result<Compiled, Diagnostic> {
    let plan = Plan::new(spec, &[variant], context, &PlanOpts::of(opts));
    plan.unread()?;
    let mut lowered = lower(&plan, opts);
    let target = &variant.name.v;
    let image = lowered
        .images
        .remove(target)
        .expect("the target is lowered");
    let verify = lowered.verify.remove(target);
    let gates = lowered.gates.remove(target).unwrap_or_default();
    let runtime_check = lowered.runtime_checks.remove(target).map(|reports| {
        let locs = plan
            .targets
            .iter()
            .find(|t| &t.variant == target)
            .map(|t| t.runtime_check_locs.clone())
            .unwrap_or_default();
        RuntimeCheckRun {
            defs: reports
                .iter()
                .map(|r| llb::marshal(r, &spec.files))
                .collect(),
            misses: lower::MISSES,
            locs,
        }
    });
    Ok(Compiled {
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
        gates: gates.iter().map(|g| llb::marshal(g, &spec.files)).collect(),
        runtime_check,
    })
}

/// Identity of a stage: what it does, what it starts from, what else it reads.
type StageKey = (StageKind, Option<StageId>, Vec<(Role, StageId)>);

struct Builder<'c> {
    stages: Vec<Stage>,
    memo: BTreeMap<StageKey, StageId>,
    context: &'c ContextInfo,
    opts: &'c PlanOpts,
}

impl Builder<'_> {
    /// The stage for this work, made once: a second request returns the first one's id.
    fn add(
        &mut self,
        kind: StageKind,
        parent: Option<StageId>,
        inputs: Vec<(Role, StageId)>,
        loc: Loc,
    ) -> StageId {
        let key = (kind, parent, inputs);
        if let Some(id) = self.memo.get(&key) {
            return *id;
        }
        let id = self.stages.len();
        let (kind, parent, inputs) = key.clone();
        self.stages.push(Stage {
            id,
            kind,
            parent,
            inputs,
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
        // With `system.runtime: auto` the runtime packages are known once the venv is: the
        // runtime apt step comes after the installs.
        let runtime = v
            .runtime_auto
            .is_none()
            .then(|| self.apt(base, AptRole::Runtime, &runtime_packages(v), &repos, None));
        let builder = self.apt(base, AptRole::Build, &v.build_packages, &repos, None);
        let uses_poetry = v.groups.iter().any(|g| {
            matches!(&spec.group(&g.v).map(|g| &g.source), Some(spec::GroupSource::Lock(l)) if l.kind.tool() == LockTool::Poetry)
        });
        let toolchain = Toolchain {
            installer: py.installer,
            uv_version: py.uv_version.clone(),
            venv: py.venv.clone(),
            poetry: uses_poetry.then(|| spec::format::POETRY_VERSION.to_string()),
        };
        // The installer's wheel, fetched by the engine from the start of the build.
        let libc = self
            .opts
            .interpreters
            .get(&py.base.v)
            .map_or(Libc::Unknown, |i| i.libc);
        let wheel = match py.installer {
            spec::Installer::Uv => {
                install::tools::uv_wheel(&py.uv_version, &self.opts.platform.architecture, libc)
            }
            spec::Installer::Pip => Some(install::tools::pip_wheel()),
        };
        let python_loc = py.version.as_ref().map(|s| s.loc).unwrap_or(py.base.loc);
        let installer_wheel = wheel.as_ref().map(|w| w.filename.clone());
        let python_inputs = match wheel {
            Some(file) => {
                let fetch = self.add(
                    StageKind::Fetch(FetchStep { file }),
                    None,
                    vec![],
                    python_loc,
                );
                vec![(Role::File, fetch)]
            }
            None => vec![],
        };
        // The venv (and uv) are made on the base, beside the build packages rather than
        // after them: the first install copies them into the builder.
        let python = self.add(
            StageKind::Python(PythonStep {
                version: self.context.python(v).map(|want| {
                    let from = want.pin_file.unwrap_or("python.version");
                    (want.version.to_string(), from.to_string())
                }),
                toolchain: toolchain.clone(),
                secrets: spec.secrets.clone(),
                assumed: self.assumed(spec, v),
                installer_wheel,
            }),
            Some(base),
            python_inputs,
            python_loc,
        );
        let first = (builder != base).then_some((builder, python));
        let (venvs, layered) = self.installs(spec, v, &toolchain, first, python);
        let venv = venvs.last().copied().unwrap_or(python);
        let project_dir = spec.app.as_ref().and_then(|a| a.project.as_ref());
        let project = project_dir.map(|dir| {
            let wheel_on = wheel_on(first, python);
            let venv = (venv, layered.as_ref());
            self.project(spec, v, dir, &toolchain, (&wheel_on, python), venv)
        });
        let installed = runtime_libs::Installed {
            groups: &venvs,
            python,
            project: project.map(|p| p.install).zip(project_dir),
            layered: layered.as_ref(),
        };
        let runtime = match runtime {
            Some(runtime) => runtime,
            None => {
                let found = self.runtime_packages(v, builder, &installed);
                self.apt(base, AptRole::Runtime, &runtime_packages(v), &repos, found)
            }
        };
        let check = self.runtime_check(spec, v, (runtime, builder, base), &installed);
        let image = self.custom_steps(
            spec,
            v,
            runtime,
            (venv, layered.as_ref()),
            project.as_ref(),
            check.as_ref().map(|(id, _)| *id),
        );
        let mut gates: Vec<StageId> = layered.iter().flat_map(|l| l.checks()).copied().collect();
        gates.extend(project.and_then(|p| p.check));
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
            venv: Some(venv),
            image,
            verify,
            verify_locs,
            gates,
            runtime_check: check.as_ref().map(|(id, _)| *id),
            runtime_check_locs: check.map(|(_, locs)| locs).unwrap_or_default(),
        }
    }

    /// The variant's groups, each installed on the previous one. The first runs on the
    /// builder with the venv copied in (`first`: builder and Python stage) when there are
    /// build packages, else on the Python stage (`python`) itself. Returns each group's
    /// install stage (the last is the venv), and the venv as layers when every group
    /// installed as layers.
    fn installs(
        &mut self,
        spec: &Spec,
        v: &Variant,
        toolchain: &Toolchain,
        first: Option<(StageId, StageId)>,
        python: StageId,
    ) -> (Vec<StageId>, Option<fetched::Layered>) {
        let pip = PipOptions::of(v);
        let wheel_on = wheel_on(first, python);
        let mut layered = (!v.groups.is_empty()).then(|| fetched::Layered::new(python));
        let mut venv = python;
        let mut stages = vec![];
        for (i, name) in v.groups.iter().enumerate() {
            let group = spec
                .group(&name.v)
                .expect("variant groups are checked at load");
            let (on, mut inputs) = match first {
                Some((builder, python)) if i == 0 => (builder, vec![(Role::Toolchain, python)]),
                _ => (venv, vec![]),
            };
            let step = |install| InstallStep {
                group: name.v.clone(),
                install,
                pip: pip.clone(),
                toolchain: toolchain.clone(),
                secrets: spec.secrets.clone(),
                dockerignore: self.context.dockerignore.clone(),
            };
            let in_step = |fallback| Install::InStep {
                recipe: install::recipe(&group.source, v, self.context, (toolchain, &pip)),
                fallback,
            };
            let fetch = install::fetchable(&group.source, v, self.context);
            let install = match fetch {
                None => {
                    layered = None;
                    in_step(None)
                }
                Some(f) => {
                    let group = fetched::Group {
                        name: &name.v,
                        base: &v.python.base.v,
                        loc: group.name.loc,
                        pip: &pip,
                        toolchain,
                        secrets: &spec.secrets,
                        wheel_on: &wheel_on,
                    };
                    match self.fetched(&f, &group, &mut layered) {
                        Ok((install, files)) => {
                            inputs.extend(files);
                            install
                        }
                        // The lock does not fit this platform: uv says so (or finds what
                        // it can) in the step.
                        Err(why) => {
                            layered = None;
                            in_step(Some(why))
                        }
                    }
                }
            };
            venv = self.add(
                StageKind::Install(step(install)),
                Some(on),
                inputs,
                group.name.loc,
            );
            stages.push(venv);
        }
        (stages, layered)
    }

    /// What app copies leave out: `.dockerignore`, then `app.exclude`.
    fn app_exclude(&self, spec: &Spec) -> Vec<String> {
        let mut out = self.context.dockerignore.clone();
        if let Some(app) = &spec.app {
            out.extend(app.exclude.iter().cloned());
        }
        out
    }

    /// The image on `runtime` with the venv from `venv` and the project on it (its layer
    /// last), waiting for the runtime-library `check`: the builder steps stand on the venv
    /// with the project (their outputs go into the image), the image steps on the image,
    /// in order.
    fn custom_steps(
        &mut self,
        spec: &Spec,
        v: &Variant,
        runtime: StageId,
        (venv, layered): (StageId, Option<&fetched::Layered>),
        project: Option<&project::Project>,
        check: Option<StageId>,
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
        // The venv whole, or (where the engine layers and every group did) as its layers.
        let mut inputs = match layered {
            Some(l) => l.image_inputs(),
            None => vec![(Role::Venv, venv)],
        };
        let with_project: Vec<(Role, StageId)> =
            project.iter().map(|p| (Role::Project, p.install)).collect();
        inputs.extend(with_project.iter().copied());
        inputs.extend(check.map(|c| (Role::Check, c)));
        for s in spec.steps.iter().filter(place(spec::StepPlace::Builder)) {
            let (kind, loc) = stage(s);
            let step = self.add(kind, Some(venv), with_project.clone(), loc);
            inputs.push((Role::Outputs, step));
        }
        let mut final_step = final_step(spec, v, self.app_exclude(spec));
        if !final_step.files.is_empty() {
            final_step.dockerignore = self.context.dockerignore.clone();
        }
        let final_kind = StageKind::Final(final_step);
        let mut image = self.add(final_kind, Some(runtime), inputs, v.name.loc);
        for s in spec.steps.iter().filter(place(spec::StepPlace::Image)) {
            let (kind, loc) = stage(s);
            image = self.add(kind, Some(image), vec![], loc);
        }
        image
    }

    /// An apt step on `base`, or `base` itself when there is nothing to install:
    /// `packages`, and those the builder found (`auto`: the stage that names them, and
    /// where `auto` is written).
    fn apt(
        &mut self,
        base: StageId,
        role: AptRole,
        packages: &[S<String>],
        repositories: &[spec::AptRepository],
        auto: Option<(StageId, Loc)>,
    ) -> StageId {
        let Some(loc) = packages.first().map(|p| p.loc).or(auto.map(|(_, l)| l)) else {
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
            auto: auto.is_some(),
        };
        let inputs = auto
            .map(|(id, _)| (Role::Packages, id))
            .into_iter()
            .collect();
        self.add(StageKind::Apt(step), Some(base), inputs, loc)
    }
}

/// Where a stage runs: the stage it starts from, and the inputs it takes there.
type On = (StageId, Vec<(Role, StageId)>);

/// Where a wheel is built (a sdist's or the project's): the builder with the Python stage's
/// venv copied in (`first`: builder and Python stage, when there are build packages), else
/// the Python stage.
fn wheel_on(first: Option<(StageId, StageId)>, python: StageId) -> On {
    match first {
        Some((builder, python)) => (builder, vec![(Role::Toolchain, python)]),
        None => (python, vec![]),
    }
}

/// Whether planning `v` needs its base's interpreter: a group's locked files are chosen
/// for it (the frontend then reads it from the base before planning).
pub fn needs_interpreter(spec: &Spec, v: &Variant, context: &ContextInfo) -> bool {
    v.groups.iter().any(|g| {
        spec.group(&g.v)
            .is_some_and(|g| install::fetchable(&g.source, v, context).is_some())
    })
}

/// The stages the targets' images, verify runs and gates reach, renumbered in order
/// (`targets` with them): what the engine gets, and nothing else (a layered group's venv
/// stage that no later stage reads, say).
fn reachable(stages: Vec<Stage>, targets: &mut [Target]) -> Vec<Stage> {
    let mut keep = vec![false; stages.len()];
    let mut todo: Vec<StageId> = targets
        .iter()
        .flat_map(|t| {
            let gates = t.gates.iter().copied();
            std::iter::once(t.image).chain(t.verify).chain(gates)
        })
        .collect();
    while let Some(id) = todo.pop() {
        if !std::mem::replace(&mut keep[id], true) {
            let s = &stages[id];
            todo.extend(s.parent);
            todo.extend(s.inputs.iter().map(|(_, i)| *i));
        }
    }
    // Parents and inputs come before a stage, so they are renumbered first.
    let mut new_id: Vec<Option<StageId>> = vec![None; stages.len()];
    let mut out: Vec<Stage> = vec![];
    for s in stages.into_iter().filter(|s| keep[s.id]) {
        let id = out.len();
        new_id[s.id] = Some(id);
        let map = |old: StageId| new_id[old].expect("an input of a kept stage is kept");
        out.push(Stage {
            id,
            parent: s.parent.map(map),
            inputs: s.inputs.iter().map(|(r, i)| (*r, map(*i))).collect(),
            ..s
        });
    }
    let map = |old: StageId| new_id[old].expect("a target's stages are kept");
    for t in targets {
        t.base = map(t.base);
        t.runtime = map(t.runtime);
        t.venv = t.venv.and_then(|v| new_id[v]);
        t.image = map(t.image);
        t.verify = t.verify.map(map);
        t.runtime_check = t.runtime_check.map(map);
        t.gates = t.gates.iter().map(|g| map(*g)).collect();
    }
    out
}

impl PipOptions {
    /// The variant's `pip:` settings.
    pub fn of(v: &Variant) -> PipOptions {
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
        let opts = PlanOpts::of(&LowerOpts::offline(llb::platform("linux", "amd64", "")));
        Plan::new(&spec, &all, &ContextInfo::default(), &opts)
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
