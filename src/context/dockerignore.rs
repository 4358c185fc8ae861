//! `.dockerignore`: the build context's exclude patterns, as `docker build` reads them.

/// The file's lines as exclude patterns for a local source: comments and blank lines
/// dropped, a leading `./` or `/` removed (patterns are relative to the context root).
pub fn parse(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches("./")
                .trim_start_matches('/')
                .to_string()
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// Whether `path` (relative to the context, `/`-separated) is left out by `patterns`, as
/// Docker reads them: the last pattern that matches the path or one of its parent
/// directories decides, and a `!` pattern keeps instead of excluding. `*` and `?` stay
/// within one path segment, `**` spans any number of them.
pub fn excluded(patterns: &[String], path: &str) -> bool {
    let path = path.trim_start_matches("./").trim_matches('/');
    let mut out = false;
    for p in patterns {
        let (keep, pat) = match p.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, p.as_str()),
        };
        let pat = pat.trim_start_matches("./").trim_matches('/');
        let mut prefix = String::new();
        let hit = path.split('/').any(|seg| {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(seg);
            glob(pat.as_bytes(), prefix.as_bytes())
        });
        if hit {
            out = !keep;
        }
    }
    out
}

/// `pattern` against the whole of `text`, segment-aware.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    if pattern.starts_with(b"**") {
        let rest = pattern[2..].strip_prefix(b"/").unwrap_or(&pattern[2..]);
        // `**` eats zero or more whole segments (or anything, at the end).
        if rest.is_empty() {
            return true;
        }
        let mut i = 0;
        loop {
            if glob(rest, &text[i..]) {
                return true;
            }
            match text[i..].iter().position(|c| *c == b'/') {
                Some(n) => i += n + 1,
                None => return false,
            }
        }
    }
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some(b'*'), _) => {
            let rest = &pattern[1..];
            let mut i = 0;
            loop {
                if glob(rest, &text[i..]) {
                    return true;
                }
                if i >= text.len() || text[i] == b'/' {
                    return false;
                }
                i += 1;
            }
        }
        (Some(b'?'), Some(c)) if *c != b'/' => glob(&pattern[1..], &text[1..]),
        (Some(b'\\'), Some(c)) if pattern.len() > 1 && pattern[1] == *c => {
            glob(&pattern[2..], &text[1..])
        }
        (Some(p), Some(c)) if p == c && *p != b'?' => glob(&pattern[1..], &text[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn excluded_follows_docker_rules() {
        let p: Vec<String> = ["**/__pycache__", "*.md", "app/tmp", "!app/tmp/keep"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let ex = |path| super::excluded(&p, path);
        assert!(ex("app/__pycache__/x.pyc"));
        assert!(ex("__pycache__"));
        assert!(ex("NOTES.md"));
        assert!(!ex("app/NOTES.md"), "* stays in one segment");
        assert!(ex("app/tmp/x"));
        assert!(!ex("app/tmp/keep"));
        assert!(!ex("app/api.py"));
        assert!(super::excluded(&["app".to_string()], "app/api.py"));
        assert!(super::excluded(&["a?p".to_string()], "app"));
    }

    #[test]
    fn comments_blanks_and_leading_slashes() {
        let text = "# caches\n\n**/__pycache__\n./secret.env\n/build\n  \n!keep.txt\n";
        assert_eq!(
            super::parse(text),
            ["**/__pycache__", "secret.env", "build", "!keep.txt"]
        );
    }
}
