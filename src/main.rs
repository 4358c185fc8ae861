//! The `kiln` command line: check, llb, graph, lock, init, schema, and the BuildKit frontend.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use prost::Message;

use kiln::context::{ContextInfo, Gather};
use kiln::diag::Diagnostic;
use kiln::llb::caps::Caps;
use kiln::llb::platform;
use kiln::plan::lower::LowerOpts;
use kiln::plan::{self, Plan, PlanOpts, compile};
use kiln::spec::{self, LoadOptions};

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Python worker images from a short YAML spec, built by BuildKit"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Check specs; exit 2 with file:line:col diagnostics when one is wrong.
    Check {
        #[arg(required = true)]
        specs: Vec<String>,
        /// NAME=VALUE, overriding a default under `args:`.
        #[arg(long = "build-arg", value_name = "NAME=VALUE")]
        build_args: Vec<String>,
        /// Also check the build context, as a build would: requirement files and their
        /// includes, constraints, lock files and projects, and app.src (after
        /// .dockerignore and app.exclude).
        #[arg(long, value_name = "DIR")]
        context: Option<String>,
    },
    /// Print the LLB definition of one variant (for `buildctl build`).
    Llb {
        spec: String,
        /// The variant to build (default: the spec's default_variant).
        #[arg(long)]
        target: Option<String>,
        #[arg(long = "build-arg", value_name = "NAME=VALUE")]
        build_args: Vec<String>,
        /// os/arch[/variant]; default: this machine's.
        #[arg(long)]
        platform: Option<String>,
        #[arg(long, value_enum, default_value = "pb")]
        format: LlbFormat,
        /// The build context directory: its .dockerignore, and the requirement files the
        /// spec names with their includes, are read as the frontend reads them.
        #[arg(long)]
        context: Option<String>,
        /// Layer venv and app with MergeOp, a fetched lock's packages with DiffOp (needs BuildKit >= 0.10).
        #[arg(long)]
        merge: bool,
    },
    /// Print the stage graph: the stages the engine gets (with --context, a lock's
    /// fetched files, wheel builds and layers too), as Graphviz dot or Mermaid.
    Graph {
        spec: String,
        /// Only these variants (default: all).
        #[arg(long)]
        target: Vec<String>,
        #[arg(long = "build-arg", value_name = "NAME=VALUE")]
        build_args: Vec<String>,
        #[arg(long, value_enum, default_value = "dot")]
        format: GraphFormat,
        /// The build context directory, read as `llb --context` reads it (lock files among
        /// it: their files become stages).
        #[arg(long, value_name = "DIR")]
        context: Option<String>,
        /// os/arch[/variant]: which of a lock's files are installed; default: this machine's.
        #[arg(long)]
        platform: Option<String>,
        /// The graph for an engine with MergeOp and DiffOp (a fetched lock's packages as
        /// layers), as `llb --merge`.
        #[arg(long)]
        merge: bool,
    },
    /// Write a PEP 751 lock (pylock.<group>.toml) per requirement group with uv, and print
    /// the spec lines that point at them.
    Lock {
        spec: String,
        /// The build context: the requirement files are read there and the locks written
        /// there.
        #[arg(long, value_name = "DIR", default_value = ".")]
        context: String,
        /// Only the groups these variants install (default: every variant's).
        #[arg(long, value_name = "VARIANT")]
        target: Vec<String>,
        /// Only these groups (default: all).
        #[arg(long, value_name = "NAME")]
        group: Vec<String>,
        /// Ignore the pins of the existing locks (uv's --upgrade); without it they are kept
        /// wherever the requirements allow.
        #[arg(long)]
        upgrade: bool,
        #[arg(long = "build-arg", value_name = "NAME=VALUE")]
        build_args: Vec<String>,
    },
    /// Write a first spec, DIR/kiln.yaml, for an existing Python project (its lock or
    /// requirement files, Python, app, command and system packages), saying what it found
    /// and why; it refuses to overwrite one.
    Init {
        /// The project directory, which is the build context.
        #[arg(default_value = ".")]
        dir: String,
        /// Print the spec on stdout instead of writing DIR/kiln.yaml.
        #[arg(long)]
        stdout: bool,
        /// Write `build_secrets: {ca_bundle: ID}` (a CA bundle for a network that
        /// intercepts TLS, given to the build as --secret id=ID,src=...) rather than as a
        /// comment.
        #[arg(long, value_name = "ID")]
        ca_bundle: Option<String>,
    },
    /// Print the JSON Schema of the spec (for editors).
    Schema,
    /// Run as a BuildKit frontend (chosen automatically inside BuildKit).
    Frontend,
}

