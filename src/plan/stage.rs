//! What each stage does, as plain data. A stage holds everything its lowering needs (no
//! going back to the spec) and nothing about where it was written: equal work compares
//! equal, so the plan makes it once. Positions live on `Stage`, beside this.

use std::collections::BTreeMap;

use super::install::Recipe;
use crate::context::pylock::LockedFile;
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
    /// first group: on the builder, with the Python stage's venv copied in: its
    /// `Toolchain` input).
    Install(InstallStep),
    /// A locked file the engine fetches.
    Fetch(FetchStep),
    /// A sdist built into a wheel in the builder.
    Wheel(WheelStep),
    /// Packages installed alone into the empty venv: a layer of the image.
    Layer(LayerStep),
    /// `pip check` over the empty venv and the layers so far: a gate of the image
    /// (`Target::gates`), solved beside it.
    Check(CheckStep),
    /// The app's own project (`app.project`) built as a wheel, on the builder with the
    /// Python stage's venv copied in (its `Toolchain` input; without build packages, on the
    /// Python stage): no dependency is installed there, so it is cached on the project's
    /// files and the builder, not on the groups.
    ProjectWheel(ProjectStep),
    /// The project's wheel (its `File` input) installed alone, without dependencies, into a
    /// prefix of its own by the empty venv's interpreter (the parent is the Python stage):
    /// the venv's layout and console scripts that run the venv's `python`. The image copies
    /// it into the venv as a layer of its own, after the groups' layers.
    Project(ProjectInstallStep),
    /// `pip check` of the venv (the parent, with its `Layer` inputs merged on it) with the
    /// project's metadata (from its `Project` input) added: a gate of the image.
    ProjectCheck(ProjectCheckStep),
    /// The runtime-library check: every ELF file of the venv (its `Venv` input, with the
    /// `Project` in it) must find each library it needs on the image's runtime branch (the
    /// parent); a miss is named with the package of the `Builder` that has the library,
    /// at the group whose install (its `Group` inputs) brought the file. The image waits
    /// for its verdict (`check` input).
    RuntimeCheck(RuntimeCheckStep),
    /// `system.runtime: auto`: the packages of the builder (the parent) that the venv's
    /// ELF files (its `Venv` input, with the `Project` in it) load, for the runtime apt
    /// step (its `Packages` input).
    RuntimePackages(RuntimeCheckStep),
    /// The image of one variant: runtime branch + user + venv + app, and its config.
    Final(FinalStep),
    /// One of the spec's `steps`: on the builder (after the installs; its `outputs` are
    /// copied into the image) or on the finished image (as root).
    Step(StepStage),
    /// The `verify` commands (and the health check) run against a finished image, all in
    /// one container (not part of the image).
    Verify(VerifyStep),
}

/// What a stage takes from another stage it reads (besides its parent, the filesystem it
/// starts from).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// The Python stage's venv and installers, copied into this stage's filesystem (the
    /// first install, a wheel build or the project's wheel on the builder).
    Toolchain,
    /// The venv the image copies (the last install stage).
    Venv,
    /// A builder step whose `outputs` the image copies.
    Outputs,
    /// A file mounted for an install or a wheel build (a fetch or a built wheel).
    File,
    /// A package layer: stacked in the image (largest first), merged for a group's venv
    /// or a check.
    Layer,
    /// The empty venv the image's layers stand on (the Python stage).
    EmptyVenv,
    /// A check the image waits for (the runtime-library check's verdict).
    Check,
    /// The project installed into a prefix of its own: copied into the venv (a layer of the
    /// image, a builder step's venv) or its metadata checked.
    Project,
    /// A group's venv, which the runtime-library check looks into to tell which group's
    /// install brought a file.
    Group,
    /// The builder, whose dpkg database names the package of a library the image lacks.
    Builder,
    /// The packages the builder found the venv needs (`system.runtime: auto`), which the
    /// runtime apt step installs.
    Packages,
}

