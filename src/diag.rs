//! Diagnostics: errors and warnings as values that carry a file, line and column,
//! rendered like rustc (the offending line with a caret) and always with a fix.

use std::fmt;

/// Where something is in a spec file. Lines and columns are 1-based; 0 means unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    /// Index into the list of loaded source files (0 = the spec named on the command line).
    pub file: u16,
    pub line: u32,
    pub col: u32,
}

impl Loc {
    /// `file:line:col` (just the file name when there is no line).
    pub fn position(&self, files: &[SourceFile]) -> String {
        let name = files
            .get(self.file as usize)
            .map(|f| f.name.as_str())
            .unwrap_or("<spec>");
        if self.line == 0 {
            name.to_string()
        } else {
            format!("{}:{}:{}", name, self.line, self.col)
        }
    }
}

/// One loaded spec file: its name as the user wrote it and its text, which is only ever
/// shown (a snippet, the definition's source map, BuildKit's error and warning details),
/// never parsed again. So it is kept with the userinfo of every URL in it masked
/// (`url::mask_text`: one `*` per character, lines and columns hold): no credential
/// written in a spec leaves kiln through its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    text: String,
}

impl SourceFile {
    /// `text` as read, masked.
    pub fn new(name: impl Into<String>, text: &str) -> Self {
        SourceFile {
            name: name.into(),
            text: crate::url::mask_text(text),
        }
    }

    /// The text, credentials masked.
    pub fn text(&self) -> &str {
        &self.text
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// The code every error carries.
pub const ERROR_CODE: &str = "KilnSpecError";

/// Every warning rule kiln has, with what it is about (the lint result's description).
pub const WARNING_CODES: &[(&str, &str)] = &[
    ("KilnRootUser", "The image runs as root"),
    ("KilnUnusedGroup", "A requirement group no variant installs"),
    (
        "KilnUndeclaredBuildArg",
        "A --build-arg the spec does not declare under `args:`",
    ),
    (
        "KilnLockInStep",
        "A lock whose files the engine cannot fetch by digest: its group installs from the index",
    ),
];

/// How many diagnostics a report shows: a spec with 100,000 mistakes gets the first ones
/// and a count, not 100,000 snippets (compilers stop early for the same reason).
pub const MAX_SHOWN: usize = 50;

/// How much of a source line a rendered diagnostic shows.
const SNIPPET_WIDTH: usize = 120;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable name for the rule (`KilnRootUser`): the rule name `--call check` and
    /// build warnings show. Errors share `KilnSpecError`.
    pub code: &'static str,
    pub loc: Loc,
    pub message: String,
    /// What to do about it, one line.
    pub help: String,
}

impl Diagnostic {
    /// An error. The message and help keep no URL's userinfo (`url::redact_text`),
    /// whatever value they quote.
    pub fn error(loc: Loc, message: impl Into<String>, help: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code: ERROR_CODE,
            loc,
            message: crate::url::redact_text(&message.into()),
            help: crate::url::redact_text(&help.into()),
        }
    }

    /// A warning under the rule `code` (one of [`WARNING_CODES`]); redacted as `error`.
    pub fn warning(
        code: &'static str,
        loc: Loc,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            code,
            loc,
            message: crate::url::redact_text(&message.into()),
            help: crate::url::redact_text(&help.into()),
        }
    }

    /// `file:line:col: error: message` followed by the help line: the compact form used
    /// in build errors and logs.
    pub fn one_line(&self, files: &[SourceFile]) -> String {
        format!(
            "{}: {}: {} (help: {})",
            self.position(files),
            self.kind(),
            self.message,
            self.help
        )
    }

    /// What the rule is about, for a lint result (`code` when it is not a known warning).
    pub fn rule_description(&self) -> &'static str {
        WARNING_CODES
            .iter()
            .find(|(c, _)| *c == self.code)
            .map(|(_, d)| *d)
            .unwrap_or("A mistake in the spec")
    }

    pub fn position(&self, files: &[SourceFile]) -> String {
        self.loc.position(files)
    }

    fn kind(&self) -> String {
        match self.severity {
            Severity::Error => "error".into(),
            Severity::Warning => format!("warning[{}]", self.code),
        }
    }

    /// The rustc-like rendering: header, the source line, a caret under the column, help.
    pub fn render(&self, files: &[SourceFile]) -> String {
        let line = files
            .get(self.loc.file as usize)
            .filter(|_| self.loc.line > 0)
            .and_then(|f| f.text().lines().nth(self.loc.line as usize - 1));
        self.render_line(files, line)
    }

    /// `render`, with the diagnostic's source line already found.
    fn render_line(&self, files: &[SourceFile], line: Option<&str>) -> String {
        let mut out = format!(
            "{}: {}\n  --> {}\n",
            self.kind(),
            self.message,
            self.position(files)
        );
        if let Some(text) = line {
            let gutter = self.loc.line.to_string();
            let pad = " ".repeat(gutter.len());
            // Tabs are shown as one space so the caret lines up; a long line is
            // cut to a window around the column.
            let chars: Vec<char> = text
                .chars()
                .map(|c| if c == '\t' { ' ' } else { c })
                .collect();
            let col = (self.loc.col.saturating_sub(1) as usize).min(chars.len());
            let start = col.saturating_sub(SNIPPET_WIDTH / 2);
            let end = (start + SNIPPET_WIDTH).min(chars.len());
            let mut shown: String = chars[start..end].iter().collect();
            if start > 0 {
                shown.insert_str(0, "...");
            }
            if end < chars.len() {
                shown.push_str("...");
            }
            let lead = if start > 0 { 3 } else { 0 };
            let caret = " ".repeat(col - start + lead);
            out.push_str(&format!("{pad} |\n{gutter} | {shown}\n{pad} | {caret}^\n"));
        }
        out.push_str(&format!("  = help: {}\n", self.help));
        out
    }
}