#[derive(Clone, Copy, ValueEnum)]
enum LlbFormat {
    Pb,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
}

fn build_args(list: &[String]) -> Result<BTreeMap<String, String>, String> {
    list.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("invalid --build-arg `{kv}`: write NAME=VALUE")),
        })
        .collect()
}

fn load(path: &str, args: &[String]) -> Result<spec::Loaded, ExitCode> {
    let build_args = build_args(args).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    match spec::load_file(path, &LoadOptions { build_args }) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprint!("{}", w.render(&loaded.spec.files));
            }
            Ok(loaded)
        }
        Err(report) => {
            eprint!("{}", report.render());
            Err(ExitCode::from(2))
        }
    }
}

fn main() -> ExitCode {
    // Inside BuildKit the frontend is started with no arguments and the gateway's environment.
    let in_gateway = std::env::var_os("BUILDKIT_SESSION_ID").is_some()
        || std::env::var_os("BUILDKIT_FRONTEND_OPT_0").is_some();
    let cli = if std::env::args().len() <= 1 && in_gateway {
        Cli {
            command: Some(Command::Frontend),
        }
    } else {
        Cli::parse()
    };
    let Some(command) = cli.command else {
        eprintln!("kiln: no command given; try `kiln --help`");
        return ExitCode::from(2);
    };
    // The CLI's and the frontend's work on a stack of known size (`kiln::stack`).
    match kiln::stack::run(move || run(command)) {
        Ok(Ok(code) | Err(code)) => code,
        Err(e) => {
            eprintln!("kiln: cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<ExitCode, ExitCode> {
    match command {
        Command::Check {
            specs,
            build_args,
            context,
        } => Ok(check(&specs, &build_args, context.as_deref())),
        Command::Llb {
            spec,
            target,
            build_args,
            platform,
            format,
            context,
            merge,
        } => {
            let loaded = load(&spec, &build_args)?;
            let opts = offline_opts(platform, merge)?;
            let context = context_of(&loaded.spec, context.as_deref())?;
            llb(&loaded.spec, target.as_deref(), &context, &opts, format)
        }
        Command::Graph {
            spec,
            target,
            build_args,
            format,
            context,
            platform,
            merge,
        } => {
            let loaded = load(&spec, &build_args)?;
            let opts = offline_opts(platform, merge)?;
            let context = context_of(&loaded.spec, context.as_deref())?;
            graph(&loaded.spec, &target, &context, &opts, format)
        }
        Command::Lock {
            spec,
            context,
            target,
            group,
            upgrade,
            build_args,
        } => lock(&spec, &context, target, group, upgrade, &build_args),
        Command::Init {
            dir,
            stdout,
            ca_bundle,
        } => init(&dir, stdout, ca_bundle),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&spec::schema::schema()).expect("json")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Frontend => Ok(kiln::frontend::main()),
    }
}

/// Lowering options without an engine: for `--platform` (else this machine's), and with
/// `--merge` for an engine with every cap kiln knows (MergeOp and DiffOp layers), else
/// for the most cautious one. Errors: exit 2 with why.
fn offline_opts(platform: Option<String>, merge: bool) -> Result<LowerOpts, ExitCode> {
    let platform = match platform {
        Some(p) => platform::parse(&p).map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        })?,
        None => platform::host(),
    };
    let mut opts = LowerOpts::offline(platform);
    if merge {
        opts.caps = Caps::latest();
    }
    Ok(opts)
}

