//! The typed, checked spec. Everything here is valid: values are parsed, names are
//! checked, variants are fully resolved (each one stands alone), args are expanded.

use std::collections::BTreeMap;

use crate::diag::{Diagnostic, Loc, SourceFile, did_you_mean};

/// A value and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S<T> {
    pub v: T,
    pub loc: Loc,
}

impl<T> S<T> {
    pub fn new(v: T, loc: Loc) -> Self {
        S { v, loc }
    }
}

#[derive(Clone, Debug)]
pub struct Spec {
    /// The spec file first, then every file it extends, in the order they were read.
    pub files: Vec<SourceFile>,
    pub name: S<String>,
    pub description: Option<String>,
    pub args: Vec<Arg>,
    pub app: Option<App>,
    /// The spec-wide process keys; each variant's `process` is what it builds with.
    pub process: Process,
    /// The spec-wide `verify` commands (each variant's list starts with them).
    pub verify: Vec<S<VerifyCommand>>,
    pub secrets: BuildSecrets,
    pub groups: Vec<Group>,
    pub variants: Vec<Variant>,
    pub default_variant: String,
    /// The spec's own commands, in spec order (every variant runs them).
    pub steps: Vec<S<CustomStep>>,
    /// `SOURCE_DATE_EPOCH` (a spec arg or a build arg): the image's `created`, and the
    /// build steps' clock for the tools that honour it.
    pub source_date_epoch: Option<u64>,
    /// The context paths the spec names besides requirement files, locks and `app.src`
    /// (which `context::Gather` and the `app.src` check cover): `files[].src`, step
    /// `inputs`, repository keys, each once per place it is written.
    pub context_uses: Vec<ContextUse>,
}

/// One context path the spec names, where, and as what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextUse {
    /// The key, for messages: `files.src`, `steps.inputs`, `system.repositories.key`.
    pub what: &'static str,
    pub path: S<String>,
}

impl Spec {
    pub fn variant(&self, name: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.name.v == name)
    }

    /// The variant `--target` names (`None` or empty: `default_variant`). Errors: an
    /// unknown name, with the spec's variants and the closest one.
    pub fn target(&self, name: Option<&str>) -> Result<&Variant, Diagnostic> {
        let name = name
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.default_variant);
        self.variant(name).ok_or_else(|| {
            let known: Vec<&str> = self.variants.iter().map(|v| v.name.v.as_str()).collect();
            let help = match did_you_mean(name, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? the targets are: {}", known.join(", ")),
                None => format!("the targets are the spec's variants: {}", known.join(", ")),
            };
            let file = Loc::default();
            Diagnostic::error(file, format!("unknown target `{name}`"), help)
        })
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name.v == name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    pub name: String,
    pub default: String,
    /// The default, or the build arg that overrode it.
    pub value: String,
    pub loc: Loc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Installer {
    Pip,
    Uv,
}

impl std::fmt::Display for Installer {
    /// The spec's spelling: `pip` or `uv`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Installer::Pip => "pip",
            Installer::Uv => "uv",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Python {
    pub base: S<String>,
    /// `major.minor`, checked against the base's interpreter inside the build.
    pub version: Option<S<String>>,
    pub installer: Installer,
    pub uv_version: String,
    /// Where the virtual environment lives in the builder and in the final image.
    pub venv: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pip {
    pub index_url: Option<String>,
    pub extra_index_urls: Vec<String>,
    pub timeout: u32,
    pub retries: u32,
    pub constraints: Option<S<String>>,
    pub check: bool,
    /// `--require-hashes` for requirement-file groups that do not say otherwise.
    pub require_hashes: bool,
    /// Constraints for the build environments of sdists (`Cython<3`): uv's
    /// `--build-constraint`, pip's `PIP_CONSTRAINT`.
    pub build_constraints: Option<S<String>>,
    /// uv's `--index-strategy` (which index a package may come from).
    pub index_strategy: Option<S<String>>,
    /// Packages built without build isolation (their build dependencies installed by an
    /// earlier group): uv's `--no-build-isolation-package`, pip's `--no-build-isolation`.
    pub no_build_isolation: Vec<S<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: S<String>,
    pub source: GroupSource,
}

/// Where one requirement group's packages come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupSource {
    /// Requirement files in the build context (their `-r`/`-c` includes followed) and
    /// inline requirement lines (`arq==0.26.1`), as pip and `uv pip install` read them.
    Requirements {
        files: Vec<S<String>>,
        packages: Vec<S<String>>,
        /// `--require-hashes` for this group; `None`: as `pip.require_hashes` says.
        require_hashes: Option<bool>,
    },
    /// A lock file in the build context, installed exactly as locked.
    Lock(Lock),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    /// The lock file, relative to the context; its directory holds the project's
    /// `pyproject.toml` (for uv and Poetry).
    pub path: S<String>,
    pub kind: LockKind,
    /// Optional-dependency extras to install (PEP 621 `optional-dependencies`).
    pub extras: Vec<S<String>>,
    /// Dependency groups (PEP 735, Poetry groups). uv: added to the project's
    /// dependencies; Poetry: exactly these (default `main`).
    pub groups: Vec<S<String>>,
    /// What a PEP 751 lock is resolved from (`files`/`packages` beside `lock`): `kiln
    /// lock` re-locks it there, in place; the build installs the lock.
    pub from: Option<LockedFrom>,
}

/// The requirement files and lines a lock is resolved from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockedFrom {
    pub files: Vec<S<String>>,
    pub packages: Vec<S<String>>,
}

