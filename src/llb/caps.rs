//! BuildKit's capabilities (caps) as kiln uses them: every cap id kiln reads or records,
//! the first release that has it, and `Caps`, what one engine offers, with one named
//! predicate per fallback kiln makes.
//!
//! An engine lists its caps in the gateway's Ping: the gateway (frontend API) caps, and
//! the LLB caps an op's metadata records it needs. A new fallback is a cap here, its
//! predicate on `Caps`, and the one place that asks it.

use std::collections::BTreeSet;
use std::fmt;

use bollard_buildkit_proto::moby::buildkit::v1::apicaps::ApiCap;
use bollard_buildkit_proto::pb;

/// Which of the engine's two lists a cap is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Api {
    /// Ops and their fields (BuildKit's `solver/pb/caps.go`), `PongResponse.LLBCaps`.
    Llb,
    /// Gateway calls (`frontend/gateway/pb/caps.go`), `PongResponse.FrontendAPICaps`.
    Gateway,
}

/// A BuildKit release, with the first Docker Engine release whose embedded BuildKit is
/// this one or newer (the version users know).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release {
    /// (major, minor).
    pub buildkit: (u16, u16),
    pub docker: &'static str,
}

impl Release {
    /// `BuildKit >= 0.10 (Docker >= 23.0)`, for a message that asks for an upgrade.
    pub fn at_least(&self) -> String {
        let (major, minor) = self.buildkit;
        format!("BuildKit >= {major}.{minor} (Docker >= {})", self.docker)
    }
}

impl fmt::Display for Release {
    /// `BuildKit 0.10, Docker 23.0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor) = self.buildkit;
        write!(f, "BuildKit {major}.{minor}, Docker {}", self.docker)
    }
}

// The BuildKit each Docker Engine embeds is moby/moby's `vendor.conf` / `vendor.mod` entry
// for github.com/moby/buildkit at the release tag: 18.09 a commit of October 2018 with
// every 0.3 cap, 19.03 0.5.1 and later 0.5 commits, 20.10 0.8.0 to 0.8.4-dev, 23.0 0.10.6,
// 24.0 0.11.6, 25.0 0.12.5-dev.
/// Caps reporting itself began with BuildKit 0.3: an op older than it has its cap from 0.3.
pub const BUILDKIT_0_3: Release = Release {
    buildkit: (0, 3),
    docker: "18.09",
};
pub const BUILDKIT_0_5: Release = Release {
    buildkit: (0, 5),
    docker: "19.03",
};
/// No Docker embeds 0.7; 20.10 has 0.8.
pub const BUILDKIT_0_7: Release = Release {
    buildkit: (0, 7),
    docker: "20.10",
};
pub const BUILDKIT_0_8: Release = Release {
    buildkit: (0, 8),
    docker: "20.10",
};
/// No Docker embeds 0.9; 20.10 stayed on 0.8, 23.0 has 0.10.
pub const BUILDKIT_0_9: Release = Release {
    buildkit: (0, 9),
    docker: "23.0",
};
pub const BUILDKIT_0_10: Release = Release {
    buildkit: (0, 10),
    docker: "23.0",
};
pub const BUILDKIT_0_11: Release = Release {
    buildkit: (0, 11),
    docker: "24.0",
};

/// One cap: the id the engine lists (and an op's metadata records), its list, and the
/// first BuildKit release that has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cap {
    pub id: &'static str,
    pub api: Api,
    pub since: Release,
}

const fn llb(id: &'static str, since: Release) -> Cap {
    Cap {
        id,
        api: Api::Llb,
        since,
    }
}

const fn gateway(id: &'static str, since: Release) -> Cap {
    Cap {
        id,
        api: Api::Gateway,
        since,
    }
}

// The caps, named as BuildKit's Go constants without `Cap`; the releases are explained at
// `ALL`.

