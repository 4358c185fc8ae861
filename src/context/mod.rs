//! The build context as kiln reads it before planning: `.dockerignore` (when the spec
//! copies app code), the requirement
//! files a spec names and every file they include, the lock files and the projects
//! beside them. `Gather` says which files it needs next and learns from each one given
//! (the CLI reads the disk, the frontend the client's context), so both check the same
//! things: a missing file or an include that leaves the context is an error at the spec
//! line that named the file, before any step runs.

mod closure;
pub mod dockerignore;
pub mod interpreter;
pub mod preflight;
pub mod pylock;
pub mod pyproject;
pub mod requirements;
pub mod uv_lock;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use crate::diag::{Diagnostic, Loc};
use crate::spec::{GroupSource, LockKind, Spec, Variant};

/// What the context adds to the spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContextInfo {
    /// `.dockerignore` as exclude patterns.
    pub dockerignore: Vec<String>,
    /// A requirement or constraints file the spec names -> every context file installing
    /// it reads: itself, then its `-r`/`-c` includes, depth-first, each once.
    pub requirement_files: BTreeMap<String, Vec<String>>,
    /// A requirement or constraints file the spec names -> what kiln read in it and its
    /// includes, which the install step gets instead of the files.
    pub requirements: BTreeMap<String, Flat>,
    /// A `uv.lock` -> the `pyproject.toml` of each member of its workspace (what
    /// `uv sync --locked` compares with the lock, besides the root's); a member written
    /// as a glob stays a glob (an include pattern).
    pub workspace_files: BTreeMap<String, Vec<String>>,
    /// The project's pinned Python (`major.minor` from its `.python-version`) and that
    /// file, used where the spec sets no `python.version`.
    pub python_pin: Option<(String, String)>,
    /// Each PEP 751 lock a group names, as read (see `pylock::parse`).
    pub pylocks: BTreeMap<String, pylock::Pylock>,
    /// Each uv lock a group names, as read (see `uv_lock::read`).
    pub uv_locks: BTreeMap<String, uv_lock::UvLock>,
    /// What the build should tell the user but that does not stop it (a lock whose files
    /// cannot be fetched by the engine, so its group installs from the index).
    pub warnings: Vec<Diagnostic>,
}

/// A requirement file with its includes, as kiln read them: the lines an installer gets.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Flat {
    /// Requirement lines (with their `--hash` options), in file order, each once.
    pub requirements: Vec<String>,
    /// The lines of the files it includes with `-c`: constraints.
    pub constraints: Vec<String>,
    /// Install-wide options (`--index-url URL`), each once.
    pub options: Vec<String>,
    /// A requirement has a `--hash`: pip then requires hashes for every requirement of
    /// the install, and kiln asks uv to do the same.
    pub hashed: bool,
}

/// The interpreter a variant's packages are for, as the spec or the project asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PythonWant<'a> {
    /// `major.minor`.
    pub version: &'a str,
    /// The project's `.python-version` that asks for it; `None`: the spec's
    /// `python.version`.
    pub pin_file: Option<&'a str>,
}

impl ContextInfo {
    /// The spec's `python.version`, else the project's `.python-version`; `None` when
    /// neither says. The one place this rule is written.
    pub fn python<'a>(&'a self, v: &'a Variant) -> Option<PythonWant<'a>> {
        match (&v.python.version, &self.python_pin) {
            (Some(s), _) => Some(PythonWant {
                version: &s.v,
                pin_file: None,
            }),
            (None, Some((pin, file))) => Some(PythonWant {
                version: pin,
                pin_file: Some(file),
            }),
            (None, None) => None,
        }
    }
}

