//! `kiln init` on the example projects, no engine: the spec it prints is the same bytes in
//! every run (and matches `tests/golden/init/*.yaml`, regenerated with
//! `KILN_UPDATE_GOLDEN=1 cargo test --test integration init`), passes `kiln check
//! --context` unmodified, and is written once, never over a file; a project kiln cannot
//! read is an error naming the file and what to do.

use std::path::{Path, PathBuf};

use crate::common::{ROOT, kiln, kiln_ok, temp_tree};

/// The examples made for `kiln init` (each with psycopg2 from its sdist and a command),
/// and the other example projects, which must give a spec that checks too.
const INIT_EXAMPLES: &[&str] = &["init-uv", "init-poetry", "init-piptools"];
const OTHER_EXAMPLES: &[&str] = &["uv-project", "poetry-project", "pylock-service", "worker"];

/// `examples/NAME` copied to a fresh directory (what a user's checkout would be).
fn copy_example(name: &str, tag: &str) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), target).unwrap();
            }
        }
    }
    let dir = temp_tree(&format!("init-{tag}-{name}"), &[]);
    copy(&Path::new(ROOT).join("examples").join(name), &dir);
    dir
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `kiln check SPEC --context DIR` with the spec's text in a file of its own.
fn check(text: &[u8], dir: &str, tag: &str) -> std::process::Output {
    let spec = temp_tree(&format!("init-check-{tag}"), &[]).join("kiln.yaml");
    std::fs::write(&spec, text).unwrap();
    kiln(&["check", spec.to_str().unwrap(), "--context", dir])
}

#[test]
fn the_examples_specs_are_stable_match_golden_and_pass_check() {
    let update = std::env::var_os("KILN_UPDATE_GOLDEN").is_some();
    let mut stale = vec![];
    for name in INIT_EXAMPLES {
        let dir = format!("examples/{name}");
        let first = kiln_ok(&["init", &dir, "--stdout"]);
        let second = kiln_ok(&["init", &dir, "--stdout"]);
        assert_eq!(first, second, "{name}: two runs gave different bytes");
        let golden = Path::new(ROOT).join(format!("tests/golden/init/{name}.yaml"));
        if update {
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            std::fs::write(&golden, &first).unwrap();
        } else if std::fs::read(&golden).unwrap_or_default() != first {
            stale.push(name.to_string());
        }
        let out = check(&first, &dir, name);
        assert!(out.status.success(), "{name}: kiln check: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("warning"),
            "{name}: {}",
            stderr(&out)
        );
    }
    assert!(
        stale.is_empty(),
        "kiln init's output changed for: {}\nreview `git diff tests/golden/init` after KILN_UPDATE_GOLDEN=1 cargo test --test integration init",
        stale.join(", ")
    );
}

/// What each example is for: the source, psycopg2's packages, the app and its command.
#[test]
fn each_example_gets_its_source_system_packages_app_and_command() {
    let spec = |name: &str| {
        String::from_utf8(kiln_ok(&["init", &format!("examples/{name}"), "--stdout"])).unwrap()
    };
    let uv = spec("init-uv");
    for want in [
        "core: {lock: uv.lock}\n",
        "optional: {lock: uv.lock, extras: [table]}\n",
        "# left out: dependency group dev (development only)\n",
        "build: [build-essential, libpq-dev]\n",
        "runtime: [libpq5]\n",
        "# psycopg2 2.9.13 is a sdist in uv.lock (no wheel for CPython 3.11 on linux/amd64)",
        "version: \"3.11\"\n",
        "project: .\n",
        "cmd: [pgver]\n",
        "- run: \"pgver --help\"\n",
        "- \"python -c 'import psycopg2'\"\n",
        "requirements: [core, optional]\n",
        "default_variant: minimal\n",
    ] {
        assert!(uv.contains(want), "init-uv lacks {want:?}:\n{uv}");
    }
    let poetry = spec("init-poetry");
    for want in [
        "core: {lock: poetry.lock}\n",
        "optional: {lock: poetry.lock, groups: [report]}\n",
        "# left out: Poetry group dev (development only)\n",
        "# psycopg2 2.9.13 is a sdist in poetry.lock",
        "build: [build-essential, libpq-dev]\n",
        "cmd: [pgver]\n",
    ] {
        assert!(
            poetry.contains(want),
            "init-poetry lacks {want:?}:\n{poetry}"
        );
    }
    let piptools = spec("init-piptools");
    for want in [
        "core: [requirements/prod.txt]\n",
        "# left out: requirements/dev.txt (development only)\n",
        "includes requirements/base.txt",
        "--require-hashes",
        "# requirements/prod.txt was compiled for Python 3.11 (its header)\n",
        "psycopg2 2.9.13 (requirements/base.txt) has no Linux wheel on PyPI",
        "src: [pgver]\n",
        "cmd: [python, \"-m\", pgver]\n",
        "- run: \"python -m pgver --help\"\n",
    ] {
        assert!(
            piptools.contains(want),
            "init-piptools lacks {want:?}:\n{piptools}"
        );
    }
    // One variant only: no `variants` (pytest's dev file is left out, not a variant).
    assert!(!piptools.contains("variants:"), "{piptools}");
    for text in [&uv, &poetry, &piptools] {
        assert!(text.starts_with("# syntax=kiln/frontend:latest\n"));
        assert!(text.contains("\n# build_secrets: {ca_bundle: pipca}\n"));
        assert!(
            !text.contains("pytest"),
            "a dev package reached the spec:\n{text}"
        );
    }
}

