//! The build's options, as the gateway passes them: `BUILDKIT_FRONTEND_OPT_<n>=key=value`.

use std::collections::BTreeMap;

use crate::llb::pb;
use crate::llb::platform;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    /// The spec's file name inside the `dockerfile` local.
    pub filename: String,
    pub target: Option<String>,
    /// Empty: the worker's default platform.
    pub platforms: Vec<pb::Platform>,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Git metadata buildx sends (`vcs:source`, `vcs:revision`), for the OCI labels.
    pub vcs_source: Option<String>,
    pub vcs_revision: Option<String>,
    pub no_cache: bool,
    /// Raw `cache-imports` JSON, passed on to every solve.
    pub cache_imports: Vec<CacheImport>,
    pub context_local: String,
    pub spec_local: String,
    /// A subrequest (`frontend.targets`, `frontend.outline`, ...) instead of a build.
    pub request_id: Option<String>,
    /// `--build-arg KILN_SKIP_VERIFY=1`: leave out `verify` (inner-loop builds).
    pub skip_verify: bool,
    pub session_id: Option<String>,
    /// `attest:sbom` (buildx `--sbom`, or `build-arg:BUILDKIT_ATTEST_SBOM`): an SBOM per
    /// image; `None`: none asked for.
    pub sbom: Option<super::sbom::Request>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
pub struct CacheImport {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Attrs", default)]
    pub attrs: BTreeMap<String, String>,
}

/// Build-arg names BuildKit and docker use for themselves; not "unused" when a spec ignores them.
pub use crate::spec::format::{SKIP_VERIFY_ARG, is_builtin_arg};

impl Options {
    /// The labels the build adds: the source and revision from git metadata, then
    /// `--label`s (which win).
    pub fn image_labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        if let Some(s) = &self.vcs_source {
            labels.insert("org.opencontainers.image.source".into(), s.clone());
        }
        if let Some(r) = &self.vcs_revision {
            labels.insert("org.opencontainers.image.revision".into(), r.clone());
        }
        labels.extend(self.labels.clone());
        labels
    }

    /// From `key=value` pairs (already split off the environment variable names).
    pub fn parse(
        pairs: impl IntoIterator<Item = (String, String)>,
        session_id: Option<String>,
    ) -> Result<Options, String> {
        let mut o = Options {
            filename: "Dockerfile".into(),
            context_local: "context".into(),
            spec_local: "dockerfile".into(),
            session_id,
            ..Default::default()
        };
        for (k, v) in pairs {
            // As BuildKit reads them (`frontend/attestations`): either key, any case.
            let attest = k
                .strip_prefix("attest:")
                .or_else(|| k.strip_prefix("build-arg:BUILDKIT_ATTEST_"));
            if let Some(kind) = attest
                && kind.eq_ignore_ascii_case("sbom")
            {
                o.sbom = Some(super::sbom::Request::parse(&v)?);
            }
            if let Some(name) = k.strip_prefix("build-arg:") {
                if name == SKIP_VERIFY_ARG {
                    o.skip_verify = matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes");
                }
                o.build_args.insert(name.to_string(), v);
                continue;
            }
            if let Some(name) = k.strip_prefix("label:") {
                o.labels.insert(name.to_string(), v);
                continue;
            }
            match k.as_str() {
                "filename" if !v.is_empty() => o.filename = v,
                "target" if !v.is_empty() => o.target = Some(v),
                "platform" if !v.is_empty() => {
                    o.platforms = v
                        .split(',')
                        .map(|p| platform::parse(p.trim()))
                        .collect::<Result<_, _>>()?;
                }
                "no-cache" => o.no_cache = true,
                "vcs:source" if !v.is_empty() => o.vcs_source = Some(v),
                "vcs:revision" if !v.is_empty() => o.vcs_revision = Some(v),
                "cache-imports" if !v.is_empty() => {
                    o.cache_imports = serde_json::from_str(&v)
                        .map_err(|e| format!("invalid cache-imports option: {e}"))?;
                }
                "contextkey" if !v.is_empty() => o.context_local = v,
                "dockerfilekey" if !v.is_empty() => o.spec_local = v,
                "requestid" if !v.is_empty() => o.request_id = Some(v),
                _ => {}
            }
        }
        Ok(o)
    }

    /// From this process's environment.
    pub fn from_env() -> Result<Options, String> {
        let pairs = std::env::vars()
            .filter(|(k, _)| k.starts_with("BUILDKIT_FRONTEND_OPT_"))
            .map(|(_, v)| match v.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (v, String::new()),
            });
        let session = std::env::var("BUILDKIT_SESSION_ID")
            .ok()
            .filter(|s| !s.is_empty());
        Options::parse(pairs, session)
    }

    /// The build's default platform: from the workers the engine describes, else this host's.
    pub fn default_platform(
        workers: &[bollard_buildkit_proto::moby::buildkit::v1::types::WorkerRecord],
    ) -> pb::Platform {
        workers
            .iter()
            .find_map(|w| w.platforms.first().cloned())
            .unwrap_or_else(platform::host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// buildx's git metadata becomes the OCI source labels; a `--label` wins over it.
    #[test]
    fn git_metadata_gives_source_labels() {
        let o = Options::parse(
            kv(&[
                ("vcs:source", "https://github.com/acme/svc.git"),
                ("vcs:revision", "0123abc"),
                ("label:org.opencontainers.image.revision", "v1.2"),
            ]),
            None,
        )
        .unwrap();
        let labels = o.image_labels();
        assert_eq!(
            labels["org.opencontainers.image.source"],
            "https://github.com/acme/svc.git"
        );
        assert_eq!(labels["org.opencontainers.image.revision"], "v1.2");
    }

    #[test]
    fn parses_docker_build_options() {
        let o = Options::parse(
            kv(&[
                ("filename", "worker.yaml"),
                ("target", "cuda"),
                ("build-arg:PYTHON_IMAGE", "x:1"),
                ("label:team", "ml"),
                ("platform", "linux/amd64,linux/arm64"),
                ("no-cache", ""),
                (
                    "cache-imports",
                    r#"[{"Type":"registry","Attrs":{"ref":"r/c"}}]"#,
                ),
            ]),
            Some("s1".into()),
        )
        .unwrap();
        assert_eq!(o.filename, "worker.yaml");
        assert_eq!(o.target.as_deref(), Some("cuda"));
        assert_eq!(o.build_args["PYTHON_IMAGE"], "x:1");
        assert_eq!(o.labels["team"], "ml");
        assert_eq!(o.platforms.len(), 2);
        assert!(o.no_cache);
        assert_eq!(o.cache_imports[0].attrs["ref"], "r/c");
        assert!(Options::parse(kv(&[("platform", "linux")]), None).is_err());
    }
}