impl Lock {
    /// The project directory (`""` for the context root).
    pub fn project_dir(&self) -> &str {
        self.path.v.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
    }
}

/// The tool whose lock format a lock file is, from its file name. Everything kiln knows
/// about a kind before reading the lock is a method here; how a group of the kind is
/// installed and locked lives in its module under `plan/install/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockKind {
    /// `uv.lock`, installed exactly as locked by uv (exported to PEP 751 in the build).
    Uv,
    /// `poetry.lock`: each group's set exported by Poetry (`poetry export`), then installed
    /// exactly, hashes checked.
    Poetry,
    /// PEP 751 `pylock.toml` / `pylock.NAME.toml`, read by kiln: its files are fetched by
    /// the engine when every one has a URL and a sha256.
    Pylock,
}

/// The tool a lock kind is installed with, in the builder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockTool {
    Uv,
    Poetry,
}

impl LockKind {
    /// Every kind, in the order messages list them.
    pub const ALL: [LockKind; 3] = [LockKind::Uv, LockKind::Poetry, LockKind::Pylock];

    /// The kind named by a lock file's name. Errors: the names kiln reads.
    pub fn of(path: &str) -> Result<LockKind, String> {
        let name = path.rsplit('/').next().unwrap_or(path);
        LockKind::ALL
            .into_iter()
            .find(|k| k.names(name))
            .ok_or_else(|| {
                format!(
                    "`{name}` is not a lock file kiln reads: name {}",
                    LockKind::listed()
                )
            })
    }

    /// Whether a file called `name` is a lock of this kind.
    fn names(self, name: &str) -> bool {
        match self {
            LockKind::Uv => name == "uv.lock",
            LockKind::Poetry => name == "poetry.lock",
            LockKind::Pylock => {
                name == "pylock.toml" || (name.starts_with("pylock.") && name.ends_with(".toml"))
            }
        }
    }

    /// The lock's file name as messages call it (`a pylock.toml`).
    pub fn file_name(self) -> &'static str {
        match self {
            LockKind::Uv => "uv.lock",
            LockKind::Poetry => "poetry.lock",
            LockKind::Pylock => "pylock.toml",
        }
    }

    /// The kinds' file names for messages: `uv.lock, poetry.lock or a PEP 751 pylock.toml`.
    pub fn listed() -> &'static str {
        "uv.lock, poetry.lock or a PEP 751 pylock.toml"
    }

    /// The tool that installs a group of this kind.
    pub fn tool(self) -> LockTool {
        match self {
            LockKind::Uv | LockKind::Pylock => LockTool::Uv,
            LockKind::Poetry => LockTool::Poetry,
        }
    }

    /// A lock of this kind belongs to a project: the `pyproject.toml` beside it, which
    /// the tool reads with the lock (and which holds the project's Python).
    pub fn has_project(self) -> bool {
        match self {
            LockKind::Uv | LockKind::Poetry => true,
            LockKind::Pylock => false,
        }
    }

    /// The lock covers a uv workspace: every member's `pyproject.toml` is read with it.
    pub fn reads_workspace(self) -> bool {
        self == LockKind::Uv
    }

    /// kiln reads the lock itself (each package's files), rather than only mounting it.
    pub fn read_by_kiln(self) -> bool {
        self == LockKind::Pylock
    }

    /// Whether `extras` (`"extras"`) or `groups` (`"groups"`) may select from a lock of
    /// this kind; `Err` is the help for a spec that uses it anyway.
    pub fn selects(self, key: &str) -> Result<(), &'static str> {
        match (self, key) {
            (LockKind::Uv, _) | (LockKind::Poetry, "groups") => Ok(()),
            (LockKind::Poetry, _) => Err(
                "kiln installs Poetry groups (`groups: [main, ...]`); move the extra's packages into a group, or use uv",
            ),
            (LockKind::Pylock, _) => Err(
                "a PEP 751 lock is installed as it was exported: choose extras and groups when you export it (`uv export --extra ...`)",
            ),
        }
    }

    /// The groups installed when the spec names none.
    pub fn default_groups(self) -> &'static [&'static str] {
        match self {
            LockKind::Poetry => &["main"],
            LockKind::Uv | LockKind::Pylock => &[],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    /// Paths in the context, copied to `workdir/<path>` keeping their layout.
    pub src: Vec<S<String>>,
    /// A Python project (directory with `pyproject.toml`, `""` for the context root) built
    /// as a wheel in the builder and installed into the venv after the dependencies.
    pub project: Option<S<String>>,
    pub exclude: Vec<String>,
    pub workdir: String,
    /// Who owns the code: root (read-only for the app, the default) or the runtime user.
    pub owner: AppOwner,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub loc: Loc,
}

impl User {
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// One `verify` command: a shell command run on the finished image, and how long it may
/// take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyCommand {
    pub run: String,
    /// Seconds, 1 to `MAX_VERIFY_TIMEOUT_S`.
    pub timeout_s: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Healthcheck {
    /// In image-config form: `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    pub test: Vec<String>,
    pub interval_ns: u64,
    pub timeout_ns: u64,
    pub start_period_ns: u64,
    pub retries: u32,
    /// Run the probe once during verify (`healthcheck.verify`).
    pub verify: bool,
    pub loc: Loc,
}

/// Ids of build secrets (`--secret id=...`) the build steps mount. Their bytes never
/// enter a layer, the definition or the image config.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BuildSecrets {
    /// A PEM CA bundle for pip's and uv's HTTPS (corporate proxies, TLS interception).
    pub ca_bundle: Option<String>,
    /// A `.netrc` with credentials for private package indexes.
    pub netrc: Option<String>,
}

/// One image the spec can build. Fully resolved: top-level settings with the variant's
/// overrides applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    pub name: S<String>,
    pub description: String,
    pub python: Python,
    pub build_packages: Vec<S<String>>,
    pub runtime_packages: Vec<S<String>>,
    /// `system.runtime: auto`: where `auto` is written (the spec-wide value or the
    /// variant's). The builder names the packages the venv's ELF files load, and the
    /// runtime apt step installs them besides `runtime_packages`.
    pub runtime_auto: Option<Loc>,
    /// `system.check`: the runtime-library check (every ELF file of the venv and the
    /// project finds each `DT_NEEDED` library in the image), on by default.
    pub runtime_check: bool,
    /// Extra apt sources for both apt steps (the spec-wide ones, then the variant's).
    pub repositories: Vec<S<AptRepository>>,
    /// Requirement groups in install order; each is layered on the previous one.
    pub groups: Vec<S<String>>,
    pub pip: Pip,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// The spec-wide `verify` commands, then the variant's own.
    pub verify: Vec<S<VerifyCommand>>,
    /// How the image runs: the spec-wide process keys with the variant's laid on top.
    pub process: Process,
}

