//! The image of a variant: the runtime branch, the user, the venv (whole, or as layers),
//! what builder steps output and the app, as independent layers merged where the engine
//! has MergeOp, else as chained copies.

use super::{LowerOpts, context_source, prefixed, sh};
use crate::llb::{self, CopyOpts, Exec, Meta, Owner, State};
use crate::plan::config::DEFAULT_PATH;
use crate::plan::shell::quote;
use crate::plan::{AppCopy, FinalStep, RuntimeUser};
use crate::spec::{AppOwner, StepOutput};

/// The venv the image takes.
pub(super) enum Venv {
    /// Copied whole from its stage, with the checks the image waits for (their empty
    /// verdicts copied in after it).
    Whole { venv: State, checks: Vec<State> },
    /// As layers (the plan layers only for engines with MergeOp and DiffOp): the empty
    /// venv, the checks the image waits for, and the package layers in the order they are
    /// stacked (largest first, as the plan orders them).
    Layers {
        empty: State,
        checks: Vec<State>,
        layers: Vec<State>,
    },
}

/// The app's project, installed into a prefix of its own: copied into the venv after
/// the venv's own layers, with the verdicts of its checks.
pub(super) struct Project {
    pub prefix: State,
    pub checks: Vec<State>,
}

/// What the image takes from the builder: the venv, the project and what each builder
/// step declared as `outputs`.
pub(super) struct FromBuilder<'a> {
    pub venv: Venv,
    pub project: Option<Project>,
    pub outputs: &'a [(State, &'a [StepOutput])],
}

/// The image: the runtime branch, the user, the venv (root-owned), the project (into the
/// venv, root-owned) and the app, with MergeOp as independent layers where the engine has
/// it (always for a layered venv), else as chained copies. Either way an edit to the app
/// or the project changes their layers alone.
pub(super) fn final_image(
    runtime: &State,
    from: FromBuilder,
    step: &FinalStep,
    (opts, epoch): (&LowerOpts, Option<u64>),
    meta: Meta,
) -> State {
    let FromBuilder {
        venv,
        project,
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
    let venv_layer = |on: &State, venv: &State, checks: &[State]| {
        let mut ops = on
            .file(named("venv"))
            .copy(venv, &step.venv, &step.venv, dir_copy(None));
        for c in checks {
            ops = ops.copy(c, "/", &step.venv, dir_copy(None));
        }
        ops.done()
    };
    let project_layer = |on: &State| match &project {
        Some(p) => {
            super::project::into_venv(on, &p.prefix, &p.checks, &step.venv, named("project"))
        }
        None => on.clone(),
    };
    let app_layer = |on: &State| match &step.app {
        Some(app) => app_layer(on, app, &step.user, opts, named("app")),
        None => on.clone(),
    };
    // Independent layers: a new runtime package does not recopy the venv or the app;
    // with a layered venv, a new requirement adds its own layer and moves no other.
    let mut layers = vec![with_user];
    match venv {
        Venv::Whole { venv, checks } if !opts.caps.merge_layers() => {
            return app_layer(&project_layer(&venv_layer(&layers[0], &venv, &checks)));
        }
        Venv::Whole { venv, checks } => layers.push(venv_layer(&llb::scratch(), &venv, &checks)),
        Venv::Layers {
            empty,
            checks,
            layers: packages,
        } => {
            // The empty venv, and each check's (empty) verdict: the image waits for them.
            let mut base = llb::scratch().file(named("venv")).copy(
                &empty,
                &step.venv,
                &step.venv,
                dir_copy(None),
            );
            for c in &checks {
                base = base.copy(c, "/", &step.venv, dir_copy(None));
            }
            layers.push(base.done());
            layers.extend(packages);
        }
    }
    if project.is_some() {
        layers.push(project_layer(&llb::scratch()));
    }
    layers.push(app_layer(&llb::scratch()));
    llb::merge(&layers, named("merge"))
}

/// A directory's contents copied to the same layout, owned by `owner` (root when `None`).
pub(super) fn dir_copy(owner: Option<Owner>) -> CopyOpts {
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
pub(super) fn user_layer(
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
pub(super) fn files_layer(on: &State, step: &FinalStep, opts: &LowerOpts, meta: Meta) -> State {
    if step.files.is_empty() {
        return on.clone();
    }
    let mut include: Vec<String> = step.files.iter().map(|f| f.src.clone()).collect();
    include.sort();
    include.dedup();
    let ctx = context_source(
        opts,
        (include, step.dockerignore.clone()),
        "",
        "files source",
    );
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
pub(super) fn outputs_layer(on: &State, outputs: &[(State, &[StepOutput])], meta: Meta) -> State {
    let mut ops = on.file(meta);
    for (state, list) in outputs {
        for o in list.iter() {
            ops = ops.copy(state, &o.from, &o.to, dir_copy(None));
        }
    }
    ops.done()
}

/// The uid:gid for files owned by `owner` (root: none given, so 0:0).
pub(super) fn owner_of(owner: AppOwner, user: &RuntimeUser) -> Option<Owner> {
    (owner == AppOwner::User && !user.is_root()).then_some(Owner {
        uid: user.uid,
        gid: user.gid,
    })
}

/// The app's paths from their own context source (`.dockerignore` and `exclude` left
/// out) under `workdir`, owned by the runtime user.
pub(super) fn app_layer(
    on: &State,
    app: &AppCopy,
    user: &RuntimeUser,
    opts: &LowerOpts,
    meta: Meta,
) -> State {
    let owner = owner_of(app.owner, user);
    let ctx = context_source(
        opts,
        (app.src.clone(), app.exclude.clone()),
        "",
        "app source",
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
