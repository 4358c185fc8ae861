//! `.dockerignore`: the build context's exclude patterns, read and matched as Docker and
//! BuildKit do (moby/patternmatcher: `ignorefile.ReadAll` reads the file, `New` and
//! `MatchesOrParentMatches` match). There, each pattern becomes a regular expression:
//! `*` is `[^/]*`, `?` is `[^/]`, `**` followed by more is `(.*/)?`, a final `**` is `.*`,
//! `[...]` is a class and `\` makes the next character literal; a path is excluded by the
//! last pattern that matches it or one of its parent directories, a `!` pattern keeping
//! it instead.
//!
//! Here each pattern is a list of tokens run as a small automaton over the path, so a
//! match costs the path's length times the pattern's, whatever the pattern (the old
//! backtracking matcher took 36 s on `*a*a*a*a*b`). Not the `regex` crate, which would say
//! the same: a compiled regex costs about 7 KB, and a 1 MiB `.dockerignore` can hold
//! 500 000 patterns (100 000 took 740 MB and 3.4 s); not `globset`, which reads `**`
//! inside a segment, `{a,b}` and `[!...]` differently from Docker.

/// The file's lines as patterns, as `ReadAll` gives them: a leading UTF-8 BOM dropped,
/// lines starting with `#` skipped (before trimming), blank lines skipped, each pattern
/// trimmed and cleaned (`filepath.Clean`) with one leading `/` removed, a `!` kept in front.
pub fn parse(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = vec![];
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut p = String::new();
        if invert {
            p.push('!');
        }
        if !pattern.is_empty() {
            let cleaned = clean(pattern);
            match cleaned.strip_prefix('/') {
                Some(rest) if !rest.is_empty() => p.push_str(rest),
                _ => p.push_str(&cleaned),
            }
        }
        out.push(p);
    }
    out
}

/// `path` cleaned as Go's `filepath.Clean` does on Unix: no empty or `.` segments, `..`
/// taking out the segment before it (and dropped at the root), `.` for nothing.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = vec![];
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            s => parts.push(s),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}

/// How much matching one `Matcher` does at most, in steps (a character of a path against
/// a pattern's token): about 0.3 s, and far beyond what any real `.dockerignore` and spec
/// take (a few thousand). Each match costs the path's length times the pattern's, so a
/// hostile pair (a 1 MiB `.dockerignore` of patterns that never fail early, a thousand
/// long paths) could otherwise take minutes.
pub const MAX_STEPS: u64 = 100_000_000;

/// Matching stopped at `MAX_STEPS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooCostly;

impl std::fmt::Display for TooCostly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "applying .dockerignore to the paths the spec names took more than {MAX_STEPS} steps (its patterns' length times the paths')"
        )
    }
}

/// Patterns ready to match many paths.
#[derive(Clone, Debug, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    /// The patterns Docker refuses (`!` alone, an unclosed `[`, a bad range): it fails the
    /// whole build with them. Here they match nothing.
    invalid: Vec<String>,
    /// Steps taken so far (see `MAX_STEPS`).
    spent: std::cell::Cell<u64>,
}

#[derive(Clone, Debug)]
struct Pattern {
    /// A `!` pattern: a match keeps the path.
    keep: bool,
    tokens: Vec<Token>,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Char(char),
    /// `?`: one character but `/`.
    One,
    /// `*`: any run of characters without `/`.
    Star,
    /// `[...]`: ranges (inclusive), negated with `^`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**` with more after it: `(.*/)?`, nothing or anything ending with `/`.
    Dirs,
    /// `**` at the end: `.*`, anything.
    Rest,
}

impl Matcher {
    /// `patterns` as `.dockerignore` lines give them (see `parse`), each cleaned again as
    /// `New` does.
    pub fn new(patterns: &[String]) -> Matcher {
        let mut m = Matcher::default();
        for raw in patterns {
            let p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let p = clean(p);
            let (keep, body) = match p.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, p.as_str()),
            };
            match compile(body).filter(|_| !(keep && body.is_empty())) {
                Some(tokens) => m.patterns.push(Pattern { keep, tokens }),
                None => m.invalid.push(raw.clone()),
            }
        }
        m
    }

    /// The patterns Docker would refuse, as given.
    pub fn invalid(&self) -> &[String] {
        &self.invalid
    }

    /// Whether `path` (relative to the context, `/`-separated) is left out. Errors: this
    /// matcher has taken `MAX_STEPS`.
    pub fn excluded(&self, path: &str) -> Result<bool, TooCostly> {
        let path = clean(path);
        if path == "." {
            return Ok(false);
        }
        let chars: Vec<char> = path.chars().collect();
        // Docker's parents of `/x` are `` and `/` (`filepath.Dir` keeps the root): the
        // one parent a path's own `/`s do not mark.
        let root_parent = path.starts_with('/') && !path[1..].contains('/');
        let longest = self.patterns.iter().map(|p| p.tokens.len()).max();
        let mut scratch = Scratch::new(longest.unwrap_or(0));
        // The last pattern that matches decides (Docker skips those that cannot change
        // the verdict so far, which comes to the same): look from the end.
        let mut budget = MAX_STEPS.saturating_sub(self.spent.get());
        let mut verdict = Ok(false);
        for p in self.patterns.iter().rev() {
            let hit = matches_or_parent(&p.tokens, &chars, &mut scratch, &mut budget);
            let hit = match hit {
                Ok(false) if root_parent => {
                    matches_or_parent(&p.tokens, &['/'], &mut scratch, &mut budget)
                }
                other => other,
            };
            match hit {
                Ok(false) => continue,
                Ok(true) => verdict = Ok(!p.keep),
                Err(e) => verdict = Err(e),
            }
            break;
        }
        self.spent.set(MAX_STEPS - budget);
        verdict
    }
}