/// A failed load or check: every diagnostic found, plus the files they point into.
#[derive(Clone, Debug)]
pub struct Report {
    pub files: Vec<SourceFile>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// The first `MAX_SHOWN` diagnostics rendered, then how many more there are. Each
    /// file's lines are indexed once, so this is linear in the files' size.
    pub fn render(&self) -> String {
        let lines: Vec<Vec<&str>> = self
            .files
            .iter()
            .map(|f| f.text().lines().collect())
            .collect();
        let mut shown: Vec<String> = self
            .diagnostics
            .iter()
            .take(MAX_SHOWN)
            .map(|d| {
                let line = (d.loc.line as usize)
                    .checked_sub(1)
                    .and_then(|l| lines.get(d.loc.file as usize)?.get(l).copied());
                d.render_line(&self.files, line)
            })
            .collect();
        shown.extend(not_shown(self.diagnostics.len()));
        shown.join("\n")
    }

    /// The first `MAX_SHOWN` errors, one per line (for build errors, where space is
    /// short), then how many more there are.
    pub fn one_line(&self) -> String {
        one_lines(&self.files, self.errors())
    }
}

/// Each diagnostic's `one_line`, one a line: the first `MAX_SHOWN`, then how many more.
pub fn one_lines<'a>(
    files: &[SourceFile],
    diagnostics: impl IntoIterator<Item = &'a Diagnostic>,
) -> String {
    let mut shown = vec![];
    let mut total = 0;
    for d in diagnostics {
        total += 1;
        if total <= MAX_SHOWN {
            shown.push(d.one_line(files));
        }
    }
    shown.extend(not_shown(total));
    shown.join("\n")
}

fn not_shown(total: usize) -> Option<String> {
    (total > MAX_SHOWN).then(|| {
        format!(
            "... and {} more (only the first {MAX_SHOWN} are shown; fix these and run again)\n",
            total - MAX_SHOWN
        )
    })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.one_line())
    }
}

impl std::error::Error for Report {}

/// The closest candidate by edit distance, when close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    let word: Vec<char> = word.chars().collect();
    for c in candidates {
        let c_len = c.chars().count();
        let limit = (c_len.max(word.len()) / 3).max(1);
        // The distance is at least the difference in length: most candidates stop here.
        if c_len.abs_diff(word.len()) > limit {
            continue;
        }
        let d = edit_distance(&word, c);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance, two rows: O(|a|·|b|) time, O(|b|) space.
fn edit_distance(a: &[char], b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for j in 1..=b.len() {
            let cost = usize::from(*ca != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("requirments", ["requirements", "runtime"]),
            Some("requirements")
        );
        assert_eq!(did_you_mean("zzz", ["requirements", "runtime"]), None);
    }

    #[test]
    fn renders_line_and_caret() {
        let files = vec![SourceFile::new("w.yaml", "a: 1\nbad: 2\n")];
        let d = Diagnostic::error(
            Loc {
                file: 0,
                line: 2,
                col: 1,
            },
            "unknown key `bad`",
            "remove it",
        );
        let r = d.render(&files);
        assert!(r.contains("--> w.yaml:2:1"), "{r}");
        assert!(r.contains("2 | bad: 2\n  | ^"), "{r}");
        assert!(r.contains("= help: remove it"), "{r}");
    }

    #[test]
    fn long_lines_are_cut_around_the_column() {
        let line = format!("x: {}", "[".repeat(5000));
        let files = vec![SourceFile::new("w.yaml", &line)];
        let d = Diagnostic::error(
            Loc {
                file: 0,
                line: 1,
                col: 2500,
            },
            "too deep",
            "flatten it",
        );
        let r = d.render(&files);
        assert!(r.len() < 600, "{}", r.len());
        let lines: Vec<&str> = r.lines().collect();
        let src = lines.iter().find(|l| l.starts_with("1 | ")).unwrap();
        let caret = lines.iter().find(|l| l.trim_end().ends_with('^')).unwrap();
        assert_eq!(src.chars().nth(caret.len() - 1), Some('['));
    }
}
