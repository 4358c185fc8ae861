//! Requirement files, read by kiln so that no installer ever reads one: each logical line
//! is classified (`Line`), and what kiln understood is written back, normalized, into the
//! install step (see `plan::install::requirements`). A line kiln cannot classify is an
//! error naming `file:line`, so pip's and uv's own parsers (optparse abbreviations, their
//! line breaks, `${NAME}` expansion) never get a say.
//!
//! Facts used: pip's requirement file format (logical lines: `\` joins the next line, `#`
//! starts a comment at the start or after whitespace; Python's `str.splitlines` breaks
//! lines; an options part starts at the first space-separated token beginning with `-`),
//! PEP 508 (parsed with pep508_rs), and the options both pip and uv read in a requirement
//! file (uv's `requirements-txt` parser: `-r`, `-c`, `-e`, `--index-url`,
//! `--extra-index-url`, `--find-links`, `--no-index`, `--no-binary`, `--only-binary`, and
//! `--hash` on a requirement).

use std::str::FromStr;

use pep508_rs::{Requirement, VerbatimUrl, VersionOrUrl};

/// One logical line kiln keeps.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Line {
    /// A requirement as kiln writes it back (PEP 508, normalized by pep508_rs), with its
    /// `--hash` values (`sha256:HEX`, lowercase).
    Requirement {
        requirement: String,
        hashes: Vec<String>,
    },
    /// `-r FILE` (a `constraint` of `false`) or `-c FILE`: another file, as written.
    Include { path: String, constraint: bool },
    /// An install-wide option both installers read, as kiln writes it back
    /// (`--index-url https://...`, `--no-index`).
    Option(String),
}

/// A line kiln does not pass on: its 1-based line, what is wrong, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: u32,
    pub message: String,
    pub help: &'static str,
}

/// One requirement file, read: the lines kept (with their first physical line), and
/// every line that could not be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub lines: Vec<(u32, Line)>,
    pub problems: Vec<Problem>,
}

impl Parsed {
    /// The files it includes: (line, path as written, constraint).
    pub fn includes(&self) -> impl Iterator<Item = (u32, &str, bool)> {
        self.lines.iter().filter_map(|(n, l)| match l {
            Line::Include { path, constraint } => Some((*n, path.as_str(), *constraint)),
            _ => None,
        })
    }
}

const OPTIONS_HELP: &str = "kiln reads -r/-c, --index-url, --extra-index-url, --find-links, --no-index, --no-binary, --only-binary and --hash, written in full; set other installer options under `pip:` in the spec";
const URL_HELP: &str = "use an http(s) URL without credentials (they belong in the netrc secret, `build_secrets.netrc`)";

/// Python's `str.splitlines` line boundaries (pip reads requirement files with it).
fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\u{0b}'
            | '\u{0c}'
            | '\u{1c}'
            | '\u{1d}'
            | '\u{1e}'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// The physical lines of `text`, as `str.splitlines` makes them (`\r\n` is one break).