/// Whether `path` is left out by `patterns` (see `Matcher`); errors as `Matcher::excluded`.
pub fn excluded(patterns: &[String], path: &str) -> Result<bool, TooCostly> {
    Matcher::new(patterns).excluded(path)
}

/// A pattern's tokens; `None` for what Go's `filepath.Match` calls a bad pattern.
fn compile(pattern: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = vec![];
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                tokens.push(if i < chars.len() {
                    Token::Dirs
                } else {
                    Token::Rest
                });
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::One),
            '\\' => match chars.get(i) {
                Some(&next) => {
                    i += 1;
                    tokens.push(Token::Char(next));
                }
                None => return None,
            },
            '[' => {
                let (token, next) = class(&chars, i)?;
                tokens.push(token);
                i = next;
            }
            c => tokens.push(Token::Char(c)),
        }
    }
    // `**/**` is `**`, `**` after `*` or `**` adds nothing: fewer places to track.
    tokens.dedup_by(|b, a| {
        matches!(
            (a, b),
            (Token::Dirs, Token::Dirs) | (Token::Star, Token::Star) | (Token::Rest, Token::Rest)
        )
    });
    Some(tokens)
}

/// A class starting at `chars[i]` (after its `[`): the token and where it ends. Go's
/// rules: `^` first negates; each item is a character or a range `a-z`, `\` escaping;
/// an unescaped `-` or `]` cannot start an item; it ends at the first `]` after an item.
fn class(chars: &[char], mut i: usize) -> Option<(Token, usize)> {
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let item = |i: &mut usize| -> Option<char> {
        let c = *chars.get(*i)?;
        *i += 1;
        match c {
            '-' | ']' => None,
            '\\' => {
                let e = *chars.get(*i)?;
                *i += 1;
                Some(e)
            }
            c => Some(c),
        }
    };
    let mut ranges = vec![];
    loop {
        if chars.get(i) == Some(&']') && !ranges.is_empty() {
            return Some((Token::Class { negated, ranges }, i + 1));
        }
        let lo = item(&mut i)?;
        let hi = if chars.get(i) == Some(&'-') {
            i += 1;
            item(&mut i)?
        } else {
            lo
        };
        if hi < lo {
            return None;
        }
        ranges.push((lo, hi));
    }
}

/// The sets of places a pattern can be at, made once for many patterns.
struct Scratch {
    at: Vec<bool>,
    inside: Vec<bool>,
    next_at: Vec<bool>,
    next_inside: Vec<bool>,
}

impl Scratch {
    fn new(tokens: usize) -> Scratch {
        Scratch {
            at: vec![false; tokens + 1],
            inside: vec![false; tokens + 1],
            next_at: vec![false; tokens + 1],
            next_inside: vec![false; tokens + 1],
        }
    }
}