#[test]
fn the_other_examples_give_specs_that_pass_check() {
    for name in OTHER_EXAMPLES {
        let dir = format!("examples/{name}");
        let text = kiln_ok(&["init", &dir, "--stdout"]);
        let out = check(&text, &dir, name);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
    }
    // The worker's two requirement files: the seed's minimal and full split.
    let worker = String::from_utf8(kiln_ok(&["init", "examples/worker", "--stdout"])).unwrap();
    assert!(
        worker.contains("core: [requirements/core.txt]\n"),
        "{worker}"
    );
    assert!(worker.contains("ml: [requirements/ml.txt]\n"), "{worker}");
    assert!(worker.contains("requirements: [core, ml]\n"), "{worker}");
    // Two console scripts: none chosen, both named.
    let uv = String::from_utf8(kiln_ok(&["init", "examples/uv-project", "--stdout"])).unwrap();
    assert!(uv.contains("(svc-health, svc-serve)"), "{uv}");
    assert!(uv.contains("\n# cmd: [svc-health]\n"), "{uv}");
    assert!(!uv.contains("--help"), "{uv}");
}

#[test]
fn writes_kiln_yaml_once_and_says_what_it_found() {
    let dir = copy_example("init-uv", "write");
    let d = dir.to_str().unwrap();
    let out = kiln(&["init", d, "--ca-bundle", "pipca"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    for want in [
        "dependencies: uv.lock",
        "python: 3.11 (.python-version)",
        "cmd: pgver",
        "system: build build-essential, libpq-dev; runtime libpq5",
        "wrote ",
    ] {
        assert!(err.contains(want), "{want:?} not in: {err}");
    }
    let spec = dir.join("kiln.yaml");
    let written = std::fs::read_to_string(&spec).unwrap();
    assert!(
        written.contains("\nbuild_secrets: {ca_bundle: pipca}\n"),
        "{written}"
    );
    let out = kiln(&["check", spec.to_str().unwrap(), "--context", d]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Never over an existing file: the same one stays, byte for byte.
    std::fs::write(&spec, "# mine\n").unwrap();
    let out = kiln(&["init", d]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("kiln.yaml: it exists already"), "{err}");
    assert!(err.contains("--stdout"), "{err}");
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), "# mine\n");
    // --stdout writes nothing, whatever is there.
    let out = kiln(&["init", d, "--stdout"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), "# mine\n");
}

#[test]
fn a_project_kiln_cannot_read_is_an_error_naming_the_file() {
    // No dependency source at all.
    let empty = temp_tree("init-empty", &[("app/__init__.py", "")]);
    let out = kiln(&["init", empty.to_str().unwrap(), "--stdout"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("no dependency source"), "{err}");
    assert!(err.contains("uv lock"), "{err}");
    assert!(!empty.join("kiln.yaml").exists());

    // A uv.lock out of date with pyproject.toml.
    let stale = copy_example("init-uv", "stale");
    let pyproject = stale.join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    std::fs::write(
        &pyproject,
        text.replace("\"psycopg2>=2.9\"", "\"psycopg2>=2.9\", \"six\""),
    )
    .unwrap();
    let out = kiln(&["init", stale.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("uv.lock: kiln cannot use it"), "{err}");
    assert!(err.contains("run `uv lock`"), "{err}");
    assert!(!stale.join("kiln.yaml").exists());

    // A requirement line kiln refuses: its file and line, kiln's own help.
    let editable = temp_tree(
        "init-editable",
        &[("requirements.txt", "six==1.17.0\n-e .\n")],
    );
    let out = kiln(&["init", editable.to_str().unwrap(), "--stdout"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("requirements.txt:2:"), "{err}");
    assert!(
        err.contains("app.project") || err.contains("app: {project"),
        "{err}"
    );

    // A bad --ca-bundle id, and a directory that is not one.
    let out = kiln(&["init", editable.to_str().unwrap(), "--ca-bundle", "a b"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--ca-bundle"));
    let out = kiln(&["init", "/nonexistent/kiln-init", "--stdout"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/kiln-init: not a directory"),
        "{}",
        stderr(&out)
    );
}