// LLB caps.
pub const SOURCE_IMAGE: Cap = llb("source.image", BUILDKIT_0_3);
pub const SOURCE_LOCAL: Cap = llb("source.local", BUILDKIT_0_3);
pub const SOURCE_LOCAL_SESSION_ID: Cap = llb("source.local.sessionid", BUILDKIT_0_3);
pub const SOURCE_LOCAL_INCLUDE_PATTERNS: Cap = llb("source.local.includepatterns", BUILDKIT_0_3);
pub const SOURCE_LOCAL_FOLLOW_PATHS: Cap = llb("source.local.followpaths", BUILDKIT_0_3);
pub const SOURCE_LOCAL_EXCLUDE_PATTERNS: Cap = llb("source.local.excludepatterns", BUILDKIT_0_3);
pub const SOURCE_LOCAL_SHARED_KEY_HINT: Cap = llb("source.local.sharedkeyhint", BUILDKIT_0_3);
pub const SOURCE_LOCAL_DIFFER: Cap = llb("source.local.differ", BUILDKIT_0_9);
pub const SOURCE_HTTP: Cap = llb("source.http", BUILDKIT_0_3);
pub const SOURCE_HTTP_CHECKSUM: Cap = llb("source.http.checksum", BUILDKIT_0_3);
pub const EXEC_META_BASE: Cap = llb("exec.meta.base", BUILDKIT_0_3);
pub const EXEC_META_NETWORK: Cap = llb("exec.meta.network", BUILDKIT_0_3);
pub const EXEC_MOUNT_BIND: Cap = llb("exec.mount.bind", BUILDKIT_0_3);
pub const EXEC_MOUNT_CACHE: Cap = llb("exec.mount.cache", BUILDKIT_0_3);
pub const EXEC_MOUNT_CACHE_SHARING: Cap = llb("exec.mount.cache.sharing", BUILDKIT_0_3);
pub const EXEC_MOUNT_SELECTOR: Cap = llb("exec.mount.selector", BUILDKIT_0_3);
pub const EXEC_MOUNT_SECRET: Cap = llb("exec.mount.secret", BUILDKIT_0_3);
pub const FILE_BASE: Cap = llb("file.base", BUILDKIT_0_5);
pub const META_IGNORE_CACHE: Cap = llb("meta.ignorecache", BUILDKIT_0_3);
pub const META_DESCRIPTION: Cap = llb("meta.description", BUILDKIT_0_3);
pub const MERGE_OP: Cap = llb("mergeop", BUILDKIT_0_10);
pub const DIFF_OP: Cap = llb("diffop", BUILDKIT_0_10);

// Gateway caps.
pub const SOLVE_BASE: Cap = gateway("solve.base", BUILDKIT_0_3);
pub const SOLVE_INLINE_RETURN: Cap = gateway("solve.inlinereturn", BUILDKIT_0_3);
pub const RESOLVE_IMAGE: Cap = gateway("resolveimage", BUILDKIT_0_3);
pub const RESOLVE_IMAGE_RESOLVE_MODE: Cap = gateway("resolveimage.resolvemode", BUILDKIT_0_3);
pub const READ_FILE: Cap = gateway("readfile", BUILDKIT_0_3);
pub const RETURN_RESULT: Cap = gateway("return", BUILDKIT_0_3);
pub const RETURN_MAP: Cap = gateway("returnmap", BUILDKIT_0_3);
pub const READ_DIR: Cap = gateway("readdir", BUILDKIT_0_3);
pub const STAT_FILE: Cap = gateway("statfile", BUILDKIT_0_3);
pub const PROTO_REF_ARRAY: Cap = gateway("proto.refarray", BUILDKIT_0_7);
pub const GATEWAY_EVALUATE_SOLVE: Cap = gateway("gateway.solve.evaluate", BUILDKIT_0_8);
pub const GATEWAY_WARNINGS: Cap = gateway("gateway.warnings", BUILDKIT_0_10);
/// `Result.attestations` reach the exporter (an SBOM attached to the image).
pub const REFERENCE_ATTESTATIONS: Cap = gateway("reference.attestations", BUILDKIT_0_11);

