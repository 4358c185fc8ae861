//! Hostile specs, made at test time (too big or too odd to keep as files): each is
//! refused by `kiln check` with exit 2, its expected message and position, and no panic,
//! hang or unbounded memory. A row's position is the end of the `--> file:L:C` line:
//! `:L:C` must match exactly, `:L:` matches the line whatever the column.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{image_config, kiln, kiln_command, load, temp_tree};

fn alias_bomb() -> Vec<u8> {
    let mut s = String::from("version: 1\nname: w\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        s.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    s.push_str("python: {base: python:3}\n");
    s.into_bytes()
}

fn cases() -> Vec<(&'static str, Vec<u8>, &'static str, &'static str)> {
    vec![
        ("alias bomb", alias_bomb(), "budget breached", ":8:15"),
        ("deep flow nesting", format!("version: 1\nname: w\nx: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(), "recursion limit exceeded", ":3:"),
        // 1000 levels: just under the 1 MiB limit, so the nesting limit is what refuses it.
        ("deep block nesting", format!("version: 1\nname: w\nx:\n{}", (1..1000).map(|i| format!("{}k{i}:\n", "  ".repeat(i))).collect::<String>()).into_bytes(), "invalid YAML: budget breached: Depth", ":67:129"),
        ("11 MB file", format!("version: 1\nname: w\npython: {{base: python:3}}\nenv:\n{}", (0..100_000).map(|i| format!("  K{i}: \"{}\"\n", "v".repeat(100))).collect::<String>()).into_bytes(), "more than the 1048576 allowed", ":1:1"),
        ("an argument expansion bomb", format!("version: 1\nname: w\npython: {{base: python:3}}\nargs: {{A: \"{}\"}}\nenv:\n{}", "x".repeat(100_000), (0..20).map(|i| format!("  K{i}: \"{}\"\n", "${A}".repeat(10))).collect::<String>()).into_bytes(), "makes the spec's strings more than 4194304 bytes longer", ":10:7"),
        // Checking is linear in the number of keys: these took minutes when it was not
        // (the 1 MiB cases are a benchmark row, timed on the release build).
        ("30,000 unknown keys", format!("version: 1\nname: w\npython: {{base: python:3}}\n{}", (0..30_000).map(|i| format!("u{i}: 1\n")).collect::<String>()).into_bytes(), "unknown key `u0` in the spec", ":4:1"),
        ("a duplicate key after 30,000 env keys", format!("version: 1\nname: w\npython: {{base: python:3}}\nenv:\n{}  K0: w\n", (0..30_000).map(|i| format!("  K{i}: v\n")).collect::<String>()).into_bytes(), "duplicate key `K0`", ":30005:3"),
        ("non-UTF-8", b"version: 1\nname: w\npython:\n  base: py\xc3\x28thon\n".to_vec(), "not valid UTF-8", ":4:11"),
        ("NUL byte in a string", b"version: 1\nname: w\npython: {base: python:3}\nenv: {A: \"x\\0y\"}\n".to_vec(), "NUL", ":4:"),
        ("only whitespace", b"  \n\t\n".to_vec(), "spec file is empty", ":1:1"),
        ("a bare scalar", b"42\n".to_vec(), "must be a mapping", ":1:1"),
        ("tabs for indentation", b"version: 1\nname: w\npython:\n\tbase: python:3\n".to_vec(), "invalid YAML", ":4:"),
        ("an unclosed quote", b"version: 1\nname: \"w\npython: {}\n".to_vec(), "invalid YAML: unclosed quote", ":2:7"),
        ("many documents", b"version: 1\nname: w\n---\nversion: 1\n".to_vec(), "invalid YAML: multiple YAML documents detected", ":4:1"),
        ("shell in an env name", b"version: 1\nname: w\npython: {base: python:3}\nenv: {\"A;rm -rf /\": x}\n".to_vec(), "invalid environment variable name", ":4:"),
        ("command substitution in a package", b"version: 1\nname: w\npython: {base: python:3}\nsystem: {build: [\"$(curl evil)\"]}\n".to_vec(), "invalid apt package name", ":4:"),
        ("a path escaping the context", b"version: 1\nname: w\npython: {base: python:3}\napp: {src: [\"app/../../etc\"]}\n".to_vec(), "would leave the build context", ":4:13"),
        // Each group installs on the previous one and each image step stands on the last:
        // graphs this deep aborted `kiln llb` and the frontend (stack overflow) while
        // `kiln check` passed them.
        ("5,000 chained requirement groups", format!("version: 1\nname: w\npython: {{base: python:3}}\nrequirements:\n{}", (0..5_000).map(|i| format!("  g{i}: {{packages: [arq]}}\n")).collect::<String>()).into_bytes(), "variant `default` installs more than 64 requirement groups", ":69:3"),
        ("6,000 image steps", format!("version: 1\nname: w\npython: {{base: python:3}}\nsteps:\n{}", (0..6_000).map(|i| format!("  - {{name: s{i}, in: image, run: 'true'}}\n")).collect::<String>()).into_bytes(), "more than 100 steps", ":105:5"),
        ("a huge uid", b"version: 1\nname: w\npython: {base: python:3}\nuser: {name: u, uid: 99999999999999999999}\n".to_vec(), "user.uid must be an integer", ":4:22"),
    ]
}

/// The first diagnostic's `error: ...` line.
fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or("")
}

/// `file:L:C` of the first diagnostic's `--> ` line.
fn first_position(stderr: &str) -> &str {
    stderr
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("--> "))
        .unwrap_or("")
}

/// `want` is `:L:C` (exact) or `:L:` (that line, any column).
fn at_position(at: &str, want: &str) -> bool {
    match want.strip_suffix(':') {
        Some(line) => at
            .rsplit_once(':')
            .is_some_and(|(head, col)| head.ends_with(line) && col.parse::<u32>().is_ok()),
        None => at.ends_with(want),
    }
}

#[test]
fn hostile_specs_are_refused_cleanly_and_quickly() {
    let dir = std::env::temp_dir().join(format!("kiln-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = vec![];
    for (name, bytes, message, position) in cases() {
        // A row that could not fail (any message, any position) says nothing.
        assert!(
            !message.is_empty() && position.len() > 2 && position.matches(':').count() == 2,
            "{name}: give the row its message and `:L:C` or `:L:` position"
        );
        let path = dir.join(format!("{}.yaml", name.replace(' ', "-")));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
        let start = Instant::now();
        let mut child = kiln_command(&["check"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A guard against hangs, far above the milliseconds these take.
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > Duration::from_secs(60) {
                child.kill().ok();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
        let first = stderr.lines().take(2).collect::<Vec<_>>().join(" | ");
        if status.code() != Some(2) {
            failures.push(format!("{name}: exit {:?}: {first}", status.code()));
        } else if stderr.contains("panicked") {
            failures.push(format!("{name}: panicked"));
        } else if !error_line(&stderr).contains(message)
            || !at_position(first_position(&stderr), position)
        {
            failures.push(format!(
                "{name}: wanted `{message}` at `{position}`, got: {first}"
            ));
        } else if stderr.len() > 50_000 {
            // At most `MAX_SHOWN` (50) diagnostics, whatever the spec holds.
            failures.push(format!("{name}: {} bytes of diagnostics", stderr.len()));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn cli_check_graph_schema() {
    let ok = kiln(&[
        "check",
        "specs/worker.yaml",
        "specs/api.yaml",
        "specs/batch.yaml",
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let graph = kiln(&["graph", "specs/worker.yaml"]);
    assert!(graph.status.success());
    let dot = String::from_utf8(graph.stdout).unwrap();
    assert!(
        dot.starts_with("digraph kiln {") && dot.contains("uv install: core"),
        "{dot}"
    );
    let schema: serde_json::Value = serde_json::from_slice(&kiln(&["schema"]).stdout).unwrap();
    assert_eq!(
        schema["required"],
        serde_json::json!(["version", "name", "python"])
    );
    let bad_target = kiln(&["llb", "specs/worker.yaml", "--target", "gpu"]);
    assert_eq!(bad_target.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_target.stderr).contains("unknown target `gpu`"));
}

/// Issue 10, 4: `check`, `llb` and `graph` take --build-arg, so they warn about one the
/// spec does not declare, as the frontend does (warnings alone keep exit 0).
#[test]
fn cli_warns_about_undeclared_build_args() {
    for cmd in ["check", "llb", "graph"] {
        let context: &[&str] = match cmd {
            "llb" => &["--context", "examples/worker"],
            _ => &[],
        };
        let mut args = vec![cmd, "specs/worker.yaml", "--build-arg", "NOT_DECLARED=1"];
        args.extend_from_slice(context);
        let out = kiln(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{cmd}: {stderr}");
        assert!(
            stderr.contains(
                "warning[KilnUndeclaredBuildArg]: build arg `NOT_DECLARED` is not declared under `args:`"
            ),
            "{cmd}: {stderr}"
        );
        let mut args = vec![
            cmd,
            "specs/worker.yaml",
            "--build-arg",
            "PYTHON_VERSION=3.11",
        ];
        args.extend_from_slice(context);
        let declared = kiln(&args);
        assert!(
            !String::from_utf8_lossy(&declared.stderr).contains("warning"),
            "{cmd}"
        );
    }
}

/// Issue 10, 5: `kiln check --context DIR` checks the context offline: requirement files
/// and constraints must be there, app.src must survive .dockerignore and app.exclude.
#[test]
fn cli_check_context_finds_missing_and_emptied_paths() {
    let ok = kiln(&["check", "specs/worker.yaml", "--context", "examples/worker"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let dir = temp_tree(
        "ctx",
        &[
            ("app/NOTES.md", "x"),
            ("app/x.pyc", "x"),
            (".dockerignore", "**/*.md\n"),
            ("core.txt", "arq\n"),
            (
                "s.yaml",
                "version: 1\nname: w\npython: {base: python:3.12-slim, installer: uv}\n\
                 requirements:\n  core: [core.txt, extra.txt]\n\
                 pip: {constraints: c.txt}\n\
                 app: {src: [app, lib], exclude: [\"app/*.pyc\"]}\n",
            ),
        ],
    );
    let spec = dir.join("s.yaml");
    let out = kiln(&[
        "check",
        spec.to_str().unwrap(),
        "--context",
        dir.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for (message, at) in [
        (
            "requirement file `extra.txt` is not in the build context",
            "s.yaml:5:20",
        ),
        (
            "constraints file `c.txt` is not in the build context",
            "s.yaml:6:20",
        ),
        (
            "app.src `app` is empty once .dockerignore and app.exclude are applied",
            "s.yaml:7:13",
        ),
        (
            "app.src path `lib` is not in the build context",
            "s.yaml:7:18",
        ),
    ] {
        assert!(stderr.contains(message), "{message}: {stderr}");
        assert!(stderr.contains(at), "{at}: {stderr}");
    }
    assert!(!stderr.contains("`core.txt`"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `kiln check` follows `extends` only inside the spec's directory, as a build does, and
/// reads a file only up to the size limit: `/etc/shadow` is never printed, `/dev/zero`
/// never read to the end.
#[test]
fn cli_extends_stays_in_the_spec_directory_and_reads_bounded() {
    let dir = std::env::temp_dir().join(format!("kiln-extends-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, target) in [
        ("shadow.yaml", "/etc/shadow"),
        ("zero.yaml", "../../../../dev/zero"),
    ] {
        let spec = dir.join(name);
        std::fs::write(&spec, format!("version: 1\nextends: {target}\nname: w\n")).unwrap();
        let started = Instant::now();
        let out = kiln(&["check", spec.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("not in the spec's directory"), "{stderr}");
        assert!(
            !stderr.contains("root:"),
            "no line of /etc/shadow: {stderr}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    // A spec that is itself endless is cut at the limit.
    let out = kiln(&["check", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("allowed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// What passes the limits builds: 64 chained groups, 100 image steps and a lock marker
/// nested 32 deep give a definition (the debug binary, whose walks once recursed); a
/// marker nested 20,000 deep (40 KB) is refused at the spec line, naming the lock's line,
/// where `kiln llb` used to abort.
#[test]
fn deep_graphs_at_the_limits_build_and_deeper_markers_are_refused() {
    let lock = |depth: usize| {
        let marker = format!(
            "{}python_version > '3'{}",
            "(".repeat(depth),
            ")".repeat(depth)
        );
        format!(
            "lock-version = \"1.0\"\ncreated-by = \"t\"\n\n[[packages]]\nname = \"six\"\nversion = \"1.17.0\"\nmarker = \"{marker}\"\nwheels = [{{url = \"https://files.pythonhosted.org/six-1.17.0-py2.py3-none-any.whl\", hashes = {{sha256 = \"{}\"}}}}]\n",
            "0".repeat(64)
        )
    };
    let at_limit = format!(
        "version: 1\nname: w\npython: {{base: python:3.12-slim, version: \"3.12\", installer: uv}}\nrequirements:\n  lock: {{lock: pylock.toml}}\n{}steps:\n{}",
        (1..64)
            .map(|i| format!("  g{i}: {{packages: [arq]}}\n"))
            .collect::<String>(),
        (0..100)
            .map(|i| format!("  - {{name: s{i}, in: image, run: 'true'}}\n"))
            .collect::<String>()
    );
    let dir = temp_tree(
        "deep",
        &[
            ("s.yaml", at_limit.as_str()),
            ("pylock.toml", lock(32).as_str()),
            ("deep/s.yaml", at_limit.as_str()),
            ("deep/pylock.toml", lock(20_000).as_str()),
        ],
    );
    let run = |sub: &str, cmd: &str| {
        let spec = dir.join(sub).join("s.yaml");
        let ctx = dir.join(sub);
        let started = Instant::now();
        let out = kiln(&[
            cmd,
            spec.to_str().unwrap(),
            "--context",
            ctx.to_str().unwrap(),
        ]);
        assert!(started.elapsed() < Duration::from_secs(60), "{cmd} {sub}");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.stdout.len(),
        )
    };
    let (code, stderr, bytes) = run("", "llb");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(bytes > 0);
    for cmd in ["check", "llb"] {
        let (code, stderr, _) = run("deep", cmd);
        assert_eq!(code, Some(2), "{cmd}: {stderr}");
        assert!(
            stderr.contains("cannot read the lock `pylock.toml`: line 7: the marker of package `six` nests parentheses 20000 deep; kiln reads markers nested at most 32 deep"),
            "{cmd}: {stderr}"
        );
        assert!(stderr.contains("s.yaml:5:16"), "{cmd}: {stderr}");
        assert!(!stderr.contains("overflow"), "{cmd}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 21: the image's env was built by a scan per key, quadratic: 88 000 env keys took
/// 60 s in `kiln llb` (and the frontend) while `kiln check` took 0.4 s. 60 000 keys over a
/// base config that sets some of them, in spec order, the base's place kept.
#[test]
fn the_image_env_of_60_000_keys_is_built_in_linear_time() {
    let text = format!(
        "version: 1\nname: w\npython: {{base: python:3}}\nenv:\n{}",
        (0..60_000)
            .map(|i| format!("  K{i}: v{i}\n"))
            .collect::<String>()
    );
    let spec = load("env.yaml", &text).unwrap().spec;
    let base = serde_json::json!({"config": {"Env": ["K7=base", "PATH=/usr/bin", "LANG=C"]}});
    let started = Instant::now();
    let config = image_config(&spec, "default", &base, &Default::default());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let env: Vec<&str> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(env.len(), 60_000 + 3);
    assert_eq!(
        env[..4],
        [
            "K7=v7",
            "PATH=/opt/venv/bin:/usr/bin",
            "LANG=C",
            "VIRTUAL_ENV=/opt/venv"
        ]
    );
}

/// Issue 21: `kiln check --context` matched `.dockerignore` by backtracking:
/// `*a*a*a*a*b` against a long name took 36 s (and more with each `*a`). Now linear.
#[test]
fn a_backtracking_dockerignore_pattern_is_checked_quickly() {
    let name = "a".repeat(60);
    let spec = format!("version: 1\nname: w\npython: {{base: python:3}}\napp: {{src: [{name}]}}\n");
    let ignore = format!("{}b\n", "*a".repeat(12));
    let file = format!("{name}/{name}.py");
    let dir = temp_tree(
        "ignore-backtrack",
        &[
            ("s.yaml", spec.as_str()),
            (".dockerignore", ignore.as_str()),
            (file.as_str(), "x"),
        ],
    );
    let started = Instant::now();
    let out = kiln(&[
        "check",
        dir.join("s.yaml").to_str().unwrap(),
        "--context",
        dir.to_str().unwrap(),
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}
