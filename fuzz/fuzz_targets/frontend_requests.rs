//! What the frontend takes from BuildKit and its client: the frontend options
//! (`BUILDKIT_FRONTEND_OPT_*`: build args, labels, platforms, cache imports, target), the
//! base image's config (JSON), and a failed solve's status details (errdefs). The first
//! byte picks which; never a panic.
#![no_main]

use bollard_buildkit_proto::google::rpc::Status;
use kiln::frontend::errdefs;
use kiln::frontend::opts::Options;
use kiln::plan::config;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    match which % 3 {
        0 => {
            // One option a line, `key=value`, as from_env splits the environment.
            let pairs = text.lines().map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.to_string(), String::new()),
            });
            if let Ok(o) = Options::parse(pairs, Some("s".into())) {
                let _ = Options::default_platform(&[]);
                assert!(!o.filename.is_empty());
            }
        }
        1 => {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(rest) {
                let _ = config::base_env(&v);
                let _ = config::config_env(&v);
            }
        }
        _ => {
            let status = tonic::Status::with_details(tonic::Code::Unknown, "failed", rest.to_vec().into());
            let details = errdefs::status_details(&status);
            let _ = errdefs::vertex_digests(&details);
            let _ = errdefs::has_source(&details);
            if let Ok(s) = Status::decode(rest) {
                let _ = errdefs::vertex_digests(&s.details);
            }
            let _ = errdefs::unbase64(&text);
        }
    }
});
