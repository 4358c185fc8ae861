//! Golden definitions of the example specs: the same spec gives the same bytes in every
//! process, and those bytes only change when a reviewed golden file changes with them.
//! Regenerate with `KILN_UPDATE_GOLDEN=1 cargo test --test integration golden`.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::common::{ROOT, kiln_ok};

const CASES: &[(&str, &str, &[&str])] = &[
    // Requirement files are read from the context: what kiln read reaches the step.
    (
        "specs/worker.yaml",
        "minimal",
        &["--context", "examples/worker"],
    ),
    (
        "specs/worker.yaml",
        "cuda",
        &["--context", "examples/worker"],
    ),
    (
        "specs/worker.yaml",
        "cuda",
        &["--context", "examples/worker", "--merge"],
    ),
    ("specs/api.yaml", "default", &[]),
    ("specs/batch.yaml", "pdf", &["--context", "examples/batch"]),
    // One per lock kind, reading their example contexts (includes, .dockerignore).
    (
        "specs/uv-project.yaml",
        "ml",
        &["--context", "examples/uv-project"],
    ),
    (
        "specs/poetry-project.yaml",
        "worker",
        &["--context", "examples/poetry-project"],
    ),
    (
        "specs/pylock-service.yaml",
        "default",
        &["--context", "examples/pylock-service"],
    ),
    // The lock's files fetched by the engine; with MergeOp/DiffOp, a layer per package.
    (
        "specs/pylock-service.yaml",
        "default",
        &["--context", "examples/pylock-service", "--merge"],
    ),
    // How the image runs: init, owned dirs and volumes, files; a variant's own process.
    (
        "specs/service.yaml",
        "worker",
        &["--context", "examples/service"],
    ),
    (
        "specs/service.yaml",
        "gpu",
        &["--context", "examples/service", "--merge"],
    ),
];

fn golden_name(spec: &str, target: &str, extra: &[&str]) -> String {
    let stem = Path::new(spec)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .to_string();
    // Flags name the file (`-merge`); a flag's value (a context directory) does not.
    let flags: String = extra
        .iter()
        .filter(|f| f.starts_with("--") && **f != "--context")
        .map(|f| format!("-{}", f.trim_start_matches('-')))
        .collect();
    format!("tests/golden/{stem}-{target}{flags}")
}

#[test]
fn definitions_are_byte_identical_across_processes_and_match_golden() {
    let update = std::env::var_os("KILN_UPDATE_GOLDEN").is_some();
    let root = Path::new(ROOT);
    let mut stale = vec![];
    for (spec, target, extra) in CASES {
        let mut args = vec!["llb", spec, "--target", target, "--platform", "linux/amd64"];
        args.extend_from_slice(extra);
        let first = kiln_ok(&args);
        let second = kiln_ok(&args);
        assert!(!first.is_empty());
        assert_eq!(
            first, second,
            "{spec} --target {target}: two processes gave different bytes"
        );

        let mut json_args = args.clone();
        json_args.extend(["--format", "json"]);
        let json = kiln_ok(&json_args);
        let digest = format!("{}\n", hex::encode(Sha256::digest(&first)));
        let base = root.join(golden_name(spec, target, extra));
        let (digest_path, json_path) = (base.with_extension("sha256"), base.with_extension("json"));
        if update {
            std::fs::create_dir_all(digest_path.parent().unwrap()).unwrap();
            std::fs::write(&digest_path, &digest).unwrap();
            std::fs::write(&json_path, &json).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&digest_path).unwrap_or_default();
        let want_json = std::fs::read(&json_path).unwrap_or_default();
        if want != digest || want_json != json {
            stale.push(format!("{spec} --target {target} {extra:?}"));
        }
    }
    assert!(
        stale.is_empty(),
        "definitions changed for: {}\nreview `git diff tests/golden` after KILN_UPDATE_GOLDEN=1 cargo test --test integration golden",
        stale.join(", ")
    );
}
