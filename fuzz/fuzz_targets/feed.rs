//! Shared by the context targets: the frontend's walk of the build context, with fuzz
//! bytes as the files.

use kiln::context::Gather;
use kiln::spec::{LoadOptions, Sources};

/// Walk the context the way the frontend does for `spec` (a fixed, valid spec), giving
/// `Gather` the parts of `data` (split at NUL bytes) as the files it asks for, in order; a
/// part that is `\x01` alone, or none left, is a missing file. It must end (each file is
/// asked for once, at most `MAX_FILES`) with what it learned or with diagnostics.
pub fn gather(spec: &[u8], data: &[u8]) {
    let mut sources = Sources::new();
    let Ok(None) = sources.add("fuzz.yaml", spec) else {
        panic!("the fixed spec loads")
    };
    let loaded = sources
        .finish(&LoadOptions::default())
        .expect("the fixed spec is valid");
    let mut g = Gather::new(&loaded.spec);
    let mut parts = data.split(|b| *b == 0);
    loop {
        let wanted = g.wanted();
        if wanted.is_empty() {
            break;
        }
        for path in wanted {
            match parts.next() {
                Some([1]) | None => g.give(&path, None),
                Some(part) => g.give(&path, Some(part)),
            }
        }
    }
    match g.finish() {
        Ok(info) => {
            for f in info.requirement_files.keys() {
                let _ = info.requirement_closure(f);
            }
        }
        Err(diags) => assert!(!diags.is_empty()),
    }
}
