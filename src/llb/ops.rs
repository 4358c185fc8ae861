use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use bollard_buildkit_proto::pb;

use super::caps::{self, Cap};

/// BuildKit's "no input" / "no output" index.
const NONE: i64 = -1;

/// A position in a spec file an op came from (1-based line; file index into the spec's files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceLoc {
    pub file: u16,
    pub line: u32,
}

/// Per-op metadata: progress name, cache control, source location. Caps are derived
/// from the op itself when it is built.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    pub name: Option<String>,
    pub ignore_cache: bool,
    pub loc: Option<SourceLoc>,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Source(pb::SourceOp),
    Exec(Box<pb::ExecOp>),
    File(pb::FileOp),
    Merge(pb::MergeOp),
    Diff(pb::DiffOp),
}

#[derive(Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    pub inputs: Vec<Output>,
    pub platform: Option<pb::Platform>,
    pub meta: Meta,
    pub caps: BTreeSet<Cap>,
}

/// Dropping a graph thousands of ops deep must not recurse as deep: the inputs only this
/// node holds are taken apart in a loop.
impl Drop for Node {
    fn drop(&mut self) {
        let mut next = std::mem::take(&mut self.inputs);
        while let Some(o) = next.pop() {
            if let Ok(mut node) = Rc::try_unwrap(o.node) {
                next.append(&mut node.inputs);
            }
        }
    }
}

/// One output of one op.
#[derive(Clone, Debug)]
pub struct Output {
    pub(crate) node: Rc<Node>,
    pub(crate) index: i64,
}

/// A filesystem in the graph; `None` is the empty filesystem (scratch).
#[derive(Clone, Debug, Default)]
pub struct State {
    pub(crate) out: Option<Output>,
}

pub fn scratch() -> State {
    State { out: None }
}

fn node(
    kind: Kind,
    inputs: Vec<Output>,
    platform: Option<pb::Platform>,
    meta: Meta,
    caps: BTreeSet<Cap>,
) -> Output {
    Output {
        node: Rc::new(Node {
            kind,
            inputs,
            platform,
            meta,
            caps,
        }),
        index: 0,
    }
}

/// `docker-image://` source. `reference` must already be normalised (`docker.io/library/x:y`).
pub fn image(reference: &str, platform: Option<pb::Platform>, meta: Meta) -> State {
    image_with_attrs(reference, platform, BTreeMap::new(), meta)
}

/// `image` with `attrs` in the op as they are (and so in its digest); BuildKit ignores
/// attrs it does not know.
pub fn image_with_attrs(
    reference: &str,
    platform: Option<pb::Platform>,
    attrs: BTreeMap<String, String>,
    meta: Meta,
) -> State {
    let op = pb::SourceOp {
        identifier: format!("docker-image://{reference}"),
        attrs,
    };
    State {
        out: Some(node(
            Kind::Source(op),
            vec![],
            platform,
            meta,
            BTreeSet::from([caps::SOURCE_IMAGE]),
        )),
    }
}

/// A file fetched over HTTP(S) by the engine itself, checked against `sha256` (64 hex
/// digits): BuildKit keys it by that checksum, so a file it has is never fetched again,
/// and a changed file fails the build. The state holds one file, `/FILENAME`, mode 0644.
/// `extra` attrs go in the op as they are (see `image_with_attrs`).
pub fn http(
    url: &str,
    (sha256, filename): (&str, &str),
    extra: BTreeMap<String, String>,
    meta: Meta,
) -> State {
    let mut attrs = extra;
    attrs.insert("http.checksum".into(), format!("sha256:{sha256}"));
    attrs.insert("http.filename".into(), filename.into());
    let op = pb::SourceOp {
        identifier: url.to_string(),
        attrs,
    };
    State {
        out: Some(node(
            Kind::Source(op),
            vec![],
            None,
            meta,
            BTreeSet::from([caps::SOURCE_HTTP, caps::SOURCE_HTTP_CHECKSUM]),
        )),
    }
}

