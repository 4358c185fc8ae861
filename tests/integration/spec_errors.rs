//! Every validation error: its message and the line:col it points at.

use crate::common::{Installer, load, load_path, load_with_args};

const GOOD: &str = "version: 1\nname: w\npython:\n  base: python:3.12-slim\n";

/// (spec, expected message fragment, line, col)
fn cases() -> Vec<(String, &'static str, u32, u32)> {
    let with = |extra: &str| format!("{GOOD}{extra}");
    let uv = |extra: &str| {
        format!("version: 1\nname: w\npython: {{base: python:3, installer: uv}}\n{extra}")
    };
    vec![
        ("".into(), "spec file is empty", 1, 1),
        ("- a\n- b\n".into(), "must be a mapping", 1, 1),
        ("just a string\n".into(), "must be a mapping", 1, 1),
        ("version: 1\nname: [unclosed\n".into(), "invalid YAML", 2, 7),
        (
            "version: 1\nname: w\nname: x\n".into(),
            "duplicate key `name`",
            3,
            1,
        ),
        (
            "name: w\npython: {base: python:3}\n".into(),
            "missing `version`",
            1,
            1,
        ),
        (
            "version: 2\nname: w\npython: {base: python:3}\n".into(),
            "unsupported spec version",
            1,
            10,
        ),
        (
            "version: 1\npython: {base: python:3}\n".into(),
            "missing `name`",
            1,
            1,
        ),
        ("version: 1\nname: w\n".into(), "missing `python`", 1, 1),
        (
            with("requirments: {}\n"),
            "unknown key `requirments` in the spec",
            5,
            1,
        ),
        (
            with("system:\n  biuld: [gcc]\n"),
            "unknown key `biuld` in system",
            6,
            3,
        ),
        (
            "version: 1\nname: W!\npython:\n  base: python:3.12-slim\n".into(),
            "invalid name `W!`",
            2,
            7,
        ),
        (
            "version: 1\nname: w\npython:\n  base: Python:3.12\n".into(),
            "invalid image reference `Python:3.12`",
            4,
            9,
        ),
        (
            "version: 1\nname: w\npython:\n  version: \"3.12\"\n".into(),
            "missing `python.base`",
            4,
            3,
        ),
        (
            with("  version: 3.10\n"),
            "python.version must be a string, found a number",
            5,
            12,
        ),
        (
            with("  version: \"three\"\n"),
            "invalid python.version `three`",
            5,
            12,
        ),
        (
            with("  installer: poetry\n"),
            "unknown installer `poetry`",
            5,
            14,
        ),
        (
            with("  venv: opt/venv\n"),
            "invalid python.venv `opt/venv`",
            5,
            9,
        ),
        (
            with("system:\n  build: [\"gcc; rm -rf /\"]\n"),
            "invalid apt package name `gcc; rm -rf /`",
            6,
            11,
        ),
        (
            with("system:\n  runtime: libpq5\n"),
            "system.runtime must be a list",
            6,
            12,
        ),
        (
            with("requirements:\n  core: [../secrets.txt]\n"),
            "`..` would leave the build context",
            6,
            10,
        ),
        (
            with("requirements:\n  core: [/etc/passwd]\n"),
            "absolute paths are not allowed",
            6,
            10,
        ),
        (
            with("requirements:\n  core: {packages: [\"--index-url=http://evil\"]}\n"),
            "pip options are not requirements",
            6,
            21,
        ),
        (
            with("requirements:\n  core: {packages: [\"arq$(id)\"]}\n"),
            "shell metacharacters",
            6,
            21,
        ),
        (
            with("requirements:\n  core: []\n"),
            "requirement group `core` is empty",
            6,
            9,
        ),
        (
            with("requirements:\n  core: {file: [a.txt]}\n"),
            "unknown key `file` in requirements.core",
            6,
            10,
        ),
        (with("pip:\n  timeout: -1\n"), "pip.timeout is -1", 6, 12),
        (
            with("pip:\n  retries: lots\n"),
            "pip.retries must be an integer",
            6,
            12,
        ),
        (
            with("pip:\n  index_url: https://user:token@pypi.example.com/simple\n"),
            "invalid pip.index_url `https://***@pypi.example.com/simple`",
            6,
            14,
        ),
        (
            with("pip:\n  check: yes please\n"),
            "pip.check must be true or false",
            6,
            10,
        ),
        (with("app:\n  workdir: /app\n"), "missing `app.src`", 6, 3),
        (
            with("app:\n  src: [app]\n  workdir: app\n"),
            "invalid app.workdir `app`",
            7,
            12,
        ),
        (
            with("user: admin\n"),
            "user must be a mapping or `root`",
            5,
            7,
        ),
        (
            with("user: {name: Bad Name, uid: 10001}\n"),
            "invalid user name `Bad Name`",
            5,
            14,
        ),
        (with("user: {name: svc, uid: 0}\n"), "uid 0 is root", 5, 7),
        (
            with("user: {name: svc, uid: -5}\n"),
            "user.uid is -5",
            5,
            24,
        ),
        (
            with("env:\n  1BAD: x\n"),
            "invalid environment variable name `1BAD`",
            6,
            9,
        ),
        (with("env:\n  A: [1, 2]\n"), "env.A must be a string", 6, 6),
        (with("cmd: []\n"), "cmd is an empty list", 5, 6),
        (
            with("cmd: {run: x}\n"),
            "cmd must be a list of strings or one string",
            5,
            6,
        ),
        (
            with("verify: python -m app.health\n"),
            "verify must be a list",
            5,
            9,
        ),
        (
            with("verify:\n  - {timeout: 60s}\n"),
            "an entry of verify has no `run`",
            6,
            5,
        ),
        (
            with("verify:\n  - {run: x, tiemout: 60s}\n"),
            "unknown key `tiemout` in an entry of verify",
            6,
            14,
        ),
        (
            with("verify:\n  - {run: x, timeout: 60}\n"),
            "invalid verify timeout `60`",
            6,
            23,
        ),
        (
            with("verify:\n  - \"  \"\n"),
            "an entry of verify is empty",
            6,
            5,
        ),
        (
            with("verify_timeout: 2d\n"),
            "invalid verify_timeout `2d`",
            5,
            17,
        ),
        (
            with("verify_timeout: 48h\n"),
            "verify_timeout `48h` is out of range",
            5,
            17,
        ),
        (
            with("variants:\n  a: {verify: [{run: x, timeout: 0s}]}\n"),
            "variants.a.verify timeout `0s` is out of range",
            6,
            34,
        ),
        (
            with("healthcheck: {cmd: [x], verify: maybe}\n"),
            "healthcheck.verify",
            5,
            33,
        ),
        (
            with("healthcheck:\n  interval: 30s\n"),
            "missing `healthcheck.cmd`",
            6,
            3,
        ),
        (
            with("healthcheck:\n  cmd: [python]\n  interval: 30\n"),
            "invalid healthcheck.interval `30`",
            7,
            13,
        ),
        (with("ports: [70000]\n"), "invalid port `70000`", 5, 9),
        (with("ports: [\"80/xtp\"]\n"), "invalid port `80/xtp`", 5, 9),
        (
            with("stop_signal: TERM\n"),
            "invalid stop_signal `TERM`",
            5,
            14,
        ),
        (
            with("build_secrets:\n  ca_bundle: \"a b\"\n"),
            "invalid secret id `a b`",
            6,
            14,
        ),
        (
            with("build_secrets:\n  token: x\n"),
            "unknown key `token` in build_secrets",
            6,
            3,
        ),
        (with("variants: {}\n"), "`variants` is empty", 5, 11),
        (
            with("variants:\n  GPU: {}\n"),
            "invalid variant name `GPU`",
            6,
            3,
        ),
        (
            with("requirements:\n  core: [r.txt]\nvariants:\n  a: {requirements: [cor]}\n"),
            "unknown requirement group `cor`",
            8,
            22,
        ),
        (
            with("variants:\n  a: {biuld: x}\n"),
            "unknown key `biuld` in variant `a`",
            6,
            7,
        ),
        (
            with("variants:\n  a: {}\ndefault_variant: b\n"),
            "default_variant `b` is not a variant",
            7,
            18,
        ),
        (
            with("variants:\n  a: {base: \"not an image\"}\n"),
            "invalid image reference `not an image`",
            6,
            13,
        ),
        (
            "version: 1\nname: w\npython:\n  base: ${IMAGE}\n".into(),
            "undefined argument `${IMAGE}`",
            4,
            9,
        ),
        (
            "version: 1\nname: w\nargs: {IMAGE: x}\npython:\n  base: ${IMAGES}\n".into(),
            "undefined argument `${IMAGES}`",
            5,
            9,
        ),
        (
            "version: 1\nname: w\nargs: {\"bad-name\": x}\npython: {base: python:3}\n".into(),
            "invalid argument name `bad-name`",
            3,
            8,
        ),
        (
            "version: 1\nname: w\npython:\n  base: ${IMAGE\n".into(),
            "unterminated `${`",
            4,
            9,
        ),
        (
            "version: 1\nextends: [a.yaml]\nname: w\n".into(),
            "`extends` must be a file name",
            2,
            10,
        ),
        (
            "version: 1\nextends: base.yaml\nname: w\n".into(),
            "cannot read extended spec `base.yaml`",
            2,
            10,
        ),
        // Lock files and projects.
        (
            uv("requirements: {core: {lock: deps/Pipfile.lock}}\n"),
            "`Pipfile.lock` is not a lock file kiln reads",
            4,
            29,
        ),
        (
            with("requirements: {core: {lock: uv.lock}}\n"),
            "`uv.lock` is installed by uv, and variant `default` uses installer pip",
            5,
            29,
        ),
        (
            uv("requirements: {core: {lock: uv.lock, packages: [arq]}}\n"),
            "`packages` cannot be used with a uv.lock",
            4,
            48,
        ),
        (
            with("requirements: {core: {files: [r.txt], extras: [ml]}}\n"),
            "`extras` selects from a lock file, and requirements.core has no `lock`",
            5,
            47,
        ),
        (
            uv("requirements: {core: {lock: pylock.toml, groups: [gpu]}}\n"),
            "`groups` cannot select from a pylock.toml",
            4,
            51,
        ),
        (
            uv("requirements: {core: {lock: uv.lock, extras: [\"m l\"]}}\n"),
            "invalid name `m l` in requirements.core.extras",
            4,
            47,
        ),
        (
            with("requirements: {core: {files: [r.txt], require_hashes: 1}}\n"),
            "requirements.core.require_hashes must be true or false",
            5,
            55,
        ),
        (with("app: {workdir: /srv}\n"), "missing `app.src`", 5, 6),
        (
            with("labels: {\"\": x}\n"),
            "invalid label key \"\" in labels",
            5,
            14,
        ),
        (
            with("labels: {\"a\\nb\": x}\n"),
            "invalid label key \"a\\nb\" in labels",
            5,
            18,
        ),
        (with("init: 1\n"), "init must be true or false", 5, 7),
        (with("steps: [{run: x}]\n"), "a step has no `name`", 5, 9),
        (with("steps: [{name: a}]\n"), "a step has no `run`", 5, 9),
        (
            with("steps: [{name: a, run: x}, {name: a, run: z}]\n"),
            "step `a` is listed twice",
            5,
            28,
        ),
        (
            with("steps: [{name: a, run: x, in: host}]\n"),
            "invalid steps.in `host`",
            5,
            31,
        ),
        (
            with("steps: [{name: a, run: x, in: image, outputs: [{from: /o, to: /p}]}]\n"),
            "a step in the image has no `outputs`",
            5,
            47,
        ),
        (
            with("steps: [{name: a, run: x, outputs: [{from: o, to: /p}]}]\n"),
            "invalid steps.outputs.from `o`",
            5,
            44,
        ),
        (
            with("steps: [{name: a, run: x, inputs: [../secret]}]\n"),
            "invalid path `../secret` in steps.inputs",
            5,
            36,
        ),
        (
            with("steps: [{name: a, run: x, secrets: [\"a b\"]}]\n"),
            "invalid secret id `a b`",
            5,
            37,
        ),
        (
            with("steps: [{name: a, run: x, network: 1}]\n"),
            "steps.network must be true or false",
            5,
            36,
        ),
        (
            with("steps: [{name: A, run: x}]\n"),
            "invalid step name `A`",
            5,
            16,
        ),
        (
            with(
                "system:\n  repositories:\n    - {name: pgdg, url: http://a/apt, suite: bookworm-pgdg, components: [main]}\n",
            ),
            "an entry of system.repositories has no `key`",
            7,
            7,
        ),
        (
            with(
                "system:\n  repositories:\n    - {name: pgdg, url: ftp://a/apt, suite: s, components: [main], key: k.asc}\n",
            ),
            "invalid system.repositories.url `ftp://a/apt`",
            7,
            25,
        ),
        (
            with(
                "system:\n  repositories:\n    - {name: pgdg, url: http://a/apt, suite: s, components: [main], key: /etc/k.asc}\n",
            ),
            "invalid path `/etc/k.asc` in system.repositories.key",
            7,
            74,
        ),
        (
            with(
                "system:\n  repositories:\n    - {name: pgdg, url: http://a/apt, suite: \"s; rm\", components: [main], key: k}\n",
            ),
            "invalid suite or component `s; rm`",
            7,
            46,
        ),
        (
            with(
                "system:\n  repositories:\n    - {name: pgdg, url: http://a/apt, suite: s, key: k}\n",
            ),
            "an entry of system.repositories has no `components`",
            7,
            7,
        ),
        (
            with(
                "system:\n  repositories:\n    - {name: p, url: http://a/apt, suite: s/, key: k}\n    - {name: p, url: http://b/apt, suite: s/, key: k}\n",
            ),
            "repository `p` is listed twice",
            8,
            7,
        ),
        (
            with(
                "variants: {a: {system: {repositories: [{name: p, url: http://a, suite: s/, key: k, comps: x}]}}}\n",
            ),
            "unknown key `comps` in an entry of the variant's system.repositories",
            5,
            84,
        ),
        (
            with("args: {SOURCE_DATE_EPOCH: yesterday}\n"),
            "invalid SOURCE_DATE_EPOCH `yesterday`",
            5,
            8,
        ),
        (
            with("variants: {a: {init: 1}}\n"),
            "variants.a.init must be true or false",
            5,
            22,
        ),
        (
            with("writable: [data]\n"),
            "invalid path `data` in writable",
            5,
            12,
        ),
        (
            with("volumes: [/etc]\n"),
            "`/etc` in volumes is a system directory",
            5,
            11,
        ),
        (
            with("variants: {a: {writable: [/usr]}}\n"),
            "`/usr` in variants.a.writable is a system directory",
            5,
            27,
        ),
        (
            with("files: [{src: a.toml}]\n"),
            "an entry of files needs `src` and `dest`",
            5,
            9,
        ),
        (
            with("files: [{src: ../a, dest: /etc/a}]\n"),
            "invalid path `../a` in files.src",
            5,
            15,
        ),
        (
            with("files: [{src: a, dest: etc/a}]\n"),
            "invalid files.dest `etc/a`",
            5,
            24,
        ),
        (
            with("files: [{src: a, dest: /etc/a/}]\n"),
            "files.dest `/etc/a/` is a directory",
            5,
            24,
        ),
        (
            with("files: [{src: a, dest: /etc/a, mode: \"0999\"}]\n"),
            "invalid files.mode `0999`",
            5,
            38,
        ),
        (
            with("files: [{src: a, dest: /etc/a, owner: app}]\n"),
            "invalid files.owner `app`",
            5,
            39,
        ),
        (
            with("files: [{src: a, dest: /etc/a, mod: 1}]\n"),
            "unknown key `mod` in an entry of files",
            5,
            32,
        ),
        (
            with("app: {src: [app], owner: worker}\n"),
            "invalid app.owner `worker`",
            5,
            26,
        ),
        (
            with("variants: {gpu: {cmd: []}}\n"),
            "variants.gpu.cmd is an empty list",
            5,
            23,
        ),
        (
            with("variants: {gpu: {stop_signal: \"9x\"}}\n"),
            "invalid stop_signal `9x`",
            5,
            31,
        ),
        (
            with("variants: {gpu: {user: {name: gpu, uid: 0}}}\n"),
            "uid 0 is root",
            5,
            24,
        ),
        (
            uv("requirements: {core: {lock: poetry.lock, extras: [ml]}}\n"),
            "`extras` cannot select from a poetry.lock",
            4,
            51,
        ),
        // Issue 21: hostile spellings and values.
        (with("writable: [/./]\n"), "`/./` in writable is a system directory", 5, 12),
        (with("volumes: [//etc]\n"), "`//etc` in volumes is a system directory", 5, 11),
        (with("writable: [/etc/.]\n"), "`/etc/.` in writable is a system directory", 5, 12),
        (with("writable: [/etc/../etc]\n"), "invalid path `/etc/../etc` in writable: `..` is not allowed", 5, 12),
        (with("writable: [/opt/venv/]\n"), "`/opt/venv` holds or is within the venv `/opt/venv`", 5, 12),
        (with("volumes: [/opt/venv/lib]\n"), "`/opt/venv/lib` holds or is within the venv `/opt/venv`", 5, 11),
        (
            "version: 1\nname: w\npython: {base: python:3, venv: /srv/app/venv}\nwritable: [/srv/app]\n".into(),
            "`/srv/app` holds or is within the venv `/srv/app/venv`",
            4,
            12,
        ),
        (with("steps: [{name: a, in: image, run: x, cache: [/./]}]\n"), "`/` in steps.cache", 5, 46),
        (with("steps: [{name: a, run: x, outputs: [{from: /o, to: /./}]}]\n"), "steps.outputs.to is `/`", 5, 52),
        (
            with("system:\n  repositories:\n    - {name: p, url: http://a/apt, suite: s, components: [main], key: \"keys/x.asc trusted=yes\"}\n"),
            "invalid system.repositories.key `keys/x.asc trusted=yes`",
            7,
            71,
        ),
        (
            with("system:\n  repositories:\n    - {name: p, url: http://a/apt, suite: s, components: [main], key: \"k.asc,/etc/apt/trusted.gpg\"}\n"),
            "invalid system.repositories.key `k.asc,/etc/apt/trusted.gpg`",
            7,
            71,
        ),
        (
            with("system:\n  repositories:\n    - {name: p, url: \"http://a/apt [trusted=yes]\", suite: s, components: [main], key: k}\n"),
            "invalid system.repositories.url",
            7,
            22,
        ),
        (
            with("system:\n  repositories:\n    - {name: p, url: http://a/apt, suite: \"s trusted=yes\", components: [main], key: k}\n"),
            "invalid suite or component `s trusted=yes`",
            7,
            43,
        ),
        (
            with("system:\n  repositories:\n    - {name: p, url: http://a/apt, suite: s, components: [\"main]\"], key: k}\n"),
            "invalid suite or component `main]`",
            7,
            59,
        ),
        (with("steps: [{name: a, in: image, run: x, inputs: [\"*\"]}]\n"), "steps.inputs `*` names the whole build context", 5, 47),
        (with("steps: [{name: a, in: image, run: x, inputs: [\"**\"]}]\n"), "steps.inputs `**` names the whole build context", 5, 47),
        (with("steps: [{name: a, in: image, run: x, inputs: [\"./*/**\"]}]\n"), "steps.inputs `*/**` names the whole build context", 5, 47),
        (with("steps: [{name: a, in: image, run: x, inputs: [.]}]\n"), "the path names the whole context", 5, 47),
        (with("steps: [{name: a, in: image, run: x, secrets: [tok]}]\n"), "a step in the image cannot mount secrets", 5, 47),
        (with("steps: [{name: a, run: x}]\n"), "a builder step without `outputs` would never run", 5, 9),
        (with("steps: [{name: a, run: x, outputs: []}]\n"), "a builder step without `outputs` would never run", 5, 9),
        (with("system: {runtime: automatic}\n"), "system.runtime must be a list or `auto`, found the string `automatic`", 5, 19),
        (with("system: {runtime: [auto, \"Bad Name\"]}\n"), "invalid apt package name `Bad Name`", 5, 26),
        (with("system: {check: \"no\"}\n"), "system.check must be true or false", 5, 17),
        (with("variants: {a: {system: {check: 0}}}\n"), "system.check must be true or false", 5, 32),
    ]
}

