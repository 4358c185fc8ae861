//! Stages to LLB: one function per stage kind, each a few chained `llb` calls.

use std::collections::BTreeMap;

use serde_json::Value;

use super::config::{base_env, config_env, image_config};
use super::shell::{join, quote};
use super::{AptRole, Plan, Stage, StageKind};
use crate::llb::{self, CopyOpts, Exec, Local, Meta, Mount, Owner, Sharing, SourceLoc, State, pb};
use crate::spec::validate::normalize_image;
use crate::spec::{Installer, Pip, S, Spec};

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Where build secrets and requirement files appear inside build steps.
const CA_PATH: &str = "/run/secrets/kiln-ca.pem";
const NETRC_PATH: &str = "/root/.netrc";
const REQ_MOUNT: &str = "/kiln/req";
/// uv lives in its own venv in the builder, on PATH for every step that uses it.
const UV_HOME: &str = "/opt/kiln-uv";
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
    /// Patterns from the context's .dockerignore.
    pub dockerignore: Vec<String>,
    /// Layer venv and app with MergeOp (engines with the `mergeop` cap) instead of copies.
    pub merge: bool,
    pub no_cache: bool,
    /// `--label` from the build command.
    pub labels: BTreeMap<String, String>,
}

impl LowerOpts {
    pub fn offline(platform: pb::Platform) -> Self {
        LowerOpts {
            platform,
            images: BTreeMap::new(),
            context: "context".into(),
            session_id: None,
            dockerignore: vec![],
            merge: false,
            no_cache: false,
            labels: BTreeMap::new(),
        }
    }
}

pub struct Lowered {
    /// The final image of each variant.
    pub images: BTreeMap<String, State>,
    /// Each variant's verify steps, in order, with the spec command they run.
    pub verify: BTreeMap<String, Vec<(S<String>, State)>>,
    pub configs: BTreeMap<String, Value>,
}

pub fn lower(spec: &Spec, plan: &Plan, opts: &LowerOpts) -> Lowered {
    let mut states: Vec<State> = Vec::with_capacity(plan.stages.len());
    let mut configs = BTreeMap::new();
    for stage in &plan.stages {
        let parent = stage.parent.map(|p| states[p].clone()).unwrap_or_default();
        let base = base_of(plan, stage);
        let info = image_info(opts, &base);
        let env = base_env(&info.config);
        let meta = Meta {
            name: Some(format!(
                "{} ({}:{})",
                stage.label(),
                spec.files[stage.loc.file as usize].name,
                stage.loc.line
            )),
            ignore_cache: opts.no_cache,
            loc: (stage.loc.line > 0).then_some(SourceLoc {
                file: stage.loc.file,
                line: stage.loc.line,
            }),
        };
        let state = match &stage.kind {
            StageKind::Base { .. } => {
                llb::image(&info.reference, Some(opts.platform.clone()), meta)
            }
            StageKind::Apt { role, packages } => apt(&parent, *role, packages, &env, meta),
            StageKind::Python {
                version,
                installer,
                uv_version,
                venv,
            } => python(
                spec,
                &parent,
                version.as_ref(),
                *installer,
                uv_version,
                venv,
                &env,
                meta,
            ),
            StageKind::Install {
                group,
                files,
                packages,
                pip,
                installer,
                venv,
            } => {
                let g = Group {
                    name: group,
                    files,
                    packages,
                };
                let on = match stage.deps.first() {
                    Some(python) => {
                        toolchain_into(&parent, &states[*python], *installer, venv, &meta)
                    }
                    None => parent,
                };
                install(spec, opts, &on, &g, pip, *installer, venv, &env, meta)
            }
            StageKind::Final { variant } => {
                let v = spec.variant(variant).expect("planned variants exist");
                let venv_state = states[stage.deps[0]].clone();
                configs.insert(
                    variant.clone(),
                    image_config(spec, v, &info.config, &opts.platform, &opts.labels),
                );
                final_image(
                    spec,
                    opts,
                    variant,
                    &parent,
                    &venv_state,
                    &v.python.venv,
                    meta,
                )
            }
            StageKind::Verify { variant, command } => {
                let cfg = &configs[variant];
                verify(&parent, command, cfg, meta)
            }
        };
        states.push(state);
    }
    let mut images = BTreeMap::new();
    let mut verify = BTreeMap::new();
    for t in &plan.targets {
        images.insert(t.variant.clone(), states[t.image].clone());
        let steps = t
            .verify
            .iter()
            .map(|id| match &plan.stage(*id).kind {
                StageKind::Verify { command, .. } => (command.clone(), states[*id].clone()),
                _ => unreachable!("verify ids point at verify stages"),
            })
            .collect();
        verify.insert(t.variant.clone(), steps);
    }
    Lowered {
        images,
        verify,
        configs,
    }
}