/// A directory the client sends (`--local NAME=dir`, or docker build's context).
#[derive(Clone, Debug, Default)]
pub struct Local {
    pub name: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub follow_paths: Vec<String>,
    pub shared_key_hint: Option<String>,
    pub session_id: Option<String>,
    /// `local.differ=none`: always resend (only where the engine has the cap).
    pub differ_none: bool,
}

pub fn local(l: Local, meta: Meta) -> State {
    let mut attrs = BTreeMap::new();
    let mut caps = BTreeSet::from([caps::SOURCE_LOCAL]);
    let json = |v: &Vec<String>| serde_json::to_string(v).expect("string list serialises");
    if !l.include.is_empty() {
        attrs.insert("local.includepattern".into(), json(&l.include));
        caps.insert(caps::SOURCE_LOCAL_INCLUDE_PATTERNS);
    }
    if !l.exclude.is_empty() {
        attrs.insert("local.excludepatterns".into(), json(&l.exclude));
        caps.insert(caps::SOURCE_LOCAL_EXCLUDE_PATTERNS);
    }
    if !l.follow_paths.is_empty() {
        attrs.insert("local.followpaths".into(), json(&l.follow_paths));
        caps.insert(caps::SOURCE_LOCAL_FOLLOW_PATHS);
    }
    if let Some(h) = l.shared_key_hint {
        attrs.insert("local.sharedkeyhint".into(), h);
        caps.insert(caps::SOURCE_LOCAL_SHARED_KEY_HINT);
    }
    if let Some(s) = l.session_id {
        attrs.insert("local.session".into(), s);
        caps.insert(caps::SOURCE_LOCAL_SESSION_ID);
    }
    if l.differ_none {
        attrs.insert("local.differ".into(), "none".into());
        caps.insert(caps::SOURCE_LOCAL_DIFFER);
    }
    let op = pb::SourceOp {
        identifier: format!("local://{}", l.name),
        attrs,
    };
    State {
        out: Some(node(Kind::Source(op), vec![], None, meta, caps)),
    }
}

/// How concurrent steps share one cache mount (BuildKit's `CacheSharingOpt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// Used by several steps at once (pip's and uv's caches lock their own files).
    Shared,
    /// One step at a time; others wait (apt's cache and lists).
    Locked,
}

