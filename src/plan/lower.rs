//! Stages to LLB: one function per stage kind, each a few chained `llb` calls. Lowering
//! reads only the plan (and the build's options): every stage carries its own data.

use std::collections::BTreeMap;

use serde_json::Value;

use super::config::{DEFAULT_PATH, base_env, config_env, image_config};
use super::shell::{join, quote};
use super::*;
use crate::context::pylock;
use crate::llb::{self, CopyOpts, Exec, Local, Meta, Mount, Owner, Sharing, SourceLoc, State, pb};
use crate::reference;
use crate::spec::{AppOwner, AptRepository, BuildSecrets, Installer, S, StepOutput};

mod fetched;

/// Where build secrets and requirement files appear inside build steps.
const CA_PATH: &str = "/run/secrets/kiln-ca.pem";
const NETRC_PATH: &str = "/root/.netrc";
const REQ_MOUNT: &str = "/kiln/req";
/// uv lives in its own venv in the builder, on PATH for every step that uses it.
const UV_HOME: &str = "/opt/kiln-uv";
/// Poetry lives in its own venv in the builder, for `poetry.lock` groups.
const POETRY_HOME: &str = "/opt/kiln-poetry";
/// Where a uv lock's exported requirements reach the install step.
const EXPORT_MOUNT: &str = "/kiln/export";
/// Where the app's project is mounted for its wheel build.
const PROJECT_MOUNT: &str = "/kiln/project";
/// The pip kiln puts in every venv it creates with `installer: pip`.
pub const PIP_VERSION: &str = "25.1.1";

/// A resolved base image: pinned reference and its OCI config.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageInfo {
    /// Normalised reference, with `@sha256:` when the engine resolved it.
    pub reference: String,
    /// The image config JSON (`{"config": {"Env": ...}, "os": ..., ...}`).
    pub config: Value,
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
    /// Layer venv and app with MergeOp, and a fetched lock's packages with DiffOp, instead
    /// of copies (engines with the `mergeop` and `diffop` caps, BuildKit 0.10+).
    pub merge: bool,
    pub no_cache: bool,
    /// Set on the base as the attr `kiln.build`, so every op of this build is its own (no
    /// other build has an op with its digest): for `--no-cache` on BuildKit before 0.12,
    /// whose solver loses a vertex that one build loads with `ignore_cache` while another
    /// has it without, and panics (`failed to get edge`; moby/buildkit#3953).
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
            merge: false,
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
}

/// Every stage of `plan` as LLB, in id order (a stage's parent and deps come first).
pub fn lower(plan: &Plan, opts: &LowerOpts) -> Lowered {
    let mut states: Vec<State> = Vec::with_capacity(plan.stages.len());
    // The image config of each final stage, by stage id: verify steps run with it.
    let mut configs: BTreeMap<StageId, Value> = BTreeMap::new();
    // Per stage, what its venv is made of (install and project stages; default elsewhere).
    let mut venvs: Vec<Venv> = Vec::with_capacity(plan.stages.len());
    for stage in &plan.stages {
        let parent = stage.parent.map(|p| states[p].clone()).unwrap_or_default();
        let info = image_info(opts, base_of(plan, stage));
        let mut vars = base_env(&info.config);
        if let Some(epoch) = plan.epoch {
            vars.push(format!("SOURCE_DATE_EPOCH={epoch}"));
        }
        let env = StepEnv {
            vars,
            cache: cache_scope(&info.reference, &opts.platform),
        };
        let meta = Meta {
            name: Some(prefixed(
                opts.step_prefix.as_deref(),
                &format!(
                    "{} ({}:{})",
                    stage.label(),
                    plan.files[stage.loc.file as usize].name,
                    stage.loc.line
                ),
            )),
            ignore_cache: opts.no_cache,
            loc: (stage.loc.line > 0).then_some(SourceLoc {
                file: stage.loc.file,
                line: stage.loc.line,
            }),
        };
        let state = match &stage.kind {
            StageKind::Base { .. } => {
                let attrs = opts
                    .own_vertices
                    .iter()
                    .map(|id| ("kiln.build".to_string(), id.clone()));
                let platform = Some(opts.platform.clone());
                llb::image_with_attrs(&info.reference, platform, attrs.collect(), meta)
            }
            StageKind::Apt(step) => apt(&parent, step, &env, opts, meta),
            StageKind::Python(step) => python(&parent, step, &env, meta),
            StageKind::Install(step) => {
                // The first group stands on the builder with the venv copied in, or (no
                // build packages) on the Python stage itself: that is the empty venv.
                let after_python = stage
                    .parent
                    .is_some_and(|p| matches!(plan.stage(p).kind, StageKind::Python(_)));
                // Layers are installed on the Python stage, not the builder: they need no
                // build packages, so they run beside the apt step, and a fresh runner pulls
                // the small venv stage to add one, not the builder.
                let (on, python) = match stage.deps.first() {
                    Some(python) => (
                        toolchain_into(&parent, &states[*python], &step.toolchain, &meta),
                        Some(states[*python].clone()),
                    ),
                    None => (parent.clone(), after_python.then_some(parent)),
                };
                let (builder, before) = match (python, stage.parent) {
                    (Some(python), _) => (Some(on.clone()), Some(Layered::new(python))),
                    (None, Some(p)) => (venvs[p].builder.clone(), venvs[p].layered.clone()),
                    (None, None) => (None, None),
                };
                let (state, layered) =
                    install_stage(&on, (builder.as_ref(), before), step, opts, &env, meta);
                venvs.push(Venv { builder, layered });
                states.push(state);
                continue;
            }
            StageKind::Project(step) => {
                let on = match stage.deps.first() {
                    Some(python) => {
                        toolchain_into(&parent, &states[*python], &step.toolchain, &meta)
                    }
                    None => parent,
                };
                let state = project(&on, step, opts, &env, meta.clone());
                let mut venv = stage.parent.map(|p| venvs[p].clone()).unwrap_or_default();
                if let Some(l) = &mut venv.layered {
                    // The project changes with the app: size 0 puts it on top.
                    l.layers.push(PackageLayer {
                        packages: vec![],
                        bytes: 0,
                        state: llb::diff(&on, &state, meta),
                    });
                }
                venvs.push(venv);
                states.push(state);
                continue;
            }
            StageKind::Final(step) => {
                let config = image_config(step, &info.config, &opts.platform, &opts.labels);
                configs.insert(stage.id, config);
                let (venv, outputs) = final_inputs(plan, stage, &states);
                let layered = venvs[stage.deps[0]].layered.as_ref();
                final_image(
                    &parent,
                    FromBuilder {
                        venv,
                        layered,
                        outputs: &outputs,
                    },
                    step,
                    (opts, plan.epoch),
                    meta,
                )
            }
            StageKind::Step(step) => {
                // On an image: that image's config (verify and later steps need it).
                let on_image = stage.parent.and_then(|p| configs.get(&p)).cloned();
                if let Some(config) = &on_image {
                    configs.insert(stage.id, config.clone());
                }
                let env = step_env(on_image.as_ref(), &env, step, plan.epoch);
                custom_step(&parent, step, env, opts, meta)
            }
            StageKind::Verify(step) => {
                let image = stage.parent.expect("a verify stage stands on an image");
                verify(&parent, step, &configs[&image], meta)
            }
        };
        states.push(state);
        venvs.push(Venv::default());
    }
    by_target(plan, &states, &configs)
}

