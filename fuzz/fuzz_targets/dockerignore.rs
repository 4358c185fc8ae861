//! `.dockerignore` patterns against context paths: the bytes before the first NUL are the
//! file, each line after it a path. Parsing and matching never panic, and matching stops
//! at its step budget (`MAX_STEPS`) however hostile the pair; without `!` patterns, what
//! excludes a directory excludes what is in it (for paths relative to the context, as
//! every path kiln matches is: for Docker, `/` excludes `/x` but not `/x/y`).
#![no_main]

use kiln::context::dockerignore::{Matcher, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (file, paths) = text.split_once('\0').unwrap_or((&text, "a/b"));
    let patterns = parse(file);
    let m = Matcher::new(&patterns);
    let keeps = patterns.iter().any(|p| p.starts_with('!'));
    for path in paths.lines().take(64) {
        let Ok(out) = m.excluded(path) else {
            return;
        };
        if out && !keeps && !path.is_empty() && !path.starts_with('/') {
            match m.excluded(&format!("{path}/x")) {
                Ok(child) => assert!(child, "{path} is excluded and {path}/x is not"),
                Err(_) => return,
            }
        }
    }
});