fn physical_lines(text: &str) -> Vec<&str> {
    let mut out = vec![];
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if is_line_break(c) {
            out.push(&text[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r'
                && let Some((j, '\n')) = chars.peek().copied()
            {
                chars.next();
                end = j + 1;
            }
            start = end;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// pip drops `#` and what follows when the `#` starts the line or follows whitespace.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// Every logical line of a requirement file, classified.
pub fn parse(text: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut joined = String::new();
    let mut start = 0u32;
    let lines = physical_lines(text);
    let count = lines.len();
    for (i, raw) in lines.into_iter().enumerate() {
        if joined.is_empty() {
            start = i as u32 + 1;
        }
        match raw.strip_suffix('\\') {
            Some(part) if i + 1 < count => {
                joined.push_str(part);
                continue;
            }
            _ => joined.push_str(raw),
        }
        let line = strip_comment(&joined).trim().to_string();
        joined.clear();
        if line.is_empty() {
            continue;
        }
        match classify(&line) {
            Ok(l) => out.lines.push((start, l)),
            Err((message, help)) => out.problems.push(Problem {
                line: start,
                message,
                help,
            }),
        }
    }
    out
}

type Refusal = (String, &'static str);

/// One logical line, comment and surrounding whitespace gone.
fn classify(line: &str) -> Result<Line, Refusal> {
    if line.chars().any(|c| c.is_control()) {
        return Err((
            "has a control character".into(),
            "requirement files are plain text: remove it",
        ));
    }
    // pip and uv replace `${NAME}` with the build step's environment: the line kiln checks
    // would not be the line they read.
    if line.contains("${") {
        return Err((
            format!(
                "`{line}` uses `${{NAME}}`, which pip and uv expand from the build step's environment"
            ),
            "write the value itself",
        ));
    }
    if line.starts_with('-') {
        return option(line);
    }
    let (requirement, hashes) = requirement_with_hashes(line)?;
    Ok(Line::Requirement {
        requirement,
        hashes,
    })
}

/// An option line: `-r FILE`, `--index-url=URL`, `--no-index`, ...
fn option(line: &str) -> Result<Line, Refusal> {
    let (name, attached, rest) = match line.strip_prefix("--") {
        Some(long) => {
            let end = long.find(['=', ' ', '\t']).unwrap_or(long.len());
            let (name, tail) = long.split_at(end);
            match tail.strip_prefix('=') {
                Some(v) => (format!("--{name}"), Some(v), ""),
                None => (format!("--{name}"), None, tail),
            }
        }
        None => {
            let mut chars = line.chars();
            chars.next();
            let short = chars.next().map(|c| format!("-{c}")).unwrap_or_default();
            let tail = &line[short.len().min(line.len())..];
            match tail.starts_with([' ', '\t']) || tail.is_empty() {
                true => (short, None, tail),
                false => (short, Some(tail), ""),
            }
        }
    };
    let words: Vec<&str> = match attached {
        Some(v) => std::iter::once(v).chain(rest.split_whitespace()).collect(),
        None => rest.split_whitespace().collect(),
    };
    let value = || -> Result<String, Refusal> {
        match words.as_slice() {
            [one] if !one.is_empty() => Ok(one.to_string()),
            [] | [""] => Err((format!("`{name}` needs a value"), OPTIONS_HELP)),
            _ => Err((
                format!("`{line}`: `{name}` takes one value"),
                "write one option per line",
            )),
        }
    };
    let flag = || -> Result<(), Refusal> {
        match words.is_empty() {
            true => Ok(()),
            false => Err((format!("`{name}` takes no value"), OPTIONS_HELP)),
        }
    };
    match name.as_str() {
        "-r" | "--requirement" => Ok(Line::Include {
            path: value()?,
            constraint: false,
        }),
        "-c" | "--constraint" => Ok(Line::Include {
            path: value()?,
            constraint: true,
        }),
        "-e" | "--editable" => Err((
            format!("`{line}` installs an editable project"),
            "an install step sees only the requirements: install the app with `app: {project: .}` and drop the line",
        )),
        "-i" | "--index-url" | "--extra-index-url" | "-f" | "--find-links" => {
            let url = value()?;
            index_url(&url)?;
            let long = match name.as_str() {
                "-i" => "--index-url",
                "-f" => "--find-links",
                n => n,
            };
            Ok(Line::Option(format!("{long} {url}")))
        }
        "--no-index" => flag().map(|_| Line::Option(name.clone())),
        "--no-binary" | "--only-binary" => {
            let v = value()?;
            let ok = v == ":all:"
                || v == ":none:"
                || v.split(',').all(|p| {
                    !p.is_empty()
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                });
            match ok {
                true => Ok(Line::Option(format!("{name} {v}"))),
                false => Err((
                    format!("`{name} {v}` names no packages"),
                    "write :all:, :none: or package names separated by commas",
                )),
            }
        }
        "--hash" => Err((
            "`--hash` belongs on the line of the requirement it checks".into(),
            "write `name==version --hash=sha256:...`",
        )),
        _ => Err((
            format!("`{name}` is not an option kiln reads in a requirement file"),
            OPTIONS_HELP,
        )),
    }
}

/// An index or find-links URL: http(s), a host, no credentials.
fn index_url(url: &str) -> Result<(), Refusal> {
    crate::spec::validate::index_url(url)
        .map_err(|why| (format!("`{}`: {why}", crate::url::redact(url)), URL_HELP))
}

/// A requirement and its options (`--hash` only), split as pip splits them: the options
/// part starts at the first space-separated token that begins with `-`.
fn requirement_with_hashes(line: &str) -> Result<(String, Vec<String>), Refusal> {
    let tokens: Vec<&str> = line.split(' ').collect();
    let at = tokens
        .iter()
        .position(|t| t.starts_with('-'))
        .unwrap_or(tokens.len());
    let requirement = requirement(&tokens[..at].join(" "))?;
    let mut hashes = vec![];
    let mut rest = tokens[at..].iter().filter(|t| !t.is_empty());
    while let Some(t) = rest.next() {
        let value = match t.strip_prefix("--hash") {
            Some("") => rest.next().copied().unwrap_or(""),
            Some(v) if v.starts_with('=') => &v[1..],
            _ => {
                return Err((
                    format!("`{t}` is not a requirement option kiln reads"),
                    "a requirement line takes `--hash=ALGORITHM:DIGEST` only; set installer options under `pip:` in the spec",
                ));
            }
        };
        hashes.push(hash(value)?);
    }
    Ok((requirement, hashes))
}

/// `--hash`'s value: a sha256/384/512 digest in hex.
fn hash(value: &str) -> Result<String, Refusal> {
    let bad = || {
        (
            format!("`--hash={value}` is not a hash pip checks"),
            "write --hash=sha256:<64 hex digits> (sha384 and sha512 work too)",
        )
    };
    let (alg, hex) = value.split_once(':').ok_or_else(bad)?;
    let len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(bad()),
    };
    if hex.len() != len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok(format!("{alg}:{}", hex.to_ascii_lowercase()))
}

/// One PEP 508 requirement (`arq==0.26.1`, `pkg[extra]>=1 ; python_version < "3.12"`,
/// `pkg @ https://host/pkg.whl`), as kiln writes it back. Errors: not a requirement, a
/// local or non-http(s) URL, or credentials in the URL.
pub fn requirement(text: &str) -> Result<String, Refusal> {
    let text = text.trim();
    let looks_local = text.starts_with(['.', '/', '~']) || text.starts_with("file:");
    if looks_local {
        return Err((
            format!("`{text}` installs the local directory or file `{text}`"),
            "an install step sees only the requirements: install the app with `app: {project: .}` and drop the line",
        ));
    }
    let parsed = Requirement::<VerbatimUrl>::from_str(text).map_err(|e| {
        let first = e.to_string();
        let first = first.lines().next().unwrap_or("").to_string();
        (
            format!("`{text}` is not a requirement: {first}"),
            "write one PEP 508 requirement per line (`name==1.0`, `name @ https://...`)",
        )
    })?;
    if let Some(VersionOrUrl::Url(url)) = &parsed.version_or_url {
        let raw = url.raw();
        let scheme = raw.scheme();
        if !matches!(scheme, "https" | "http" | "git+https") {
            return Err((
                format!(
                    "`{text}`: kiln installs requirements from http(s) and git+https URLs, not `{scheme}:`"
                ),
                "publish the package to an index, or install the app with `app: {project: .}`",
            ));
        }
        if !raw.username().is_empty() || raw.password().is_some() {
            return Err((
                format!(
                    "`{}`: the URL carries credentials",
                    crate::url::redact_text(text)
                ),
                URL_HELP,
            ));
        }
    }
    Ok(parsed.to_string())
}

/// `path` as named from the file `from` (both relative to the context root). Errors: why
/// pip could read it but kiln will not (absolute, a URL, or outside the context).
pub fn resolve(from: &str, path: &str) -> Result<String, &'static str> {
    if crate::url::Url::split(path).is_some() {
        return Err(
            "a URL include is fetched by the installer at build time, outside the context and its cache keys",
        );
    }
    if path.contains("${") {
        return Err(
            "pip and uv expand `${NAME}` in requirement files from the build step's environment, so this path could name any file; write the path itself",
        );
    }
    if path.starts_with('/') || path.starts_with('~') {
        return Err("an absolute path names a file outside the build context");
    }
    let mut parts: Vec<&str> = match from.rsplit_once('/') {
        Some((dir, _)) => dir.split('/').collect(),
        None => vec![],
    };
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("`..` leaves the build context");
                }
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err("names no file");
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(text: &str) -> Vec<(u32, Line)> {
        let p = parse(text);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        p.lines
    }

    fn refused(text: &str) -> Vec<(u32, String)> {
        parse(text)
            .problems
            .into_iter()
            .map(|p| (p.line, p.message))
            .collect()
    }

    fn req(r: &str) -> Line {
        Line::Requirement {
            requirement: r.into(),
            hashes: vec![],
        }
    }

    #[test]
    fn include_forms_and_logical_lines() {
        let text = "arq==1\n-r base.txt\n--requirement=more.txt  # why\n-cpins.txt\n\
                    --constraint \\\n  c/extra.txt\n# -r commented.txt\n\
                    x @ https://h/x.whl#sha256=1\n";
        let inc = |path: &str, constraint| Line::Include {
            path: path.into(),
            constraint,
        };
        assert_eq!(
            kept(text),
            [
                (1, req("arq==1")),
                (2, inc("base.txt", false)),
                (3, inc("more.txt", false)),
                (4, inc("pins.txt", true)),
                (5, inc("c/extra.txt", true)),
                (8, req("x @ https://h/x.whl#sha256=1")),
            ]
        );
    }

    #[test]
    fn requirements_are_normalized_with_their_hashes() {
        let sha = "A".repeat(64);
        let text = format!(
            "Foo_Bar [Extra] >= 1.0 ; python_version<'3.12' --hash=sha256:{sha} \\\n    --hash sha256:{}\n",
            "b".repeat(64)
        );
        let lines = kept(&text);
        let Line::Requirement {
            requirement,
            hashes,
        } = &lines[0].1
        else {
            panic!("{lines:?}")
        };
        assert!(
            requirement.starts_with("foo-bar[extra]>=1.0 ; "),
            "{requirement}"
        );
        assert_eq!(
            hashes,
            &[
                format!("sha256:{}", "a".repeat(64)),
                format!("sha256:{}", "b".repeat(64))
            ]
        );
    }

    #[test]
    fn options_both_installers_read_are_kept_in_full() {
        let text = "-i https://pypi.example/simple\n--extra-index-url=https://x/simple\n\
                    -f https://x/links\n--no-index\n--only-binary :all:\n--no-binary=psycopg2,lxml\n";
        let opts: Vec<String> = kept(text)
            .into_iter()
            .map(|(_, l)| match l {
                Line::Option(o) => o,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            opts,
            [
                "--index-url https://pypi.example/simple",
                "--extra-index-url https://x/simple",
                "--find-links https://x/links",
                "--no-index",
                "--only-binary :all:",
                "--no-binary psycopg2,lxml",
            ]
        );
    }

    /// Issue 21: what pip or uv would read differently from kiln is refused at its line,
    /// never passed on.
    #[test]
    fn lines_kiln_cannot_classify_are_refused_at_their_line() {
        // pip's optparse takes a unique prefix: `--constr` is `-c` to pip.
        assert_eq!(refused("six\n--constr /root/.netrc\n")[0].0, 2);
        assert!(
            refused("--requir x.txt\n")[0]
                .1
                .contains("`--requir` is not an option")
        );
        // Line breaks pip and uv see where a reader of `\n` would not: each is its own line.
        for brk in [
            "\r", "\u{0b}", "\u{0c}", "\u{1c}", "\u{1d}", "\u{1e}", "\u{85}", "\u{2028}",
            "\u{2029}",
        ] {
            let lines = kept(&format!("six{brk}-r /root/.netrc\n"));
            assert_eq!(
                lines[1],
                (
                    2,
                    Line::Include {
                        path: "/root/.netrc".into(),
                        constraint: false
                    }
                ),
                "{brk:?}"
            );
        }
        assert_eq!(kept("six\r\narq\r\n").len(), 2, "\\r\\n is one break");
        for bad in [
            "pkg @ https://alice:s3cret@host/pkg.whl",
            "pkg @ file:///root/.netrc",
            "./local",
            "-e .",
            "pkg==${VERSION}",
            "--index-url file:///root/.netrc",
            "--index-url https://alice:s3cret@host/simple",
            "--find-links /root",
            "six --install-option=--prefix=/",
            "six --hash=md5:abc",
            "--trusted-host example.com",
            "https://host/bare.whl",
            "--no-index extra",
        ] {
            let problems = refused(bad);
            assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
            assert!(!problems[0].1.contains("s3cret"), "{problems:?}");
        }
    }

    #[test]
    fn relative_to_the_including_file_inside_the_context() {
        assert_eq!(
            resolve("requirements/core.txt", "base.txt").unwrap(),
            "requirements/base.txt"
        );
        assert_eq!(
            resolve("requirements/core.txt", "../c.txt").unwrap(),
            "c.txt"
        );
        assert_eq!(resolve("core.txt", "./a/./b.txt").unwrap(), "a/b.txt");
        assert!(resolve("core.txt", "../x.txt").is_err());
        assert!(resolve("a/core.txt", "../../x.txt").is_err());
        assert!(resolve("core.txt", "/root/.netrc").is_err());
        assert!(resolve("core.txt", "https://example.com/r.txt").is_err());
        assert!(resolve("core.txt", "${HOME}/.netrc").is_err());
        assert!(resolve("core.txt", "a/${VIRTUAL_ENV}/../x.txt").is_err());
    }
}
