//! Stages to LLB: one function per stage kind, each a few chained `llb` calls, in a
//! module per part of the image (`apt`, `python`, `install`, `fetched`, `project`,
//! `image`, `steps`). Lowering reads only the plan (and the build's options): every stage
//! carries its own data, and a stage's inputs say in which role it reads another stage.

mod apt;
mod fetched;
mod image;
mod install;
mod project;
mod python;
mod runtime_libs;
mod steps;

use std::collections::BTreeMap;

use serde_json::Value;

use super::config::{DEFAULT_PATH, base_env};
use super::install::{Cache, UV_HOME};
use super::*;
use crate::llb::caps::Caps;
use crate::llb::{self, Exec, Local, Meta, Mount, Sharing, SourceLoc, State, pb};
use crate::reference;
use crate::spec::{BuildSecrets, Installer, S, StepOutput};

pub use python::{PROBE_FILE, interpreter_probe};
pub use runtime_libs::{MISSES, VERDICT_MARKER};
pub use steps::{VERIFY_RESULTS, verify_script};

/// Where build secrets appear inside build steps.
const CA_PATH: &str = "/run/secrets/kiln-ca.pem";
const NETRC_PATH: &str = "/root/.netrc";

/// A resolved base image: pinned reference and its OCI config, and its interpreter when
/// it was read.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageInfo {
    /// Normalised reference, with `@sha256:` when the engine resolved it.
    pub reference: String,
    /// The image config JSON (`{"config": {"Env": ...}, "os": ..., ...}`).
    pub config: Value,
    /// The base's Python on this platform (`PROBE`), when the build needed it.
    pub interpreter: Option<crate::context::interpreter::Interpreter>,
}

#[derive(Clone, Debug)]
pub struct LowerOpts {
    pub platform: pb::Platform,
    /// Resolved bases keyed by the image as written in the spec. Missing ones are used
    /// unpinned with an empty config (offline `kiln llb`).
    pub images: BTreeMap<String, ImageInfo>,
    /// The local that holds the build context (docker build's `context`).
    pub context: String,
    pub session_id: Option<String>,
    /// What the engine offers (`Caps::merge_layers`: MergeOp and DiffOp layers rather
    /// than copies).
    pub caps: Caps,
    pub no_cache: bool,
    /// Set on the base as the attr `kiln.build`, so every op of this build is its own (no
    /// other build has an op with its digest): for `--no-cache`, since BuildKit's solver
    /// mishandles an op one build loads with `ignore_cache` while another has it without
    /// (`own_vertices` in `frontend/build.rs`).
    pub own_vertices: Option<String>,
    /// `--label` from the build command.
    pub labels: BTreeMap<String, String>,
    /// Put before every step name (`[linux/arm64] uv install: core`): set when one build
    /// makes several platforms, so their steps can be told apart.
    pub step_prefix: Option<String>,
}

impl LowerOpts {
    pub fn offline(platform: pb::Platform) -> Self {
        LowerOpts {
            platform,
            images: BTreeMap::new(),
            context: "context".into(),
            session_id: None,
            caps: Caps::offline(),
            no_cache: false,
            own_vertices: None,
            labels: BTreeMap::new(),
            step_prefix: None,
        }
    }
}

pub struct Lowered {
    /// The final image of each variant.
    pub images: BTreeMap<String, State>,
    /// Each variant's verify run: its checks (with their spec positions) and the exec.
    pub verify: BTreeMap<String, (Vec<S<VerifyCheck>>, State)>,
    pub configs: BTreeMap<String, Value>,
    /// Each variant's runtime-library check reports (`MISSES` in each), when it has one.
    pub runtime_checks: BTreeMap<String, Vec<State>>,
    /// Each variant's gates (`Target::gates`): the `pip check` results it is returned
    /// only after.
    pub gates: BTreeMap<String, Vec<State>>,
}

/// One stage as LLB: its filesystem, and what later stages take from it besides.
#[derive(Clone, Default)]
struct LoweredStage {
    state: State,
    /// What the stage adds as a layer of its own: a package layer.
    layer: Option<State>,
    /// What a check reads of the stage: the project's metadata alone (no code), so that an
    /// edit to the code finds the check cached.
    metadata: Option<State>,
    /// The image config: on final stages and the image steps on them.
    config: Option<Value>,
    /// What a runtime-library stage's scans wrote, one per part (the venv, the project):
    /// a check's reports (its state is the verdict), `auto`'s package lists.
    parts: Vec<State>,
}