/// The base image a stage ultimately stands on.
fn base_of(plan: &Plan, stage: &Stage) -> String {
    let mut s = stage;
    loop {
        if let StageKind::Base { image } = &s.kind {
            return image.clone();
        }
        s = plan.stage(s.parent.expect("every stage but a base has a parent"));
    }
}

fn image_info(opts: &LowerOpts, base: &str) -> ImageInfo {
    opts.images.get(base).cloned().unwrap_or_else(|| ImageInfo {
        reference: normalize_image(base),
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

fn apt(parent: &State, role: AptRole, packages: &[S<String>], env: &[String], meta: Meta) -> State {
    let pkgs: Vec<String> = packages.iter().map(|p| p.v.clone()).collect();
    // Debian images ship a hook that empties /var/cache/apt after every install, which
    // would defeat the cache mount: move it aside for this step and put it back.
    let script = format!(
        "set -eu\n\
         hook=/etc/apt/apt.conf.d/docker-clean\n\
         if [ -e \"$hook\" ]; then mv \"$hook\" /tmp/kiln-docker-clean; fi\n\
         apt-get update -qq\n\
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends {}\n\
         if [ -e /tmp/kiln-docker-clean ]; then mv /tmp/kiln-docker-clean \"$hook\"; fi\n\
         rm -rf /var/log/apt/* /var/log/dpkg.log /var/cache/debconf/*-old\n",
        join(&pkgs)
    );
    // apt cannot share its cache with a second apt at once, so the mounts are locked; one
    // pair per role, so the build branch (on the critical path) never waits for the
    // runtime branch's apt, which BuildKit runs at the same time.
    let role = match role {
        AptRole::Build => "build",
        AptRole::Runtime => "runtime",
    };
    let mounts = vec![
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
    ];
    parent.run(sh(script, env.to_vec(), mounts, meta)).root()
}

/// Secret mounts and the shell lines that use them when present (both are optional, so a
/// build without `--secret` still works where no CA or credentials are needed).
fn secret_setup(spec: &Spec) -> (Vec<Mount>, String) {
    let mut mounts = vec![];
    let mut script = String::new();
    if let Some(id) = &spec.secrets.ca_bundle {
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
    if let Some(id) = &spec.secrets.netrc {
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

fn pip_cache() -> Mount {
    Mount::Cache {
        dest: "/root/.cache/pip".into(),
        id: "kiln-pip".into(),
        sharing: Sharing::Shared,
    }
}

fn uv_cache() -> Mount {
    Mount::Cache {
        dest: "/root/.cache/uv".into(),
        id: "kiln-uv".into(),
        sharing: Sharing::Shared,
    }
}

fn installer_env(env: &[String], installer: Installer, pip: Option<&Pip>) -> Vec<String> {
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

#[allow(clippy::too_many_arguments)]
fn python(
    spec: &Spec,
    parent: &State,
    version: Option<&S<String>>,
    installer: Installer,
    uv_version: &str,
    venv: &str,
    env: &[String],
    meta: Meta,
) -> State {
    let mut script = String::from("set -eu\n");
    script.push_str("PY=$(command -v python3 || command -v python || true)\n");
    script.push_str("if [ -z \"$PY\" ]; then echo 'kiln: the base image has no python3; use a Python base such as python:3.12-slim' >&2; exit 1; fi\n");
    if let Some(v) = version {
        // No spec position in the script: op bytes must not change when lines move (the
        // step's progress name carries the position instead).
        script
            .push_str("have=$(\"$PY\" -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])')\n");
        script.push_str(&format!(
            "if [ \"$have\" != {want} ]; then echo \"kiln: base has Python $have, spec wants {v} (python.version); pick a base image with Python {v} or change python.version\" >&2; exit 1; fi\n",
            want = quote(&v.v),
            v = v.v,
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
    let (mut mounts, secret_script) = secret_setup(spec);
    mounts.push(pip_cache());
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
    parent
        .run(sh(
            script,
            installer_env(env, installer, None),
            mounts,
            meta,
        ))
        .root()
}

/// The builder with the venv (and uv) made beside it copied in. Same paths, so the venv's
/// absolute links to the base's interpreter still hold: the builder stands on that base.
fn toolchain_into(
    builder: &State,
    python: &State,
    installer: Installer,
    venv: &str,
    meta: &Meta,
) -> State {
    let copy = CopyOpts {
        contents_only: true,
        create_dest_path: true,
        ..Default::default()
    };
    let mut ops = builder
        .file(Meta {
            name: Some(format!("venv {venv} into the builder")),
            ignore_cache: meta.ignore_cache,
            loc: meta.loc.clone(),
        })
        .copy(python, venv, venv, copy.clone());
    if installer == Installer::Uv {
        ops = ops.copy(python, UV_HOME, UV_HOME, copy);
    }
    ops.done()
}

struct Group<'a> {
    name: &'a str,
    files: &'a [String],
    packages: &'a [String],
}

#[allow(clippy::too_many_arguments)]
fn install(
    spec: &Spec,
    opts: &LowerOpts,
    parent: &State,
    g: &Group,
    pip: &Pip,
    installer: Installer,
    venv: &str,
    env: &[String],
    meta: Meta,
) -> State {
    // Only this group's files (and the constraints) enter the step, through their own
    // local source: editing the app or another group's file does not rerun it.
    let mut include: Vec<String> = g.files.to_vec();
    if let Some(c) = &pip.constraints {
        include.push(c.v.clone());
    }
    let (mut mounts, secret_script) = secret_setup(spec);
    if !include.is_empty() {
        let req = llb::local(
            Local {
                name: opts.context.clone(),
                include,
                shared_key_hint: Some(format!("{}-requirements-{}", opts.context, g.name)),
                session_id: opts.session_id.clone(),
                ..Default::default()
            },
            Meta {
                name: Some(format!("requirements: {}", g.name)),
                ..Default::default()
            },
        );
        mounts.push(Mount::Bind {
            dest: REQ_MOUNT.into(),
            src: req,
            selector: None,
            readonly: true,
        });
    }
    let python = format!("{venv}/bin/python");
    let mut args: Vec<String> = vec![];
    if let Some(u) = &pip.index_url {
        args.extend(["--index-url".into(), u.clone()]);
    }
    for u in &pip.extra_index_urls {
        args.extend(["--extra-index-url".into(), u.clone()]);
    }
    if let Some(c) = &pip.constraints {
        args.extend(["-c".into(), format!("{REQ_MOUNT}/{}", c.v)]);
    }
    for f in g.files {
        args.extend(["-r".into(), format!("{REQ_MOUNT}/{f}")]);
    }
    args.extend(g.packages.iter().cloned());
    let (install, check) = match installer {
        Installer::Pip => {
            mounts.push(pip_cache());
            (
                format!(
                    "{} -m pip install --timeout {} --retries {} {}",
                    quote(&python),
                    pip.timeout,
                    pip.retries,
                    join(&args)
                ),
                format!("{} -m pip check", quote(&python)),
            )
        }
        Installer::Uv => {
            mounts.push(uv_cache());
            (
                format!("uv pip install --python {} {}", quote(&python), join(&args)),
                format!("uv pip check --python {}", quote(&python)),
            )
        }
    };
    let mut script = format!("set -eu\n{secret_script}{install}\n");
    if pip.check {
        script.push_str(&format!("{check}\n"));
    }
    parent
        .run(sh(
            script,
            installer_env(env, installer, Some(pip)),
            mounts,
            meta,
        ))
        .root()
}

fn final_image(
    spec: &Spec,
    opts: &LowerOpts,
    variant: &str,
    runtime: &State,
    venv_state: &State,
    venv: &str,
    meta: Meta,
) -> State {
    let user = &spec.user;
    let owner = (!user.is_root()).then(|| Owner {
        uid: user.uid,
        gid: user.gid,
    });
    let named = |what: &str| Meta {
        name: Some(format!("[{variant}] {what}")),
        ..meta.clone()
    };

    // The runtime user, made with the base's own tools (no network needed).
    let with_user = if user.is_root() {
        runtime.clone()
    } else {
        let script = format!(
            "set -eu\n\
             getent group {gid} >/dev/null || groupadd --gid {gid} {name}\n\
             id -u {name} >/dev/null 2>&1 || useradd --uid {uid} --gid {gid} --create-home --home-dir /home/{name} --shell /usr/sbin/nologin {name}\n",
            gid = user.gid,
            uid = user.uid,
            name = quote(&user.name),
        );
        let exec = Exec {
            network_none: true,
            ..sh(
                script,
                vec![format!("PATH={DEFAULT_PATH}")],
                vec![],
                named(&format!("user {} {}:{}", user.name, user.uid, user.gid)),
            )
        };
        runtime.run(exec).root()
    };

    let dir_copy = CopyOpts {
        contents_only: true,
        create_dest_path: true,
        allow_wildcard: true,
        ..Default::default()
    };
    // The venv is owned by root: the app may read it, not change it.
    let venv_layer = |on: &State| {
        on.file(named("venv"))
            .copy(venv_state, venv, venv, dir_copy.clone())
            .done()
    };
    let app_layer = |on: &State| -> State {
        let Some(app) = &spec.app else {
            return on.clone();
        };
        let mut exclude = opts.dockerignore.clone();
        exclude.extend(app.exclude.iter().cloned());
        let ctx = llb::local(
            Local {
                name: opts.context.clone(),
                include: app.src.iter().map(|s| s.v.clone()).collect(),
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
            .file(named("app"))
            .mkdir(&app.workdir, 0o755, true, owner.clone());
        for src in &app.src {
            let to = format!("{}/{}", app.workdir.trim_end_matches('/'), src.v);
            ops = ops.copy(
                &ctx,
                &format!("/{}", src.v),
                &to,
                CopyOpts {
                    owner: owner.clone(),
                    ..dir_copy.clone()
                },
            );
        }
        ops.done()
    };
    if opts.merge {
        // Independent layers: a new runtime package does not recopy the venv or the app.
        llb::merge(
            &[
                with_user,
                venv_layer(&llb::scratch()),
                app_layer(&llb::scratch()),
            ],
            named("merge"),
        )
    } else {
        app_layer(&venv_layer(&with_user))
    }
}

fn verify(image: &State, command: &S<String>, config: &Value, meta: Meta) -> State {
    let c = &config["config"];
    let env = config_env(config);
    let exec = Exec {
        args: vec!["/bin/sh".into(), "-c".into(), command.v.clone()],
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

/// One variant, ready for BuildKit: its definition, image config and verify definitions.
pub struct Built {
    pub def: pb::Definition,
    pub config: Value,
    pub verify: Vec<(S<String>, pb::Definition)>,
}

/// Plan, lower and marshal one target (the spec's default variant when `None`).
pub fn build(
    spec: &Spec,
    target: Option<&str>,
    opts: &LowerOpts,
) -> Result<Built, crate::diag::Diagnostic> {
    let target = target
        .filter(|t| !t.is_empty())
        .unwrap_or(&spec.default_variant)
        .to_string();
    let plan = Plan::new(spec, std::slice::from_ref(&target))?;
    let mut lowered = lower(spec, &plan, opts);
    let image = lowered
        .images
        .remove(&target)
        .expect("the planned target is lowered");
    let verify = lowered.verify.remove(&target).unwrap_or_default();
    Ok(Built {
        def: llb::marshal(&image, &spec.files),
        config: lowered
            .configs
            .remove(&target)
            .expect("every target has a config"),
        verify: verify
            .into_iter()
            .map(|(c, s)| (c, llb::marshal(&s, &spec.files)))
            .collect(),
    })
}

/// `linux/amd64`, `linux/arm64/v8` -> Platform.
pub fn parse_platform(s: &str) -> Result<pb::Platform, String> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    };
    match parts.as_slice() {
        [os, arch] if ok(os) && ok(arch) => Ok(llb::platform(os, arch, "")),
        [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => {
            Ok(llb::platform(os, arch, variant))
        }
        _ => Err(format!(
            "invalid platform `{s}`: write os/arch[/variant], e.g. linux/amd64"
        )),
    }
}

/// The platform this process runs on, in BuildKit's names.
pub fn host_platform() -> pb::Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    llb::platform("linux", arch, if arch == "arm64" { "v8" } else { "" })
}

/// `.dockerignore` lines as exclude patterns (comments and blanks dropped).
pub fn parse_dockerignore(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches("./")
                .trim_start_matches('/')
                .to_string()
        })
        .filter(|l| !l.is_empty())
        .collect()
}