/// Whether `tokens` match all of `path` or the part before one of its `/` (a parent
/// directory): one pass, keeping the set of places the pattern can be at.
/// Each character costs the pattern's length from `budget`. Errors: `budget` ran out.
fn matches_or_parent(
    tokens: &[Token],
    path: &[char],
    scratch: &mut Scratch,
    budget: &mut u64,
) -> Result<bool, TooCostly> {
    let n = tokens.len();
    let mut spend = || match budget.checked_sub(n as u64 + 1) {
        Some(left) => {
            *budget = left;
            Ok(())
        }
        None => Err(TooCostly),
    };
    // A first character that cannot match: most patterns are over at once.
    if let (Some(Token::Char(x)), Some(c)) = (tokens.first(), path.first())
        && x != c
    {
        return Ok(false);
    }
    spend()?;
    // `at[k]`: before token k; `inside[k]`: within a `**`'s `.*/`.
    let Scratch {
        at,
        inside,
        next_at,
        next_inside,
    } = scratch;
    let (at, inside) = (&mut at[..=n], &mut inside[..=n]);
    let (mut at, mut inside, mut next_at, mut next_inside) =
        (at, inside, &mut next_at[..=n], &mut next_inside[..=n]);
    at.fill(false);
    inside.fill(false);
    at[0] = true;
    close(tokens, at);
    for &c in path {
        if c == '/' && at[n] {
            return Ok(true);
        }
        spend()?;
        next_at.fill(false);
        next_inside.fill(false);
        let mut alive = false;
        for (k, t) in tokens.iter().enumerate() {
            if !at[k] && !inside[k] {
                continue;
            }
            let here = at[k];
            let (advance, stay) = match t {
                Token::Char(x) => (here && c == *x, false),
                Token::One => (here && c != '/', false),
                Token::Class { negated, ranges } => {
                    let hit = ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c));
                    (here && hit != *negated, false)
                }
                Token::Star => (false, here && c != '/'),
                Token::Rest => (false, here && c != '\n'),
                Token::Dirs => {
                    if c != '\n' {
                        next_inside[k] = true;
                        alive = true;
                    }
                    (c == '/', false)
                }
            };
            if advance {
                next_at[k + 1] = true;
                alive = true;
            }
            if stay {
                next_at[k] = true;
                alive = true;
            }
        }
        if !alive {
            return Ok(false);
        }
        std::mem::swap(&mut at, &mut next_at);
        std::mem::swap(&mut inside, &mut next_inside);
        close(tokens, at);
    }
    Ok(at[n])
}

/// The places reachable without a character: past a `*`, a `**` or a final `**`.
fn close(tokens: &[Token], at: &mut [bool]) {
    for (k, t) in tokens.iter().enumerate() {
        if at[k] && matches!(t, Token::Star | Token::Dirs | Token::Rest) {
            at[k + 1] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn excluded_follows_docker_rules() {
        let p = patterns(&["**/__pycache__", "*.md", "app/tmp", "!app/tmp/keep"]);
        let m = Matcher::new(&p);
        let ex = |path| m.excluded(path).unwrap();
        assert!(ex("app/__pycache__/x.pyc"));
        assert!(ex("__pycache__"));
        assert!(ex("NOTES.md"));
        assert!(!ex("app/NOTES.md"), "* stays in one segment");
        assert!(ex("app/tmp/x"));
        assert!(!ex("app/tmp/keep"));
        assert!(!ex("app/api.py"));
        assert!(excluded(&patterns(&["app"]), "app/api.py").unwrap());
        assert!(excluded(&patterns(&["a?p"]), "app").unwrap());
    }

    /// Cases from moby/patternmatcher's tests of `MatchesOrParentMatches` and its regex
    /// translation, with the verdict Docker gives.
    #[test]
    fn docker_verdicts() {
        for (pattern, path, want) in [
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "dir/file", true),
            ("**/file", "file", true),
            ("**/file", "dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("a\\\\", "a\\", true),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            (
                "dist/*.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            // A parent directory that matches excludes what is under it.
            ("dir", "dir/file", true),
            // Found by the fuzz target: `/x`'s parents are `` and `/`, as `filepath.Dir`
            // gives them.
            ("/", "/x", true),
            ("/", "/x/y", false),
            ("*/x", "a/x/y", true),
        ] {
            assert_eq!(
                excluded(&patterns(&[pattern]), path).unwrap(),
                want,
                "{pattern} on {path}"
            );
        }
    }

    #[test]
    fn bad_patterns_match_nothing_and_are_named() {
        let m = Matcher::new(&patterns(&["[", "a[]b", "[z-a]", "!", "x\\", "ok"]));
        assert_eq!(m.invalid(), ["[", "a[]b", "[z-a]", "!", "x\\"]);
        assert!(m.excluded("ok").unwrap() && !m.excluded("a").unwrap());
    }

    #[test]
    fn comments_blanks_and_leading_slashes() {
        let text = "\u{feff}# caches\n\n**/__pycache__\n./secret.env\n/build\n  \n!keep.txt\n! ./a/../b/\n  # not a comment\ndir//x/\r\n";
        assert_eq!(
            parse(text),
            [
                "**/__pycache__",
                "secret.env",
                "build",
                "!keep.txt",
                "!b",
                "# not a comment",
                "dir/x"
            ]
        );
        assert_eq!(clean("a/../.."), "..");
        assert_eq!(clean("/../a//b/./"), "/a/b");
        assert_eq!(clean(""), ".");
    }

    /// Issue 21: `*a*a*a*a*b` took 36 s on a path of 30 `a`s with the backtracking matcher.
    #[test]
    fn matching_takes_linear_time() {
        let started = std::time::Instant::now();
        let m = Matcher::new(&patterns(&[
            "*a*a*a*a*a*a*a*a*a*a*a*a*b",
            "**/**/**/**/**/**/**/x",
        ]));
        let long = "a".repeat(3_000);
        for path in [long.clone(), format!("{}/y", "a/".repeat(1_500))] {
            assert!(!m.excluded(&path).unwrap());
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}