#[derive(Clone, Debug)]
pub enum Mount {
    /// Another state mounted read-only at `dest`: the step can read it, not change it,
    /// and it leaves nothing in the step's result.
    Bind { dest: String, src: State },
    /// One directory (`dir`, absolute) of another state mounted read-only at `dest`
    /// (BuildKit's mount selector): a venv at its own path, without the rest of the
    /// filesystem it was made in.
    BindDir {
        dest: String,
        src: State,
        dir: String,
    },
    /// A persistent cache directory shared between builds (`id` names it).
    Cache {
        dest: String,
        id: String,
        sharing: Sharing,
    },
    /// An empty, writable directory whose contents become an output of the step (see
    /// `ExecState::scratch`): a file a step makes for another step, without a layer.
    Scratch { dest: String },
    /// A build secret as a file; never stored in a layer or the definition.
    Secret {
        dest: String,
        id: String,
        optional: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

impl Mount {
    fn dest(&self) -> &str {
        match self {
            Mount::Bind { dest, .. }
            | Mount::BindDir { dest, .. }
            | Mount::Cache { dest, .. }
            | Mount::Scratch { dest }
            | Mount::Secret { dest, .. } => dest,
        }
    }

    /// This mount as an ExecOp mount; a bind's source joins `inputs`, and the caps it
    /// needs join `caps`. `output` is the index a scratch mount's result gets.
    fn encode(&self, inputs: &mut Vec<Output>, caps: &mut BTreeSet<Cap>, output: i64) -> pb::Mount {
        match self {
            Mount::Scratch { dest } => {
                caps.insert(caps::EXEC_MOUNT_BIND);
                pb::Mount {
                    input: NONE,
                    dest: dest.clone(),
                    output,
                    ..Default::default()
                }
            }
            Mount::Bind { dest, src } => {
                caps.insert(caps::EXEC_MOUNT_BIND);
                pb::Mount {
                    input: input_of(src, inputs),
                    dest: dest.clone(),
                    output: NONE,
                    readonly: true,
                    ..Default::default()
                }
            }
            Mount::BindDir { dest, src, dir } => {
                caps.insert(caps::EXEC_MOUNT_BIND);
                caps.insert(caps::EXEC_MOUNT_SELECTOR);
                pb::Mount {
                    input: input_of(src, inputs),
                    dest: dest.clone(),
                    output: NONE,
                    readonly: true,
                    selector: dir.clone(),
                    ..Default::default()
                }
            }
            Mount::Cache { dest, id, sharing } => {
                caps.insert(caps::EXEC_MOUNT_CACHE);
                caps.insert(caps::EXEC_MOUNT_CACHE_SHARING);
                let sharing = match sharing {
                    Sharing::Shared => pb::CacheSharingOpt::Shared,
                    Sharing::Locked => pb::CacheSharingOpt::Locked,
                };
                pb::Mount {
                    input: NONE,
                    dest: dest.clone(),
                    output: NONE,
                    mount_type: pb::MountType::Cache as i32,
                    cache_opt: Some(pb::CacheOpt {
                        id: id.clone(),
                        sharing: sharing as i32,
                    }),
                    ..Default::default()
                }
            }
            Mount::Secret {
                dest,
                id,
                optional,
                mode,
                uid,
                gid,
            } => {
                caps.insert(caps::EXEC_MOUNT_SECRET);
                pb::Mount {
                    input: NONE,
                    dest: dest.clone(),
                    output: NONE,
                    mount_type: pb::MountType::Secret as i32,
                    secret_opt: Some(pb::SecretOpt {
                        id: id.clone(),
                        uid: *uid,
                        gid: *gid,
                        mode: *mode,
                        optional: *optional,
                    }),
                    ..Default::default()
                }
            }
        }
    }
}

/// The index `s` gets among `inputs` (appended), or NONE for scratch.
fn input_of(s: &State, inputs: &mut Vec<Output>) -> i64 {
    match &s.out {
        None => NONE,
        Some(o) => {
            inputs.push(o.clone());
            inputs.len() as i64 - 1
        }
    }
}

/// A process to run on a state.
#[derive(Clone, Debug, Default)]
pub struct Exec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub mounts: Vec<Mount>,
    pub network_none: bool,
    pub meta: Meta,
}

/// The result of `run`: its root filesystem (output 0) and what it wrote into each
/// `Mount::Scratch` (the next outputs, in mount order).
#[derive(Clone, Debug)]
pub struct ExecState {
    node: Rc<Node>,
    /// Destination of each scratch mount -> its output index.
    scratch: Vec<(String, i64)>,
}

impl ExecState {
    pub fn root(&self) -> State {
        State {
            out: Some(Output {
                node: self.node.clone(),
                index: 0,
            }),
        }
    }

    /// What the step left in the scratch mount at `dest`, as a filesystem of its own.
    /// Panics when no scratch mount is at `dest` (a bug in the caller, not in input).
    pub fn scratch(&self, dest: &str) -> State {
        let index = self
            .scratch
            .iter()
            .find(|(d, _)| d == dest)
            .map(|(_, i)| *i)
            .expect("a scratch mount at this destination");
        State {
            out: Some(Output {
                node: self.node.clone(),
                index,
            }),
        }
    }
}

impl State {
    /// Run `exec` with this state as its root filesystem.
    pub fn run(&self, exec: Exec) -> ExecState {
        let mut inputs: Vec<Output> = Vec::new();
        let mut caps = BTreeSet::from([caps::EXEC_META_BASE]);
        let mut mounts = vec![pb::Mount {
            input: input_of(self, &mut inputs),
            dest: "/".into(),
            output: 0,
            ..Default::default()
        }];
        // Sorted by destination so a parent directory is mounted before what is inside it
        // and the encoding does not depend on the order the caller listed them.
        let mut extra = exec.mounts.clone();
        extra.sort_by(|a, b| a.dest().cmp(b.dest()));
        let mut scratch = vec![];
        for m in &extra {
            let output = match m {
                Mount::Scratch { dest } => {
                    scratch.push((dest.clone(), scratch.len() as i64 + 1));
                    scratch.len() as i64
                }
                _ => NONE,
            };
            mounts.push(m.encode(&mut inputs, &mut caps, output));
        }
        if exec.network_none {
            caps.insert(caps::EXEC_META_NETWORK);
        }
        let op = pb::ExecOp {
            meta: Some(pb::Meta {
                args: exec.args,
                env: exec.env,
                cwd: exec.cwd,
                user: exec.user,
                ..Default::default()
            }),
            mounts,
            network: if exec.network_none {
                pb::NetMode::None as i32
            } else {
                pb::NetMode::Unset as i32
            },
            ..Default::default()
        };
        let platform = self.platform();
        let out = node(Kind::Exec(Box::new(op)), inputs, platform, exec.meta, caps);
        ExecState {
            node: out.node,
            scratch,
        }
    }