/// What the spec names in the context `dir` (nothing without one). Errors: exit 2, each
/// problem rendered against the spec.
fn context_of(spec: &kiln::spec::Spec, dir: Option<&str>) -> Result<ContextInfo, ExitCode> {
    let Some(dir) = dir else {
        return Ok(ContextInfo::default());
    };
    read_context(spec, dir).map_err(|diags| {
        for d in diags {
            eprint!("{}", d.render(&spec.files));
        }
        ExitCode::from(2)
    })
}

/// `kiln check`: every spec, each reported (with what it names in `context`, when
/// given); exit 2 when any is wrong.
fn check(specs: &[String], build_args: &[String], context: Option<&str>) -> ExitCode {
    let mut failed = false;
    for s in specs {
        let Ok(loaded) = load(s, build_args) else {
            failed = true;
            continue;
        };
        if let Some(dir) = context {
            let spec = &loaded.spec;
            let errors = context_errors(spec, dir);
            if !errors.is_empty() {
                for e in &errors {
                    eprint!("{}", e.render(&spec.files));
                }
                failed = true;
                continue;
            }
        }
        eprintln!("{s}: ok");
        if context.is_none() && names_context_files(&loaded.spec) {
            eprintln!(
                "{s}: note: the build context was not read; pass --context DIR to check the files the spec names there"
            );
        }
    }
    if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// What `kiln check --context DIR` finds wrong with the files the spec names in `dir`.
fn context_errors(spec: &kiln::spec::Spec, dir: &str) -> Vec<Diagnostic> {
    let mut errors = read_context(spec, dir).err().unwrap_or_default();
    let ignore = ContextDir::open(dir)
        .map(|c| c.dockerignore())
        .unwrap_or_default();
    errors.extend(kiln::context::preflight::check_dir(
        spec,
        std::path::Path::new(dir),
        &ignore,
    ));
    errors
}

/// `kiln init`: the spec for the project in `dir`, checked as `kiln check --context dir`
/// checks it, then written to `dir/kiln.yaml` (never over an existing file) or printed;
/// what was found on stderr. Exit 2 when the project gives no spec, 1 when kiln would
/// refuse the one it wrote (a bug in `kiln init`, reported with kiln's diagnostics).
fn init(dir: &str, stdout: bool, ca_bundle: Option<String>) -> Result<ExitCode, ExitCode> {
    use kiln::init;
    let fail = |e: init::Error| {
        eprintln!("{e}");
        ExitCode::from(2)
    };
    if let Some(id) = &ca_bundle
        && !kiln::spec::validate::is_secret_id(id)
    {
        eprintln!(
            "error: --ca-bundle `{id}` is not a secret id: use letters, digits, `.`, `_`, `-`"
        );
        return Err(ExitCode::from(2));
    }
    let target = std::path::Path::new(dir).join(init::SPEC_FILE);
    if !stdout {
        init::refuse_existing(&target).map_err(fail)?;
    }
    let detected = init::detect(std::path::Path::new(dir)).map_err(fail)?;
    let text = init::render(&detected, &init::Options { ca_bundle });
    let name = target.display().to_string();
    let errors = match spec::load_str(&name, &text, &LoadOptions::default()) {
        Ok(loaded) => context_errors(&loaded.spec, dir)
            .iter()
            .map(|d| d.render(&loaded.spec.files))
            .collect(),
        Err(report) => vec![report.render()],
    };
    if !errors.is_empty() {
        eprint!("{}", errors.concat());
        eprintln!(
            "error: kiln init wrote a spec for {dir} that `kiln check --context` refuses (above); nothing was written: fix what it names in the project, or report it as a bug in kiln init"
        );
        return Err(ExitCode::FAILURE);
    }
    eprintln!("kiln init: {dir}");
    eprint!("{}", init::summary(&detected));
    if stdout {
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    init::write(&target, &text).map_err(fail)?;
    eprintln!("kiln init: wrote {name}; check it: kiln check {name} --context {dir}");
    Ok(ExitCode::SUCCESS)
}

/// Whether the spec names files in the build context (requirement files, locks, app,
/// files, step inputs, repository keys).
fn names_context_files(spec: &kiln::spec::Spec) -> bool {
    spec.app.is_some()
        || !spec.context_uses.is_empty()
        || spec.groups.iter().any(|g| match &g.source {
            kiln::spec::GroupSource::Requirements { files, .. } => !files.is_empty(),
            kiln::spec::GroupSource::Lock(_) => true,
        })
}

/// A diagnostic on stderr, rendered against the spec; exit 2.
fn refuse(spec: &kiln::spec::Spec, d: kiln::diag::Diagnostic) -> ExitCode {
    eprint!("{}", d.render(&spec.files));
    ExitCode::from(2)
}

/// The context directory as kiln reads it, the way the frontend reads the client's:
/// nothing outside it (a symlink that leaves it counts as missing), only regular files (a
/// FIFO would block), each up to `MAX_FILE_BYTES`.
struct ContextDir {
    root: std::path::PathBuf,
}

impl ContextDir {
    fn open(dir: &str) -> Result<ContextDir, Vec<Diagnostic>> {
        let root = std::fs::canonicalize(dir).map_err(|e| {
            vec![Diagnostic::error(
                Default::default(),
                format!("cannot read the context `{dir}`: {e}"),
                "give --context an existing directory",
            )]
        })?;
        Ok(ContextDir { root })
    }

    /// `path`'s bytes, `None` when the context has no such file. Errors: it is there but
    /// cannot be read (an unreadable .dockerignore read as none would let excluded files
    /// into the image), or is not a regular file.
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let Ok(full) = std::fs::canonicalize(self.root.join(path)) else {
            return Ok(None);
        };
        if !full.starts_with(&self.root) {
            return Ok(None);
        }
        if !std::fs::metadata(&full).is_ok_and(|m| m.is_file()) {
            return Err(format!(
                "cannot read `{path}` in the context: not a regular file"
            ));
        }
        let mut bytes = vec![];
        std::fs::File::open(&full)
            .and_then(|file| {
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(file, kiln::context::MAX_FILE_BYTES as u64 + 1),
                    &mut bytes,
                )
            })
            .map_err(|e| format!("cannot read `{path}` in the context: {e}"))?;
        Ok(Some(bytes))
    }

    /// The context's `.dockerignore` patterns (none when it has none or it cannot be read:
    /// `read_context` reports that).
    fn dockerignore(&self) -> Vec<String> {
        match self.read(".dockerignore") {
            Ok(Some(bytes)) => kiln::context::dockerignore::parse(&String::from_utf8_lossy(&bytes)),
            _ => vec![],
        }
    }
}

