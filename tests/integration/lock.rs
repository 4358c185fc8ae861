//! `kiln lock` with the real uv: the example worker's groups into PEP 751 locks in a temp
//! context, every file by URL and sha256; existing pins kept unless `--upgrade`; uv
//! missing or failing as errors. The tests that need uv skip, saying so, when it is not
//! installed, unless `KILN_REQUIRE_UV` is set (scripts/test.sh installs uv and sets it).

use std::path::Path;

use crate::common::*;

/// uv's version, or `None` (and the reason printed) when it cannot be run.
fn uv() -> Option<String> {
    match std::process::Command::new("uv").arg("--version").output() {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).into_owned()),
        other => {
            // scripts/test.sh installs uv and sets this: there a missing uv fails.
            assert!(
                std::env::var_os("KILN_REQUIRE_UV").is_none(),
                "KILN_REQUIRE_UV is set and uv cannot be run: {other:?}"
            );
            eprintln!("SKIPPED: uv is not installed ({other:?}); scripts/test.sh installs it");
            None
        }
    }
}

fn lock_in(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["lock"];
    all.extend(args);
    let ctx = dir.to_str().unwrap();
    all.extend(["--context", ctx]);
    kiln(&all)
}

/// Every package of a PEP 751 lock: (name, version), after checking that each of its
/// files has an https URL and a sha256.
fn packages(lock: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(lock).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    assert_eq!(doc["lock-version"].as_str(), Some("1.0"));
    let mut out = vec![];
    for p in doc["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap().to_string();
        let mut files: Vec<&toml::Value> = p
            .get("wheels")
            .and_then(|w| w.as_array())
            .map(|w| w.iter().collect())
            .unwrap_or_default();
        files.extend(p.get("sdist"));
        assert!(!files.is_empty(), "{name}: no files in {}", lock.display());
        for f in files {
            let url = f["url"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: a file without URL"));
            assert!(url.starts_with("https://"), "{name}: {url}");
            let sha = f["hashes"]["sha256"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: {url} without sha256"));
            assert!(
                sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
                "{name}: {sha}"
            );
        }
        out.push((name, p["version"].as_str().unwrap().to_string()));
    }
    out
}

#[test]
fn worker_groups_locked_with_urls_and_hashes() {
    if uv().is_none() {
        return;
    }
    let core =
        std::fs::read_to_string(Path::new(ROOT).join("examples/worker/requirements/core.txt"))
            .unwrap();
    let ml = std::fs::read_to_string(Path::new(ROOT).join("examples/worker/requirements/ml.txt"))
        .unwrap();
    let dir = temp_tree(
        "lock-worker",
        &[
            ("requirements/core.txt", &core),
            ("requirements/ml.txt", &ml),
            ("app/__init__.py", ""),
        ],
    );
    let out = lock_in(&dir, &["specs/worker.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The snippet keeps each group's files beside its lock: kiln lock re-locks from them.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "requirements:\n  core: {files: [\"requirements/core.txt\"], lock: pylock.core.toml}\n  ml: {files: [\"requirements/ml.txt\"], lock: pylock.ml.toml}\n"
    );
    assert!(stderr.contains("resolved for Python >= 3.12"), "{stderr}");
    assert!(!stderr.contains("keeps the in-step install"), "{stderr}");
    for (group, txt) in [("core", &core), ("ml", &ml)] {
        let lock = dir.join(format!("pylock.{group}.toml"));
        let text = std::fs::read_to_string(&lock).unwrap();
        assert!(
            text.contains("kiln lock specs/worker.yaml --context"),
            "{text:.300}"
        );
        assert!(text.contains("requires-python = \">=3.12\""));
        let pkgs = packages(&lock);
        eprintln!(
            "{group}: {} packages, each file with a URL and a sha256",
            pkgs.len()
        );
        // Every pin of the requirement file is in its lock, at that version.
        for line in txt.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let (name, version) = line.split_once("==").unwrap();
            let name = name.to_lowercase();
            assert!(
                pkgs.iter().any(|(n, v)| *n == name && v == version),
                "{group}: {name}=={version} not in {pkgs:?}"
            );
        }
    }
    // The spec, pointed at the locks as the snippet says, checks against the context...
    let snippet = String::from_utf8_lossy(&out.stdout).replace("requirements:\n", "");
    let spec = std::fs::read_to_string(Path::new(ROOT).join("specs/worker.yaml"))
        .unwrap()
        .replace(
            "  core: [requirements/core.txt]\n  ml: [requirements/ml.txt]\n",
            &snippet,
        );
    assert!(spec.contains("pylock.ml.toml"));
    std::fs::write(dir.join("locked.yaml"), spec).unwrap();
    let locked = dir.join("locked.yaml");
    kiln_ok(&[
        "check",
        locked.to_str().unwrap(),
        "--context",
        dir.to_str().unwrap(),
    ]);
    // ... and kiln lock on it re-locks in place (issue 22): a requirement added to
    // core.txt reaches pylock.core.toml, and the spec needs no change.
    std::fs::write(
        dir.join("requirements/core.txt"),
        format!("{core}six==1.17.0\n"),
    )
    .unwrap();
    let again = lock_in(&dir, &[locked.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(stderr.contains("core: wrote pylock.core.toml"), "{stderr}");
    assert!(
        stderr.contains("core: the spec points at pylock.core.toml already"),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&again.stdout), "");
    let pkgs = packages(&dir.join("pylock.core.toml"));
    assert!(
        pkgs.contains(&("six".to_string(), "1.17.0".to_string())),
        "{pkgs:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn existing_pins_are_kept_unless_upgrade() {
    if uv().is_none() {
        return;
    }
    let spec = |pkgs: &str| {
        format!(
            "version: 1\nname: p\npython: {{base: python:3.12-slim, version: \"3.12\", installer: uv}}\nrequirements: {{web: {{packages: [{pkgs}]}}}}\n"
        )
    };
    let dir = temp_tree("lock-pins", &[("kiln.yaml", &spec("\"anyio==4.9.0\""))]);
    let spec_path = dir.join("kiln.yaml");
    let run = |extra: &[&str]| {
        let mut args = vec![spec_path.to_str().unwrap()];
        args.extend(extra);
        let out = lock_in(&dir, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        packages(&dir.join("pylock.web.toml"))
    };
    let version = |pkgs: &[(String, String)], name: &str| {
        pkgs.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    };
    assert_eq!(version(&run(&[]), "anyio").as_deref(), Some("4.9.0"));
    // One requirement added, the old one unpinned: anyio stays where the lock has it.
    std::fs::write(&spec_path, spec("\"anyio\", \"idna\"")).unwrap();
    let again = run(&[]);
    assert_eq!(version(&again, "anyio").as_deref(), Some("4.9.0"));
    assert!(version(&again, "idna").is_some());
    let upgraded = run(&["--upgrade"]);
    assert_ne!(
        version(&upgraded, "anyio").as_deref(),
        Some("4.9.0"),
        "{upgraded:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn uv_failing_names_the_group_and_its_line() {
    if uv().is_none() {
        return;
    }
    let dir = temp_tree(
        "lock-fail",
        &[(
            "kiln.yaml",
            "version: 1\nname: f\npython: {base: python:3.12-slim, version: \"3.12\", installer: uv}\nrequirements:\n  core: {packages: [\"anyio\"]}\npip: {index_url: \"http://127.0.0.1:9/simple\"}\n",
        )],
    );
    let spec_path = dir.join("kiln.yaml");
    let out = kiln_command(&[
        "lock",
        spec_path.to_str().unwrap(),
        "--context",
        dir.to_str().unwrap(),
    ])
    .env("UV_HTTP_RETRIES", "0")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("uv could not lock requirement group `core`"),
        "{stderr}"
    );
    assert!(stderr.contains("kiln.yaml:5:3"), "{stderr}");
    assert!(stderr.contains("127.0.0.1:9"), "uv's own message: {stderr}");
    assert!(out.stdout.is_empty());
    assert!(!dir.join("pylock.core.toml").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_uv_says_how_to_install_it() {
    let empty = temp_tree("lock-nouv", &[("bin/.keep", "")]);
    let core =
        std::fs::read_to_string(Path::new(ROOT).join("examples/worker/requirements/core.txt"))
            .unwrap();
    let dir = temp_tree(
        "lock-nouv-ctx",
        &[
            ("requirements/core.txt", &core),
            ("requirements/ml.txt", "numpy\n"),
        ],
    );
    let out = kiln_command(&[
        "lock",
        "specs/worker.yaml",
        "--context",
        dir.to_str().unwrap(),
    ])
    .env("PATH", empty.join("bin"))
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("install uv: `pip install uv==0.9.7`"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
    let _ = std::fs::remove_dir_all(&empty);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_spec_without_groups_is_refused() {
    let dir = temp_tree(
        "lock-nogroups",
        &[(
            "kiln.yaml",
            "version: 1\nname: nogroups\npython: {base: python:3.12-slim}\n",
        )],
    );
    let spec_path = dir.join("kiln.yaml");
    let out = kiln(&[
        "lock",
        spec_path.to_str().unwrap(),
        "--context",
        dir.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("has no requirement groups to lock"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 21: `kiln lock` wrote `--build-arg NAME=VALUE` into every lock's header (uv's
/// `--custom-compile-command`), and a build arg's value may be a token: only the name
/// goes there. A stand-in `uv` on PATH records the command line kiln gives it.
#[test]
fn build_arg_values_stay_out_of_the_lock_header() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_tree(
        "lock-args",
        &[
            (
                "kiln.yaml",
                "version: 1\nname: f\nargs: {TOKEN: none}\npython: {base: python:3.12-slim, version: \"3.12\", installer: uv}\nrequirements:\n  core: {packages: [\"anyio\"]}\n",
            ),
            (
                "bin/uv",
                // uv runs with a scrubbed environment: it writes beside itself.
                "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'uv 0.9.7'; exit 0; fi\nprintf '%s\\n' \"$@\" >>\"$(dirname \"$0\")/../uv-args\"\nexit 1\n",
            ),
        ],
    );
    let uv = dir.join("bin/uv");
    std::fs::set_permissions(&uv, std::fs::Permissions::from_mode(0o755)).unwrap();
    let args = dir.join("uv-args");
    let out = kiln_command(&[
        "lock",
        dir.join("kiln.yaml").to_str().unwrap(),
        "--context",
        dir.to_str().unwrap(),
        "--build-arg",
        "TOKEN=s3cr3t-value",
    ])
    .env(
        "PATH",
        format!("{}:/usr/bin:/bin", dir.join("bin").display()),
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let given = std::fs::read_to_string(&args).unwrap_or_default();
    assert!(
        given.contains("--custom-compile-command"),
        "{stderr}\n{given}"
    );
    assert!(given.contains("--build-arg TOKEN"), "{given}");
    assert!(!given.contains("s3cr3t"), "{given}");
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