    fn platform(&self) -> Option<pb::Platform> {
        self.out.as_ref().and_then(|o| o.node.platform.clone())
    }

    /// Start a file operation (copy, mkdir, rm) on this state.
    pub fn file(&self, meta: Meta) -> FileOps {
        FileOps {
            base: self.clone(),
            actions: vec![],
            meta,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Clone, Debug, Default)]
pub struct CopyOpts {
    pub owner: Option<Owner>,
    /// Copy the contents of a source directory rather than the directory itself.
    pub contents_only: bool,
    pub create_dest_path: bool,
    pub allow_wildcard: bool,
    /// The copied files' mode (`None`: as in the source).
    pub mode: Option<u32>,
}

#[derive(Clone, Debug)]
enum Action {
    Copy {
        src: State,
        from: String,
        to: String,
        opts: CopyOpts,
    },
    Mkdir {
        path: String,
        mode: i32,
        parents: bool,
        owner: Option<Owner>,
    },
    Mkfile {
        path: String,
        mode: i32,
        data: Vec<u8>,
    },
}

impl Action {
    /// The action's body; no timestamps (they would make the bytes differ per build).
    fn encode(&self) -> pb::file_action::Action {
        match self {
            Action::Copy { from, to, opts, .. } => {
                pb::file_action::Action::Copy(pb::FileActionCopy {
                    src: from.clone(),
                    dest: to.clone(),
                    owner: chown(&opts.owner),
                    mode: opts.mode.map_or(NONE as i32, |m| m as i32),
                    follow_symlink: false,
                    dir_copy_contents: opts.contents_only,
                    create_dest_path: opts.create_dest_path,
                    allow_wildcard: opts.allow_wildcard,
                    allow_empty_wildcard: false,
                    timestamp: NONE,
                    ..Default::default()
                })
            }
            Action::Mkdir {
                path,
                mode,
                parents,
                owner,
            } => pb::file_action::Action::Mkdir(pb::FileActionMkDir {
                path: path.clone(),
                mode: *mode,
                make_parents: *parents,
                owner: chown(owner),
                timestamp: NONE,
            }),
            Action::Mkfile { path, mode, data } => {
                pb::file_action::Action::Mkfile(pb::FileActionMkFile {
                    path: path.clone(),
                    mode: *mode,
                    data: data.clone(),
                    owner: None,
                    timestamp: NONE,
                })
            }
        }
    }
}

/// A chain of file actions that becomes one FileOp.
#[derive(Clone, Debug)]
pub struct FileOps {
    base: State,
    actions: Vec<Action>,
    meta: Meta,
}

fn chown(o: &Option<Owner>) -> Option<pb::ChownOpt> {
    o.as_ref().map(|o| pb::ChownOpt {
        user: Some(pb::UserOpt {
            user: Some(pb::user_opt::User::ById(o.uid)),
        }),
        group: Some(pb::UserOpt {
            user: Some(pb::user_opt::User::ById(o.gid)),
        }),
    })
}

impl FileOps {
    pub fn copy(mut self, src: &State, from: &str, to: &str, opts: CopyOpts) -> Self {
        self.actions.push(Action::Copy {
            src: src.clone(),
            from: from.into(),
            to: to.into(),
            opts,
        });
        self
    }