/// Every stage of `plan` as LLB, in id order (a stage's parent and inputs come first).
pub fn lower(plan: &Plan, opts: &LowerOpts) -> Lowered {
    let mut done: Vec<LoweredStage> = Vec::with_capacity(plan.stages.len());
    for stage in &plan.stages {
        let record = lower_stage(plan, stage, &done, opts);
        done.push(record);
    }
    by_target(plan, &done)
}

/// One stage, its parent and inputs already in `done`.
fn lower_stage(
    plan: &Plan,
    stage: &Stage,
    done: &[LoweredStage],
    opts: &LowerOpts,
) -> LoweredStage {
    let parent = stage
        .parent
        .map(|p| done[p].state.clone())
        .unwrap_or_default();
    let input = |role| stage.input(role).map(|id| done[id].state.clone());
    let inputs = |role| -> Vec<State> {
        stage
            .inputs_of(role)
            .map(|id| done[id].state.clone())
            .collect()
    };
    let layers = || -> Vec<State> {
        stage
            .inputs_of(Role::Layer)
            .map(|id| done[id].layer.clone().expect("a layer input makes a layer"))
            .collect()
    };
    let info = image_info(opts, base_of(plan, stage));
    let mut vars = base_env(&info.config);
    if let Some(epoch) = plan.epoch {
        vars.push(format!("SOURCE_DATE_EPOCH={epoch}"));
    }
    let env = StepEnv {
        vars,
        cache: cache_scope(&info.reference, &opts.platform),
    };
    // A fetched group's own stages are named by what they do; the others by their stage
    // and where the spec asks for it.
    let name = match &stage.kind {
        StageKind::Fetch(_) | StageKind::Wheel(_) | StageKind::Layer(_) | StageKind::Check(_) => {
            stage.label()
        }
        _ => format!(
            "{} ({}:{})",
            stage.label(),
            plan.files[stage.loc.file as usize].name,
            stage.loc.line
        ),
    };
    let meta = Meta {
        name: Some(prefixed(opts.step_prefix.as_deref(), &name)),
        ignore_cache: opts.no_cache,
        loc: (stage.loc.line > 0).then_some(SourceLoc {
            file: stage.loc.file,
            line: stage.loc.line,
        }),
    };
    let state = |state: State| LoweredStage {
        state,
        ..Default::default()
    };
    match &stage.kind {
        StageKind::Base { .. } => {
            let platform = Some(opts.platform.clone());
            state(llb::image_with_attrs(
                &info.reference,
                platform,
                own_vertices(opts),
                meta,
            ))
        }
        StageKind::Apt(step) => {
            let found = stage.input(Role::Packages).map(|id| &done[id].parts[..]);
            state(apt::apt(&parent, found, step, &env, opts, meta))
        }
        StageKind::Python(step) => {
            state(python::python(&parent, input(Role::File), step, &env, meta))
        }
        StageKind::Install(step) => {
            let on =
                python::with_toolchain(&parent, input(Role::Toolchain), &step.toolchain, &meta);
            state(match &step.install {
                Install::InStep { recipe, fallback } => {
                    let meta = match fallback {
                        Some(why) => Meta {
                            name: meta.name.map(|n| format!("{n} [from the index: {why}]")),
                            ..meta
                        },
                        None => meta,
                    };
                    install::install(&on, step, recipe, opts, &env, meta)
                }
                Install::Files => {
                    fetched::install_files(&on, &inputs(Role::File), step, &env, meta)
                }
                Install::Layers => {
                    let mut venv = vec![on];
                    venv.extend(layers());
                    let name = Some(format!("venv: {}", step.group));
                    llb::merge(&venv, Meta { name, ..meta })
                }
            })
        }
        StageKind::ProjectWheel(step) => {
            let on =
                python::with_toolchain(&parent, input(Role::Toolchain), &step.toolchain, &meta);
            state(project::wheel(&on, step, opts, &env, meta))
        }
        StageKind::Project(step) => {
            let wheel = input(Role::File).expect("a project's install has its wheel");
            let (prefix, metadata) = project::install(&parent, &wheel, step, &env, meta);
            LoweredStage {
                state: prefix,
                metadata: Some(metadata),
                ..Default::default()
            }
        }
        StageKind::ProjectCheck(step) => {
            let installed = stage.input(Role::Project).expect("a check has the project");
            let metadata = done[installed]
                .metadata
                .as_ref()
                .expect("an install's metadata");
            state(project::check(
                &parent,
                &layers(),
                metadata,
                step,
                &env,
                meta,
            ))
        }
        StageKind::Fetch(step) => state(fetched::fetch(step, opts, meta)),
        StageKind::Wheel(step) => {
            let on =
                python::with_toolchain(&parent, input(Role::Toolchain), &step.toolchain, &meta);
            let sdist = input(Role::File).expect("a wheel build has its sdist");
            state(fetched::build_wheel(&on, &sdist, step, &env, meta))
        }
        StageKind::Layer(step) => {
            let layer = fetched::layer(&parent, &inputs(Role::File), step, &env, meta);
            LoweredStage {
                state: layer.clone(),
                layer: Some(layer),
                ..Default::default()
            }
        }
        StageKind::Check(step) => state(fetched::check(&parent, &layers(), step, &env, meta)),
        StageKind::RuntimeCheck(step) => {
            let (venv, groups) = runtime_libs::venvs(plan, stage, done, step, &meta);
            let builder = input(Role::Builder).expect("a runtime-library check has a builder");
            let (verdict, reports) = runtime_libs::check(
                &parent,
                (&venv, input(Role::Project).as_ref()),
                &builder,
                &groups,
                step,
                &env,
                meta,
            );
            LoweredStage {
                state: verdict,
                parts: reports,
                ..Default::default()
            }
        }
        StageKind::RuntimePackages(step) => {
            let (venv, _) = runtime_libs::venvs(plan, stage, done, step, &meta);
            let project = input(Role::Project);
            let venv = (&venv, project.as_ref());
            LoweredStage {
                parts: runtime_libs::packages(&parent, venv, step, &env, meta),
                ..Default::default()
            }
        }
        StageKind::Final(step) => {
            let config = config::image_config(step, &info.config, &opts.platform, &opts.labels);
            let outputs: Vec<(State, &[StepOutput])> = stage
                .inputs_of(Role::Outputs)
                .filter_map(|id| match &plan.stage(id).kind {
                    StageKind::Step(s) => Some((done[id].state.clone(), &s.step.outputs[..])),
                    _ => None,
                })
                .collect();
            // The runtime-library check (the one check the image waits for: the `pip
            // check`s are gates) goes with the project's layer when it reads the project,
            // so that the venv's layer never stands on the project.
            let with_project = stage.input(Role::Project).is_some();
            let (project_checks, group_checks): (Vec<StageId>, Vec<StageId>) = stage
                .inputs_of(Role::Check)
                .partition(|id| match plan.stage(*id).kind {
                    StageKind::ProjectCheck(_) => true,
                    StageKind::RuntimeCheck(_) => with_project,
                    _ => false,
                });
            let states = |ids: Vec<StageId>| ids.iter().map(|id| done[*id].state.clone()).collect();
            let venv = match (input(Role::Venv), input(Role::EmptyVenv)) {
                (Some(venv), _) => image::Venv::Whole {
                    venv,
                    checks: states(group_checks),
                },
                (None, Some(empty)) => image::Venv::Layers {
                    empty,
                    checks: states(group_checks),
                    layers: layers(),
                },
                (None, None) => unreachable!("an image takes a venv, whole or as layers"),
            };
            let project = input(Role::Project).map(|prefix| image::Project {
                prefix,
                checks: states(project_checks),
            });
            let from = image::FromBuilder {
                venv,
                project,
                outputs: &outputs,
            };
            LoweredStage {
                state: image::final_image(&parent, from, step, (opts, plan.epoch), meta),
                config: Some(config),
                ..Default::default()
            }
        }
        StageKind::Step(step) => {
            // On an image: that image's config (verify and later steps need it).
            let on_image = stage.parent.and_then(|p| done[p].config.clone());
            let env = steps::step_env(on_image.as_ref(), &env, step, plan.epoch);
            // A builder step's venv has the project in it.
            let on = match input(Role::Project) {
                Some(prefix) => {
                    let meta = Meta {
                        name: Some(format!("project into {}", step.venv)),
                        ..meta.clone()
                    };
                    project::into_venv(&parent, &prefix, &[], &step.venv, meta)
                }
                None => parent,
            };
            LoweredStage {
                state: steps::custom_step(&on, step, env, opts, meta),
                config: on_image,
                ..Default::default()
            }
        }
        StageKind::Verify(step) => {
            let image = stage.parent.expect("a verify stage stands on an image");
            let config = done[image].config.as_ref().expect("an image has a config");
            state(steps::verify(&parent, step, config, meta))
        }
    }
}