/// At most this many files are read from the context for one spec, each at most
/// `MAX_FILE_BYTES` (a spec can include a lot, but not unboundedly much): a larger file is
/// an error, never cut (what an installer would read past the cut was never checked).
pub const MAX_FILES: usize = 1000;
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// Why a file is read.
#[derive(Clone, Debug)]
enum Why {
    /// A requirement file; its includes are followed.
    Requirements,
    /// A project's `pyproject.toml`; `lock` is set for a uv lock, whose workspace members
    /// are then read too.
    Project { lock: Option<String>, loc: Loc },
    /// A file that must exist (a lock file, a workspace member's `pyproject.toml`).
    Present { what: &'static str, loc: Loc },
    /// The context's `.dockerignore`, when there is one.
    Dockerignore,
    /// The project's `.python-version`, when there is one.
    PythonPin,
    /// A PEP 751 lock: its packages and files (and, like `Present`, it must exist).
    Pylock { loc: Loc },
    /// A uv lock: read with its project's `pyproject.toml` once both are in (`finish`).
    UvLock { loc: Loc },
}

/// One include: its line, the path as written, `-c` or `-r`, and the context path it
/// names (or why it names none).
type Resolved = (u32, String, bool, Result<String, &'static str>);

/// A file `Gather` has heard of: wanted (for every reason so far), or given (its text, or
/// `None` when the context has no such file).
enum Known {
    Wanted(Vec<Why>),
    /// The text, and every reason it was wanted for.
    Given(Option<Arc<str>>, Vec<Why>),
}

/// Reads what a spec needs from the context, file by file.
pub struct Gather {
    /// Requirement and constraints files named by the spec, with where and which kind.
    roots: Vec<(String, Loc, &'static str)>,
    /// Files wanted and not yet asked for, in the order first wanted.
    queue: Vec<String>,
    asked: BTreeSet<String>,
    /// Each requirement file read: its lines, and its includes resolved.
    parsed: BTreeMap<String, (requirements::Parsed, Vec<Resolved>)>,
    missing: BTreeSet<String>,
    /// Files over `MAX_FILE_BYTES`.
    too_large: BTreeSet<String>,
    /// Each file wanted or given so far.
    given: BTreeMap<String, Known>,
    /// The `pyproject.toml` whose Python counts (the app's project, else the first lock's).
    main_project: Option<String>,
    /// Each `python.version` the spec sets, to hold against the project's.
    versions: Vec<(String, Loc)>,
    requires_python: Option<(String, String)>,
    /// The spec mounts a netrc: some index needs credentials, which an engine's own
    /// fetch does not have.
    netrc: bool,
    /// The `host[:port]` of every index the spec names: the engine may fetch a lock's
    /// files from them even over plain http or at a local address.
    index_hosts: Vec<String>,
    /// `app.project`'s directory (`""` for the context root): a lock's entry for it is the
    /// app, which the project stage installs.
    app_project: Option<String>,
    /// Each uv lock given, and where the spec names it: read in `finish`, with its project.
    uv_locks: BTreeMap<String, Loc>,
    info: ContextInfo,
    diags: Vec<Diagnostic>,
}

impl Gather {
    pub fn new(spec: &Spec) -> Gather {
        let mut g = Gather {
            roots: vec![],
            queue: vec![],
            asked: BTreeSet::new(),
            parsed: BTreeMap::new(),
            missing: BTreeSet::new(),
            too_large: BTreeSet::new(),
            given: BTreeMap::new(),
            main_project: None,
            versions: vec![],
            requires_python: None,
            netrc: spec.secrets.netrc.is_some(),
            uv_locks: BTreeMap::new(),
            app_project: spec
                .app
                .as_ref()
                .and_then(|a| a.project.as_ref())
                .and_then(|p| requirements::resolve("x", &format!("{}/x", p.v)).ok())
                .map(|p| p.strip_suffix("/x").unwrap_or("").to_string()),
            index_hosts: spec
                .variants
                .iter()
                .flat_map(|v| v.pip.index_url.iter().chain(&v.pip.extra_index_urls))
                .filter_map(|u| crate::url::Url::split(u).map(|u| u.host_port()))
                .collect(),
            info: ContextInfo::default(),
            diags: vec![],
        };
        for v in &spec.variants {
            if let Some(s) = &v.python.version
                && !g.versions.iter().any(|(x, l)| *x == s.v && *l == s.loc)
            {
                g.versions.push((s.v.clone(), s.loc));
            }
        }
        for group in &spec.groups {
            match &group.source {
                GroupSource::Requirements { files, .. } => {
                    for f in files {
                        g.root(&f.v, f.loc, "requirement file");
                    }
                }
                GroupSource::Lock(lock) => {
                    // What the lock is resolved from: `kiln lock` reads it.
                    for f in lock.from.iter().flat_map(|f| &f.files) {
                        g.root(&f.v, f.loc, "requirement file");
                    }
                    let (kind, loc) = (lock.kind, lock.path.loc);
                    // A lock kiln reads for its files; any other only has to be there.
                    let why = match kind {
                        LockKind::Pylock => Why::Pylock { loc },
                        LockKind::Uv => Why::UvLock { loc },
                        LockKind::Poetry => Why::Present {
                            what: "lock file",
                            loc,
                        },
                    };
                    g.want(&lock.path.v, why);
                    if kind.has_project() {
                        let pyproject = join(lock.project_dir(), "pyproject.toml");
                        if g.main_project.is_none()
                            && spec.app.as_ref().and_then(|a| a.project.as_ref()).is_none()
                        {
                            g.main_project = Some(pyproject.clone());
                        }
                        let lock = kind.reads_workspace().then(|| lock.path.v.clone());
                        g.want(&pyproject, Why::Project { lock, loc });
                    }
                }
            }
        }
        for v in &spec.variants {
            for c in v.pip.constraints.iter().chain(&v.pip.build_constraints) {
                g.root(&c.v, c.loc, "constraints file");
            }
        }
        // Every context source leaves out what it excludes (read with the first files).
        if spec.app.is_some() || !spec.context_uses.is_empty() || !g.queue.is_empty() {
            g.want(".dockerignore", Why::Dockerignore);
        }
        if let Some(p) = spec.app.as_ref().and_then(|a| a.project.as_ref()) {
            let pyproject = join(&p.v, "pyproject.toml");
            g.main_project = Some(pyproject.clone());
            g.want(
                &pyproject,
                Why::Project {
                    lock: None,
                    loc: p.loc,
                },
            );
        }
        g
    }

    fn root(&mut self, path: &str, loc: Loc, what: &'static str) {
        self.roots.push((path.to_string(), loc, what));
        self.want(path, Why::Requirements);
    }

    fn want(&mut self, path: &str, why: Why) {
        match self.given.get_mut(path) {
            // Read already (an include cycle, a file named twice): learn from it again.
            Some(Known::Given(text, whys)) => {
                let text = text.clone();
                whys.push(why.clone());
                self.learn(path, why, text.as_deref());
            }
            Some(Known::Wanted(reasons)) => reasons.push(why),
            None => {
                self.given
                    .insert(path.to_string(), Known::Wanted(vec![why]));
                self.queue.push(path.to_string());
            }
        }
    }

    /// The files to read next (each asked for once); empty when nothing is left.
    pub fn wanted(&mut self) -> Vec<String> {
        let room = MAX_FILES.saturating_sub(self.asked.len());
        let out: Vec<String> = self.queue.drain(..room.min(self.queue.len())).collect();
        self.asked.extend(out.iter().cloned());
        out
    }

    /// The content of a file `wanted` named; `None` when the context has no such file.
    /// Content past `MAX_FILE_BYTES` is not looked at: the file is refused where it is
    /// needed.
    pub fn give(&mut self, path: &str, content: Option<&[u8]>) {
        if content.is_some_and(|c| c.len() > MAX_FILE_BYTES) {
            self.too_large.insert(path.to_string());
        }
        let text: Option<Arc<str>> =
            content.map(|c| String::from_utf8_lossy(&c[..c.len().min(MAX_FILE_BYTES)]).into());
        let reasons = match self.given.remove(path) {
            Some(Known::Wanted(reasons)) => reasons,
            _ => vec![],
        };
        self.given.insert(
            path.to_string(),
            Known::Given(text.clone(), reasons.clone()),
        );
        for why in reasons {
            self.learn(path, why, text.as_deref());
        }
    }

    fn learn(&mut self, path: &str, why: Why, text: Option<&str>) {
        if let (Why::Project { .. }, Some(text)) = (&why, text) {
            self.project_python(path, text);
        }
        match (&why, text) {
            (Why::Requirements, None) => {
                self.missing.insert(path.to_string());
            }
            (Why::Requirements, Some(text)) if !self.parsed.contains_key(path) => {
                self.requirements(path, text)
            }
            (
                Why::Project { loc, .. }
                | Why::Present { loc, .. }
                | Why::Pylock { loc }
                | Why::UvLock { loc },
                None,
            ) => {
                let what = match why {
                    Why::Present { what, .. } => what,
                    Why::Pylock { .. } | Why::UvLock { .. } => "lock file",
                    _ => "project file",
                };
                self.diags.push(Diagnostic::error(
                    *loc,
                    format!("{what} `{path}` is not in the build context"),
                    "check the path (relative to the context) and that .dockerignore does not exclude it",
                ));
            }
            (
                Why::Project {
                    lock: Some(lock),
                    loc,
                },
                Some(text),
            ) => self.members(lock, path, text, *loc),
            (Why::Dockerignore, Some(text)) => self.info.dockerignore = dockerignore::parse(text),
            (Why::Pylock { loc }, Some(text)) => self.pylock(path, text, *loc),
            (Why::UvLock { loc }, Some(_)) => {
                self.uv_locks.insert(path.to_string(), *loc);
            }
            (Why::PythonPin, Some(text)) => {
                if let Some(v) = pyproject::pinned_version(text) {
                    self.info.python_pin = Some((v, path.to_string()));
                }
            }
            _ => {}
        }
    }

    /// The main project's Python: its `requires-python`, and its `.python-version`.
    fn project_python(&mut self, pyproject: &str, text: &str) {
        if self.main_project.as_deref() != Some(pyproject) {
            return;
        }
        if let Ok(Some(r)) = pyproject::requires_python(text) {
            self.requires_python = Some((r, pyproject.to_string()));
        }
        let dir = pyproject.strip_suffix("pyproject.toml").unwrap_or("");
        self.want(&format!("{dir}.python-version"), Why::PythonPin);
    }

    fn pylock(&mut self, path: &str, text: &str, loc: Loc) {
        if self.info.pylocks.contains_key(path) {
            return;
        }
        if self.too_large.contains(path) {
            self.diags.push(too_large(path, loc));
            return;
        }
        // A local project in the lock (`uv export` lists the project it ran in): the app's
        // own, which `app.project` builds, or nothing a build can install from the lock.
        let project_of = |e: &pylock::Entry| -> Option<Result<String, &'static str>> {
            let dir = e.directory.as_deref()?;
            Some(
                requirements::resolve(path, &format!("{dir}/x"))
                    .map(|p| p.strip_suffix("/x").unwrap_or("").to_string()),
            )
        };
        let app = self.app_project.clone();
        if let Ok(entries) = pylock::read(text) {
            for e in &entries {
                match project_of(e) {
                    Some(Ok(dir)) if app.as_deref() == Some(dir.as_str()) => {}
                    Some(resolved) => {
                        let dir = e.directory.as_deref().unwrap_or(".");
                        let help = match resolved {
                            Ok(d) => format!(
                                "export the lock without it (`uv export --no-emit-project ...`), or build it as the app: `app: {{project: {}}}`",
                                if d.is_empty() { "." } else { &d }
                            ),
                            Err(_) => {
                                "export the lock without it (`uv export --no-emit-project ...`)"
                                    .to_string()
                            }
                        };
                        self.diags.push(Diagnostic::error(
                            loc,
                            format!("`{path}` installs the local directory `{dir}` (package `{}`), which a build cannot install from the lock", e.package.name),
                            help,
                        ));
                    }
                    None => {}
                }
            }
        }
        let is_app = |e: &pylock::Entry| matches!(project_of(e), Some(Ok(d)) if app.as_deref() == Some(d.as_str()));
        let read = pylock::parse(text, is_app).map(|lock| match lock {
            pylock::Pylock::Addressable(p) if self.netrc => pylock::public_only(p),
            pylock::Pylock::Addressable(p) => pylock::engine_safe(p, &self.index_hosts),
            other => other,
        });
        match read {
            Ok(lock) => {
                if let pylock::Pylock::InStep(why) = &lock {
                    self.info.warnings.push(Diagnostic::warning(
                        "KilnLockInStep",
                        loc,
                        format!("`{path}`: {why}, so its group installs from the index in its own step (the engine cannot fetch and check its files)"),
                        "lock with hashes and plain https URLs (`kiln lock`) to have every file fetched once and cached by its digest",
                    ));
                }
                self.info.pylocks.insert(path.to_string(), lock);
            }
            Err(e) => self.diags.push(Diagnostic::error(
                loc,
                format!("cannot read the lock `{path}`: {e}"),
                "fix or regenerate the lock (`kiln lock`); uv would refuse it too",
            )),
        }
    }

    /// A uv lock with its project's `pyproject.toml`: kept when kiln can read it (the
    /// engine then fetches its files where it may), an error when uv would refuse it.
    fn uv_lock(&mut self, path: &str, loc: Loc) {
        if self.too_large.contains(path) {
            self.diags.push(too_large(path, loc));
            return;
        }
        let text_of = |p: &str| match self.given.get(p) {
            Some(Known::Given(Some(text), _)) => Some(text.clone()),
            _ => None,
        };
        let Some(text) = text_of(path) else {
            return;
        };
        let dir = path.strip_suffix("uv.lock").unwrap_or("");
        let pyproject = text_of(&format!("{dir}pyproject.toml"));
        match uv_lock::read(&text, pyproject.as_deref()) {
            Ok(mut lock) => {
                let files = || lock.files().map(|(n, f)| (n.to_string(), f.clone()));
                let problem = lock
                    .problem
                    .clone()
                    .or_else(|| self.netrc.then(|| pylock::netrc_problem(files())).flatten())
                    .or_else(|| pylock::fetch_problem(files(), &self.index_hosts));
                if let Some(why) = &problem {
                    self.info.warnings.push(Diagnostic::warning(
                        "KilnLockInStep",
                        loc,
                        format!("`{path}`: {why}, so its groups are exported and installed from the index in their own steps (the engine cannot fetch and check its files)"),
                        "lock packages from an index with hashes and https URLs for every file to be fetched once and cached by its digest",
                    ));
                }
                lock.problem = problem;
                self.info.uv_locks.insert(path.to_string(), lock);
            }
            Err(e) => self.diags.push(Diagnostic::error(
                loc,
                format!("cannot use the lock `{path}`: {e}"),
                "run `uv lock` in the project and commit the lock; `uv export --locked` would refuse it too",
            )),
        }
    }

    fn requirements(&mut self, path: &str, text: &str) {
        let parsed = requirements::parse(text);
        // Marked as read before its includes are followed: a file that includes itself
        // (or an already read file that leads back to it) is not read again, which would
        // recurse without end.
        self.parsed
            .insert(path.to_string(), (requirements::Parsed::default(), vec![]));
        let mut found: Vec<Resolved> = vec![];
        let mut seen = HashSet::new();
        for (line, written, constraint) in parsed.includes() {
            // Each include once: 100 000 lines of `-r core.txt` are one file to want.
            if !seen.insert((written, constraint)) {
                continue;
            }
            let resolved = requirements::resolve(path, written);
            if let Ok(r) = &resolved {
                self.want(r, Why::Requirements);
            }
            found.push((line, written.to_string(), constraint, resolved));
        }
        self.parsed.insert(path.to_string(), (parsed, found));
    }

    fn members(&mut self, lock: &str, pyproject: &str, text: &str, loc: Loc) {
        let dir = pyproject.strip_suffix("pyproject.toml").unwrap_or("");
        let members = match pyproject::workspace_members(text) {
            Ok(m) => m,
            Err(e) => {
                let msg = format!("cannot read `{pyproject}`: {e}");
                self.diags.push(Diagnostic::error(
                    loc,
                    msg,
                    "fix the TOML; uv would refuse it too",
                ));
                return;
            }
        };
        let mut files = vec![];
        for m in members {
            match requirements::resolve(pyproject, &format!("{m}/pyproject.toml")) {
                // A glob (`packages/*`) stays a pattern: the local source includes every
                // match, as uv would find them.
                Ok(f) if m.contains(['*', '?', '[']) => files.push(f),
                Ok(f) => {
                    self.want(
                        &f,
                        Why::Present {
                            what: "workspace member",
                            loc,
                        },
                    );
                    files.push(f);
                }
                Err(why) => self.diags.push(Diagnostic::error(
                    loc,
                    format!("workspace member `{m}` of `{dir}pyproject.toml`: {why}"),
                    "keep workspace members inside the build context",
                )),
            }
        }
        self.info.workspace_files.insert(lock.to_string(), files);
    }

    /// What was learned, or every problem found (each at the spec line that named the
    /// file it concerns).
    pub fn finish(mut self) -> Result<ContextInfo, Vec<Diagnostic>> {
        if !self.queue.is_empty() {
            let loc = self.roots.first().map(|r| r.1).unwrap_or_default();
            self.diags.push(Diagnostic::error(
                loc,
                format!("the spec reaches more than {MAX_FILES} files in the build context"),
                "include fewer requirement files",
            ));
        }
        self.check_python();
        for (lock, loc) in std::mem::take(&mut self.uv_locks) {
            self.uv_lock(&lock, loc);
        }
        let ignore = dockerignore::Matcher::new(&self.info.dockerignore);
        self.excluded_files(&ignore);
        // Which files each root reaches: through any include, and through `-r` alone (the
        // others are read as constraints).
        let includes: BTreeMap<String, Vec<Resolved>> = self
            .parsed
            .iter()
            .map(|(f, (_, inc))| (f.clone(), inc.clone()))
            .collect();
        let graph = closure::Graph {
            includes: &includes,
            missing: &self.missing,
            ignore: &ignore,
        };
        let (reached, problems) = closure::closures(&graph, &self.roots);
        self.diags.extend(problems);
        let requirements_only: BTreeMap<String, Vec<Resolved>> = includes
            .iter()
            .map(|(f, inc)| (f.clone(), inc.iter().filter(|r| !r.2).cloned().collect()))
            .collect();
        let graph = closure::Graph {
            includes: &requirements_only,
            ..graph
        };
        let (as_requirements, _) = closure::closures(&graph, &self.roots);
        let mut reported = BTreeSet::new();
        for (root, loc, _) in std::mem::take(&mut self.roots) {
            let Some(files) = reached.get(&root) else {
                continue;
            };
            let direct: BTreeSet<&String> =
                as_requirements.get(&root).into_iter().flatten().collect();
            let mut flat = Flat::default();
            for file in files {
                if self.too_large.contains(file) {
                    if reported.insert(file.clone()) {
                        self.diags.push(too_large(file, loc));
                    }
                    continue;
                }
                let Some((parsed, _)) = self.parsed.get(file) else {
                    continue;
                };
                // Each file's lines refused once, at the first root that reaches it.
                if reported.insert(file.clone()) {
                    for p in &parsed.problems {
                        self.diags.push(Diagnostic::error(
                            loc,
                            format!("{file}:{}: {}", p.line, p.message),
                            p.help,
                        ));
                    }
                }
                flat.add(parsed, !direct.contains(file));
            }
            self.info.requirements.insert(root, flat);
        }
        self.info.requirement_files = reached;
        if self.diags.is_empty() {
            Ok(self.info)
        } else {
            Err(self.diags)
        }
    }

    /// Lock and project files that `.dockerignore` leaves out: the build does not see them.
    fn excluded_files(&mut self, ignore: &dockerignore::Matcher) {
        let mut seen = BTreeSet::new();
        for (path, known) in &self.given {
            let Known::Given(Some(_), whys) = known else {
                continue;
            };
            for why in whys {
                let (what, loc) = match why {
                    Why::Present { what, loc } => (*what, *loc),
                    Why::Pylock { loc } | Why::UvLock { loc } => ("lock file", *loc),
                    Why::Project { loc, .. } => ("project file", *loc),
                    _ => continue,
                };
                if !seen.insert((path.clone(), loc)) {
                    continue;
                }
                match ignore.excluded(path) {
                    Ok(false) => {}
                    Ok(true) => self.diags.push(Diagnostic::error(
                        loc,
                        format!("{what} `{path}` is left out by .dockerignore, so the build does not see it"),
                        "take it out of .dockerignore (a `!` line keeps it), or name another file",
                    )),
                    Err(e) => {
                        self.diags.push(Diagnostic::error(
                            loc,
                            e.to_string(),
                            "shorten .dockerignore (or the paths the spec names)",
                        ));
                        return;
                    }
                }
            }
        }
    }

    /// The spec's `python.version` against the project's: its `.python-version` must
    /// agree, its `requires-python` must allow it.
    fn check_python(&mut self) {
        for (version, loc) in self.versions.clone() {
            if let Some((pin, file)) = &self.info.python_pin
                && *pin != version
            {
                self.diags.push(Diagnostic::error(
                    loc,
                    format!(
                        "python.version `{version}` conflicts with the project's `{file}` ({pin})"
                    ),
                    "make them agree, or remove python.version to take the project's",
                ));
            }
            let Some((requires, file)) = &self.requires_python else {
                continue;
            };
            let (Ok(spec), Ok(v)) = (
                requires.parse::<pep440_rs::VersionSpecifiers>(),
                version.parse::<pep440_rs::Version>(),
            ) else {
                continue;
            };
            if !spec.contains(&v) {
                self.diags.push(Diagnostic::error(
                    loc,
                    format!("python.version `{version}` is outside the project's requires-python `{requires}` ({file})"),
                    "pick a Python the project supports (and a base image that has it)",
                ));
            }
        }
    }
}

impl Flat {
    /// A file's lines, after the lines read so far (as constraints when it was reached
    /// through `-c`).
    fn add(&mut self, parsed: &requirements::Parsed, constraint: bool) {
        for (_, line) in &parsed.lines {
            match line {
                requirements::Line::Requirement {
                    requirement,
                    hashes,
                } => {
                    self.hashed |= !hashes.is_empty();
                    let mut text = requirement.clone();
                    for h in hashes {
                        text.push_str(&format!(" --hash={h}"));
                    }
                    let list = match constraint {
                        true => &mut self.constraints,
                        false => &mut self.requirements,
                    };
                    if !list.contains(&text) {
                        list.push(text);
                    }
                }
                requirements::Line::Option(o) => {
                    if !self.options.contains(o) {
                        self.options.push(o.clone());
                    }
                }
                requirements::Line::Include { .. } => {}
            }
        }
    }
}

/// The error for a context file over `MAX_FILE_BYTES` (the reader stops past it, so the
/// file's whole size is not known).
fn too_large(path: &str, loc: Loc) -> Diagnostic {
    Diagnostic::error(
        loc,
        format!(
            "`{path}` is larger than kiln reads of a context file ({} MiB)",
            MAX_FILE_BYTES >> 20
        ),
        "split it, or leave out what the build does not need",
    )
}

/// `name` inside the context directory `dir` (`""` is the context root).
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{LoadOptions, load_str};

    fn gather(spec: &str, files: &[(&str, &str)]) -> Result<ContextInfo, Vec<Diagnostic>> {
        let spec = load_str("t.yaml", spec, &LoadOptions::default())
            .unwrap()
            .spec;
        let mut g = Gather::new(&spec);
        loop {
            let wanted = g.wanted();
            if wanted.is_empty() {
                break;
            }
            for w in wanted {
                let found = files
                    .iter()
                    .find(|(p, _)| *p == w)
                    .map(|(_, t)| t.as_bytes());
                g.give(&w, found);
            }
        }
        g.finish()
    }

    const SPEC: &str = "version: 1\nname: w\npython: {base: python:3, installer: uv}\n";

    /// Issue 22: the pylock `uv export` writes by default lists the project itself; with
    /// `app.project` naming it, that entry is the app (built by the project stage), else
    /// the lock is refused at its line, saying how to export it.
    #[test]
    fn a_locks_project_entry_is_the_app_or_an_error() {
        let lock = "lock-version = \"1.0\"\n\n[[packages]]\nname = \"svc\"\ndirectory = { path = \".\", editable = true }\n\n[[packages]]\nname = \"six\"\nversion = \"1.17.0\"\nwheels = [{ url = \"https://files.pythonhosted.org/p/six-1.17.0-py2.py3-none-any.whl\", hashes = { sha256 = \"8f4f8d4b3a6c9f5c2e1b0a9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3928170615\" } }]\n";
        let files = [
            ("svc/pylock.toml", lock),
            ("svc/pyproject.toml", "[project]\nname = \"svc\"\n"),
        ];
        let with_app = format!(
            "{SPEC}requirements: {{core: {{lock: svc/pylock.toml}}}}\napp: {{project: svc}}\n"
        );
        let info = gather(&with_app, &files).unwrap();
        let pylock::Pylock::Addressable(packages) = &info.pylocks["svc/pylock.toml"] else {
            panic!("{:?}", info.pylocks)
        };
        let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["six"]);
        let without = format!("{SPEC}requirements: {{core: {{lock: svc/pylock.toml}}}}\n");
        let errs = gather(&without, &files).unwrap_err();
        assert!(
            errs[0]
                .message
                .contains("installs the local directory `.` (package `svc`)"),
            "{errs:?}"
        );
        assert!(
            errs[0].help.contains("uv export --no-emit-project"),
            "{errs:?}"
        );
        assert!(errs[0].help.contains("app: {project: svc}"), "{errs:?}");
    }