    pub fn mkdir(mut self, path: &str, mode: i32, parents: bool, owner: Option<Owner>) -> Self {
        self.actions.push(Action::Mkdir {
            path: path.into(),
            mode,
            parents,
            owner,
        });
        self
    }

    /// A file with `data` at `path` (its directory must exist), owned by root. The data
    /// is in the definition: for small files kiln writes itself.
    pub fn mkfile(mut self, path: &str, mode: i32, data: &[u8]) -> Self {
        self.actions.push(Action::Mkfile {
            path: path.into(),
            mode,
            data: data.to_vec(),
        });
        self
    }

    pub fn done(self) -> State {
        if self.actions.is_empty() {
            return self.base;
        }
        let mut inputs: Vec<Output> = Vec::new();
        let base_input = match &self.base.out {
            Some(o) => {
                inputs.push(o.clone());
                0
            }
            None => NONE,
        };
        // Secondary inputs (copy sources) first, so action indices can refer past them.
        let mut secondary = Vec::new();
        for a in &self.actions {
            if let Action::Copy { src, .. } = a {
                let idx = match &src.out {
                    None => NONE,
                    Some(o) => match inputs
                        .iter()
                        .position(|i| Rc::ptr_eq(&i.node, &o.node) && i.index == o.index)
                    {
                        Some(p) => p as i64,
                        None => {
                            inputs.push(o.clone());
                            inputs.len() as i64 - 1
                        }
                    },
                };
                secondary.push(idx);
            }
        }
        let n_inputs = inputs.len() as i64;
        let last = self.actions.len() - 1;
        let mut copies = secondary.into_iter();
        let actions = self
            .actions
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let input = if i == 0 {
                    base_input
                } else {
                    n_inputs + i as i64 - 1
                };
                let output = if i == last { 0 } else { NONE };
                let (secondary_input, action) = match a {
                    Action::Copy { .. } => (copies.next().unwrap_or(NONE), a.encode()),
                    Action::Mkdir { .. } | Action::Mkfile { .. } => (NONE, a.encode()),
                };
                pb::FileAction {
                    input,
                    secondary_input,
                    output,
                    action: Some(action),
                }
            })
            .collect();
        let platform = self
            .base
            .platform()
            .or_else(|| inputs.iter().find_map(|i| i.node.platform.clone()));
        let out = node(
            Kind::File(pb::FileOp { actions }),
            inputs,
            platform,
            self.meta,
            BTreeSet::from([caps::FILE_BASE]),
        );
        State { out: Some(out) }
    }
}

/// Layer several states on top of each other without copying (needs the `mergeop` cap).
pub fn merge(states: &[State], meta: Meta) -> State {
    let inputs: Vec<Output> = states.iter().filter_map(|s| s.out.clone()).collect();
    if inputs.len() <= 1 {
        return State {
            out: inputs.into_iter().next(),
        };
    }
    let op = pb::MergeOp {
        inputs: (0..inputs.len() as i64)
            .map(|input| pb::MergeInput { input })
            .collect(),
    };
    let platform = inputs[0].node.platform.clone();
    State {
        out: Some(node(
            Kind::Merge(op),
            inputs,
            platform,
            meta,
            BTreeSet::from([caps::MERGE_OP]),
        )),
    }
}

/// What `upper` changed on top of `lower`, as a filesystem of its own (needs the `diffop`
/// cap): merged onto anything, it replays exactly those changes (deletions included).
pub fn diff(lower: &State, upper: &State, meta: Meta) -> State {
    let mut inputs = vec![];
    let mut index = |s: &State| match &s.out {
        Some(o) => {
            inputs.push(o.clone());
            inputs.len() as i64 - 1
        }
        None => NONE,
    };
    let op = pb::DiffOp {
        lower: Some(pb::LowerDiffInput {
            input: index(lower),
        }),
        upper: Some(pb::UpperDiffInput {
            input: index(upper),
        }),
    };
    let platform = inputs.first().and_then(|o| o.node.platform.clone());
    State {
        out: Some(node(
            Kind::Diff(op),
            inputs,
            platform,
            meta,
            BTreeSet::from([caps::DIFF_OP]),
        )),
    }
}
