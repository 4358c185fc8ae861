//! Spec bytes in, a definition or diagnostics out: never a panic, a hang or a blow-up.
#![no_main]

use kiln::plan::compile;
use kiln::plan::lower::LowerOpts;
use kiln::spec::{LoadOptions, Sources};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut sources = Sources::new();
    let loaded = match sources.add("fuzz.yaml", data) {
        Ok(None) => sources.finish(&LoadOptions::default()),
        Ok(Some(_)) => Err(sources.missing("not available while fuzzing")),
        Err(report) => Err(report),
    };
    match loaded {
        Ok(loaded) => {
            let opts = LowerOpts::offline(kiln::llb::platform("linux", "amd64", ""));
            for v in &loaded.spec.variants {
                let built = compile(&loaded.spec, v, &Default::default(), &opts);
                assert!(!built.def.def.is_empty());
            }
            for w in &loaded.warnings {
                let _ = w.render(&loaded.spec.files);
            }
        }
        Err(report) => {
            assert!(report.has_errors());
            let _ = report.render();
        }
    }
});