    #[test]
    fn includes_are_followed_relative_to_their_file() {
        let spec = format!("{SPEC}requirements: {{core: [req/core.txt]}}\n");
        let info = gather(
            &spec,
            &[
                ("req/core.txt", "-r base.txt\narq\n-c ../pins.txt\n"),
                ("req/base.txt", "-r core.txt\nhttpx\n"),
                ("pins.txt", "httpx<1\n"),
            ],
        )
        .unwrap();
        assert_eq!(
            info.requirement_files["req/core.txt"],
            ["req/core.txt", "req/base.txt", "pins.txt"]
        );
    }

    /// Found by the `requirements` fuzz target: a file that includes itself recursed
    /// until the stack overflowed.
    #[test]
    fn a_file_that_includes_itself_is_read_once() {
        let spec = format!("{SPEC}requirements: {{core: [core.txt], more: [more.txt]}}\n");
        let info = gather(
            &spec,
            &[
                ("core.txt", "-r core.txt\n-r ./core.txt\narq\n"),
                ("more.txt", "-r core.txt\n-r more.txt\n"),
            ],
        )
        .unwrap();
        assert_eq!(info.requirement_files["core.txt"], ["core.txt"]);
        assert_eq!(info.requirement_files["more.txt"], ["more.txt", "core.txt"]);
    }