/// Every cap kiln uses. Each one's `since` is the first `v*` release tag of moby/buildkit
/// that contains the commit adding its id to `solver/pb/caps.go` (LLB) or
/// `frontend/gateway/pb/caps.go` (gateway): `git log -G'CapID *= *"<id>"' --reverse` on
/// those files, then `git tag --contains`. Each was enabled from the start. The Docker
/// release is the first whose vendored BuildKit is that release or newer (see
/// `BUILDKIT_0_3` and the others).
pub const ALL: &[Cap] = &[
    SOURCE_IMAGE,
    SOURCE_LOCAL,
    SOURCE_LOCAL_SESSION_ID,
    SOURCE_LOCAL_INCLUDE_PATTERNS,
    SOURCE_LOCAL_FOLLOW_PATHS,
    SOURCE_LOCAL_EXCLUDE_PATTERNS,
    SOURCE_LOCAL_SHARED_KEY_HINT,
    SOURCE_LOCAL_DIFFER,
    SOURCE_HTTP,
    SOURCE_HTTP_CHECKSUM,
    EXEC_META_BASE,
    EXEC_META_NETWORK,
    EXEC_MOUNT_BIND,
    EXEC_MOUNT_CACHE,
    EXEC_MOUNT_CACHE_SHARING,
    EXEC_MOUNT_SELECTOR,
    EXEC_MOUNT_SECRET,
    FILE_BASE,
    META_IGNORE_CACHE,
    META_DESCRIPTION,
    MERGE_OP,
    DIFF_OP,
    SOLVE_BASE,
    SOLVE_INLINE_RETURN,
    RESOLVE_IMAGE,
    RESOLVE_IMAGE_RESOLVE_MODE,
    READ_FILE,
    RETURN_RESULT,
    RETURN_MAP,
    READ_DIR,
    STAT_FILE,
    PROTO_REF_ARRAY,
    GATEWAY_EVALUATE_SOLVE,
    GATEWAY_WARNINGS,
    REFERENCE_ATTESTATIONS,
];

/// The gateway caps of an engine that lists none: BuildKit's frozen set from before caps
/// reporting (`defaultCaps` in its `frontend/gateway/grpcclient/client.go`).
const DEFAULT_GATEWAY: &[Cap] = &[SOLVE_BASE, SOLVE_INLINE_RETURN, RESOLVE_IMAGE, READ_FILE];

impl Cap {
    /// The cap with this id, if kiln knows it.
    pub fn by_id(id: &str) -> Option<Cap> {
        ALL.iter().copied().find(|c| c.id == id)
    }
}

/// The caps one engine offers. Ask it through the predicates: each is one fallback kiln
/// makes, named for what kiln does when it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caps {
    gateway: BTreeSet<String>,
    /// `None` when the engine listed no LLB caps: kiln then uses only ops without a
    /// fallback and lets the engine judge the definition.
    llb: Option<BTreeSet<String>>,
}

impl Caps {
    /// The enabled caps of a Ping's answer (`frontend_api_caps`, `llb_caps`).
    pub fn from_ping(gateway: &[ApiCap], llb: &[ApiCap]) -> Caps {
        let enabled = |caps: &[ApiCap]| -> BTreeSet<String> {
            caps.iter()
                .filter(|c| c.enabled)
                .map(|c| c.id.clone())
                .collect()
        };
        Caps {
            gateway: if gateway.is_empty() {
                ids(DEFAULT_GATEWAY)
            } else {
                enabled(gateway)
            },
            llb: (!llb.is_empty()).then(|| enabled(llb)),
        }
    }

    /// No engine (`kiln llb`): what an engine that lists no caps offers, so every fallback
    /// is taken.
    pub fn offline() -> Caps {
        Caps::from_ping(&[], &[])
    }

