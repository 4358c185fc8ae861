//! Credentials in a spec's URLs (issue 20): every key that can hold a URL refuses one with
//! userinfo, at its position, saying where credentials go; and no credential text reaches
//! the rendered report (`kiln check`), its one-line form (build errors), the
//! `errdefs.Source` file text BuildKit prints as the snippet, or a definition's source map.

use crate::common::{definition, failure_sent, kiln, load, load_with_args, temp_tree};

const GOOD: &str = "version: 1\nname: w\npython:\n  base: python:3.12-slim\n";
/// Userinfo with an `@` of its own: a cut at the first `@` would show `tok3n`.
const URL: &str = "https://alice:s3cret@tok3n@host/simple";
const SECRETS: [&str; 3] = ["alice", "s3cret", "tok3n"];

fn leaks(text: &str) -> Option<&'static str> {
    SECRETS.into_iter().find(|s| text.contains(s))
}

/// One URL-bearing key with a credential in it.
struct Case {
    key: &'static str,
    /// After `GOOD`; `{URL}` stands for `URL`.
    yaml: &'static str,
    build_args: &'static [(&'static str, &'static str)],
    /// Each error expected: (message fragment, the text its position is at).
    errors: &'static [(&'static str, &'static str)],
}

const BUILD_DEFINITION: &str =
    "credentials in the URL would be stored in the image's build definition";
const IMAGE_CONFIG: &str = "credentials in the URL would be stored in the image config";

fn cases() -> Vec<Case> {
    vec![
        Case {
            key: "pip.index_url",
            yaml: "pip:\n  index_url: {URL}\n",
            build_args: &[],
            errors: &[(
                "invalid pip.index_url `https://***@host/simple`: ",
                "https://alice",
            )],
        },
        Case {
            key: "pip.extra_index_urls",
            yaml: "pip:\n  extra_index_urls: [https://pypi.org/simple, {URL}]\n",
            build_args: &[],
            errors: &[(
                "invalid pip.extra_index_urls[1] `https://***@host/simple`: ",
                "https://alice",
            )],
        },
        Case {
            key: "variants.<name>.pip.index_url",
            yaml: "variants:\n  gpu:\n    pip: {index_url: \"{URL}\"}\n",
            build_args: &[],
            errors: &[(
                "invalid variants.gpu.pip.index_url `https://***@host/simple`: ",
                "\"https://alice",
            )],
        },
        Case {
            key: "requirements.<group>.packages (a direct reference)",
            yaml: "requirements:\n  core: {packages: [\"pkg @ {URL}/pkg-1-py3-none-any.whl\"]}\n",
            build_args: &[],
            errors: &[(
                "invalid requirements.core.packages[0] `https://***@host/simple/pkg-1-py3-none-any.whl`: ",
                "\"pkg @",
            )],
        },
        Case {
            key: "requirements.<group>.packages (version control)",
            yaml: "requirements:\n  core:\n    packages:\n      - pkg @ git+https://alice:s3cret@tok3n@host/o/pkg@v1\n",
            build_args: &[],
            errors: &[(
                "invalid requirements.core.packages[0] `git+https://***@host/o/pkg@v1`",
                "pkg @ git",
            )],
        },
        Case {
            key: "requirements.<group>.files",
            yaml: "requirements:\n  core: [\"{URL}/r.txt\"]\n",
            build_args: &[],
            errors: &[(
                "invalid requirements.core[0] `https://***@host/simple/r.txt`: ",
                "\"https://alice",
            )],
        },
        Case {
            key: "system.repositories[].url",
            yaml: "system:\n  repositories:\n    - {name: r, url: \"{URL}\", suite: s, components: [main], key: k.asc}\n",
            build_args: &[],
            errors: &[(
                "invalid system.repositories[0].url `https://***@host/simple`: ",
                "\"https://alice",
            )],
        },
        Case {
            key: "args (a default, and where it is used)",
            yaml: "args: {INDEX: \"{URL}\"}\npip: {index_url: \"${INDEX}\"}\n",
            build_args: &[],
            errors: &[
                (
                    "invalid args.INDEX `https://***@host/simple`: ",
                    "\"https://alice",
                ),
                (
                    "invalid pip.index_url `https://***@host/simple`: ",
                    "\"${INDEX}",
                ),
            ],
        },
        Case {
            key: "--build-arg (where it is used)",
            yaml: "args: {INDEX: \"https://pypi.org/simple\"}\npip: {index_url: \"${INDEX}\"}\n",
            build_args: &[("INDEX", URL)],
            errors: &[(
                "invalid pip.index_url `https://***@host/simple`: ",
                "\"${INDEX}",
            )],
        },
        Case {
            key: "env",
            yaml: "env: {PIP_INDEX_URL: \"{URL}\"}\n",
            build_args: &[],
            errors: &[(
                "invalid env.PIP_INDEX_URL `https://***@host/simple`: ",
                "\"https://alice",
            )],
        },
        Case {
            key: "labels (a value)",
            yaml: "labels:\n  org.opencontainers.image.source: {URL}\n",
            build_args: &[],
            errors: &[(
                "invalid labels.org.opencontainers.image.source `https://***@host/simple`: ",
                "https://alice",
            )],
        },
        Case {
            key: "labels (a key)",
            yaml: "labels:\n  \"{URL}\": x\n",
            build_args: &[],
            errors: &[("`https://***@host/simple`: ", "\"https://alice")],
        },
        Case {
            key: "steps[].run",
            yaml: "steps:\n  - name: fetch\n    run: curl -fsS {URL}/f -o /out/f\n",
            build_args: &[],
            errors: &[(
                "invalid steps[0].run `https://***@host/simple/f`: ",
                "curl -fsS",
            )],
        },
        Case {
            key: "verify",
            yaml: "verify: [\"curl -f {URL}\"]\n",
            build_args: &[],
            errors: &[("invalid verify[0] `https://***@host/simple`: ", "\"curl")],
        },
        Case {
            key: "healthcheck.cmd",
            yaml: "healthcheck: {cmd: [curl, -f, \"{URL}\"]}\n",
            build_args: &[],
            errors: &[(
                "invalid healthcheck.cmd[2] `https://***@host/simple`: ",
                "\"https://alice",
            )],
        },
        Case {
            key: "cmd",
            yaml: "cmd: [python, -m, app, --index, \"{URL}\"]\n",
            build_args: &[],
            errors: &[(
                "invalid cmd[4] `https://***@host/simple`: ",
                "\"https://alice",
            )],
        },
        Case {
            key: "entrypoint",
            yaml: "entrypoint: [/bin/fetch, \"{URL}\"]\n",
            build_args: &[],
            errors: &[(
                "invalid entrypoint[1] `https://***@host/simple`: ",
                "\"https://alice",
            )],
        },
        Case {
            key: "description",
            yaml: "description: \"a mirror of {URL}\"\n",
            build_args: &[],
            errors: &[(
                "invalid description `https://***@host/simple`: ",
                "\"a mirror",
            )],
        },
        Case {
            key: "extends",
            yaml: "extends: \"{URL}/base.yaml\"\n",
            build_args: &[],
            errors: &[(
                "`extends` names a URL (`https://***@host/simple/base.yaml`), not a file",
                "\"https://alice",
            )],
        },
    ]
}