impl Role {
    /// The edge's label in `kiln graph`.
    pub fn label(self) -> &'static str {
        match self {
            Role::Toolchain | Role::Venv => "venv",
            Role::Outputs => "outputs",
            Role::File => "file",
            Role::Layer => "layer",
            Role::EmptyVenv => "empty venv",
            Role::Check => "check",
            Role::Project => "project",
            Role::Group => "group",
            Role::Builder => "builder",
            Role::Packages => "packages",
        }
    }
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
    /// Also the packages the builder named (`system.runtime: auto`): its `Packages` input.
    pub auto: bool,
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
    /// What the choice of a lock's files took on trust where the base's interpreter was
    /// not read (offline `kiln llb`): checked against the base's Python first.
    pub assumed: Vec<Assumed>,
    /// The installer's wheel (uv's, or pip's for `installer: pip`), the stage's `File`
    /// input: its file name. `None`: installed from the index (a uv version kiln pins no
    /// wheel of).
    pub installer_wheel: Option<String>,
}

/// A marker variable whose value the choice of a lock's files assumed: the values that
/// give the same choice, and the packages whose markers read it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Assumed {
    /// `python_full_version`, `platform_release`, ...
    pub var: String,
    /// The value assumed, and every value known to choose the same (empty: only that one
    /// value, which no base has: the choice needs the base read).
    pub allowed: Vec<String>,
    pub packages: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstallStep {
    pub group: String,
    pub install: Install,
    pub pip: PipOptions,
    pub toolchain: Toolchain,
    pub secrets: BuildSecrets,
    /// `.dockerignore`, which the group's context source leaves out.
    pub dockerignore: Vec<String>,
}

impl InstallStep {
    /// The tool that decides what is installed, for the step's name: the recipe's (a
    /// `poetry.lock` group is Poetry's set, whichever installer runs), else the installer.
    pub fn tool(&self) -> String {
        match &self.install {
            Install::InStep { recipe, .. } => recipe.tool.to_string(),
            Install::Files | Install::Layers => self.toolchain.installer.to_string(),
        }
    }
}

/// How a group is installed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Install {
    /// In the step, from the group's context files, with the network (the installer
    /// resolves, or reads the lock and downloads): see `install::Recipe`.
    InStep {
        recipe: Recipe,
        /// Why a lock whose files the engine could fetch installs here instead (it has
        /// none for this platform), for the step's name.
        fallback: Option<String>,
    },
    /// Offline from files the engine fetched (the stage's `File` inputs), each mounted in
    /// a directory of its own.
    Files,
    /// Offline, each package into a layer of its own (the stage's `Layer` inputs, new in
    /// this group), merged on the previous venv.
    Layers,
}

/// One locked file the engine fetches: an HTTP source checked by its sha256.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FetchStep {
    pub file: LockedFile,
}

/// A sdist (the stage's `File` input) built into a wheel in the builder, with the index
/// reachable for its build backend.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WheelStep {
    /// `name version`, for progress.
    pub package: String,
    pub group: String,
    /// The sdist's file name.
    pub sdist: String,
    pub pip: PipOptions,
    pub toolchain: Toolchain,
    pub secrets: BuildSecrets,
}

/// Some packages of a group installed alone into the empty venv (the stage's parent is
/// the Python stage): the layer is only what they wrote (DiffOp).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LayerStep {
    pub group: String,
    /// Each package as `name version`, in install order.
    pub packages: Vec<String>,
    /// The name of each `File` input's file in its mount (a glob for a wheel built from a
    /// sdist).
    pub files: Vec<String>,
    pub toolchain: Toolchain,
}

/// `pip check` of the empty venv (the parent) with the `Layer` inputs merged on it: a
/// gate of the image.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CheckStep {
    pub group: String,
    pub toolchain: Toolchain,
}

/// The app's project built as a wheel from a writable copy of its files, with the index
/// reachable for its build backend.
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

/// The project's wheel installed into a prefix of its own, offline.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProjectInstallStep {
    /// The project directory, for progress.
    pub dir: String,
    pub toolchain: Toolchain,
}

/// The installer's check of the venv with the project's metadata on it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProjectCheckStep {
    /// The project directory, for progress.
    pub dir: String,
    pub toolchain: Toolchain,
}

/// What the runtime-library stages read: the venv (with the project) and where its files
/// came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuntimeCheckStep {
    /// Where the venv is, in the builder and the image.
    pub venv: String,
    /// The groups installed into it, in order (for progress and the check's report).
    pub groups: Vec<String>,
    /// `app.project`'s directory, when the project is in the venv.
    pub project: Option<String>,
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