    /// Every cap kiln knows (a current engine): `kiln llb --merge`.
    pub fn latest() -> Caps {
        let of = |api| ids(ALL.iter().filter(|c| c.api == api));
        Caps {
            gateway: of(Api::Gateway),
            llb: Some(of(Api::Llb)),
        }
    }

    fn has(&self, cap: Cap) -> bool {
        match cap.api {
            Api::Gateway => self.gateway.contains(cap.id),
            Api::Llb => self.llb.as_ref().is_some_and(|l| l.contains(cap.id)),
        }
    }

    /// Layer the venv and the app with MergeOp, and a fetched lock's packages with DiffOp,
    /// rather than copy them (`plan/lower.rs`). Both ops are needed: a fetched lock's
    /// packages are layered as diffs.
    pub fn merge_layers(&self) -> bool {
        self.has(MERGE_OP) && self.has(DIFF_OP)
    }

    /// Set `local.differ=none` on the frontend's own reads of the client's files, so the
    /// engine resends them rather than compares (`frontend/context.rs`).
    pub fn local_differ_none(&self) -> bool {
        self.has(SOURCE_LOCAL_DIFFER)
    }

    /// Send warnings with `Warn` (buildx shows them with the spec line); otherwise each is a
    /// vertex named after it (`frontend/build.rs`).
    pub fn warnings(&self) -> bool {
        self.has(GATEWAY_WARNINGS)
    }

    /// Ask a solve to be built now (`evaluate`); otherwise `StatFile` on its result forces
    /// the build (`Bridge::solve`).
    pub fn evaluate(&self) -> bool {
        self.has(GATEWAY_EVALUATE_SOLVE)
    }

    /// `StatFile`: the pre-flight check of `app.src`, and the fallback for `evaluate`.
    pub fn stat_file(&self) -> bool {
        self.has(STAT_FILE)
    }

    /// `ReadDir`: the pre-flight check that an app directory is not empty.
    pub fn read_dir(&self) -> bool {
        self.has(READ_DIR)
    }

    /// Refs in the `Ref` form; otherwise the deprecated string ids (`Bridge`).
    pub fn ref_array(&self) -> bool {
        self.has(PROTO_REF_ARRAY)
    }

    /// Set `resolve_mode` when resolving the base image (`Bridge::resolve_image`).
    pub fn resolve_mode(&self) -> bool {
        self.has(RESOLVE_IMAGE_RESOLVE_MODE)
    }

    /// Attach the SBOM a build asks for (`attest:sbom`) to its result; without it such a
    /// build is refused before anything is built (`frontend/sbom.rs`): the engine would
    /// drop the attestation and the image would ship without the SBOM asked for.
    pub fn attestations(&self) -> bool {
        self.has(REFERENCE_ATTESTATIONS)
    }

    /// `Return`: without it kiln cannot hand back a result at all (`frontend::serve`).
    pub fn return_result(&self) -> bool {
        self.has(RETURN_RESULT)
    }

    /// Return one image per platform as a map; without it a multi-platform build is
    /// refused (`frontend/build.rs`).
    pub fn return_map(&self) -> bool {
        self.has(RETURN_MAP)
    }

    /// The caps `def`'s ops record that this engine does not list, each with the first
    /// release that has it (`mergeop (BuildKit 0.10, Docker 23.0)`), in id order. Empty
    /// when the engine lists no LLB caps: it cannot say, so the engine judges.
    pub fn missing(&self, def: &pb::Definition) -> Vec<String> {
        let Some(have) = &self.llb else {
            return vec![];
        };
        let used: BTreeSet<&String> = def.metadata.values().flat_map(|m| m.caps.keys()).collect();
        used.into_iter()
            .filter(|c| !have.contains(*c))
            .map(|c| match Cap::by_id(c) {
                Some(cap) => format!("{c} ({})", cap.since),
                None => format!("{c} (a newer BuildKit)"),
            })
            .collect()
    }
}