    /// Issue 21: the include walk was repeated per root (and the text of a file copied per
    /// include line): 2,000 roots of a file with 80,000 self-includes took 82 s in a debug
    /// build. Now each file and each distinct include is walked once.
    #[test]
    fn many_roots_of_many_includes_take_linear_time() {
        let roots = vec!["core.txt"; 2_000].join(", ");
        let spec = format!("{SPEC}requirements: {{core: [{roots}], more: [b.txt, a.txt]}}\n");
        let core = format!("{}-r a.txt\narq\n", "-r core.txt\n".repeat(80_000));
        let started = std::time::Instant::now();
        let info = gather(
            &spec,
            &[
                ("core.txt", &core),
                ("a.txt", "-r c.txt\n-r /abs.txt\n"),
                ("b.txt", "-r d.txt\n-r c.txt\n"),
                ("c.txt", "-r a.txt\n"),
                ("d.txt", ""),
            ],
        )
        .unwrap_err();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
        // The bad include of a.txt, reached from every root, is one error.
        assert_eq!(info.len(), 1, "{info:?}");
        let info = gather(
            &spec,
            &[
                ("core.txt", &core),
                ("a.txt", "-r c.txt\n"),
                ("b.txt", "-r d.txt\n-r c.txt\n"),
                ("c.txt", "-r a.txt\n"),
                ("d.txt", ""),
            ],
        )
        .unwrap();
        assert_eq!(
            info.requirement_files["core.txt"],
            ["core.txt", "a.txt", "c.txt"]
        );
        assert_eq!(
            info.requirement_files["b.txt"],
            ["b.txt", "a.txt", "c.txt", "d.txt"]
        );
        assert_eq!(info.requirement_files["a.txt"], ["a.txt", "c.txt"]);
    }