/// (line, column) of the first `needle` in `text`, 1-based, in characters.
fn position_of(text: &str, needle: &str) -> (u32, u32) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` in {text}"));
    let before = &text[..at];
    let line = before.matches('\n').count() as u32 + 1;
    let col = before.rsplit('\n').next().unwrap().chars().count() as u32 + 1;
    (line, col)
}

#[test]
fn every_url_bearing_key_refuses_credentials_without_showing_them() {
    for case in cases() {
        let key = case.key;
        let text = format!("{GOOD}{}", case.yaml.replace("{URL}", URL));
        let report = match load_with_args("w.yaml", &text, case.build_args) {
            Ok(_) => panic!("{key}: a URL with credentials was accepted"),
            Err(r) => r,
        };
        let rendered = report.render();
        let one_line = report.one_line();
        for (shown, what) in [(&rendered, "rendered"), (&one_line, "one-line")] {
            assert_eq!(
                leaks(shown),
                None,
                "{key}: the {what} report shows it:\n{shown}"
            );
        }
        for (fragment, at) in case.errors {
            let (line, col) = position_of(&text, at);
            let d = report
                .errors()
                .find(|d| d.message.contains(fragment))
                .unwrap_or_else(|| panic!("{key}: no error with `{fragment}` in\n{rendered}"));
            assert_eq!((d.loc.line, d.loc.col), (line, col), "{key}: {fragment}");
            assert!(one_line.contains(fragment), "{key}: {one_line}");
            assert!(
                d.message.contains(BUILD_DEFINITION)
                    || d.message.contains(IMAGE_CONFIG)
                    || key == "extends",
                "{key}: says why: {}",
                d.message
            );
            assert!(!d.help.is_empty(), "{key}: says what to do instead");
        }
        // The snippet under each error: the spec line, its credentials masked in place.
        let original: Vec<&str> = text.lines().collect();
        for l in rendered.lines().filter(|l| l.contains(" | ")) {
            let (gutter, shown) = l.split_once(" | ").unwrap();
            if let Ok(n) = gutter.trim().parse::<usize>() {
                assert_eq!(
                    shown.chars().count(),
                    original[n - 1].chars().count(),
                    "{key}: the snippet keeps its columns: {shown}"
                );
            }
        }

        // What a build sends BuildKit: the message, and the file text buildx prints.
        let (message, sources) = failure_sent(&report);
        assert_eq!(leaks(&message), None, "{key}: {message}");
        assert_eq!(sources.len(), report.errors().count(), "{key}");
        for (data, line, character) in &sources {
            let sent = String::from_utf8(data.clone()).unwrap();
            assert_eq!(leaks(&sent), None, "{key}: errdefs.Source data:\n{sent}");
            let at = *line as usize - 1;
            let (sent_line, was) = (sent.lines().nth(at).unwrap(), original[at]);
            assert_eq!(sent_line.chars().count(), was.chars().count(), "{key}");
            assert_eq!(
                sent_line
                    .chars()
                    .take(*character as usize)
                    .collect::<String>(),
                was.chars().take(*character as usize).collect::<String>(),
                "{key}: the range points at the same place"
            );
        }
    }
}

/// `kiln check` on each case's file: exit 2, every error shown, no credential anywhere in
/// its output.
#[test]
fn kiln_check_shows_no_credential() {
    for (i, case) in cases().into_iter().enumerate() {
        let key = case.key;
        let text = format!("{GOOD}{}", case.yaml.replace("{URL}", URL));
        let dir = temp_tree(&format!("credentials-{i}"), &[("w.yaml", &text)]);
        let spec = dir.join("w.yaml");
        let mut args = vec!["check".to_string(), spec.to_str().unwrap().to_string()];
        for (k, v) in case.build_args {
            args.extend(["--build-arg".into(), format!("{k}={v}")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = kiln(&args);
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{key}: {shown}");
        assert_eq!(leaks(&shown), None, "{key}:\n{shown}");
        for (fragment, _) in case.errors {
            assert!(shown.contains(fragment), "{key}: `{fragment}` in\n{shown}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Where a value goes decides what the error tells the author to do instead.
#[test]
fn the_help_says_where_credentials_go() {
    let help_of = |yaml: &str| {
        let text = format!("{GOOD}{}", yaml.replace("{URL}", URL));
        let report = load("w.yaml", &text).unwrap_err();
        let d = report.errors().next().unwrap().clone();
        d.help
    };
    assert!(help_of("pip: {index_url: \"{URL}\"}\n").contains("build_secrets.netrc"));
    assert!(
        help_of("requirements: {core: {packages: [\"p @ {URL}/p.whl\"]}}\n")
            .contains("build_secrets.netrc")
    );
    assert!(help_of("env: {X: \"{URL}\"}\n").contains("when it starts"));
    assert!(
        help_of("steps: [{name: a, in: image, run: \"curl {URL}\"}]\n").contains("secrets: [id]")
    );
    assert!(
        help_of("system: {repositories: [{name: r, url: \"{URL}\", suite: s, components: [m], key: k}]}\n")
            .contains("apt")
    );
}

/// A credential the spec holds where no key reads it (a comment) is valid, and still
/// never leaves: the definition's source map carries the file masked, every line and
/// column in place.
#[test]
fn a_credential_in_a_comment_reaches_no_definition() {
    let text = format!(
        "{GOOD}# mirror: {URL}\nrequirements: {{core: {{packages: [arq]}}}}\nvariants: {{minimal: {{requirements: [core]}}}}\n"
    );
    let loaded = load("w.yaml", &text).unwrap();
    let def = definition(&loaded.spec, "minimal", false);
    let infos = &def.source.as_ref().expect("a source map").infos;
    assert_eq!(infos.len(), 1);
    let data = String::from_utf8(infos[0].data.clone()).unwrap();
    assert_eq!(leaks(&data), None, "{data}");
    assert_eq!(
        data,
        text.replace("alice:s3cret@tok3n", "******************"),
        "masked in place"
    );

    // `kiln llb` writes that definition: none of its bytes hold the credential.
    let dir = temp_tree("credentials-comment", &[("w.yaml", &text)]);
    let out = kiln(&["llb", dir.join("w.yaml").to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = String::from_utf8_lossy(&out.stdout);
    assert_eq!(leaks(&bytes), None);
    assert!(bytes.contains("# mirror: https://******************@host/simple"));
    let _ = std::fs::remove_dir_all(dir);
}
