//! The includes of a requirements file, as pip reads them: `-r FILE`/`--requirement FILE`
//! (requirements) and `-c FILE`/`--constraint FILE` (constraints), each on its own
//! logical line (a trailing `\` joins lines; `#` starts a comment after whitespace).

/// One include line: where it is and what it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Include {
    /// 1-based line in the including file (the first physical line of a joined line).
    pub line: u32,
    /// The path as written (relative to the including file's directory, for pip).
    pub path: String,
}

/// Every `-r`/`-c` include of `text`, in file order.
pub fn includes(text: &str) -> Vec<Include> {
    let mut out = vec![];
    let mut joined = String::new();
    let mut start = 0u32;
    for (i, raw) in text.lines().enumerate() {
        if joined.is_empty() {
            start = i as u32 + 1;
        }
        match raw.strip_suffix('\\') {
            Some(part) => {
                joined.push_str(part);
                continue;
            }
            None => joined.push_str(raw),
        }
        let line = strip_comment(&joined);
        if let Some(path) = include_of(line.trim()) {
            out.push(Include {
                line: start,
                path: path.to_string(),
            });
        }
        joined.clear();
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

/// Lines that install a local directory (`-e .`, `--editable ./lib`, `.`, `./pkg`): pip
/// reads them relative to where it runs, which in a build step is not the project.
pub fn local_installs(text: &str) -> Vec<Include> {
    let mut out = vec![];
    for (i, raw) in text.lines().enumerate() {
        let line = strip_comment(raw).trim();
        let target = line
            .strip_prefix("--editable")
            .or_else(|| line.strip_prefix("-e"))
            .map(|r| r.trim_start_matches('=').trim())
            .unwrap_or(line);
        let local = target == "."
            || target.starts_with("./")
            || target.starts_with("../")
            || target.starts_with("file:");
        if local && !target.is_empty() {
            out.push(Include {
                line: i as u32 + 1,
                path: target.to_string(),
            });
        }
    }
    out
}

fn include_of(line: &str) -> Option<&str> {
    for flag in ["--requirement", "--constraint", "-r", "-c"] {
        let Some(rest) = line.strip_prefix(flag) else {
            continue;
        };
        let rest = if flag.starts_with("--") {
            rest.strip_prefix('=').unwrap_or(rest)
        } else {
            rest
        };
        // `-rfile` and `-r file` are both pip's; `--requirementX` is not a flag.
        if flag.starts_with("--") && !(rest.starts_with(char::is_whitespace) || line.contains('='))
        {
            continue;
        }
        let path = rest.trim();
        if !path.is_empty() {
            return Some(path.split_whitespace().next().unwrap_or(path));
        }
    }
    None
}

/// `path` as named from the file `from` (both relative to the context root). Errors: why
/// pip could read it but kiln will not (absolute, a URL, or outside the context).
pub fn resolve(from: &str, path: &str) -> Result<String, &'static str> {
    if crate::url::Url::split(path).is_some() {
        return Err(
            "a URL include is fetched by the installer at build time, outside the context and its cache keys",
        );
    }
    // pip and uv replace `${NAME}` in requirement files with the step's environment
    // (`${HOME}/.netrc` is the netrc secret's path), so such an include could be anywhere.
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

    #[test]
    fn pip_include_forms() {
        let text = "arq==1\n-r base.txt\n--requirement=more.txt  # why\n-cpins.txt\n\
                    --constraint \\\n  c/extra.txt\n# -r commented.txt\nx @ https://h/x.whl#sha256=1\n\
                    --requirements-are-not-a-flag.txt\n";
        let got: Vec<(u32, String)> = includes(text)
            .into_iter()
            .map(|i| (i.line, i.path))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, "base.txt".to_string()),
                (3, "more.txt".to_string()),
                (4, "pins.txt".to_string()),
                (5, "c/extra.txt".to_string()),
            ]
        );
    }

    #[test]
    fn local_project_lines() {
        let text = "arq\n-e .\n--editable=./libs/x  # dev\n./pkg\nhttpx @ https://h/x.whl\n# .\n";
        let got: Vec<(u32, String)> = local_installs(text)
            .into_iter()
            .map(|i| (i.line, i.path))
            .collect();
        assert_eq!(
            got,
            [
                (2, ".".to_string()),
                (3, "./libs/x".into()),
                (4, "./pkg".into())
            ]
        );
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
