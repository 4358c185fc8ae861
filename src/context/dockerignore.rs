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

#[cfg(test)]
mod tests {
    #[test]
    fn comments_blanks_and_leading_slashes() {
        let text = "# caches\n\n**/__pycache__\n./secret.env\n/build\n  \n!keep.txt\n";
        assert_eq!(
            super::parse(text),
            ["**/__pycache__", "secret.env", "build", "!keep.txt"]
        );
    }
}
