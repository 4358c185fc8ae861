//! A `Detected` as the spec's YAML text (each choice under a comment saying where it comes
//! from) and as the summary `kiln init` prints. Pure functions of their input: the same
//! project gives the same bytes.

use super::source::{GroupValue, Kind, SdistUse};
use super::{App, Cmd, Detected, Options, Why};

/// How wide comment lines are wrapped.
const WIDTH: usize = 90;

/// The timeout of the `--help` check: a script that ignores its arguments and serves
/// forever fails the build in a minute, not in `verify_timeout`'s five.
const HELP_TIMEOUT: &str = "60s";

/// The base image of a Python version (the official slim image).
fn base(python: &str) -> String {
    format!("python:{python}-slim")
}

/// A YAML scalar: plain when it cannot be read as anything but this string, else
/// double-quoted (JSON's escapes are YAML's).
pub fn scalar(s: &str) -> String {
    let plain = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '+'))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    match plain {
        true => s.to_string(),
        false => serde_json::to_string(s).expect("a string"),
    }
}

fn flow(items: &[impl AsRef<str>]) -> String {
    let items: Vec<String> = items.iter().map(|i| scalar(i.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

/// Comment lines at `indent`, wrapped at `WIDTH`; control characters (a file name may
/// hold a newline) and URL credentials never reach the file.
fn comment(out: &mut String, indent: usize, text: &str) {
    let text: String = crate::url::redact_text(text)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let pad = " ".repeat(indent);
    let mut line = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if !line.is_empty() && pad.len() + 2 + line.len() + 1 + word.len() > WIDTH {
            out.push_str(&format!("{pad}# {line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&format!("{pad}# {line}\n").replace(" \n", "\n"));
}

/// Why a sdist needs what it gets.
fn sdist_why(s: &SdistUse, python: &str) -> String {
    let version = s
        .version
        .as_deref()
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    let found = match s.from_lock {
        true => format!(
            "{}{version} is a sdist in {} (no wheel for CPython {python} on linux/{})",
            s.name,
            s.file,
            super::source::ARCH
        ),
        false => format!(
            "{}{version} ({}) has no Linux wheel on PyPI: it is built from its sdist",
            s.name, s.file
        ),
    };
    match s.known {
        Some(k) => {
            let needs: Vec<&str> = k.needs.iter().map(|l| l.what).collect();
            format!("{found}; it needs {}", needs.join(", "))
        }
        None => format!(
            "{found}, which kiln has no entry for: build-essential in case it compiles code (a build that misses a library says which)"
        ),
    }
}

/// The system packages for the sdists (`full_only`: the full variant's, less what every
/// variant has), and why, one line per sdist.
fn system(d: &Detected, full_only: bool) -> (Vec<&'static str>, Vec<&'static str>, Vec<String>) {
    let (mut build, mut runtime, mut why) = (vec![], vec![], vec![]);
    let (base_build, base_runtime, _) = match full_only {
        true => system(d, false),
        false => (vec![], vec![], vec![]),
    };
    for s in d.sdists.iter().filter(|s| s.full_only == full_only) {
        let (b, r) = match s.known {
            Some(k) => (k.build(), k.runtime()),
            None => (vec!["build-essential"], vec![]),
        };
        for p in b {
            if !build.contains(&p) && !base_build.contains(&p) {
                build.push(p);
            }
        }
        for p in r {
            if !runtime.contains(&p) && !base_runtime.contains(&p) {
                runtime.push(p);
            }
        }
        why.push(sdist_why(s, &d.python.value));
    }
    (build, runtime, why)
}

/// The `verify` commands: the command's `--help` (spec-wide), and an import of each
/// sdist-built module (the full variant's own for `full_only`).
fn verify(d: &Detected, full_only: bool) -> Vec<Why<String>> {
    let mut out = vec![];
    if !full_only {
        match &d.cmd {
            Cmd::Script(s) => out.push(Why::new(
                format!("{s} --help"),
                format!("the console script {s} starts (within {HELP_TIMEOUT})"),
            )),
            Cmd::Module(m) => out.push(Why::new(
                format!("python -m {m} --help"),
                format!("the app's package {m} starts (within {HELP_TIMEOUT})"),
            )),
            Cmd::Choose(_) | Cmd::None => {}
        }
    }
    for s in d.sdists.iter().filter(|s| s.full_only == full_only) {
        let Some(module) = s.known.and_then(|k| k.module) else {
            continue;
        };
        let command = format!("python -c 'import {module}'");
        if out.iter().any(|w| w.value == command) {
            continue;
        }
        let runtime = s.known.map(|k| k.runtime()).unwrap_or_default();
        let loads = match runtime.is_empty() {
            true => String::new(),
            false => format!(", with {}", runtime.join(", ")),
        };
        out.push(Why::new(
            command,
            format!(
                "{} was built from its sdist: its compiled code loads{loads}",
                s.name
            ),
        ));
    }
    out
}

fn verify_entry(out: &mut String, indent: usize, w: &Why<String>) {
    let pad = " ".repeat(indent);
    comment(out, indent, &w.why);
    if w.value.ends_with(" --help") {
        out.push_str(&format!(
            "{pad}- run: {}\n{pad}  timeout: {HELP_TIMEOUT}\n",
            scalar(&w.value)
        ));
    } else {
        out.push_str(&format!("{pad}- {}\n", scalar(&w.value)));
    }
}

fn group_value(v: &GroupValue) -> String {
    match v {
        GroupValue::Files(files) => flow(files),
        GroupValue::Lock {
            path,
            extras,
            groups,
        } => {
            let mut s = format!("{{lock: {}", scalar(path));
            if !extras.is_empty() {
                s.push_str(&format!(", extras: {}", flow(extras)));
            }
            if !groups.is_empty() {
                s.push_str(&format!(", groups: {}", flow(groups)));
            }
            s.push('}');
            s
        }
    }
}

fn cmd_why(d: &Detected) -> String {
    match &d.cmd {
        Cmd::Script(_) => "the project's only console script, in pyproject.toml".into(),
        Cmd::Module(m) => format!("{m} is the only package with a __main__.py"),
        Cmd::Choose(list) => format!(
            "several candidates ({}): uncomment the one the image runs",
            list.join(", ")
        ),
        Cmd::None => {
            "no console script or __main__.py found: name the command the image runs".into()
        }
    }
}

/// The spec `kiln init` writes for `d`.
pub fn render(d: &Detected, opts: &Options) -> String {
    let mut out = String::new();
    out.push_str("# syntax=kiln/frontend:latest\n");
    comment(
        &mut out,
        0,
        "Written by `kiln init` for the project in this directory, the build context: check it with `kiln check kiln.yaml --context .`, build it with `docker build -f kiln.yaml .`. Each comment says what in the project a line comes from; edit freely.",
    );
    for n in &d.notes {
        comment(&mut out, 0, &format!("Note: {n}"));
    }
    out.push_str("version: 1\n");
    comment(&mut out, 0, &d.name.why);
    out.push_str(&format!("name: {}\n", scalar(&d.name.value)));
    if let Some(desc) = d.description.as_deref().filter(|s| !s.trim().is_empty()) {
        out.push_str(&format!("description: {}\n", scalar(desc)));
    }
    out.push_str("args:\n");
    comment(
        &mut out,
        2,
        "the official image of python.version; another base: --build-arg PYTHON_IMAGE=...",
    );
    out.push_str(&format!("  PYTHON_IMAGE: {}\n", base(&d.python.value)));
    out.push_str("python:\n  base: ${PYTHON_IMAGE}\n");
    comment(&mut out, 2, &d.python.why);
    out.push_str(&format!("  version: {}\n", scalar(&d.python.value)));
    comment(&mut out, 2, &d.source.why);
    out.push_str("  installer: uv\n");

    let (build, runtime, why) = system(d, false);
    if !build.is_empty() || !runtime.is_empty() {
        out.push_str("system:\n");
        for w in &why {
            comment(&mut out, 2, w);
        }
        if !build.is_empty() {
            out.push_str(&format!("  build: {}\n", flow(&build)));
        }
        if !runtime.is_empty() {
            out.push_str(&format!("  runtime: {}\n", flow(&runtime)));
        }
    }

    out.push_str("requirements:\n");
    for g in &d.groups {
        comment(&mut out, 2, &g.why);
        out.push_str(&format!("  {}: {}\n", g.name, group_value(&g.value)));
    }
    for l in &d.left_out {
        comment(&mut out, 2, &format!("left out: {l}"));
    }

    match &opts.ca_bundle {
        Some(id) => {
            comment(
                &mut out,
                0,
                &format!(
                    "a PEM CA bundle for a network that intercepts TLS: build with --secret id={id},src=CA.pem"
                ),
            );
            out.push_str(&format!("build_secrets: {{ca_bundle: {}}}\n", scalar(id)));
        }
        None => {
            comment(
                &mut out,
                0,
                "Behind a proxy that intercepts TLS: uncomment, and build with --secret id=pipca,src=CA.pem (or run kiln init --ca-bundle pipca)",
            );
            out.push_str("# build_secrets: {ca_bundle: pipca}\n");
        }
    }

    match &d.app.value {
        App::Project => {
            out.push_str("app:\n");
            comment(&mut out, 2, &d.app.why);
            out.push_str("  project: .\n");
        }
        App::Src(src) => {
            out.push_str("app:\n");
            comment(&mut out, 2, &d.app.why);
            out.push_str(&format!("  src: {}\n", flow(src)));
            out.push_str("  exclude: [\"**/__pycache__\", \"**/*.pyc\"]\n");
        }
        App::None => {
            comment(&mut out, 0, &d.app.why);
            out.push_str("# app: {src: [...]}\n");
        }
    }
    out.push_str("env:\n");
    comment(&mut out, 2, "print() reaches `docker logs` at once");
    out.push_str("  PYTHONUNBUFFERED: \"1\"\n");

    comment(&mut out, 0, &cmd_why(d));
    match &d.cmd {
        Cmd::Script(s) => out.push_str(&format!("cmd: {}\n", flow(&[s]))),
        Cmd::Module(m) => out.push_str(&format!("cmd: {}\n", flow(&["python", "-m", m]))),
        Cmd::Choose(list) => {
            let first = list[0].split(' ').collect::<Vec<_>>();
            out.push_str(&format!("# cmd: {}\n", flow(&first)));
        }
        Cmd::None => out.push_str("# cmd: [...]\n"),
    }

    let checks = verify(d, false);
    if !checks.is_empty() {
        out.push_str("verify:\n");
        for w in &checks {
            verify_entry(&mut out, 2, w);
        }
    }

    if d.groups.len() > 1 {
        let first = &d.groups[0].name;
        let all: Vec<&str> = d.groups.iter().map(|g| g.name.as_str()).collect();
        out.push_str("variants:\n  minimal:\n");
        out.push_str(&format!(
            "    description: {}\n",
            scalar(&format!("The {first} group only"))
        ));
        out.push_str(&format!("    requirements: {}\n", flow(&[first])));
        out.push_str("  full:\n");
        out.push_str(&format!(
            "    description: {}\n",
            scalar(&format!("Every group: {}", all.join(", ")))
        ));
        out.push_str(&format!("    requirements: {}\n", flow(&all)));
        let (build, runtime, why) = system(d, true);
        if !build.is_empty() || !runtime.is_empty() {
            out.push_str("    system:\n");
            for w in &why {
                comment(&mut out, 6, w);
            }
            if !build.is_empty() {
                out.push_str(&format!("      build: {}\n", flow(&build)));
            }
            if !runtime.is_empty() {
                out.push_str(&format!("      runtime: {}\n", flow(&runtime)));
            }
        }
        let checks = verify(d, true);
        if !checks.is_empty() {
            out.push_str("    verify:\n");
            for w in &checks {
                verify_entry(&mut out, 6, w);
            }
        }
        out.push_str("default_variant: minimal\n");
    }
    out
}

/// What `kiln init` found, for the terminal: one line per choice and why.
pub fn summary(d: &Detected) -> String {
    let mut out = String::new();
    let source = match d.source.value {
        Kind::Uv => "uv.lock",
        Kind::Poetry => "poetry.lock",
        Kind::Pylock => "PEP 751 lock",
        Kind::Requirements => "requirement files",
    };
    out.push_str(&format!("  dependencies: {source}\n"));
    for g in &d.groups {
        out.push_str(&format!("    group {}: {}\n", g.name, g.why));
    }
    for l in &d.left_out {
        out.push_str(&format!("    left out: {l}\n"));
    }
    out.push_str(&format!(
        "  python: {} ({})\n",
        d.python.value, d.python.why
    ));
    let app = match &d.app.value {
        App::Project => "project .".to_string(),
        App::Src(src) => format!("src {}", src.join(", ")),
        App::None => "none".to_string(),
    };
    out.push_str(&format!("  app: {app} ({})\n", d.app.why));
    let cmd = match &d.cmd {
        Cmd::Script(s) => s.clone(),
        Cmd::Module(m) => format!("python -m {m}"),
        Cmd::Choose(_) | Cmd::None => "(none)".to_string(),
    };
    out.push_str(&format!("  cmd: {cmd} ({})\n", cmd_why(d)));
    for full_only in [false, true] {
        let (build, runtime, why) = system(d, full_only);
        if build.is_empty() && runtime.is_empty() {
            continue;
        }
        let variant = if full_only { " (full variant)" } else { "" };
        out.push_str(&format!(
            "  system{variant}: build {}; runtime {}\n",
            if build.is_empty() {
                "-".into()
            } else {
                build.join(", ")
            },
            if runtime.is_empty() {
                "-".into()
            } else {
                runtime.join(", ")
            }
        ));
        for w in why {
            out.push_str(&format!("    {w}\n"));
        }
    }
    let checks: Vec<String> = verify(d, false)
        .into_iter()
        .chain(verify(d, true))
        .map(|w| w.value)
        .collect();
    if !checks.is_empty() {
        out.push_str(&format!("  verify: {}\n", checks.join("; ")));
    }
    for n in &d.notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    crate::url::redact_text(&out)
        .chars()
        .map(|c| if c.is_control() && c != '\n' { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::source::{Group, SdistUse};

    fn detected() -> Detected {
        Detected {
            name: Why::new("svc".into(), "the project's name"),
            description: Some("yes: a \"quoted\" one".into()),
            python: Why::new("3.12".into(), "kiln's default"),
            source: Why::new(Kind::Uv, "uv installs a uv.lock"),
            groups: vec![
                Group {
                    name: "core".into(),
                    value: GroupValue::Lock {
                        path: "uv.lock".into(),
                        extras: vec![],
                        groups: vec![],
                    },
                    why: "core".into(),
                },
                Group {
                    name: "optional".into(),
                    value: GroupValue::Lock {
                        path: "uv.lock".into(),
                        extras: vec!["db".into()],
                        groups: vec!["gpu".into()],
                    },
                    why: "optional".into(),
                },
            ],
            left_out: vec!["dependency group dev (development only)".into()],
            sdists: vec![
                SdistUse {
                    name: "oddity".into(),
                    version: Some("1.0".into()),
                    file: "uv.lock".into(),
                    full_only: false,
                    known: None,
                    from_lock: true,
                },
                SdistUse {
                    name: "psycopg2".into(),
                    version: Some("2.9.13".into()),
                    file: "uv.lock".into(),
                    full_only: true,
                    known: crate::sysdeps::sdist("psycopg2"),
                    from_lock: true,
                },
            ],
            app: Why::new(App::Project, "a package"),
            cmd: Cmd::Script("svc".into()),
            notes: vec!["a file\nwith a newline in its name".into()],
        }
    }

    #[test]
    fn scalars_stay_strings() {
        assert_eq!(scalar("uv.lock"), "uv.lock");
        assert_eq!(scalar("requirements/prod.txt"), "requirements/prod.txt");
        for s in [
            "3.11", "yes", "No", "-m", "a b", "x: y", "#c", "", "[a]", "${X}",
        ] {
            let q = scalar(s);
            assert!(q.starts_with('"'), "{s} -> {q}");
            assert_eq!(serde_json::from_str::<String>(&q).unwrap(), s);
        }
    }

    /// An unknown sdist gets build-essential and says so; one only the full variant
    /// installs gets its packages (and its import check) in that variant alone.
    #[test]
    fn system_packages_per_variant_and_verify() {
        let text = render(&detected(), &Options::default());
        let at = |s: &str| {
            text.find(s)
                .unwrap_or_else(|| panic!("{s:?} not in:\n{text}"))
        };
        assert!(at("system:\n") < at("  build: [build-essential]\n"));
        let unwrapped = text.replace("\n  # ", " ");
        assert!(
            unwrapped.contains("which kiln has no entry for: build-essential"),
            "{text}"
        );
        assert!(at("  full:\n") < at("      build: [libpq-dev]\n"), "{text}");
        assert!(at("  full:\n") < at("      runtime: [libpq5]\n"));
        assert!(at("    verify:\n") < at("      - \"python -c 'import psycopg2'\"\n"));
        assert!(text.contains("optional: {lock: uv.lock, extras: [db], groups: [gpu]}\n"));
        assert!(text.contains("description: \"yes: a \\\"quoted\\\" one\"\n"));
        // The newline in a note does not start a line of YAML.
        assert!(
            text.contains("# Note: a file?with a newline in its name\n"),
            "{text}"
        );
        assert!(
            text.lines()
                .all(|l| l.len() <= WIDTH || !l.trim_start().starts_with('#'))
        );
        // The --help check is bounded.
        assert!(
            text.contains("  - run: \"svc --help\"\n    timeout: 60s\n"),
            "{text}"
        );
        // Deterministic.
        assert_eq!(text, render(&detected(), &Options::default()));
    }

    /// What it writes is a spec kiln loads, with the variants and their lists as meant.
    #[test]
    fn the_text_loads_as_a_spec() {
        let text = render(
            &detected(),
            &Options {
                ca_bundle: Some("corp-ca".into()),
            },
        );
        let loaded = crate::spec::load_str("kiln.yaml", &text, &Default::default())
            .unwrap_or_else(|r| panic!("{}\n{text}", r.render()));
        let spec = loaded.spec;
        assert_eq!(spec.secrets.ca_bundle.as_deref(), Some("corp-ca"));
        assert_eq!(spec.default_variant, "minimal");
        let minimal = spec.variant("minimal").unwrap();
        let full = spec.variant("full").unwrap();
        let names =
            |l: &[crate::spec::S<String>]| l.iter().map(|s| s.v.clone()).collect::<Vec<_>>();
        assert_eq!(names(&minimal.build_packages), ["build-essential"]);
        assert_eq!(
            names(&full.build_packages),
            ["build-essential", "libpq-dev"]
        );
        assert!(minimal.runtime_packages.is_empty());
        assert_eq!(names(&full.runtime_packages), ["libpq5"]);
        assert_eq!(full.verify.len(), minimal.verify.len() + 1);
        assert_eq!(minimal.python.version.as_ref().unwrap().v, "3.12");
        assert_eq!(minimal.process.cmd.as_ref().unwrap().v, ["svc"]);
    }
}
