//! Requirement files as the frontend reads them from the context: the bytes are split
//! into the files `Gather` asks for (includes, constraints, hashes, `-e` lines), in the
//! order it asks; it must end with what it learned or diagnostics, never a panic or loop.
#![no_main]

use kiln::context::requirements;
use libfuzzer_sys::fuzz_target;

#[path = "feed.rs"]
mod feed;

const SPEC: &[u8] = b"version: 1\nname: w\npython: {base: python:3}\nrequirements:\n  core: [req/core.txt]\n  extra: {files: [extra.txt], require_hashes: true}\npip: {constraints: c.txt, build_constraints: bc.txt}\napp: {src: [app]}\n";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The parsers on their own, on the whole input.
    for inc in requirements::includes(&text) {
        let _ = requirements::resolve("req/core.txt", &inc.path);
    }
    let _ = requirements::local_installs(&text);
    feed::gather(SPEC, data);
});