/// The attribute that makes a build's ops its own (`LowerOpts::own_vertices`): on its base
/// and on every fetch, which stands on no base.
fn own_vertices(opts: &LowerOpts) -> BTreeMap<String, String> {
    opts.own_vertices
        .iter()
        .map(|id| ("kiln.build".to_string(), id.clone()))
        .collect()
}

/// Each target's image, config and verify step, from the lowered stages.
fn by_target(plan: &Plan, done: &[LoweredStage]) -> Lowered {
    let mut lowered = Lowered {
        images: BTreeMap::new(),
        verify: BTreeMap::new(),
        configs: BTreeMap::new(),
        runtime_checks: BTreeMap::new(),
        gates: BTreeMap::new(),
    };
    for t in &plan.targets {
        let gates = t.gates.iter().map(|g| done[*g].state.clone()).collect();
        lowered.gates.insert(t.variant.clone(), gates);
        let image = &done[t.image];
        lowered
            .images
            .insert(t.variant.clone(), image.state.clone());
        let config = image
            .config
            .clone()
            .expect("each target's image has a config");
        lowered.configs.insert(t.variant.clone(), config);
        if let Some(id) = t.runtime_check {
            lowered
                .runtime_checks
                .insert(t.variant.clone(), done[id].parts.clone());
        }
        if let Some(id) = t.verify {
            let StageKind::Verify(step) = &plan.stage(id).kind else {
                unreachable!("verify ids point at verify stages")
            };
            let checks = step
                .checks
                .iter()
                .zip(&t.verify_locs)
                .map(|(c, loc)| S::new(c.clone(), *loc))
                .collect();
            lowered
                .verify
                .insert(t.variant.clone(), (checks, done[id].state.clone()));
        }
    }
    lowered
}

