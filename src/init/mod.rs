//! `kiln init`: a first spec for an existing Python project, with a comment on each line
//! saying what in the project it comes from.
//!
//! `detect` reads the project directory into a `Detected` (the dependency source and its
//! groups, the Python, the app, the command, the sdists and their system packages, each
//! with why); `source` holds the dependency sources' part of that; `render` writes the
//! YAML text and the summary printed beside it. Reading reuses kiln's own readers
//! (`context::uv_lock`, `pylock`, `pyproject`, `requirements`; `poetry_lock` here, which
//! only `init` reads), and the system packages come from `sysdeps`, the table
//! `plan::build_hints` reads too. The same directory gives the same text.

pub mod detect;
pub mod poetry_lock;
pub mod render;
pub mod source;

use std::fmt;

pub use detect::detect;
pub use render::{render, summary};

/// The spec file `kiln init` writes in the project directory.
pub const SPEC_FILE: &str = "kiln.yaml";

/// What the user asked for besides the directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// A build secret id for a CA bundle (`build_secrets.ca_bundle`): for a network that
    /// intercepts TLS. Without it the line is written as a comment.
    pub ca_bundle: Option<String>,
}

/// A choice and why it was made (for the comment above its line, and the summary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Why<T> {
    pub value: T,
    pub why: String,
}

impl<T> Why<T> {
    pub fn new(value: T, why: impl Into<String>) -> Self {
        Why {
            value,
            why: why.into(),
        }
    }
}

/// Everything `kiln init` found in a project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detected {
    /// The spec's `name`.
    pub name: Why<String>,
    pub description: Option<String>,
    /// `major.minor`.
    pub python: Why<String>,
    /// What the dependencies are read from.
    pub source: Why<source::Kind>,
    /// The requirement groups, in install order: the first is the minimal variant's; with
    /// more, the full variant installs them all.
    pub groups: Vec<source::Group>,
    /// What the dependency source has that the image does not get, and why.
    pub left_out: Vec<String>,
    /// The packages built from a sdist.
    pub sdists: Vec<source::SdistUse>,
    pub app: Why<App>,
    pub cmd: Cmd,
    /// Anything else the user should know (another dependency source seen, and so on).
    pub notes: Vec<String>,
}

/// How the app's code reaches the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum App {
    /// `app.project: .`: a package with a build backend, built as a wheel.
    Project,
    /// `app.src`: directories and modules copied as they are.
    Src(Vec<String>),
    /// No code found to copy.
    None,
}

/// The image's command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cmd {
    /// The project's only console script.
    Script(String),
    /// `python -m PACKAGE`: the only package with a `__main__.py`.
    Module(String),
    /// Several candidates: written as a comment listing them.
    Choose(Vec<String>),
    None,
}

/// Why `kiln init` wrote nothing: the file or directory, what is wrong, what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub path: String,
    pub message: String,
    pub help: String,
}

impl Error {
    pub fn new(
        path: impl Into<String>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        Error {
            path: path.into(),
            message: crate::url::redact_text(&message.into()),
            help: crate::url::redact_text(&help.into()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "error: {}: {}\n  = help: {}",
            self.path, self.message, self.help
        )
    }
}

/// `Ok` when there is no file at `path` (nor a link, dangling or not). Errors: there is.
pub fn refuse_existing(path: &std::path::Path) -> Result<(), Error> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        _ => Err(Error::new(
            path.display().to_string(),
            "it exists already; kiln init does not overwrite it",
            "move it away, or print the spec with `kiln init --stdout` to compare",
        )),
    }
}

/// Write `text` to `path`, which must not exist (checked as the file is made, so a file
/// made meanwhile is not overwritten either). Errors: it exists, or cannot be written.
pub fn write(path: &std::path::Path, text: &str) -> Result<(), Error> {
    use std::io::Write;
    let shown = path.display().to_string();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => refuse_existing(path).unwrap_err(),
            _ => Error::new(
                &shown,
                format!("cannot write it: {e}"),
                "check the directory's permissions, or use --stdout",
            ),
        })?;
    file.write_all(text.as_bytes()).map_err(|e| {
        Error::new(
            &shown,
            format!("cannot write it: {e}"),
            "check the disk, or use --stdout",
        )
    })
}
