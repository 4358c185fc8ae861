//! kiln-bench: kiln against the hand-written Dockerfiles it replaces (`bench/run.sh` runs
//! it), and the reader of BuildKit progress logs that the end-to-end tests ask "was this
//! step cached?".

mod docker;
mod progress;
mod report;
mod runner;
mod scenarios;
mod stats;
mod timeline;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// kiln against the hand-written multi-stage Dockerfiles in bench/peer/, built from the
/// same context on the same engine in the same run. Prints one markdown table (also
/// written to bench/results/latest.md); the progress log of every build stays in the work
/// directory it names. Full mode prunes BuildKit's whole cache on this engine.
#[derive(Parser)]
#[command(name = "kiln-bench", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Args)]
struct BenchArgs {
    /// Runs per docker scenario; each row shows min and median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
    /// 1 run, warm scenarios only: no prune, no cold builds, no apt or uv row, minimal image only.
    #[arg(long, conflicts_with = "smoke")]
    quick: bool,
    /// 1 run, only the no-op rebuild, app-code change, frontend-cost and LLB rows (tests/e2e/bench_smoke.sh).
    #[arg(long, conflicts_with = "locked")]
    smoke: bool,
    /// Issue 14: the example locked by `kiln lock` against the peer, `--runs` times (cold,
    /// warm, +1 requirement, fresh runner and pushed bytes on a modern engine, 300-package lock).
    #[arg(long, conflicts_with = "quick")]
    locked: bool,
    /// With --locked: also the heavy CUDA variant (torch from PyPI; needs ~15 GB free).
    #[arg(long, requires = "locked")]
    heavy: bool,
    /// Issue 24: a uv project (bench/projects/uv-worker) against two peers, uv's Docker
    /// guide and the seed's pip style, `--runs` times (cold, both variants, no-op, app edit,
    /// +1 dependency warm, and on a modern engine fresh runner and pushed bytes; sizes).
    #[arg(long, conflicts_with_all = ["quick", "smoke", "locked"])]
    uv: bool,
    /// With --uv: only these scenarios (comma-separated or repeated).
    #[arg(long, requires = "uv", value_delimiter = ',')]
    only: Vec<scenarios::UvScenario>,
    /// With --uv: never prune (to check the harness on a shared engine). Cold rows start
    /// from a fresh copy of the base image instead: every step runs, but cache mounts,
    /// fetched files and the base's layers stay warm, so their figures are not cold ones.
    #[arg(long, requires = "uv")]
    no_prune: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Reads a `docker build --progress=plain` log: exits 0 when a step whose name
    /// contains STEP was cached (--cached) or ran and was not cached (--ran), else 1.
    Progress {
        /// The progress log.
        log: PathBuf,
        /// Part of the step's name, e.g. "uv install: core".
        #[arg(long)]
        step: String,
        #[command(flatten)]
        want: Want,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct Want {
    /// The step was CACHED.
    #[arg(long)]
    cached: bool,
    /// The step ran in this build.
    #[arg(long)]
    ran: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Progress { log, step, want }) => check_step(&log, &step, want.cached),
        None => bench(&cli.bench),
    }
}

fn check_step(log: &Path, step: &str, cached: bool) -> ExitCode {
    let text = match std::fs::read(log) {
        Ok(raw) => String::from_utf8_lossy(&raw).into_owned(),
        Err(e) => {
            eprintln!("kiln-bench: {}: {e}", log.display());
            return ExitCode::from(2);
        }
    };
    let steps = progress::parse(&text);
    let Some(was_cached) = progress::was_cached(&steps, step) else {
        eprintln!("no step named [{step}] in {}", log.display());
        return ExitCode::FAILURE;
    };
    let yes = if cached {
        was_cached
    } else {
        progress::ran(&steps, step)
    };
    if yes {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn bench(args: &BenchArgs) -> ExitCode {
    let mode = match (args.quick, args.smoke, args.locked, args.uv) {
        (true, ..) => scenarios::Mode::Quick,
        (_, true, ..) => scenarios::Mode::Smoke,
        (_, _, true, _) => scenarios::Mode::Locked,
        (.., true) => scenarios::Mode::Uv,
        _ => scenarios::Mode::Full,
    };
    let runs = if matches!(
        mode,
        scenarios::Mode::Full | scenarios::Mode::Locked | scenarios::Mode::Uv
    ) {
        args.runs as usize
    } else {
        1
    };
    // The repository this harness belongs to: it benchmarks that checkout's kiln.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf();
    let opts = scenarios::Options {
        heavy: args.heavy,
        only: args.only.clone(),
        no_prune: args.no_prune,
    };
    match scenarios::run(root, mode, runs, opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn modes_and_the_progress_subcommand_parse() {
        let cli = Cli::try_parse_from(["kiln-bench", "--quick"]).unwrap();
        assert!(cli.bench.quick && cli.command.is_none());
        assert!(Cli::try_parse_from(["kiln-bench", "--runs", "0"]).is_err());
        assert!(Cli::try_parse_from(["kiln-bench", "--quick", "--smoke"]).is_err());
        assert!(Cli::try_parse_from(["kiln-bench", "--locked", "--smoke"]).is_err());
        assert!(Cli::try_parse_from(["kiln-bench", "--heavy"]).is_err());
        let cli =
            Cli::try_parse_from(["kiln-bench", "--locked", "--heavy", "--runs", "1"]).unwrap();
        assert!(cli.bench.locked && cli.bench.heavy);
        let cli = Cli::try_parse_from(["kiln-bench", "progress", "x.log", "--step", "a", "--ran"])
            .unwrap();
        assert!(matches!(
            cli.command,
            Some(Cmd::Progress {
                want: Want { ran: true, .. },
                ..
            })
        ));
        assert!(Cli::try_parse_from(["kiln-bench", "progress", "x.log", "--step", "a"]).is_err());
        // Issue 24's mode, its scenario filter and --no-prune.
        let cli = Cli::try_parse_from([
            "kiln-bench",
            "--uv",
            "--runs",
            "1",
            "--only",
            "cold,noop",
            "--only",
            "fresh",
            "--no-prune",
        ])
        .unwrap();
        assert!(cli.bench.uv && cli.bench.no_prune);
        assert_eq!(
            cli.bench.only,
            [
                scenarios::UvScenario::Cold,
                scenarios::UvScenario::Noop,
                scenarios::UvScenario::Fresh
            ]
        );
        assert!(Cli::try_parse_from(["kiln-bench", "--only", "cold"]).is_err());
        assert!(Cli::try_parse_from(["kiln-bench", "--no-prune"]).is_err());
        assert!(Cli::try_parse_from(["kiln-bench", "--uv", "--locked"]).is_err());
        assert!(Cli::try_parse_from(["kiln-bench", "--uv", "--smoke"]).is_err());
        assert!(Cli::try_parse_from(["kiln-bench", "--uv", "--only", "nope"]).is_err());
        assert!(
            Cli::try_parse_from([
                "kiln-bench",
                "progress",
                "x",
                "--step",
                "a",
                "--ran",
                "--cached"
            ])
            .is_err()
        );
    }
}