/// The process keys a variant may override: `user`, `entrypoint`, `cmd`, `healthcheck`
/// and `stop_signal` replace the spec-wide value, `ports`, `writable`, `volumes` and
/// `files` add to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub user: User,
    pub entrypoint: Option<S<Vec<String>>>,
    pub cmd: Option<S<Vec<String>>>,
    pub healthcheck: Option<Healthcheck>,
    pub ports: Vec<S<String>>,
    pub stop_signal: Option<S<String>>,
    /// Run the command under tini (`init: true`), from the base's apt.
    pub init: Option<S<bool>>,
    /// Directories the runtime user owns (made in the image).
    pub writable: Vec<S<String>>,
    /// `VOLUME`s: directories the runtime user owns, declared as volumes.
    pub volumes: Vec<S<String>>,
    /// Single files copied from the context with their mode and owner.
    pub files: Vec<S<FileCopy>>,
}

impl Process {
    pub fn init(&self) -> bool {
        self.init.as_ref().is_some_and(|i| i.v)
    }
}

/// An apt source outside the base's archive, trusted only through its own key
/// (`signed-by`), which comes from the build context.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AptRepository {
    pub name: String,
    pub url: String,
    pub suite: String,
    pub components: Vec<String>,
    /// The signing key (binary or `.asc` armored), a context path.
    pub key: String,
}

/// A command of the spec's own (`steps`): compile, fetch, generate, install a vendor .deb.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CustomStep {
    pub name: String,
    pub place: StepPlace,
    /// A shell script (`/bin/sh -c`, `set -eu` first).
    pub run: String,
    /// Context paths mounted read-only at `/kiln/inputs` (the step's working directory):
    /// only their contents invalidate the step.
    pub inputs: Vec<String>,
    /// Builder steps: what reaches the image, `from` the step's filesystem `to` the image.
    pub outputs: Vec<StepOutput>,
    /// Cache mounts (absolute directories), kept between builds.
    pub cache: Vec<String>,
    /// Build secret ids, mounted at `/run/secrets/<id>` (required).
    pub secrets: Vec<String>,
    pub network: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StepPlace {
    /// On the builder, with the dependencies installed, before the venv is copied.
    Builder,
    /// On the finished image, as root, before the runtime user is set.
    Image,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StepOutput {
    pub from: String,
    pub to: String,
}

/// Who owns the app's code in the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum AppOwner {
    /// root: the app cannot rewrite its own code.
    #[default]
    Root,
    /// The runtime user (kiln's behaviour before this key).
    User,
}

/// One `files` entry: a context file copied to `dest` with `mode`, owned by root or the
/// runtime user.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileCopy {
    pub src: String,
    pub dest: String,
    pub mode: u32,
    pub owner: AppOwner,
}