/// A step name with `prefix` in front, merged into a leading `[...]` the way BuildKit's
/// own frontends do it (`[linux/arm64 image] app`).
fn prefixed(prefix: Option<&str>, name: &str) -> String {
    match (prefix, name.strip_prefix('[')) {
        (None, _) => name.to_string(),
        (Some(p), Some(rest)) => format!("[{p} {rest}"),
        (Some(p), None) => format!("[{p}] {name}"),
    }
}

/// The base image a stage ultimately stands on, as written in the spec (`None`: it
/// stands on none, as a fetched file).
fn base_of<'p>(plan: &'p Plan, stage: &'p Stage) -> Option<&'p str> {
    let mut s = stage;
    loop {
        if let StageKind::Base { image } = &s.kind {
            return Some(image);
        }
        s = plan.stage(s.parent?);
    }
}

/// The base as resolved (unpinned, with an empty config, when it was not).
fn image_info(opts: &LowerOpts, base: Option<&str>) -> ImageInfo {
    let Some(base) = base else {
        return ImageInfo {
            reference: String::new(),
            config: Value::Null,
            interpreter: None,
        };
    };
    opts.images.get(base).cloned().unwrap_or_else(|| ImageInfo {
        reference: reference::normalize(base),
        config: Value::Null,
        interpreter: None,
    })
}

fn sh(script: String, env: Vec<String>, mounts: Vec<Mount>, meta: Meta) -> Exec {
    Exec {
        args: vec!["/bin/sh".into(), "-c".into(), script],
        env,
        cwd: "/".into(),
        mounts,
        meta,
        ..Default::default()
    }
}

/// Secret mounts and the shell lines that use them when present (both are optional, so a
/// build without `--secret` still works where no CA or credentials are needed).
fn secret_setup(secrets: &BuildSecrets) -> (Vec<Mount>, String) {
    let mut mounts = vec![];
    let mut script = String::new();
    if let Some(id) = &secrets.ca_bundle {
        mounts.push(Mount::Secret {
            dest: CA_PATH.into(),
            id: id.clone(),
            optional: true,
            mode: 0o444,
            uid: 0,
            gid: 0,
        });
        script.push_str(&format!(
            "if [ -s {CA_PATH} ]; then export PIP_CERT={CA_PATH} SSL_CERT_FILE={CA_PATH} REQUESTS_CA_BUNDLE={CA_PATH}; fi\n"
        ));
    }
    if let Some(id) = &secrets.netrc {
        mounts.push(Mount::Secret {
            dest: NETRC_PATH.into(),
            id: id.clone(),
            optional: true,
            mode: 0o400,
            uid: 0,
            gid: 0,
        });
    }
    (mounts, script)
}

