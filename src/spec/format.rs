//! The spec format as data: which keys each section has, and the defaults and ranges of
//! its values. The loader (`convert`) and the JSON Schema (`schema`) both read these, and
//! the schema's test compares the two, so an editor never promises what `kiln check` refuses.

/// The spec format version this kiln reads.
pub const SPEC_VERSION: i64 = 1;

pub const TOP_KEYS: &[&str] = &[
    "version",
    "name",
    "description",
    "extends",
    "args",
    "python",
    "system",
    "requirements",
    "pip",
    "app",
    "user",
    "env",
    "entrypoint",
    "cmd",
    "healthcheck",
    "ports",
    "labels",
    "stop_signal",
    "init",
    "writable",
    "volumes",
    "files",
    "steps",
    "verify",
    "verify_timeout",
    "variants",
    "default_variant",
    "build_secrets",
];
pub const PYTHON_KEYS: &[&str] = &["base", "version", "installer", "uv_version", "venv"];
pub const SYSTEM_KEYS: &[&str] = &["build", "runtime", "repositories", "check"];
/// `system.runtime: auto` (or an `auto` entry of the list): the builder names the packages.
pub const RUNTIME_AUTO: &str = "auto";
/// A `system.repositories` entry: an apt source signed by a key from the context.
pub const REPOSITORY_KEYS: &[&str] = &["name", "url", "suite", "components", "key"];
pub const PIP_KEYS: &[&str] = &[
    "index_url",
    "extra_index_urls",
    "timeout",
    "retries",
    "constraints",
    "check",
    "require_hashes",
    "build_constraints",
    "index_strategy",
    "no_build_isolation",
];
/// uv's `--index-strategy` values.
pub const INDEX_STRATEGIES: &[&str] = &["first-index", "unsafe-first-match", "unsafe-best-match"];
/// A group is requirement files and lines (`files`, `packages`, `require_hashes`) or a
/// lock file (`lock`, `extras`, `groups`).
pub const GROUP_KEYS: &[&str] = &[
    "files",
    "packages",
    "require_hashes",
    "lock",
    "extras",
    "groups",
];
pub const APP_KEYS: &[&str] = &["src", "project", "exclude", "workdir", "owner"];
/// `app.owner` and `files[].owner`: who owns the copied files.
pub const OWNERS: &[&str] = &["root", "user"];
/// A `steps` entry: a command of the spec's own, in the builder or in the image.
pub const STEP_KEYS: &[&str] = &[
    "name", "in", "run", "inputs", "outputs", "cache", "secrets", "network",
];
/// At most this many `steps`, and at most `MAX_GROUPS` requirement groups per variant.
/// Each image step is a layer on the image, and each group's install a layer on the
/// previous one in the builder; overlay mounts stop near 128 stacked layers (the kernel
/// takes a page of mount options; 127 is Docker's historic limit, and an image with more
/// cannot be run: moby/buildkit#3067, #4815), so no build could use more. These leave room
/// for the base image's own layers and kiln's (apt, user, files, venv, app), and they bound
/// the depth of every graph kiln walks.
pub const MAX_STEPS: usize = 100;
pub const MAX_GROUPS: usize = 64;
/// Where a step runs.
pub const STEP_PLACES: &[&str] = &["builder", "image"];
/// An entry of a builder step's `outputs`.
pub const OUTPUT_KEYS: &[&str] = &["from", "to"];
/// `steps[].network`: on, as in a Dockerfile's RUN.
pub const DEFAULT_STEP_NETWORK: bool = true;
/// A `files` entry.
pub const FILE_KEYS: &[&str] = &["src", "dest", "mode", "owner"];
/// `files[].mode` when not given: readable by all, written by none but root.
pub const DEFAULT_FILE_MODE: u32 = 0o644;
/// `init`: off; `init: true` runs the command under tini.
pub const DEFAULT_INIT: bool = false;
/// Where Debian's `tini` package puts it.
pub const TINI: &str = "/usr/bin/tini";
pub const USER_KEYS: &[&str] = &["name", "uid", "gid"];
pub const HEALTHCHECK_KEYS: &[&str] = &[
    "cmd",
    "interval",
    "timeout",
    "retries",
    "start_period",
    "verify",
];
/// A `verify` entry written as a mapping (besides a plain command string).
pub const VERIFY_KEYS: &[&str] = &["run", "timeout"];
pub const SECRETS_KEYS: &[&str] = &["ca_bundle", "netrc"];
/// What a variant may override or add to; everything else is spec-wide.
pub const VARIANT_KEYS: &[&str] = &[
    "description",
    "base",
    "python",
    "requirements",
    "system",
    "pip",
    "env",
    "labels",
    "verify",
    "user",
    "entrypoint",
    "cmd",
    "healthcheck",
    "ports",
    "stop_signal",
    "init",
    "writable",
    "volumes",
    "files",
];