/// What the spec names in the context directory `dir`, read as `ContextDir` reads.
/// Errors: each problem at its spec line.
fn read_context(spec: &kiln::spec::Spec, dir: &str) -> Result<ContextInfo, Vec<Diagnostic>> {
    let context = ContextDir::open(dir)?;
    let read = |path: &str| context.read(path);
    let mut gather = Gather::new(spec);
    let mut unreadable = vec![];
    loop {
        let wanted = gather.wanted();
        if wanted.is_empty() {
            break;
        }
        for path in wanted {
            match read(&path) {
                Ok(found) => gather.give(&path, found.as_deref()),
                Err(e) => {
                    unreadable.push(Diagnostic::error(
                        Default::default(),
                        e,
                        "make it readable, or remove it",
                    ));
                    gather.give(&path, None);
                }
            }
        }
    }
    if !unreadable.is_empty() {
        return Err(unreadable);
    }
    let info = gather.finish()?;
    for w in &info.warnings {
        eprint!("{}", w.render(&spec.files));
    }
    Ok(info)
}

/// `kiln llb`: the definition of one target on stdout, protobuf or JSON.
fn llb(
    spec: &kiln::spec::Spec,
    target: Option<&str>,
    context: &ContextInfo,
    opts: &LowerOpts,
    format: LlbFormat,
) -> Result<ExitCode, ExitCode> {
    let variant = spec.target(target).map_err(|d| refuse(spec, d))?;
    let built = compile(spec, variant, context, opts).map_err(|d| refuse(spec, d))?;
    let mut out = std::io::stdout().lock();
    let res = match format {
        LlbFormat::Pb => out.write_all(&built.def.encode_to_vec()),
        LlbFormat::Json => {
            let mut v = kiln::llb::to_json(&built.def);
            v["image_config"] = built.config;
            // The image's gates (each `pip check`): the frontend solves them beside the
            // image (the binary form has the image alone).
            v["gates"] = built.gates.iter().map(kiln::llb::to_json).collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"))
        }
    };
    match res {
        // `kiln llb ... | head`: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("error: writing the definition: {e}");
            return Err(ExitCode::FAILURE);
        }
        Ok(()) => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiln lock`: a PEP 751 lock per group with uv, in the context directory; the spec
/// lines that point at them on stdout, the rest on stderr. Exit 2 for a spec or context
/// error, 1 when uv is missing or failed.
fn lock(
    spec_path: &str,
    dir: &str,
    targets: Vec<String>,
    groups: Vec<String>,
    upgrade: bool,
    build_args: &[String],
) -> Result<ExitCode, ExitCode> {
    use kiln::lock;
    let loaded = load(spec_path, build_args)?;
    let spec = &loaded.spec;
    let context = read_context(spec, dir).map_err(|diags| {
        for d in diags {
            eprint!("{}", d.render(&spec.files));
        }
        ExitCode::from(2)
    })?;
    let mut command = format!("kiln lock {spec_path}");
    if dir != "." {
        command.push_str(&format!(" --context {dir}"));
    }
    // Names only: a build arg's value may be a token, and this line is written into
    // every lock's header.
    for a in build_args {
        let name = a.split_once('=').map_or(a.as_str(), |(k, _)| k);
        command.push_str(&format!(" --build-arg {name}"));
    }
    let opts = lock::Options {
        targets,
        groups,
        upgrade,
        command,
    };
    let jobs = lock::plan(spec, &context, &opts).map_err(|d| refuse(spec, d))?;
    let uv = "uv";
    let version = lock::uv_version(uv).map_err(|d| {
        eprint!("{}", d.render(&spec.files));
        ExitCode::FAILURE
    })?;
    eprintln!("kiln lock: {version}, in {dir}");
    let outcomes = lock::run(
        &jobs,
        std::path::Path::new(dir),
        uv,
        &lock::user_netrc_hosts(),
    );
    let report = lock::report(spec, &outcomes);
    eprint!("{}", report.stderr);
    print!("{}", report.stdout);
    Ok(if report.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `kiln graph`: the stages of the named variants (all when none is named).
fn graph(
    spec: &kiln::spec::Spec,
    targets: &[String],
    context: &ContextInfo,
    opts: &LowerOpts,
    format: GraphFormat,
) -> Result<ExitCode, ExitCode> {
    let variants = if targets.is_empty() {
        spec.variants.iter().collect()
    } else {
        targets
            .iter()
            .map(|t| spec.target(Some(t)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|d| refuse(spec, d))?
    };
    let plan = Plan::new(spec, &variants, context, &PlanOpts::of(opts));
    print!(
        "{}",
        match format {
            GraphFormat::Dot => plan::graph::dot(&plan),
            GraphFormat::Mermaid => plan::graph::mermaid(&plan),
        }
    );
    Ok(ExitCode::SUCCESS)
}