/// A shell line that fails the step when a symlink under `dir` (context files, mounted
/// as they are) resolves outside it. Mounted secrets (`/root/.netrc`) are reachable from
/// inside the step, and a context symlink to one would have pip or uv print it while
/// failing to parse it; BuildKit resolves such links inside the context only when kiln
/// reads a file itself. Runs before the tool reads anything.
fn links_stay_inside(dir: &'static str) -> String {
    // Inside single quotes below: only kiln's own mount paths, which need no quoting.
    debug_assert!(
        dir.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'-')
    );
    format!(
        "find {dir} -type l -exec sh -c 'for l; do t=$(readlink -f \"$l\" || echo \"?\"); case \"$t\" in {dir}/*) ;; *) echo \"kiln: ${{l#{dir}/}} is a symlink that leaves the build context (to $t): copy the file into the context instead\" >&2; exit 1;; esac; done' kiln-links {{}} +\n"
    )
}

/// What a step inherits from the base it stands on: the base's environment, and the
/// scope of its package caches.
struct StepEnv {
    vars: Vec<String>,
    /// A short hash of the pinned base and the platform: a wheel built against one base's
    /// libraries is never found in another base's cache (kiln-pip-<scope>, kiln-uv-<scope>).
    cache: String,
}

impl std::ops::Deref for StepEnv {
    type Target = [String];
    fn deref(&self) -> &[String] {
        &self.vars
    }
}

/// The cache scope of `reference` (as pinned) on `platform`.
fn cache_scope(reference: &str, platform: &pb::Platform) -> String {
    use sha2::{Digest, Sha256};
    let id = llb::platform::id(platform);
    hex::encode(&Sha256::digest(format!("{reference}\n{id}"))[..6])
}

/// A source of the build context that holds only `include` (the whole context when
/// empty) less `exclude`, named `name` in progress output. `key` follows the context's
/// name in the shared key hint: sources with one hint share their files' transfers.
fn context_source(
    opts: &LowerOpts,
    (include, exclude): (Vec<String>, Vec<String>),
    key: &str,
    name: &str,
) -> State {
    llb::local(
        Local {
            name: opts.context.clone(),
            include,
            exclude,
            shared_key_hint: Some(format!("{}{key}", opts.context)),
            session_id: opts.session_id.clone(),
            ..Default::default()
        },
        Meta {
            name: Some(name.into()),
            ..Default::default()
        },
    )
}

/// The cache mount for a command's package cache, scoped to the base (`StepEnv::cache`;
/// Poetry's is not: its cache holds no builds).
fn cache_mount(cache: Cache, scope: &str) -> Mount {
    let (dest, id) = match cache {
        Cache::Pip => ("/root/.cache/pip", format!("kiln-pip-{scope}")),
        Cache::Uv => ("/root/.cache/uv", format!("kiln-uv-{scope}")),
        Cache::Poetry => ("/root/.cache/pypoetry", "kiln-poetry".to_string()),
    };
    Mount::Cache {
        dest: dest.into(),
        id,
        sharing: Sharing::Shared,
    }
}

fn installer_env(env: &[String], toolchain: &Toolchain, pip: Option<&PipOptions>) -> Vec<String> {
    let installer = toolchain.installer;
    let mut out: Vec<String> = env
        .iter()
        .filter(|e| !e.starts_with("PATH="))
        .cloned()
        .collect();
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    match installer {
        Installer::Uv => out.push(format!("PATH={UV_HOME}/bin:{path}")),
        Installer::Pip => out.push(format!("PATH={path}")),
    }
    out.extend(
        [
            "PIP_DISABLE_PIP_VERSION_CHECK=1",
            "PIP_CACHE_DIR=/root/.cache/pip",
            "UV_CACHE_DIR=/root/.cache/uv",
            "PIP_ROOT_USER_ACTION=ignore",
            "PIP_NO_INPUT=1",
            "PIP_PROGRESS_BAR=off",
            "UV_LINK_MODE=copy",
            "UV_COMPILE_BYTECODE=1",
            "UV_NO_PROGRESS=1",
        ]
        .map(String::from),
    );
    if let Some(p) = pip {
        out.push(format!("PIP_TIMEOUT={}", p.timeout));
        out.push(format!("PIP_RETRIES={}", p.retries));
        out.push(format!("UV_HTTP_TIMEOUT={}", p.timeout));
        out.push(format!("UV_HTTP_RETRIES={}", p.retries));
    }
    out.sort();
    out
}