#[test]
fn every_error_has_message_and_position() {
    let mut failures = vec![];
    for (yaml, want, line, col) in cases() {
        match load("t.yaml", &yaml) {
            Ok(_) => failures.push(format!("accepted:\n{yaml}\nwanted: {want}")),
            Err(report) => {
                let found = report.errors().find(|d| d.message.contains(want));
                match found {
                    Some(d) if d.loc.line == line && d.loc.col == col => {
                        assert!(!d.help.is_empty(), "no help for {want}");
                    }
                    Some(d) => failures.push(format!(
                        "{want}: at {}:{}, wanted {line}:{col}",
                        d.loc.line, d.loc.col
                    )),
                    None => {
                        failures.push(format!("{want}: not reported; got:\n{}", report.render()))
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases().len(),
        failures.join("\n---\n")
    );
}

#[test]
fn unknown_keys_suggest_the_right_one() {
    let err = load("t.yaml", &format!("{GOOD}requirments: {{}}\n")).unwrap_err();
    let d = err.errors().next().unwrap();
    assert_eq!(d.help, "did you mean `requirements`?");
    let rendered = err.render();
    assert!(rendered.contains("--> t.yaml:5:1"), "{rendered}");
    assert!(rendered.contains("5 | requirments: {}"), "{rendered}");
}

#[test]
fn all_errors_are_reported_at_once() {
    let yaml = format!("{GOOD}system:\n  build: [\"Bad\"]\nports: [0]\nuser: {{name: X}}\n");
    let err = load("t.yaml", &yaml).unwrap_err();
    assert_eq!(err.errors().count(), 3, "{}", err.render());
}

#[test]
fn build_args_override_defaults_and_reach_every_string() {
    let yaml = "version: 1\nname: w\nargs: {IMG: python:3.12-slim, TAG: a}\npython:\n  base: ${IMG}\nenv: {T: \"${TAG}-$${TAG}\"}\n";
    let loaded = load_with_args("t.yaml", yaml, &[("IMG", "python:3.11-slim")]).unwrap();
    let v = &loaded.spec.variants[0];
    assert_eq!(v.python.base.v, "python:3.11-slim");
    assert_eq!(v.env["T"], "a-${TAG}");
    assert_eq!(loaded.spec.args[0].default, "python:3.12-slim");
}

#[test]
fn root_user_is_a_warning_not_an_error() {
    let loaded = load("t.yaml", &format!("{GOOD}user: root\n")).unwrap();
    assert!(loaded.spec.process.user.is_root());
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.message.contains("runs as root"))
    );
}

#[test]
fn default_user_is_non_root_10001() {
    let loaded = load("t.yaml", GOOD).unwrap();
    assert_eq!(
        (loaded.spec.process.user.uid, loaded.spec.process.user.gid),
        (10001, 10001)
    );
}

#[test]
fn one_error_per_position() {
    // The undefined argument explains why the image reference is wrong: say it once.
    let err = load("t.yaml", "version: 1\nname: w\npython:\n  base: ${IMAGE}\n").unwrap_err();
    assert_eq!(err.errors().count(), 1, "{}", err.render());
}

#[test]
fn extends_cycles_and_chains() {
    let dir = std::env::temp_dir().join(format!("kiln-extends-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("platform")).unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    write("a.yaml", "version: 1\nextends: platform/b.yaml\nname: a\n");
    write("platform/b.yaml", "version: 1\nextends: ../a.yaml\n");
    let err = load_path(&dir.join("a.yaml")).unwrap_err();
    let d = err.errors().next().unwrap();
    assert!(
        d.message.contains("`extends` cycle") && d.message.contains("a.yaml -> "),
        "{}",
        d.message
    );
    assert_eq!(
        (d.loc.file, d.loc.line, d.loc.col),
        (1, 2, 10),
        "points into b.yaml"
    );

    // A good chain: the extending file wins key by key, lists are replaced.
    write(
        "platform/b.yaml",
        "version: 1\nname: base\npython: {base: python:3.12-slim, installer: uv}\nsystem: {runtime: [libpq5, curl]}\nenv: {A: \"1\", B: \"1\"}\n",
    );
    write(
        "a.yaml",
        "version: 1\nextends: platform/b.yaml\nname: a\nsystem: {runtime: [libpq5]}\nenv: {B: \"2\"}\n",
    );
    let loaded = load_path(&dir.join("a.yaml")).unwrap();
    let v = &loaded.spec.variants[0];
    assert_eq!(loaded.spec.name.v, "a");
    assert_eq!(v.python.installer, Installer::Uv);
    assert_eq!(
        v.runtime_packages
            .iter()
            .map(|p| p.v.as_str())
            .collect::<Vec<_>>(),
        ["libpq5"]
    );
    assert_eq!((v.env["A"].as_str(), v.env["B"].as_str()), ("1", "2"));
    std::fs::remove_dir_all(&dir).ok();
}

/// A misspelt key or a wrong lock name is one error, where it is: no "group is empty",
/// no "unknown requirement group" at the variants that name the group.
#[test]
fn a_wrong_group_gives_one_error_not_a_cascade() {
    for (group, want) in [
        ("{lok: uv.lock}", "unknown key `lok` in requirements.core"),
        (
            "{lock: requirements.lock}",
            "`requirements.lock` is not a lock file kiln reads",
        ),
    ] {
        let yaml = format!(
            "version: 1\nname: w\npython: {{base: python:3, installer: uv}}\nrequirements: {{core: {group}}}\nvariants: {{a: {{requirements: [core]}}}}\n"
        );
        let err = load("t.yaml", &yaml).unwrap_err();
        let messages: Vec<&str> = err.errors().map(|d| d.message.as_str()).collect();
        assert_eq!(messages.len(), 1, "{}", err.render());
        assert!(messages[0].contains(want), "{}", err.render());
    }
    let err = load(
        "t.yaml",
        "version: 1\nname: w\npython: {base: python:3}\nrequirements: {core: {lock: requirements.lock}}\n",
    )
    .unwrap_err();
    assert!(
        err.render().contains("files: [requirements.lock]"),
        "{}",
        err.render()
    );
}
