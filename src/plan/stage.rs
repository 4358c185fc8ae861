//! What each stage does, as plain data. A stage holds everything its lowering needs (no
//! going back to the spec) and nothing about where it was written: equal work compares
//! equal, so the plan makes it once. Positions live on `Stage`, beside this.

use std::collections::BTreeMap;

use crate::context::join;
use crate::context::pylock::LockedPackage;
use crate::spec::{AppOwner, AptRepository, BuildSecrets, CustomStep, FileCopy, Installer};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StageKind {
    /// The Python base image, as written in the spec (resolved and pinned when lowered).
    Base { image: String },
    /// `apt-get install` with cache mounts.
    Apt(AptStep),
    /// Check the interpreter version, create the venv, install the installer (uv).
    Python(PythonStep),
    /// Install one requirement group into the venv, on top of the previous group (the
    /// first group: on the builder, with the Python stage's venv copied in from `deps`).
    Install(InstallStep),
    /// Build the app's own project as a wheel and install it into the venv, after the
    /// dependencies.
    Project(ProjectStep),
    /// The image of one variant: runtime branch + user + venv + app, and its config.
    Final(FinalStep),
    /// One of the spec's `steps`: on the builder (after the installs; its `outputs` are
    /// copied into the image) or on the finished image (as root).
    Step(StepStage),
    /// The `verify` commands (and the health check) run against a finished image, all in
    /// one container (not part of the image).
    Verify(VerifyStep),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StepStage {
    pub step: CustomStep,
    /// The venv, first on a builder step's `PATH`.
    pub venv: String,
    /// The spec's name: the scope of the step's cache ids.
    pub spec: String,
    /// `.dockerignore`, which the step's `inputs` source leaves out (as Docker does).
    pub dockerignore: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VerifyStep {
    pub variant: String,
    /// In spec order (the health check last); results are reported by index.
    pub checks: Vec<VerifyCheck>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VerifyCheck {
    pub kind: CheckKind,
    /// A shell command line (`/bin/sh -c`).
    pub command: String,
    /// Seconds before it is killed and reported as timed out.
    pub timeout_s: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckKind {
    /// A `verify` command.
    Command,
    /// The image's `healthcheck`, run once.
    Healthcheck,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AptRole {
    /// Build tools and headers: builder branch only.
    Build,
    /// Shared libraries the final image needs.
    Runtime,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AptStep {
    pub role: AptRole,
    pub packages: Vec<String>,
    /// Extra sources, each with its key from the context, for this step only.
    pub repositories: Vec<AptRepository>,
    /// `.dockerignore`, which the keys' source leaves out.
    pub dockerignore: Vec<String>,
}

/// The installer and the venv it fills; the same for every step of one variant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Toolchain {
    pub installer: Installer,
    /// The uv release installed in the builder (with `installer: uv`).
    pub uv_version: String,
    /// Where the venv lives, in the builder and in the image.
    pub venv: String,
    /// The Poetry release installed in the builder, when a group is a `poetry.lock`.
    pub poetry: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PythonStep {
    /// `major.minor` the base's interpreter must have, and what asks for it (`python.version`
    /// or the project's `.python-version`), for the message when it does not.
    pub version: Option<(String, String)>,
    pub toolchain: Toolchain,
    /// The step downloads (pip or uv itself), so it mounts the CA and netrc secrets.
    pub secrets: BuildSecrets,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstallStep {
    pub group: String,
    pub source: GroupSource,
    pub pip: PipOptions,
    pub toolchain: Toolchain,
    pub secrets: BuildSecrets,
    /// `.dockerignore`, which the group's context source leaves out.
    pub dockerignore: Vec<String>,
}

/// Where a group's requirements come from. Each kind of source lowers to its own mounts
/// and installer command (`plan/lower.rs`, `install`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupSource {
    /// Requirement files in the build context (`-r`), inline requirement lines, and an
    /// optional constraints file (`-c`), as pip and `uv pip install` read them.
    Requirements {
        files: Vec<String>,
        packages: Vec<String>,
        constraints: Option<String>,
        /// Every context file those read, their includes too: what the step mounts.
        reached: Vec<String>,
        require_hashes: bool,
    },
    /// A uv project's lock: `uv sync --locked` of the project's dependencies (not the
    /// project itself), with the extras and groups asked for.
    UvLock {
        lock: String,
        project: String,
        /// The `pyproject.toml` of each workspace member.
        members: Vec<String>,
        extras: Vec<String>,
        groups: Vec<String>,
    },
    /// A Poetry project's lock: `poetry install --no-root --only GROUPS`.
    PoetryLock {
        lock: String,
        project: String,
        groups: Vec<String>,
    },
    /// A PEP 751 lock. With `fetch`, every file it installs is an HTTP source the engine
    /// fetches and checks by sha256, and the install runs offline from those files;
    /// without, `uv pip install -r` of the lock from the index, in the step.
    Pylock { lock: String, fetch: Option<Fetch> },
}

/// A lock whose files the engine fetches itself: what the lowering needs to choose one
/// file per package for its platform (`context::pylock::choose`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fetch {
    /// `major.minor` of the interpreter the files are for.
    pub python: String,
    pub packages: Vec<LockedPackage>,
}

impl GroupSource {
    /// The context files the install step reads: only these invalidate it.
    pub fn context_files(&self) -> Vec<String> {
        match self {
            GroupSource::Requirements { reached, .. } => reached.clone(),
            GroupSource::UvLock {
                lock,
                project,
                members,
                ..
            } => [join(project, "pyproject.toml"), lock.clone()]
                .into_iter()
                .chain(members.iter().cloned())
                .collect(),
            GroupSource::PoetryLock { lock, project, .. } => {
                vec![join(project, "pyproject.toml"), lock.clone()]
            }
            // The fetched files come from the lock's URLs, not from the context.
            GroupSource::Pylock { fetch: Some(_), .. } => vec![],
            GroupSource::Pylock { lock, fetch: None } => vec![lock.clone()],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProjectStep {
    /// The project directory in the context (`""`: the context root).
    pub dir: String,
    /// Patterns left out of the project's files (`.dockerignore`, `app.exclude`).
    pub exclude: Vec<String>,
    pub pip: PipOptions,
    pub toolchain: Toolchain,
    pub secrets: BuildSecrets,
}

/// The `pip:` settings, which both installers follow.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PipOptions {
    pub index_url: Option<String>,
    pub extra_index_urls: Vec<String>,
    /// Seconds per network operation.
    pub timeout: u32,
    pub retries: u32,
    /// Run `pip check` (or `uv pip check`) after the install.
    pub check: bool,
    /// A constraints file for sdist build environments (mounted with the group's files).
    pub build_constraints: Option<String>,
    /// uv's `--index-strategy`.
    pub index_strategy: Option<String>,
    /// Packages built without build isolation.
    pub no_build_isolation: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FinalStep {
    pub variant: String,
    pub venv: String,
    pub user: RuntimeUser,
    /// Directories the user owns (`writable` and `volumes`), made in the user step.
    pub dirs: Vec<String>,
    /// Single files from the context, copied after the user step.
    pub files: Vec<FileCopy>,
    /// `.dockerignore`, which the files' source leaves out.
    pub dockerignore: Vec<String>,
    pub app: Option<AppCopy>,
    pub config: ImageSettings,
}

/// The user the image runs as; made in the image unless it is root.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuntimeUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl RuntimeUser {
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// The app's code: context paths copied under `workdir`, keeping their layout.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppCopy {
    pub src: Vec<String>,
    /// Patterns left out on top of the context's `.dockerignore`.
    pub exclude: Vec<String>,
    pub workdir: String,
    pub owner: AppOwner,
}

/// What the spec sets in the image config; `plan/config.rs` lays it over the base's.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageSettings {
    /// `org.opencontainers.image.title`: the spec's name.
    pub title: String,
    pub description: Option<String>,
    /// The base image as written (`org.opencontainers.image.base.name`).
    pub base: String,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub healthcheck: Option<HealthcheckSettings>,
    /// `8000/tcp` form.
    pub ports: Vec<String>,
    pub stop_signal: Option<String>,
    /// The command runs under tini (`/usr/bin/tini --`).
    pub init: bool,
    pub volumes: Vec<String>,
    /// `SOURCE_DATE_EPOCH` as RFC 3339: the config's `created` and its OCI label.
    pub created: Option<String>,
}

/// A health check in image-config form; durations in nanoseconds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HealthcheckSettings {
    /// `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    pub test: Vec<String>,
    pub interval_ns: u64,
    pub timeout_ns: u64,
    pub start_period_ns: u64,
    pub retries: u32,
}