    #[test]
    fn a_missing_or_escaping_include_is_an_error_at_the_group() {
        let spec = format!("{SPEC}requirements: {{core: [core.txt]}}\n");
        let errs = gather(
            &spec,
            &[("core.txt", "-r gone.txt\n-r /root/.netrc\n-r ../up.txt\n")],
        )
        .unwrap_err();
        let msgs: Vec<&str> = errs.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(msgs.iter().any(|m| {
            m.contains("`gone.txt` (included at core.txt:1) is not in the build context")
        }));
        assert!(
            msgs.iter()
                .any(|m| m.contains("core.txt:2 includes `/root/.netrc`"))
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("core.txt:3 includes `../up.txt`"))
        );
        assert!(errs.iter().all(|d| d.loc.line == 4), "at the group's line");
        let errs = gather(&spec, &[]).unwrap_err();
        assert!(
            errs[0]
                .message
                .contains("`core.txt` is not in the build context")
        );
    }

    #[test]
    fn a_uv_lock_needs_its_project_and_reads_its_workspace() {
        let spec = format!("{SPEC}requirements: {{core: {{lock: svc/uv.lock}}}}\n");
        let root = "[project]\nname = \"svc\"\n[tool.uv.workspace]\nmembers = [\"libs/a\", \"packages/*\"]\n";
        let info = gather(
            &spec,
            &[
                ("svc/uv.lock", "version = 1\n"),
                ("svc/pyproject.toml", root),
                ("svc/libs/a/pyproject.toml", ""),
            ],
        )
        .unwrap();
        assert_eq!(
            info.workspace_files["svc/uv.lock"],
            ["svc/libs/a/pyproject.toml", "svc/packages/*/pyproject.toml"]
        );
        let errs = gather(&spec, &[("svc/pyproject.toml", root)]).unwrap_err();
        let msgs: Vec<&str> = errs.iter().map(|d| d.message.as_str()).collect();
        assert!(
            msgs.contains(&"lock file `svc/uv.lock` is not in the build context"),
            "{msgs:?}"
        );
        assert!(
            msgs.contains(
                &"workspace member `svc/libs/a/pyproject.toml` is not in the build context"
            ),
            "{msgs:?}"
        );
    }

    #[test]
    fn the_projects_python_pin_and_requires_python_hold_against_the_spec() {
        let files = [
            ("uv.lock", "version = 1\n"),
            (
                "pyproject.toml",
                "[project]\nname = \"a\"\nrequires-python = \">=3.11,<3.13\"\n",
            ),
            (".python-version", "3.11\n"),
        ];
        let lock = "requirements: {core: {lock: uv.lock}}\n";
        let info = gather(&format!("{SPEC}{lock}"), &files).unwrap();
        assert_eq!(
            info.python_pin,
            Some(("3.11".into(), ".python-version".into()))
        );
        let with = |v: &str| {
            format!(
                "version: 1\nname: w\npython: {{base: python:3, installer: uv, version: \"{v}\"}}\n{lock}"
            )
        };
        assert!(gather(&with("3.11"), &files).is_ok());
        let errs = gather(&with("3.12"), &files).unwrap_err();
        assert_eq!(
            errs[0].message,
            "python.version `3.12` conflicts with the project's `.python-version` (3.11)"
        );
        assert_eq!(errs[0].loc.line, 3);
        let no_pin = &files[..2];
        let errs = gather(&with("3.13"), no_pin).unwrap_err();
        assert!(
            errs[0]
                .message
                .contains("outside the project's requires-python `>=3.11,<3.13`"),
            "{errs:?}"
        );
        assert!(gather(&with("3.12"), no_pin).is_ok());
    }
}
