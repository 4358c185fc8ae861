//! What kiln reads from the build context before any step runs (`kiln check --context`,
//! `kiln llb --context`): requirement includes followed and mounted, and every file the
//! spec names checked, each problem at the spec line that named it.

use std::path::{Path, PathBuf};

use crate::common::{exec_script, graph, kiln, kiln_command, temp_tree, written_at_req};

/// A fresh context directory holding `files` (path, text), and a spec in it.
fn context(name: &str, spec: &str, files: &[(&str, &str)]) -> PathBuf {
    let mut all = vec![("spec.yaml", spec)];
    all.extend_from_slice(files);
    temp_tree(&format!("ctx-{name}"), &all)
}

fn check(dir: &Path) -> (bool, String) {
    let spec = dir.join("spec.yaml");
    let out = kiln(&[
        "check",
        spec.to_str().unwrap(),
        "--context",
        dir.to_str().unwrap(),
    ]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kiln llb` of the context's spec, reading the context: the definition.
fn llb_with_context(dir: &Path) -> kiln::llb::pb::Definition {
    let out = kiln(&[
        "llb",
        dir.join("spec.yaml").to_str().unwrap(),
        "--context",
        dir.to_str().unwrap(),
        "--platform",
        "linux/amd64",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    prost::Message::decode(out.stdout.as_slice()).unwrap()
}

const SPEC: &str =
    "version: 1\nname: w\npython: {base: python:3}\nrequirements:\n  core: [req/core.txt]\n";

#[test]
fn check_with_context_follows_includes_and_names_the_group_line() {
    let dir = context(
        "ok",
        SPEC,
        &[
            ("req/core.txt", "-r base.txt\narq\n"),
            ("req/base.txt", "httpx\n"),
        ],
    );
    let (ok, err) = check(&dir);
    assert!(ok, "{err}");

    let dir = context("missing", SPEC, &[("req/core.txt", "arq\n-r base.txt\n")]);
    let (ok, err) = check(&dir);
    assert!(!ok);
    assert!(err.contains("requirement file `req/base.txt` (included at req/core.txt:2) is not in the build context"), "{err}");
    assert!(
        err.contains("spec.yaml:5:10"),
        "at the group's entry: {err}"
    );
    // Without --context nothing is read: the spec alone is fine.
    let out = kiln(&["check", dir.join("spec.yaml").to_str().unwrap()]);
    assert!(out.status.success());
}

#[test]
fn includes_that_leave_the_context_are_refused() {
    for (name, include) in [
        ("abs", "/root/.netrc"),
        ("up", "../../etc/passwd"),
        ("url", "https://example.com/r.txt"),
    ] {
        let dir = context(name, SPEC, &[("req/core.txt", &format!("-r {include}\n"))]);
        let (ok, err) = check(&dir);
        assert!(!ok, "{include}");
        assert!(
            err.contains(&format!("req/core.txt:1 includes `{include}`")),
            "{err}"
        );
    }
    // A symlink out of the context reads as missing, as it does in the build.
    let dir = context("link", SPEC, &[("req/core.txt", "-r base.txt\n")]);
    std::os::unix::fs::symlink("/etc/passwd", dir.join("req/base.txt")).unwrap();
    let (ok, err) = check(&dir);
    assert!(!ok);
    assert!(
        err.contains("`req/base.txt` (included at req/core.txt:1) is not in the build context"),
        "{err}"
    );
}

/// Issue 21: the install reads no context file: kiln writes what it read (includes
/// followed, `-c` lines as constraints, `pip.constraints` too) into the step.
#[test]
fn the_install_reads_what_kiln_read_and_no_context_file() {
    let spec = "version: 1\nname: w\npython: {base: python:3}\nrequirements:\n  core: [req/core.txt]\npip: {constraints: pins.txt}\n";
    let dir = context(
        "mount",
        spec,
        &[
            ("req/core.txt", "-r base.txt\narq  # the worker\n"),
            ("req/base.txt", "-c ../pins.txt\nhttpx\n"),
            ("pins.txt", "httpx<1\n"),
            ("other.txt", "x\n"),
        ],
    );
    let def = llb_with_context(&dir);
    let g = graph(&def);
    let context_sources = g
        .ops
        .values()
        .filter(|op| match &op.op {
            Some(kiln::llb::pb::op::Op::Source(s)) => s.identifier == "local://context",
            _ => false,
        })
        .count();
    assert_eq!(context_sources, 0, "no context file reaches the build");
    let install = g
        .ops
        .values()
        .find(|o| written_at_req(&g, o).is_some())
        .unwrap();
    assert_eq!(
        written_at_req(&g, install).unwrap(),
        [
            ("/requirements.txt".to_string(), "arq\nhttpx\n".to_string()),
            ("/constraints.txt".to_string(), "httpx<1\n".to_string()),
        ]
    );
    let script = exec_script(install).unwrap();
    assert!(
        script.contains("-c /kiln/req/constraints.txt -r /kiln/req/requirements.txt"),
        "{script}"
    );
}

/// pip requires hashes for a whole install once one file has one; uv does not by itself,
/// so kiln asks it to, and an explicit `require_hashes: false` still wins.
#[test]
fn a_hashed_file_makes_uv_require_hashes_as_pip_does() {
    let spec = "version: 1\nname: w\npython: {base: python:3, installer: uv}\nrequirements:\n  core: [core.txt]\n  loose: {files: [loose.txt], require_hashes: false}\n";
    let dir = context(
        "hashes",
        spec,
        &[
            ("core.txt", "-r pinned.txt\n"),
            (
                "pinned.txt",
                "arq==0.26.3 \\\n    --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000\n",
            ),
            ("loose.txt", "-r pinned.txt\nsix\n"),
        ],
    );
    let def = llb_with_context(&dir);
    let g = graph(&def);
    let installs: Vec<(String, String)> = g
        .ops
        .values()
        .filter_map(|o| {
            let written = written_at_req(&g, o)?;
            Some((written[0].1.clone(), exec_script(o)?))
        })
        .collect();
    let script = |first: &str| {
        installs
            .iter()
            .find(|(text, _)| text.starts_with(first))
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("{first}: {installs:?}"))
    };
    let (core, loose) = (script("arq==0.26.3 --hash"), script("six"));
    assert!(core.contains("--require-hashes"), "{core}");
    assert!(!loose.contains("--require-hashes"), "{loose}");
}

/// `-e .` in a requirements file cannot work in an install step (only the requirement
/// files are there): refused before the build, pointing at `app.project`.
#[test]
fn a_local_project_line_points_at_app_project() {
    let dir = context("local", SPEC, &[("req/core.txt", "arq\n-e .\n")]);
    let (ok, err) = check(&dir);
    assert!(!ok);
    assert!(
        err.contains("req/core.txt:2: `-e .` installs an editable project"),
        "{err}"
    );
    assert!(err.contains("app: {project: .}"), "{err}");
}

/// An unreadable `.dockerignore` fails closed: read as "none", it would let the files it
/// excludes into the image.
#[test]
fn an_unreadable_dockerignore_is_an_error() {
    use std::os::unix::fs::PermissionsExt;
    let spec = "version: 1\nname: w\npython: {base: python:3}\napp: {src: [app]}\n";
    let dir = context(
        "ignore",
        spec,
        &[("app/a.py", "x\n"), (".dockerignore", "secret.env\n")],
    );
    let ignore = dir.join(".dockerignore");
    // As root every file is readable: make it a directory instead, which cannot be read.
    std::fs::remove_file(&ignore).unwrap();
    std::fs::create_dir(&ignore).unwrap();
    std::fs::set_permissions(&ignore, std::fs::Permissions::from_mode(0o000)).unwrap();
    let (ok, err) = check(&dir);
    assert!(!ok, "{err}");
    assert!(
        err.contains("cannot read `.dockerignore` in the context"),
        "{err}"
    );
}

/// Issue 21: `.dockerignore` applies to every context source, as Docker sends the
/// context: a requirement file, a lock, a `files` entry, a step input or a repository key
/// it leaves out is an error at the line that names it, and so is one that is not there
/// (`kiln check --context` used to check only app.src and requirement files).
#[test]
fn dockerignore_and_presence_apply_to_every_path_the_spec_names() {
    let spec = "version: 1\nname: w\npython: {base: python:3, installer: uv}\n\
                requirements:\n  core: [req/core.txt]\n  lock: {lock: locks/pylock.toml}\n\
                system:\n  runtime: [libpq5]\n  repositories:\n\
                \x20   - {name: a, url: http://a/apt, suite: s/, key: keys/a.asc}\n\
                \x20   - {name: b, url: http://b/apt, suite: s/, key: keys/gone.asc}\n\
                files:\n  - {src: conf/app.toml, dest: /etc/a.toml}\n  - {src: conf/gone.toml, dest: /etc/b.toml}\n\
                steps:\n  - {name: s, run: x, inputs: [assets/, secret.env, gone/], outputs: [{from: /o, to: /p}]}\n";
    let dir = context(
        "every-path",
        spec,
        &[
            (
                ".dockerignore",
                "*.env\nreq/\nlocks\nkeys/a.asc\nconf/app.toml\n",
            ),
            ("req/core.txt", "arq\n"),
            ("locks/pylock.toml", "lock-version = \"1.0\"\n"),
            ("keys/a.asc", "k"),
            ("conf/app.toml", "x"),
            ("assets/a.css", "x"),
            ("secret.env", "TOKEN=x"),
        ],
    );
    let (ok, err) = check(&dir);
    assert!(!ok, "{err}");
    for (message, at) in [
        (
            "requirement file `req/core.txt` is left out by .dockerignore",
            "spec.yaml:5:10",
        ),
        (
            "lock file `locks/pylock.toml` is left out by .dockerignore",
            "spec.yaml:6:16",
        ),
        (
            "system.repositories.key `keys/a.asc` is left out by .dockerignore",
            "spec.yaml:10:52",
        ),
        (
            "system.repositories.key `keys/gone.asc` is not in the build context",
            "spec.yaml:11:52",
        ),
        (
            "files.src `conf/app.toml` is left out by .dockerignore",
            "spec.yaml:13:11",
        ),
        (
            "files.src `conf/gone.toml` is not in the build context",
            "spec.yaml:14:11",
        ),
        (
            "steps.inputs `secret.env` is left out by .dockerignore",
            "spec.yaml:16:41",
        ),
        (
            "steps.inputs `gone` is not in the build context",
            "spec.yaml:16:53",
        ),
    ] {
        assert!(err.contains(message), "{message}: {err}");
        assert!(err.contains(at), "{message} at {at}: {err}");
    }
    assert!(!err.contains("`assets`"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Each context source of the definition leaves out what `.dockerignore` excludes: the
/// files, the step's inputs, the repository keys and the group's files, as the app's did.
#[test]
fn every_context_source_carries_the_dockerignore() {
    let spec = "version: 1\nname: w\npython: {base: python:3}\n\
                requirements:\n  core: [core.txt]\n\
                system:\n  runtime: [libpq5]\n  repositories: [{name: a, url: http://a/apt, suite: s/, key: a.asc}]\n\
                files: [{src: app.toml, dest: /etc/a.toml}]\n\
                steps: [{name: s, in: image, run: x, inputs: [assets]}]\n";
    let dir = context(
        "sources",
        spec,
        &[
            (".dockerignore", "**/*.env\n"),
            ("core.txt", "arq\n"),
            ("a.asc", "k"),
            ("app.toml", "x"),
            ("assets/a.css", "x"),
        ],
    );
    let def = llb_with_context(&dir);
    let locals: Vec<(String, Option<String>)> = graph(&def)
        .ops
        .values()
        .filter_map(|op| match &op.op {
            Some(kiln::llb::pb::op::Op::Source(s)) if s.identifier.starts_with("local://") => {
                Some((
                    s.attrs
                        .get("local.includepattern")
                        .cloned()
                        .unwrap_or_default(),
                    s.attrs.get("local.excludepatterns").cloned(),
                ))
            }
            _ => None,
        })
        .collect();
    // The apt key, the file and the step's inputs (requirement files reach no source:
    // kiln writes what it read).
    assert_eq!(locals.len(), 3, "{locals:?}");
    for (include, exclude) in &locals {
        assert_eq!(exclude.as_deref(), Some("[\"**/*.env\"]"), "{include}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The on-disk check never leaves the context: an `app.src` that is a symlink out of it
/// is missing (its target is not listed), a `.dockerignore` that links out is not read,
/// and a FIFO where a requirement file should be is refused, not waited on.
#[test]
fn the_context_check_stays_inside_and_never_blocks() {
    let spec = "version: 1\nname: w\npython: {base: python:3}\nrequirements:\n  core: [core.txt]\napp: {src: [app, etc]}\n";
    let dir = context("inside", spec, &[("app/a.py", "x")]);
    std::os::unix::fs::symlink("/etc", dir.join("etc")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dir.join(".dockerignore")).unwrap();
    let fifo = dir.join("core.txt");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Spawned with a guard: before the fix, opening the FIFO blocked for good.
    let spec = dir.join("spec.yaml");
    let mut child = kiln_command(&[
        "check",
        spec.to_str().unwrap(),
        "--context",
        dir.to_str().unwrap(),
    ])
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            child.kill().ok();
            panic!("kiln check blocked on the FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("app.src path `etc` is not in the build context"),
        "{err}"
    );
    assert!(
        err.contains("cannot read `core.txt` in the context: not a regular file"),
        "{err}"
    );
    assert!(!err.contains("app.src path `app`"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