pub const DEFAULT_UV_VERSION: &str = "0.9.7";
pub const DEFAULT_VENV: &str = "/opt/venv";
pub const DEFAULT_WORKDIR: &str = "/app";
/// The runtime user when the spec names none: a non-root user, as the seed's images wanted.
pub const DEFAULT_USER: &str = "app";
pub const DEFAULT_UID: u32 = 10001;
/// `pip.check`: run `pip check` / `uv pip check` after every install.
pub const DEFAULT_PIP_CHECK: bool = true;
/// `system.check`: every ELF file of the venv must find its libraries in the image.
pub const DEFAULT_RUNTIME_CHECK: bool = true;
/// `pip.require_hashes`: off, as in pip (a hashed file turns it on by itself in pip).
pub const DEFAULT_REQUIRE_HASHES: bool = false;
/// The Poetry kiln installs in the builder for `poetry.lock` groups.
pub const POETRY_VERSION: &str = "2.2.1";
/// The `poetry export` plugin installed beside it (Poetry 2 no longer bundles it); 1.10
/// needs Poetry >= 2.1.
pub const POETRY_PLUGIN_EXPORT_VERSION: &str = "1.10.1";

/// An integer key: its inclusive range and its default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntRange {
    pub min: i64,
    pub max: i64,
    pub default: i64,
}

/// `pip.timeout`, seconds per network operation (pip's `--timeout`, uv's `UV_HTTP_TIMEOUT`).
pub const PIP_TIMEOUT: IntRange = IntRange {
    min: 1,
    max: 86_400,
    default: 60,
};
/// `pip.retries` (pip's `--retries`, uv's `UV_HTTP_RETRIES`).
pub const PIP_RETRIES: IntRange = IntRange {
    min: 0,
    max: 100,
    default: 5,
};
/// `user.uid` and `user.gid`: 0 is allowed only as root (`user: root` or name root);
/// 4294967295 is (uid_t)-1, which means "no change" to the kernel.
pub const USER_ID: IntRange = IntRange {
    min: 0,
    max: 4_294_967_294,
    default: DEFAULT_UID as i64,
};
/// `healthcheck.retries` (Docker's default is 3).
pub const HEALTHCHECK_RETRIES: IntRange = IntRange {
    min: 1,
    max: 1000,
    default: 3,
};

/// `verify_timeout`: how long each verify command may run, unless it sets `timeout`.
pub const DEFAULT_VERIFY_TIMEOUT: &str = "300s";
/// The longest verify timeout, in seconds (a day).
pub const MAX_VERIFY_TIMEOUT_S: u64 = 86_400;
/// `healthcheck.verify`: run the health check once during verify.
pub const DEFAULT_HEALTHCHECK_VERIFY: bool = true;

/// Health check durations and their defaults, as Docker's HEALTHCHECK has them.
pub const HEALTHCHECK_INTERVAL: &str = "30s";
pub const HEALTHCHECK_TIMEOUT: &str = "30s";
pub const HEALTHCHECK_START_PERIOD: &str = "0s";

/// The build arg (buildx passes it from the environment) or spec arg that pins the
/// image's timestamps for reproducible builds.
pub const SOURCE_DATE_EPOCH_ARG: &str = "SOURCE_DATE_EPOCH";

/// The latest `SOURCE_DATE_EPOCH` kiln takes (9999-12-31T23:59:59Z).
pub const MAX_SOURCE_DATE_EPOCH: u64 = 253_402_300_799;

/// The build arg that skips `verify`.
pub const SKIP_VERIFY_ARG: &str = "KILN_SKIP_VERIFY";

/// Build args that mean something without being declared under `args:` (BuildKit's own,
/// the proxy variables, kiln's `KILN_SKIP_VERIFY`): never reported as undeclared.
pub fn is_builtin_arg(name: &str) -> bool {
    name.starts_with("BUILDKIT_")
        || name == SKIP_VERIFY_ARG
        || name == SOURCE_DATE_EPOCH_ARG
        || matches!(
            name,
            "HTTP_PROXY" | "HTTPS_PROXY" | "FTP_PROXY" | "NO_PROXY" | "ALL_PROXY"
        )
        || matches!(
            name,
            "http_proxy" | "https_proxy" | "ftp_proxy" | "no_proxy" | "all_proxy"
        )
}
