//! From a checked spec to a graph of stages: what runs where, what is shared.
//!
//! Stages are memoised by their content and parent, so a base image, an apt step or a
//! requirement group that several variants need appears once and BuildKit runs it once.

pub mod config;
pub mod graph;
pub mod lower;
pub mod shell;

use std::collections::BTreeMap;

use crate::diag::{Diagnostic, Loc, did_you_mean};
use crate::spec::{Installer, Pip, S, Spec};

pub type StageId = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AptRole {
    /// Build tools and headers: builder branch only.
    Build,
    /// Shared libraries the final image needs.
    Runtime,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StageKind {
    /// The Python base image, as written in the spec (resolved and pinned when lowered).
    Base { image: String },
    /// `apt-get install` with cache mounts.
    Apt {
        role: AptRole,
        packages: Vec<S<String>>,
    },
    /// Check the interpreter version, create the venv, install the installer (uv).
    Python {
        version: Option<S<String>>,
        installer: Installer,
        uv_version: String,
        venv: String,
    },
    /// Install one requirement group into the venv, on top of the previous group (the
    /// first group: on the builder, with the Python stage's venv copied in from `deps`).
    Install {
        group: String,
        files: Vec<String>,
        packages: Vec<String>,
        pip: Pip,
        installer: Installer,
        venv: String,
    },
    /// The image of one variant: runtime branch + venv + user + app + config.
    Final { variant: String },
    /// `verify` commands against a finished image (not part of the image).
    Verify { variant: String, command: S<String> },
}

#[derive(Clone, Debug)]
pub struct Stage {
    pub id: StageId,
    pub kind: StageKind,
    /// The filesystem this stage starts from.
    pub parent: Option<StageId>,
    /// Other stages it reads from (the venv for a final image).
    pub deps: Vec<StageId>,
    pub loc: Loc,
}

impl Stage {
    /// A short label for progress output and graphs.
    pub fn label(&self) -> String {
        match &self.kind {
            StageKind::Base { image } => format!("base {image}"),
            StageKind::Apt {
                role: AptRole::Build,
                packages,
            } => format!("apt build: {}", names(packages)),
            StageKind::Apt {
                role: AptRole::Runtime,
                packages,
            } => format!("apt runtime: {}", names(packages)),
            StageKind::Python {
                version,
                installer,
                venv,
                ..
            } => {
                let v = version
                    .as_ref()
                    .map(|v| format!(" {} check,", v.v))
                    .unwrap_or_default();
                let tool = if *installer == Installer::Uv {
                    " + uv"
                } else {
                    ""
                };
                format!("python:{v} venv {venv}{tool}")
            }
            StageKind::Install {
                group, installer, ..
            } => {
                format!(
                    "{} install: {group}",
                    if *installer == Installer::Uv {
                        "uv"
                    } else {
                        "pip"
                    }
                )
            }
            StageKind::Final { variant } => format!("image {variant}"),
            StageKind::Verify { variant, command } => format!("verify {variant}: {}", command.v),
        }
    }
}

fn names(p: &[S<String>]) -> String {
    p.iter().map(|s| s.v.as_str()).collect::<Vec<_>>().join(" ")
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
    pub verify: Vec<StageId>,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub stages: Vec<Stage>,
    pub targets: Vec<Target>,
}

impl Plan {
    /// The plan for the named variants (all of them when `variants` is empty).
    pub fn new(spec: &Spec, variants: &[String]) -> Result<Plan, Diagnostic> {
        let names: Vec<String> = if variants.is_empty() {
            spec.variants.iter().map(|v| v.name.v.clone()).collect()
        } else {
            variants.to_vec()
        };
        let mut b = Builder {
            stages: vec![],
            memo: BTreeMap::new(),
        };
        let mut targets = vec![];
        for name in &names {
            let Some(v) = spec.variant(name) else {
                let known: Vec<&str> = spec.variants.iter().map(|v| v.name.v.as_str()).collect();
                let help = match did_you_mean(name, known.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? targets: {}", known.join(", ")),
                    None => format!("targets are the variant names: {}", known.join(", ")),
                };
                return Err(Diagnostic::error(
                    Loc::default(),
                    format!("unknown target `{name}`"),
                    help,
                ));
            };
            let base = b.add(
                StageKind::Base {
                    image: v.python.base.v.clone(),
                },
                None,
                vec![],
                v.python.base.loc,
            );
            let runtime = if v.runtime_packages.is_empty() {
                base
            } else {
                let loc = v.runtime_packages[0].loc;
                b.add(
                    StageKind::Apt {
                        role: AptRole::Runtime,
                        packages: v.runtime_packages.clone(),
                    },
                    Some(base),
                    vec![],
                    loc,
                )
            };
            let builder = if v.build_packages.is_empty() {
                base
            } else {
                let loc = v.build_packages[0].loc;
                b.add(
                    StageKind::Apt {
                        role: AptRole::Build,
                        packages: v.build_packages.clone(),
                    },
                    Some(base),
                    vec![],
                    loc,
                )
            };
            let py = &v.python;
            let py_loc = py.version.as_ref().map(|s| s.loc).unwrap_or(py.base.loc);
            // The venv (and uv) are made on the base, beside the build packages rather than
            // after them: the first install copies them into the builder.
            let python = b.add(
                StageKind::Python {
                    version: py.version.clone(),
                    installer: py.installer,
                    uv_version: py.uv_version.clone(),
                    venv: py.venv.clone(),
                },
                Some(base),
                vec![],
                py_loc,
            );
            let mut venv = python;
            for (i, g) in v.groups.iter().enumerate() {
                let group = spec
                    .group(&g.v)
                    .expect("variant groups are checked at load");
                let kind = StageKind::Install {
                    group: g.v.clone(),
                    files: group.files.iter().map(|f| f.v.clone()).collect(),
                    packages: group.packages.iter().map(|p| p.v.clone()).collect(),
                    pip: v.pip.clone(),
                    installer: py.installer,
                    venv: py.venv.clone(),
                };
                venv = if i == 0 && builder != base {
                    b.add(kind, Some(builder), vec![python], group.name.loc)
                } else {
                    b.add(kind, Some(venv), vec![], group.name.loc)
                };
            }
            let image = b.add(
                StageKind::Final {
                    variant: name.clone(),
                },
                Some(runtime),
                vec![venv],
                v.name.loc,
            );
            // Each verify command runs on the image itself, so they can run at once.
            let verify = spec
                .verify
                .iter()
                .map(|c| {
                    b.add(
                        StageKind::Verify {
                            variant: name.clone(),
                            command: c.clone(),
                        },
                        Some(image),
                        vec![],
                        c.loc,
                    )
                })
                .collect();
            targets.push(Target {
                variant: name.clone(),
                base,
                runtime,
                venv,
                image,
                verify,
            });
        }
        Ok(Plan {
            stages: b.stages,
            targets,
        })
    }

    pub fn stage(&self, id: StageId) -> &Stage {
        &self.stages[id]
    }
}

struct Builder {
    stages: Vec<Stage>,
    /// Content + parent -> stage, so equal work is planned once.
    memo: BTreeMap<String, StageId>,
}

impl Builder {
    fn add(
        &mut self,
        kind: StageKind,
        parent: Option<StageId>,
        deps: Vec<StageId>,
        loc: Loc,
    ) -> StageId {
        // Locations are not part of the identity: the same work written twice is one stage.
        let key = format!("{:?}|{:?}|{:?}", strip_locs(&kind), parent, deps);
        if let Some(id) = self.memo.get(&key) {
            return *id;
        }
        let id = self.stages.len();
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
}

fn strip_locs(kind: &StageKind) -> String {
    match kind {
        StageKind::Apt { role, packages } => format!("Apt {role:?} {}", names(packages)),
        StageKind::Python {
            version,
            installer,
            uv_version,
            venv,
        } => {
            format!(
                "Python {:?} {installer:?} {uv_version} {venv}",
                version.as_ref().map(|v| &v.v)
            )
        }
        StageKind::Verify { variant, command } => format!("Verify {variant} {}", command.v),
        other => format!("{other:?}"),
    }
}