/// What a venv stage is made of.
#[derive(Clone, Default)]
struct Venv {
    /// The builder with the empty venv, which every group of the chain stands on (and
    /// where a sdist is built into a wheel).
    builder: Option<State>,
    /// Its layers, when every stage of the chain so far installed as layers.
    layered: Option<Layered>,
}

/// A venv as layers (engines with MergeOp and DiffOp, fetched locks): the empty venv, each
/// layer with the packages in it as (PEP 503 name, sha256), and the `pip check` runs the
/// image must wait for.
#[derive(Clone)]
pub(super) struct Layered {
    /// The Python stage: the base with the empty venv (and the installer), which each
    /// package is installed into alone.
    empty: State,
    layers: Vec<PackageLayer>,
    checks: Vec<State>,
}

/// One layer of a layered venv: the packages in it (PEP 503 name, sha256), their files'
/// size in bytes (the lock's `size`; 0 when unknown), and the layer.
#[derive(Clone)]
pub(super) struct PackageLayer {
    packages: Vec<(String, String)>,
    bytes: u64,
    state: State,
}

impl Layered {
    fn new(empty: State) -> Self {
        Layered {
            empty,
            layers: vec![],
            checks: vec![],
        }
    }
}

/// One group's install on `on`: from fetched files (as layers where `before` is set and
/// the engine merges, else in one step), or from the index in the step.
fn install_stage(
    on: &State,
    (builder, before): (Option<&State>, Option<Layered>),
    step: &InstallStep,
    opts: &LowerOpts,
    env: &StepEnv,
    meta: Meta,
) -> (State, Option<Layered>) {
    let (
        GroupSource::Pylock {
            lock,
            fetch: Some(fetch),
        },
        Some(builder),
    ) = (&step.source, builder)
    else {
        return (install(on, step, opts, env, meta), None);
    };
    let wheels = match fetched::wheels(fetch, builder, step, opts, env, &meta) {
        Ok(w) => w,
        Err(why) => {
            // The lock does not fit this platform: uv says so (or finds what it can) in the step.
            let step = InstallStep {
                source: GroupSource::Pylock {
                    lock: lock.clone(),
                    fetch: None,
                },
                ..step.clone()
            };
            let meta = Meta {
                name: meta.name.map(|n| format!("{n} [from the index: {why}]")),
                ..meta
            };
            return (install(on, &step, opts, env, meta), None);
        }
    };
    // The packages the layers below already hold, as (PEP 503 name, sha256).
    let have: Vec<(String, String)> = before
        .iter()
        .flat_map(|l| l.layers.iter().flat_map(|p| p.packages.iter().cloned()))
        .collect();
    let conflict = wheels
        .iter()
        .any(|w| have.iter().any(|k| k.0 == w.key.0 && k.1 != w.key.1));
    match before.filter(|_| opts.merge && !conflict) {
        Some(mut layered) => {
            let new: Vec<&fetched::Wheel> =
                wheels.iter().filter(|w| !have.contains(&w.key)).collect();
            let mut added = vec![on.clone()];
            for unit in fetched::layers(new) {
                let state = fetched::package_layer(&layered.empty, &unit, step, env, &meta);
                added.push(state.clone());
                layered.layers.push(PackageLayer {
                    packages: unit.iter().map(|w| w.key.clone()).collect(),
                    bytes: unit.iter().map(|w| w.bytes).sum(),
                    state,
                });
            }
            let state = llb::merge(
                &added,
                Meta {
                    name: Some(format!("venv: {}", step.group)),
                    ..meta.clone()
                },
            );
            if step.pip.check {
                // Over the layers alone (on the Python stage): the verdict needs no builder.
                let mut venv = vec![layered.empty.clone()];
                venv.extend(layered.layers.iter().map(|l| l.state.clone()));
                let venv = llb::merge(
                    &venv,
                    Meta {
                        name: Some(format!("venv to check: {}", step.group)),
                        ..meta.clone()
                    },
                );
                let check = fetched::check(&venv, step, env, &meta);
                layered.checks.push(check);
            }
            (state, Some(layered))
        }
        None => (fetched::install_group(on, &wheels, step, env, meta), None),
    }
}