fn ids<'a>(caps: impl IntoIterator<Item = &'a Cap>) -> BTreeSet<String> {
    caps.into_iter().map(|c| c.id.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::llb::{self, CopyOpts, Exec, Local, Meta, Mount, Sharing};

    /// What an engine of release `r` lists, of the caps kiln knows.
    fn reported_by(r: Release) -> Caps {
        let of = |api| -> Vec<ApiCap> {
            ALL.iter()
                .filter(|c| c.api == api && c.since <= r)
                .map(|c| ApiCap {
                    id: c.id.into(),
                    enabled: true,
                    ..Default::default()
                })
                .collect()
        };
        Caps::from_ping(&of(Api::Gateway), &of(Api::Llb))
    }

    /// A definition with every op, mount and option kiln's builder has.
    fn every_op() -> pb::Definition {
        let named = |n: &str| Meta {
            name: Some(n.into()),
            ignore_cache: true,
            ..Default::default()
        };
        let base = llb::image("docker.io/library/debian:12", None, named("base"));
        let file = llb::http(
            "https://example.com/a.whl",
            (&"0".repeat(64), "a.whl"),
            BTreeMap::new(),
            Meta::default(),
        );
        let ctx = llb::local(
            Local {
                name: "context".into(),
                include: vec!["a".into()],
                exclude: vec!["b".into()],
                follow_paths: vec!["c".into()],
                shared_key_hint: Some("k".into()),
                session_id: Some("s".into()),
                differ_none: true,
            },
            Meta::default(),
        );
        let run = base.run(Exec {
            args: vec!["true".into()],
            mounts: vec![
                Mount::Bind {
                    dest: "/ctx".into(),
                    src: ctx.clone(),
                },
                Mount::BindDir {
                    dest: "/venv".into(),
                    src: ctx,
                    dir: "/a".into(),
                },
                Mount::Cache {
                    dest: "/cache".into(),
                    id: "c".into(),
                    sharing: Sharing::Locked,
                },
                Mount::Scratch {
                    dest: "/out".into(),
                },
                Mount::Secret {
                    dest: "/run/secrets/s".into(),
                    id: "s".into(),
                    optional: true,
                    mode: 0o400,
                    uid: 0,
                    gid: 0,
                },
            ],
            network_none: true,
            ..Default::default()
        });
        let copied = base
            .file(Meta::default())
            .copy(&file, "/a.whl", "/a.whl", CopyOpts::default())
            .done();
        let changes = llb::diff(&base, &run.root(), Meta::default());
        let merged = llb::merge(&[copied, changes, run.scratch("/out")], Meta::default());
        llb::marshal(&merged, &[])
    }

    #[test]
    fn every_cap_an_op_records_is_in_the_table_with_its_release() {
        let def = every_op();
        let used: BTreeSet<&String> = def.metadata.values().flat_map(|m| m.caps.keys()).collect();
        let llb_caps = ALL.iter().filter(|c| c.api == Api::Llb).count();
        assert_eq!(
            used.len(),
            llb_caps,
            "every LLB cap kiln knows is used: {used:?}"
        );
        for id in used {
            let cap = Cap::by_id(id).unwrap_or_else(|| panic!("{id} is not in caps::ALL"));
            assert_eq!(cap.api, Api::Llb, "{id}");
        }
        // An engine that lists none of them is told each, with its first release.
        let none = Caps {
            gateway: BTreeSet::new(),
            llb: Some(BTreeSet::new()),
        };
        let missing = none.missing(&def);
        assert_eq!(missing.len(), llb_caps);
        assert!(missing.contains(&"diffop (BuildKit 0.10, Docker 23.0)".to_string()));
        assert!(missing.contains(&"exec.mount.cache (BuildKit 0.3, Docker 18.09)".to_string()));
        assert!(missing.contains(&"file.base (BuildKit 0.5, Docker 19.03)".to_string()));
        assert!(missing.contains(&"source.local.differ (BuildKit 0.9, Docker 23.0)".to_string()));
    }

    #[test]
    fn the_table_has_each_id_once() {
        let ids: BTreeSet<&str> = ALL.iter().map(|c| c.id).collect();
        assert_eq!(ids.len(), ALL.len());
        assert_eq!(Cap::by_id("mergeop"), Some(MERGE_OP));
        assert_eq!(Cap::by_id("merge"), None);
    }

    #[test]
    fn missing_names_only_what_the_engine_lacks() {
        let def = every_op();
        assert!(Caps::latest().missing(&def).is_empty());
        // An engine that lists no LLB caps cannot say; the engine judges.
        assert!(Caps::offline().missing(&def).is_empty());
        let mut caps = Caps::latest();
        caps.llb.as_mut().unwrap().remove(MERGE_OP.id);
        assert_eq!(caps.missing(&def), ["mergeop (BuildKit 0.10, Docker 23.0)"]);
        let unknown = pb::Definition {
            metadata: BTreeMap::from([(
                "sha256:0".to_string(),
                pb::OpMetadata {
                    caps: [("exec.future".to_string(), true)].into_iter().collect(),
                    ..Default::default()
                },
            )])
            .into_iter()
            .collect(),
            ..Default::default()
        };
        assert_eq!(caps.missing(&unknown), ["exec.future (a newer BuildKit)"]);
    }

    #[test]
    fn each_release_takes_the_fallbacks_it_needs() {
        // BuildKit 0.8 (Docker 20.10): copies, no Warn, own vertices for --no-cache.
        let c = reported_by(BUILDKIT_0_8);
        assert!(!c.merge_layers() && !c.local_differ_none() && !c.warnings());
        assert!(!c.attestations());
        assert!(c.evaluate() && c.ref_array() && c.stat_file() && c.read_dir());
        assert!(c.resolve_mode() && c.return_result() && c.return_map());
        // BuildKit 0.10 (Docker 23.0): layers and warnings.
        let c = reported_by(BUILDKIT_0_10);
        assert!(c.merge_layers() && c.local_differ_none() && c.warnings());
        assert!(!c.attestations());
        // BuildKit 0.11 (Docker 24.0): attestations reach the exporter, and every cap kiln asks for.
        let c = reported_by(BUILDKIT_0_11);
        assert!(c.attestations());
        assert_eq!(c, Caps::latest());
        // BuildKit 0.5 (Docker 19.03): no evaluate, no Ref form.
        let c = reported_by(BUILDKIT_0_5);
        assert!(!c.evaluate() && !c.ref_array() && c.stat_file());
    }

    #[test]
    fn merge_layers_needs_both_mergeop_and_diffop() {
        let only = |id: &str| {
            let all = Caps::latest();
            Caps {
                llb: all.llb.map(|l| l.into_iter().filter(|c| c != id).collect()),
                ..all
            }
        };
        assert!(!only(MERGE_OP.id).merge_layers());
        assert!(!only(DIFF_OP.id).merge_layers());
        assert!(Caps::latest().merge_layers());
    }

    #[test]
    fn an_engine_listing_nothing_has_the_frozen_gateway_caps_and_no_llb_caps() {
        let c = Caps::offline();
        assert_eq!(c.gateway, ids(DEFAULT_GATEWAY));
        assert_eq!(c.llb, None);
        assert!(!c.merge_layers() && !c.return_result() && !c.stat_file());
        // A disabled cap is not offered (a graphdriver Docker disables mergeop).
        let cap = |c: Cap, enabled| ApiCap {
            id: c.id.into(),
            enabled,
            ..Default::default()
        };
        let c = Caps::from_ping(
            &[cap(RETURN_RESULT, true)],
            &[cap(MERGE_OP, false), cap(DIFF_OP, true)],
        );
        assert!(c.return_result() && !c.merge_layers() && !c.stat_file());
        assert!(
            c.missing(&every_op())
                .iter()
                .any(|m| m.starts_with("mergeop "))
        );
    }
}