/// Each target's image, config and verify step, from the lowered stages.
fn by_target(plan: &Plan, states: &[State], configs: &BTreeMap<StageId, Value>) -> Lowered {
    let mut lowered = Lowered {
        images: BTreeMap::new(),
        verify: BTreeMap::new(),
        configs: BTreeMap::new(),
    };
    for t in &plan.targets {
        lowered
            .images
            .insert(t.variant.clone(), states[t.image].clone());
        lowered
            .configs
            .insert(t.variant.clone(), configs[&t.image].clone());
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
                .insert(t.variant.clone(), (checks, states[id].clone()));
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

/// The base image a stage ultimately stands on, as written in the spec.
fn base_of<'p>(plan: &'p Plan, stage: &'p Stage) -> &'p str {
    let mut s = stage;
    loop {
        if let StageKind::Base { image } = &s.kind {
            return image;
        }
        s = plan.stage(s.parent.expect("every stage but a base has a parent"));
    }
}

fn image_info(opts: &LowerOpts, base: &str) -> ImageInfo {
    opts.images.get(base).cloned().unwrap_or_else(|| ImageInfo {
        reference: reference::normalize(base),
        config: Value::Null,
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

fn apt(parent: &State, step: &AptStep, env: &StepEnv, opts: &LowerOpts, meta: Meta) -> State {
    let (sources, unsources, mut mounts) =
        apt_sources(&step.repositories, &step.dockerignore, opts);
    // Debian images ship a hook that empties /var/cache/apt after every install, which
    // would defeat the cache mount: move it aside for this step and put it back.
    let script = format!(
        "set -eu\n\
         hook=/etc/apt/apt.conf.d/docker-clean\n\
         if [ -e \"$hook\" ]; then mv \"$hook\" /tmp/kiln-docker-clean; fi\n\
         {sources}\
         apt-get update -qq\n\
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends {}\n\
         {unsources}\
         if [ -e /tmp/kiln-docker-clean ]; then mv /tmp/kiln-docker-clean \"$hook\"; fi\n\
         rm -rf /var/log/apt/* /var/log/dpkg.log /var/cache/debconf/*-old /var/cache/ldconfig/aux-cache\n",
        join(&step.packages)
    );
    // apt cannot share its cache with a second apt at once, so the mounts are locked; one
    // pair per role, so the build branch (on the critical path) never waits for the
    // runtime branch's apt, which BuildKit runs at the same time.
    let role = match step.role {
        AptRole::Build => "build",
        AptRole::Runtime => "runtime",
    };
    mounts.extend([
        Mount::Cache {
            dest: "/var/cache/apt".into(),
            id: format!("kiln-apt-cache-{role}"),
            sharing: Sharing::Locked,
        },
        Mount::Cache {
            dest: "/var/lib/apt/lists".into(),
            id: format!("kiln-apt-lists-{role}"),
            sharing: Sharing::Locked,
        },
    ]);
    parent.run(sh(script, env.to_vec(), mounts, meta)).root()
}

/// Where the repositories' keys are mounted (from the context, read-only).
const APT_KEYS: &str = "/kiln/apt-keys";

/// The extra apt sources of a step: the lines that add them (each trusted only through
/// its key, `signed-by`), the lines that take them out again (the key is not in the image,
/// so a source left behind would break a later `apt-get update`), and the keys' mount.
fn apt_sources(
    repos: &[AptRepository],
    dockerignore: &[String],
    opts: &LowerOpts,
) -> (String, String, Vec<Mount>) {
    if repos.is_empty() {
        return (String::new(), String::new(), vec![]);
    }
    let (mut add, mut remove) = (String::new(), String::new());
    for r in repos {
        let list = format!("/etc/apt/sources.list.d/kiln-{}.list", r.name);
        let line = format!(
            "deb [signed-by={APT_KEYS}/{}] {} {} {}",
            r.key,
            r.url,
            r.suite,
            r.components.join(" ")
        );
        add.push_str(&format!(
            "printf '%s\\n' {} >{list}\n",
            quote(line.trim_end())
        ));
        remove.push_str(&format!("rm -f {list}\n"));
    }
    let mut keys: Vec<String> = repos.iter().map(|r| r.key.clone()).collect();
    keys.sort();
    keys.dedup();
    let src = context_files(opts, keys, dockerignore, "apt keys");
    let mount = Mount::Bind {
        dest: APT_KEYS.into(),
        src,
    };
    (add, remove, vec![mount])
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

fn pip_cache(scope: &str) -> Mount {
    Mount::Cache {
        dest: "/root/.cache/pip".into(),
        id: format!("kiln-pip-{scope}"),
        sharing: Sharing::Shared,
    }
}

fn uv_cache(scope: &str) -> Mount {
    Mount::Cache {
        dest: "/root/.cache/uv".into(),
        id: format!("kiln-uv-{scope}"),
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

fn python(parent: &State, step: &PythonStep, env: &StepEnv, meta: Meta) -> State {
    let Toolchain {
        installer,
        uv_version,
        venv,
        poetry,
    } = &step.toolchain;
    let installer = *installer;
    let mut script = String::from("set -eu\n");
    script.push_str("PY=$(command -v python3 || command -v python || true)\n");
    script.push_str("if [ -z \"$PY\" ]; then echo 'kiln: the base image has no python3; use a Python base such as python:3.12-slim' >&2; exit 1; fi\n");
    if let Some((v, from)) = &step.version {
        // No spec position in the script: op bytes must not change when lines move (the
        // step's progress name carries the position instead).
        script
            .push_str("have=$(\"$PY\" -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])')\n");
        script.push_str(&format!(
            "if [ \"$have\" != {want} ]; then echo \"kiln: base has Python $have, {who} wants {v} ({from}); pick a base image with Python {v} or change {from}\" >&2; exit 1; fi\n",
            want = quote(v),
            // Both names are kiln's or a context path (no quote or `$` in either).
            who = if from == "python.version" { "spec" } else { "the project" },
            from = from.replace(['"', '$', '`', '\\'], ""),
        ));
    }
    // With uv the venv is uv's to fill: no pip or setuptools seeded into it (as `uv venv`
    // makes it), which also keeps an old ensurepip pip out of the image.
    let seed = if installer == Installer::Uv {
        " --without-pip"
    } else {
        ""
    };
    script.push_str(&format!("\"$PY\" -m venv{seed} {}\n", quote(venv)));
    // Both installers download: secrets and the pip cache are mounted for this step too.
    let (mut mounts, secret_script) = secret_setup(&step.secrets);
    mounts.push(pip_cache(&env.cache));
    script.push_str(&secret_script);
    match installer {
        // The base's pip may predate PEP 517-only builds (no wheel cache for sdists, so
        // psycopg2 would recompile on every install): a pinned, current pip in the venv.
        Installer::Pip => script.push_str(&format!(
            "{}/bin/python -m pip install -q {}\n",
            quote(venv),
            quote(&format!("pip=={PIP_VERSION}"))
        )),
        Installer::Uv => {
            script.push_str(&format!(
                "\"$PY\" -m venv {UV_HOME}\n{UV_HOME}/bin/python -m pip install -q {}\n",
                quote(&format!("uv=={uv_version}"))
            ));
            script.push_str("uv --version\n");
        }
    }
    if let Some(version) = poetry {
        script.push_str(&format!(
            "\"$PY\" -m venv {POETRY_HOME}\n{POETRY_HOME}/bin/python -m pip install -q {}\n",
            quote(&format!("poetry=={version}"))
        ));
    }
    parent
        .run(sh(
            script,
            installer_env(env, &step.toolchain, None),
            mounts,
            meta,
        ))
        .root()
}

/// The builder with the venv (and uv) made beside it copied in. Same paths, so the venv's
/// absolute links to the base's interpreter still hold: the builder stands on that base.
fn toolchain_into(builder: &State, python: &State, toolchain: &Toolchain, meta: &Meta) -> State {
    let venv = &toolchain.venv;
    let copy = CopyOpts {
        contents_only: true,
        create_dest_path: true,
        ..Default::default()
    };
    let mut ops = builder
        .file(Meta {
            name: Some(format!("venv {venv} into the builder")),
            ignore_cache: meta.ignore_cache,
            loc: meta.loc,
        })
        .copy(python, venv, venv, copy.clone());
    if toolchain.poetry.is_some() {
        ops = ops.copy(python, POETRY_HOME, POETRY_HOME, copy.clone());
    }
    if toolchain.installer == Installer::Uv {
        ops = ops.copy(python, UV_HOME, UV_HOME, copy);
    }
    ops.done()
}

/// `--index-url`/`--extra-index-url` from `pip:`, for pip, `uv pip` and `uv build`.
fn index_args(pip: &PipOptions) -> Vec<String> {
    let mut args: Vec<String> = vec![];
    if let Some(u) = &pip.index_url {
        args.extend(["--index-url".into(), u.clone()]);
    }
    for u in &pip.extra_index_urls {
        args.extend(["--extra-index-url".into(), u.clone()]);
    }
    args
}

/// The shell command that installs `source` into the venv (files as mounted at
/// `REQ_MOUNT`), and its cache mount.
fn install_command(source: &GroupSource, step: &InstallStep, scope: &str) -> (String, Mount) {
    let venv = &step.toolchain.venv;
    let python = format!("{venv}/bin/python");
    let in_mount = |path: &str| match path {
        "" => REQ_MOUNT.to_string(),
        p => format!("{REQ_MOUNT}/{p}"),
    };
    match source {
        GroupSource::Requirements { .. } => requirements_command(source, step, scope),
        // Exactly the exported set: no resolution, every file checked against its hash.
        GroupSource::UvLock { .. } => (
            format!(
                "uv pip install --python {} -r {EXPORT_MOUNT}/pylock.toml",
                quote(&python)
            ),
            uv_cache(scope),
        ),
        GroupSource::Pylock { lock, .. } => (
            format!(
                "uv pip install --python {} -r {}",
                quote(&python),
                quote(&in_mount(lock))
            ),
            uv_cache(scope),
        ),
        // Poetry installs into the active venv when it makes none of its own.
        GroupSource::PoetryLock { project, groups, .. } => (
            format!(
                "cd {}
VIRTUAL_ENV={venv} PATH={venv}/bin:$PATH POETRY_VIRTUALENVS_CREATE=false POETRY_CACHE_DIR=/root/.cache/pypoetry {POETRY_HOME}/bin/poetry install --no-root --no-interaction --only {}",
                quote(&in_mount(project)),
                quote(&groups.join(",")),
                venv = quote(venv),
            ),
            Mount::Cache {
                dest: "/root/.cache/pypoetry".into(),
                id: "kiln-poetry".into(),
                sharing: Sharing::Shared,
            },
        ),
    }
}

/// pip's or `uv pip install`'s command for requirement files and lines, each with its
/// own spelling of the `pip:` build options.
fn requirements_command(source: &GroupSource, step: &InstallStep, scope: &str) -> (String, Mount) {
    let GroupSource::Requirements {
        files,
        packages,
        constraints,
        require_hashes,
        ..
    } = source
    else {
        unreachable!("requirements_command is called for requirement files")
    };
    let python = format!("{}/bin/python", step.toolchain.venv);
    let pip = &step.pip;
    let in_mount = |path: &str| format!("{REQ_MOUNT}/{path}");
    let mut args = index_args(pip);
    if *require_hashes {
        args.push("--require-hashes".into());
    }
    if let Some(c) = constraints {
        args.extend(["-c".into(), in_mount(c)]);
    }
    for f in files {
        args.extend(["-r".into(), in_mount(f)]);
    }
    args.extend(packages.iter().cloned());
    match step.toolchain.installer {
        Installer::Pip => {
            // pip hands PIP_CONSTRAINT on to the isolated build environments.
            let env = match &pip.build_constraints {
                Some(c) => format!("PIP_CONSTRAINT={} ", quote(&in_mount(c))),
                None => String::new(),
            };
            if !pip.no_build_isolation.is_empty() {
                args.insert(0, "--no-build-isolation".into());
            }
            (
                format!(
                    "{env}{} -m pip install --timeout {} --retries {} {}",
                    quote(&python),
                    pip.timeout,
                    pip.retries,
                    join(&args)
                ),
                pip_cache(scope),
            )
        }
        Installer::Uv => {
            let mut uv_args = vec![];
            if let Some(c) = &pip.build_constraints {
                uv_args.extend(["--build-constraint".into(), in_mount(c)]);
            }
            if let Some(s) = &pip.index_strategy {
                uv_args.extend(["--index-strategy".into(), s.clone()]);
            }
            for p in &pip.no_build_isolation {
                uv_args.extend(["--no-build-isolation-package".into(), p.clone()]);
            }
            uv_args.extend(args);
            (
                format!(
                    "uv pip install --python {} {}",
                    quote(&python),
                    join(&uv_args)
                ),
                uv_cache(scope),
            )
        }
    }
}

/// `uv export` of one group from a uv lock, as a PEP 751 lock at `EXPORT_MOUNT/pylock.toml`
/// in the returned state: every file named by URL and hash, so the install takes exactly
/// the locked file (a wrong hash fails; no quiet fallback to another file of the package). `--locked`: a lock that no
/// longer matches `pyproject.toml` fails here with uv's own message.
fn uv_export(
    on: &State,
    project_files: State,
    step: &InstallStep,
    env: &StepEnv,
    meta: &Meta,
) -> State {
    let GroupSource::UvLock {
        project,
        extras,
        groups,
        ..
    } = &step.source
    else {
        unreachable!("uv_export is called for uv locks")
    };
    let mut args = pylock::uv_export_args(extras, groups);
    args.extend([
        "--output-file".into(),
        format!("{EXPORT_MOUNT}/pylock.toml"),
    ]);
    let dir = match project.as_str() {
        "" => REQ_MOUNT.to_string(),
        p => format!("{REQ_MOUNT}/{p}"),
    };
    // A stale lock makes uv resolve to say so: the step may reach the index (CA, netrc).
    let (mut mounts, secret_script) = secret_setup(&step.secrets);
    let script = format!(
        "set -eu\n{}{secret_script}cd {}\nuv export --quiet {}\n",
        links_stay_inside(REQ_MOUNT),
        quote(&dir),
        join(&args)
    );
    mounts.extend([
        Mount::Bind {
            dest: REQ_MOUNT.into(),
            src: project_files,
        },
        Mount::Scratch {
            dest: EXPORT_MOUNT.into(),
        },
        uv_cache(&env.cache),
    ]);
    let meta = Meta {
        name: Some(format!("uv export: {}", step.group)),
        ..meta.clone()
    };
    on.run(sh(
        script,
        installer_env(env, &step.toolchain, Some(&step.pip)),
        mounts,
        meta,
    ))
    .scratch(EXPORT_MOUNT)
}

/// uv leaves `VENV/.lock` behind, world-writable (0777) so that any user may take it; in
/// the image nobody installs, and a file every user may write has no place there.
fn drop_uv_lock(installer: Installer, venv: &str) -> String {
    match installer {
        Installer::Uv => format!("rm -f {}\n", quote(&format!("{venv}/.lock"))),
        Installer::Pip => String::new(),
    }
}

/// `pip check` for the venv, with the installer's own tool.
fn check_command(installer: Installer, venv: &str) -> String {
    let python = format!("{venv}/bin/python");
    match installer {
        Installer::Pip => format!("{} -m pip check", quote(&python)),
        Installer::Uv => format!("uv pip check --python {}", quote(&python)),
    }
}

/// Install one group into the venv on `parent`: only the group's own context files
/// enter the step, through their own local source, so editing the app or another group's
/// file does not rerun it.
fn install(
    parent: &State,
    step: &InstallStep,
    opts: &LowerOpts,
    env: &StepEnv,
    meta: Meta,
) -> State {
    let InstallStep {
        group,
        source,
        pip,
        toolchain,
        secrets,
        dockerignore,
    } = step;
    let (installer, venv) = (toolchain.installer, &toolchain.venv);
    let include = source.context_files();
    let mounted = !include.is_empty();
    let (mut mounts, secret_script) = secret_setup(secrets);
    if !include.is_empty() {
        let req = llb::local(
            Local {
                name: opts.context.clone(),
                include,
                exclude: dockerignore.clone(),
                shared_key_hint: Some(format!("{}-requirements-{group}", opts.context)),
                session_id: opts.session_id.clone(),
                ..Default::default()
            },
            Meta {
                name: Some(format!("requirements: {group}")),
                ..Default::default()
            },
        );
        let src = match source {
            // The group's exact set, exported from the lock by its own step: the install
            // reads only that file, so a lock edit that leaves this group's set alone
            // leaves its install cached (BuildKit keys read-only mounts by content).
            GroupSource::UvLock { .. } => {
                let exported = uv_export(parent, req, step, env, &meta);
                mounts.push(Mount::Bind {
                    dest: EXPORT_MOUNT.into(),
                    src: exported,
                });
                None
            }
            _ => Some(req),
        };
        if let Some(src) = src {
            mounts.push(Mount::Bind {
                dest: REQ_MOUNT.into(),
                src,
            });
        }
    }
    let (install, cache) = install_command(source, step, &env.cache);
    mounts.push(cache);
    let check = check_command(installer, venv);
    let links = match source {
        GroupSource::UvLock { .. } => String::new(),
        _ if !mounted => String::new(),
        _ => links_stay_inside(REQ_MOUNT),
    };
    let mut script = format!("set -eu\n{links}{secret_script}{install}\n");
    if pip.check {
        script.push_str(&format!("{check}\n"));
    }
    script.push_str(&drop_uv_lock(installer, venv));
    parent
        .run(sh(
            script,
            installer_env(env, toolchain, Some(pip)),
            mounts,
            meta,
        ))
        .root()
}

/// Build the app's project as a wheel from a writable copy of its files (so no build
/// backend writes into the context), and install it without dependencies: those came
/// from the groups, installed before.
fn project(
    parent: &State,
    step: &ProjectStep,
    opts: &LowerOpts,
    env: &StepEnv,
    meta: Meta,
) -> State {
    let Toolchain {
        installer, venv, ..
    } = &step.toolchain;
    let python = format!("{venv}/bin/python");
    let src = llb::local(
        Local {
            name: opts.context.clone(),
            include: if step.dir.is_empty() {
                vec![]
            } else {
                vec![step.dir.clone()]
            },
            exclude: step.exclude.clone(),
            shared_key_hint: Some(format!("{}-project", opts.context)),
            session_id: opts.session_id.clone(),
            ..Default::default()
        },
        Meta {
            name: Some("project source".into()),
            ..Default::default()
        },
    );
    let (mut mounts, secret_script) = secret_setup(&step.secrets);
    mounts.push(Mount::Bind {
        dest: PROJECT_MOUNT.into(),
        src,
    });
    let from = match step.dir.as_str() {
        "" => PROJECT_MOUNT.to_string(),
        d => format!("{PROJECT_MOUNT}/{d}"),
    };
    let (build, install, cache) = project_commands(*installer, &python, &step.pip, &env.cache);
    mounts.push(cache);
    let mut script = format!(
        "set -eu\n{}{secret_script}rm -rf /tmp/kiln-project /tmp/kiln-wheels\ncp -a {}/. /tmp/kiln-project\n{build}\n{install}\nrm -rf /tmp/kiln-project /tmp/kiln-wheels\n",
        links_stay_inside(PROJECT_MOUNT),
        quote(&from)
    );
    if step.pip.check {
        script.push_str(&format!("{}\n", check_command(*installer, venv)));
    }
    script.push_str(&drop_uv_lock(*installer, venv));
    parent
        .run(sh(
            script,
            installer_env(env, &step.toolchain, Some(&step.pip)),
            mounts,
            meta,
        ))
        .root()
}

/// The wheel build of the project copied to `/tmp/kiln-project` and its install, with the
/// installer's own tools, and the installer's cache.
fn project_commands(
    installer: Installer,
    python: &str,
    pip: &PipOptions,
    scope: &str,
) -> (String, String, Mount) {
    let py = quote(python);
    let index: String = index_args(pip)
        .iter()
        .map(|a| format!(" {}", quote(a)))
        .collect();
    match installer {
        Installer::Uv => (
            format!(
                "uv build --wheel --python {py} --out-dir /tmp/kiln-wheels{index} /tmp/kiln-project"
            ),
            format!("uv pip install --python {py} --no-deps /tmp/kiln-wheels/*.whl"),
            uv_cache(scope),
        ),
        Installer::Pip => (
            format!(
                "{py} -m pip wheel --no-deps --wheel-dir /tmp/kiln-wheels{index} /tmp/kiln-project"
            ),
            format!("{py} -m pip install --no-deps /tmp/kiln-wheels/*.whl"),
            pip_cache(scope),
        ),
    }
}

/// What the image takes from the builder: the venv (whole, or as layers) and what each
/// builder step declared as `outputs`.
struct FromBuilder<'a> {
    venv: &'a State,
    layered: Option<&'a Layered>,
    outputs: &'a [(State, &'a [StepOutput])],
}

/// The image: the runtime branch, the user, the venv (root-owned) and the app, with
/// MergeOp as independent layers where the engine has it, else as chained copies.
fn final_image(
    runtime: &State,
    from: FromBuilder,
    step: &FinalStep,
    (opts, epoch): (&LowerOpts, Option<u64>),
    meta: Meta,
) -> State {
    let FromBuilder {
        venv: venv_state,
        layered,
        outputs,
    } = from;
    // `[image]`, not the variant's name: buildx bake already puts the target's name in
    // front (`[cuda image] app`, where `[cuda] ...` became `[cuda cuda] ...`).
    let named = |what: &str| Meta {
        name: Some(prefixed(
            opts.step_prefix.as_deref(),
            &format!("[image] {what}"),
        )),
        ..meta.clone()
    };
    let with_user = files_layer(
        &user_layer(runtime, step, epoch, &named),
        step,
        opts,
        named("files"),
    );
    let with_user = outputs_layer(&with_user, outputs, named("step outputs"));
    // The venv is owned by root: the app may read it, not change it.
    let venv_layer = |on: &State| {
        on.file(named("venv"))
            .copy(venv_state, &step.venv, &step.venv, dir_copy(None))
            .done()
    };
    let app_layer = |on: &State| match &step.app {
        Some(app) => app_layer(on, app, &step.user, opts, named("app")),
        None => on.clone(),
    };
    if opts.merge {
        // Independent layers: a new runtime package does not recopy the venv or the app;
        // with a layered venv, a new requirement adds its own layer and moves no other.
        let mut layers = vec![with_user];
        match layered {
            Some(l) => {
                // The empty venv, and each check's (empty) verdict: the image waits for them.
                let mut base = llb::scratch().file(named("venv")).copy(
                    &l.empty,
                    &step.venv,
                    &step.venv,
                    dir_copy(None),
                );
                for c in &l.checks {
                    base = base.copy(c, "/", &step.venv, dir_copy(None));
                }
                layers.push(base.done());
                // Largest at the bottom: an engine unpacks again every layer above one
                // that changed (the chain IDs move), so a new small package must not sit
                // under torch.
                let mut packages: Vec<&PackageLayer> = l.layers.iter().collect();
                packages.sort_by_key(|p| std::cmp::Reverse(p.bytes));
                layers.extend(packages.into_iter().map(|p| p.state.clone()));
            }
            None => layers.push(venv_layer(&llb::scratch())),
        }
        layers.push(app_layer(&llb::scratch()));
        llb::merge(&layers, named("merge"))
    } else {
        app_layer(&venv_layer(&with_user))
    }
}

/// A directory's contents copied to the same layout, owned by `owner` (root when `None`).
fn dir_copy(owner: Option<Owner>) -> CopyOpts {
    CopyOpts {
        owner,
        contents_only: true,
        create_dest_path: true,
        allow_wildcard: true,
        mode: None,
    }
}

/// The runtime user, made with the base's own tools (no network needed; root needs
/// none), and the directories it owns (`writable`, `volumes`).
fn user_layer(
    runtime: &State,
    step: &FinalStep,
    epoch: Option<u64>,
    named: &dyn Fn(&str) -> Meta,
) -> State {
    let user = &step.user;
    if user.is_root() && step.dirs.is_empty() {
        return runtime.clone();
    }
    let mut script = String::from("set -eu\n");
    if !user.is_root() {
        script.push_str(&format!(
            "getent group {gid} >/dev/null || groupadd --gid {gid} {name}\n\
             id -u {name} >/dev/null 2>&1 || useradd --uid {uid} --gid {gid} --create-home --home-dir /home/{name} --shell /usr/sbin/nologin {name}\n",
            gid = user.gid,
            uid = user.uid,
            name = quote(&user.name),
        ));
    }
    for dir in &step.dirs {
        script.push_str(&format!(
            "mkdir -p {d}\nchown {uid}:{gid} {d}\nchmod 0755 {d}\n",
            d = quote(dir),
            uid = user.uid,
            gid = user.gid,
        ));
    }
    let mut name = format!("user {} {}:{}", user.name, user.uid, user.gid);
    if !step.dirs.is_empty() {
        name.push_str(&format!(", owns {}", step.dirs.join(" ")));
    }
    // useradd dates the password entry by SOURCE_DATE_EPOCH when it is set.
    let mut env = vec![format!("PATH={DEFAULT_PATH}")];
    env.extend(epoch.map(|e| format!("SOURCE_DATE_EPOCH={e}")));
    let exec = Exec {
        network_none: true,
        ..sh(script, env, vec![], named(&name))
    };
    runtime.run(exec).root()
}

/// The spec's single files from the context, each with its mode and owner; parents that
/// are missing are made root-owned.
fn files_layer(on: &State, step: &FinalStep, opts: &LowerOpts, meta: Meta) -> State {
    if step.files.is_empty() {
        return on.clone();
    }
    let mut include: Vec<String> = step.files.iter().map(|f| f.src.clone()).collect();
    include.sort();
    include.dedup();
    let ctx = context_files(opts, include, &step.dockerignore, "files source");
    let mut ops = on.file(meta);
    for f in &step.files {
        if let Some((parent, _)) = f.dest.rsplit_once('/').filter(|(p, _)| !p.is_empty()) {
            ops = ops.mkdir(parent, 0o755, true, None);
        }
        let owner = owner_of(f.owner, &step.user);
        let opts = CopyOpts {
            owner,
            mode: Some(f.mode),
            ..Default::default()
        };
        ops = ops.copy(&ctx, &format!("/{}", f.src), &f.dest, opts);
    }
    ops.done()
}

/// What the builder steps declared as `outputs`, copied into the image (root-owned);
/// nothing else of a builder step reaches it.
fn outputs_layer(on: &State, outputs: &[(State, &[StepOutput])], meta: Meta) -> State {
    let mut ops = on.file(meta);
    for (state, list) in outputs {
        for o in list.iter() {
            ops = ops.copy(state, &o.from, &o.to, dir_copy(None));
        }
    }
    ops.done()
}

/// A final stage's inputs: the venv, and each builder step with its declared outputs.
fn final_inputs<'p>(
    plan: &'p Plan,
    stage: &Stage,
    states: &'p [State],
) -> (&'p State, Vec<(State, &'p [StepOutput])>) {
    let outputs = stage.deps[1..]
        .iter()
        .filter_map(|d| match &plan.stage(*d).kind {
            StageKind::Step(s) => Some((states[*d].clone(), &s.step.outputs[..])),
            _ => None,
        })
        .collect();
    (&states[stage.deps[0]], outputs)
}

/// A step's environment and working directory: on an image, the image's (and
/// `SOURCE_DATE_EPOCH`); on the builder, the base's with the venv first on `PATH`.
fn step_env(
    image: Option<&Value>,
    env: &StepEnv,
    step: &StepStage,
    epoch: Option<u64>,
) -> (Vec<String>, String) {
    match image {
        Some(config) => {
            let cwd = config["config"]["WorkingDir"].as_str().unwrap_or("/");
            let mut vars = config_env(config);
            vars.extend(epoch.map(|e| format!("SOURCE_DATE_EPOCH={e}")));
            (vars, cwd.to_string())
        }
        None => (venv_env(env, &step.venv), "/".to_string()),
    }
}

/// A builder step's environment: the base's, with the venv first on `PATH`.
fn venv_env(env: &StepEnv, venv: &str) -> Vec<String> {
    let mut vars = env.to_vec();
    for v in vars.iter_mut() {
        if let Some(path) = v.strip_prefix("PATH=") {
            *v = format!("PATH={venv}/bin:{path}");
        }
    }
    vars.push(format!("VIRTUAL_ENV={venv}"));
    vars
}

/// Where a step's `inputs` are mounted (read-only): its working directory.
const STEP_INPUTS: &str = "/kiln/inputs";

/// One of the spec's steps: its script as root, with only its inputs from the context,
/// its caches and secrets as mounts, and no network unless it asks for it.
fn custom_step(
    on: &State,
    stage: &StepStage,
    (env, cwd): (Vec<String>, String),
    opts: &LowerOpts,
    meta: Meta,
) -> State {
    let step = &stage.step;
    let mut mounts = vec![];
    let mut cwd = cwd;
    if !step.inputs.is_empty() {
        let src = context_files(
            opts,
            step.inputs.clone(),
            &stage.dockerignore,
            &format!("step {} inputs", step.name),
        );
        mounts.push(Mount::Bind {
            dest: STEP_INPUTS.into(),
            src,
        });
        cwd = STEP_INPUTS.into();
    }
    for dir in &step.cache {
        mounts.push(Mount::Cache {
            dest: dir.clone(),
            id: step_cache_id(&stage.spec, &step.name, dir),
            sharing: Sharing::Shared,
        });
    }
    for id in &step.secrets {
        mounts.push(Mount::Secret {
            dest: format!("/run/secrets/{id}"),
            id: id.clone(),
            optional: false,
            mode: 0o400,
            uid: 0,
            gid: 0,
        });
    }
    let exec = Exec {
        network_none: !step.network,
        cwd,
        ..sh(format!("set -eu\n{}", step.run), env, mounts, meta)
    };
    on.run(exec).root()
}

/// The cache id of a step's cache directory: one per spec (by name), step and directory,
/// and no two of those share one (`a` + `/b/c` and `a-b` + `/c` once both gave
/// `kiln-step-a-b-c`): the names, readable, then a hash of the three.
fn step_cache_id(spec: &str, step: &str, dir: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(format!("{spec}\0{step}\0{dir}"));
    format!("kiln-step-{spec}-{step}-{}", hex::encode(&hash[..8]))
}

/// The uid:gid for files owned by `owner` (root: none given, so 0:0).
fn owner_of(owner: AppOwner, user: &RuntimeUser) -> Option<Owner> {
    (owner == AppOwner::User && !user.is_root()).then_some(Owner {
        uid: user.uid,
        gid: user.gid,
    })
}

/// A context source that holds only `include`, without what `exclude` (`.dockerignore`)
/// leaves out (shared with the app's).
fn context_files(opts: &LowerOpts, include: Vec<String>, exclude: &[String], name: &str) -> State {
    llb::local(
        Local {
            name: opts.context.clone(),
            include,
            exclude: exclude.to_vec(),
            shared_key_hint: Some(opts.context.clone()),
            session_id: opts.session_id.clone(),
            ..Default::default()
        },
        Meta {
            name: Some(name.into()),
            ..Default::default()
        },
    )
}

/// The app's paths from their own context source (`.dockerignore` and `exclude` left
/// out) under `workdir`, owned by the runtime user.
fn app_layer(on: &State, app: &AppCopy, user: &RuntimeUser, opts: &LowerOpts, meta: Meta) -> State {
    let owner = owner_of(app.owner, user);
    let exclude = app.exclude.clone();
    let ctx = llb::local(
        Local {
            name: opts.context.clone(),
            include: app.src.clone(),
            exclude,
            shared_key_hint: Some(opts.context.clone()),
            session_id: opts.session_id.clone(),
            ..Default::default()
        },
        Meta {
            name: Some("app source".into()),
            ..Default::default()
        },
    );
    let mut ops = on
        .file(meta)
        .mkdir(&app.workdir, 0o755, true, owner.clone());
    for src in &app.src {
        let to = format!("{}/{src}", app.workdir.trim_end_matches('/'));
        ops = ops.copy(&ctx, &format!("/{src}"), &to, dir_copy(owner.clone()));
    }
    ops.done()
}

/// Where the verify exec writes its results, in its own result (read with `ReadFile`).
pub const VERIFY_RESULTS: &str = "/tmp/kiln-verify/results";

/// Every check on the image in one container, as the image's user, with its env and
/// workdir (`verify_script`). The exec succeeds when it could record the results; a check
/// that failed is read from them.
fn verify(image: &State, step: &VerifyStep, config: &Value, meta: Meta) -> State {
    let c = &config["config"];
    let env = config_env(config);
    let dir = VERIFY_RESULTS
        .rsplit_once('/')
        .map(|(d, _)| d)
        .unwrap_or("/tmp");
    let exec = Exec {
        args: vec![
            "/bin/sh".into(),
            "-c".into(),
            verify_script(&step.checks, dir),
        ],
        env,
        cwd: c["WorkingDir"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
            .to_string(),
        user: c["User"].as_str().unwrap_or("").to_string(),
        meta,
        ..Default::default()
    };
    image.run(exec).root()
}

/// The script that runs `checks`, all at once in the one container (they are independent,
/// as separate containers made them before; one start instead of one per check). Each
/// runs as `/bin/sh -c` in the background (in its own session when the image has
/// `setsid`, so a timeout kills what it started too) with a watchdog that kills it after
/// its timeout (no `timeout` binary needed); its status goes to `<dir>/results` as
/// `<index> <exit status>` or `<index> timeout` (one short append per line, in the order
/// they finish), and to the log as a `kiln-verify:` line. Exits 97 when it cannot write
/// `dir`, else 0 once every check has ended.
pub fn verify_script(checks: &[VerifyCheck], dir: &str) -> String {
    let mut script = format!(
        "out={dir}\n\
         mkdir -p \"$out\" && : >\"$out/results\" || {{ echo \"kiln-verify: cannot write $out\" >&2; exit 97; }}\n\
         setsid=$(command -v setsid || true)\n\
         check() {{\n\
         \x20 rm -f \"$out/timeout.$1\"\n\
         \x20 if [ -n \"$setsid\" ]; then setsid /bin/sh -c \"$3\" </dev/null & else /bin/sh -c \"$3\" </dev/null & fi\n\
         \x20 pid=$!\n\
         \x20 ( sleep \"$2\"; : >\"$out/timeout.$1\"; kill -9 -\"$pid\" || kill -9 \"$pid\" ) >/dev/null 2>&1 &\n\
         \x20 dog=$!\n\
         \x20 wait \"$pid\"; rc=$?\n\
         \x20 kill -9 \"$dog\" 2>/dev/null\n\
         \x20 if [ -e \"$out/timeout.$1\" ]; then rc=timeout; fi\n\
         \x20 echo \"$1 $rc\" >>\"$out/results\"\n\
         \x20 echo \"kiln-verify: [$1] $rc: $3\"\n\
         }}\n",
        dir = quote(dir)
    );
    for (i, c) in checks.iter().enumerate() {
        script.push_str(&format!(
            "check {} {} {} &\n",
            i + 1,
            c.timeout_s.max(1),
            quote(&c.command)
        ));
    }
    script.push_str("wait\nexit 0\n");
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verify script through a real `sh`: every check runs, each status is recorded
    /// by index, a check past its timeout is killed and recorded as `timeout`.
    #[test]
    fn verify_script_records_each_status_and_kills_at_the_timeout() {
        let dir = std::env::temp_dir().join(format!("kiln-verify-test-{}", std::process::id()));
        let check = |command: &str, timeout_s| VerifyCheck {
            kind: CheckKind::Command,
            command: command.into(),
            timeout_s,
        };
        let checks = [
            check("true", 5),
            check("echo 'it''s'; exit 3", 5),
            check("sleep 30", 1),
            check("no-such-command-kiln", 5),
        ];
        let script = verify_script(&checks, dir.to_str().unwrap());
        let started = std::time::Instant::now();
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the sleep was killed"
        );
        let results = std::fs::read_to_string(dir.join("results")).unwrap();
        let mut lines: Vec<&str> = results.lines().collect();
        lines.sort();
        assert_eq!(lines, ["1 0", "2 3", "3 timeout", "4 127"]);
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(
            log.contains("kiln-verify: [2] 3: echo 'it''s'; exit 3"),
            "{log}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
