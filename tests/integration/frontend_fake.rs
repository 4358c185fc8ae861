//! Protocol edge cases against a fake LLBBridge (the real-engine proof is tests/e2e).
//! The fake records every Solve and the final Return, and can play an old engine.

mod sbom;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bollard_buildkit_proto::google::protobuf::Any as RpcAny;
use bollard_buildkit_proto::google::rpc::Status as Rpc;
use bollard_buildkit_proto::moby::buildkit::v1::apicaps::ApiCap;
use bollard_buildkit_proto::moby::buildkit::v1::frontend::{
    self as gw,
    llb_bridge_server::{LlbBridge, LlbBridgeServer},
};
use serde::Deserialize;
use tonic::{Request, Response, Status};

use crate::common::caps::{self, Cap};
use crate::common::{
    Options, frontend_options, frontend_options_without_session, frontend_over, ops, pb,
};

const SPEC: &str = "version: 1\nname: w\npython:\n  base: python:3.12-slim\n  version: \"3.12\"\nsystem:\n  runtime: [libpq5]\nrequirements:\n  core: [req.txt]\napp: {src: [app]}\ncmd: [python, -m, app]\nverify: [\"python -c 'import app'\"]\nvariants:\n  minimal: {requirements: [core]}\n  full: {requirements: [core], env: {FULL: \"1\"}}\n";
const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

#[derive(Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    llb_caps: Vec<Cap>,
    frontend_caps: Vec<Cap>,
    solves: Vec<gw::SolveRequest>,
    stats: usize,
    returned: Option<gw::ReturnRequest>,
    /// Solves whose exec args contain any of these fail.
    fail_solves_containing: Vec<String>,
    /// The exit status such a failed exec reports (100 when unset: apt's).
    fail_status: Option<i32>,
    /// Evaluated solves take this long; the most seen in flight at once is recorded.
    evaluate_delay: Option<std::time::Duration>,
    in_flight: usize,
    max_in_flight: usize,
    /// Solves of the build context (the inputs' read after the spec's, and pre-flight's
    /// context paths) take this long; ResolveImageConfig notes which were in flight.
    context_solve_delay: Option<std::time::Duration>,
    inputs_reads_in_flight: usize,
    resolved_during_inputs_read: bool,
    /// Ping answers after this long (a slow engine).
    ping_delay: Option<std::time::Duration>,
    /// Solve never answers (the engine or its connection is gone mid-solve).
    hang_solve: bool,
    /// Failed solves carry BuildKit's typed details (`errdefs.Vertex` naming the op) and
    /// a newer engine's message; otherwise BuildKit 0.8's bare `executor failed running`.
    errdefs_details: bool,
    /// ... naming the failed vertex only by a digest kiln does not know (Docker 28
    /// normalises ops before solving), so the Go-quoted command must identify it.
    unknown_vertex_only: bool,
    warnings: Vec<gw::WarnRequest>,
    /// The `range.length` of each ReadFile (-1: no range asked for).
    read_lengths: Vec<i64>,
    /// The verify exec, played: a check whose command contains the needle ends with that
    /// status (`1`, `timeout`...), every other one with 0.
    verify_outcomes: Vec<(String, String)>,
    /// Each verify solve's results file, by ref id.
    verify_results: HashMap<String, String>,
    /// StatFile says these do not exist; ReadDir says these directories are empty.
    missing_paths: Vec<String>,
    empty_dirs: Vec<String>,
    /// ReadDir answers these directories with these names (unset: one unnamed entry).
    dirs: HashMap<String, Vec<String>>,
    /// ResolveImageConfig fails (no such image).
    no_base_image: bool,
    /// The base exists for this architecture only: ResolveImageConfig answers with its
    /// config whatever platform is asked, as BuildKit does for a single-manifest image.
    /// Unset: a multi-platform base, whose config is the asked platform's.
    single_platform_base: Option<&'static str>,
}

#[derive(Clone)]
struct Fake(Arc<Mutex<State>>);

/// The results file a verify exec in `def` would write: one `<i> <status>` line per
/// `check <i> <timeout> <command>` line of its script.
fn play_verify(def: &pb::Definition, outcomes: &[(String, String)]) -> Option<String> {
    let script = ops(def).iter().find_map(|o| match &o.op {
        Some(pb::op::Op::Exec(e)) => {
            let args = &e.meta.as_ref()?.args;
            args.get(2).filter(|s| s.contains("kiln-verify")).cloned()
        }
        _ => None,
    })?;
    let mut out = String::new();
    for line in script.lines().filter(|l| l.starts_with("check ")) {
        let mut parts = line.splitn(4, ' ');
        let (_, i, _, command) = (parts.next(), parts.next()?, parts.next(), parts.next()?);
        let status = outcomes
            .iter()
            .find(|(needle, _)| command.contains(needle.as_str()))
            .map(|(_, s)| s.as_str())
            .unwrap_or("0");
        out.push_str(&format!("{i} {status}\n"));
    }
    Some(out)
}

fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// How an engine reports a failed exec: BuildKit >= 0.10 quotes the command Go-style and
/// attaches `errdefs.Vertex` (JSON under its typeurl); 0.8 prints the args in brackets.
fn engine_failure(digest: &str, args: &str, details: bool, code: i32) -> Status {
    if !details {
        return Status::unknown(format!(
            "executor failed running [{args}]: exit code: {code}"
        ));
    }
    let status = Rpc {
        code: tonic::Code::Unknown as i32,
        message: format!("process {args:?} did not complete successfully: exit code: {code}"),
        details: vec![
            RpcAny {
                type_url: "github.com/moby/buildkit/errdefs.Vertex+json".into(),
                value: format!(r#"{{"digest":"{digest}"}}"#).into_bytes(),
            },
            // Docker 28 names the vertex by its own (normalised) digest, unknown to kiln.
            RpcAny {
                type_url: "github.com/moby/buildkit/errdefs.Vertex+json".into(),
                value: br#"{"digest":"sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"}"#.to_vec(),
            },
        ],
    };
    Status::with_details(
        tonic::Code::Unknown,
        status.message.clone(),
        prost::Message::encode_to_vec(&status).into(),
    )
}

type ExecStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<gw::ExecMessage, Status>> + Send>>;

fn api_caps(list: &[Cap]) -> Vec<ApiCap> {
    list.iter()
        .map(|c| ApiCap {
            id: c.id.to_string(),
            enabled: true,
            ..Default::default()
        })
        .collect()
}

#[tonic::async_trait]
impl LlbBridge for Fake {
    async fn ping(
        &self,
        _: Request<gw::PingRequest>,
    ) -> Result<Response<gw::PongResponse>, Status> {
        let delay = self.0.lock().unwrap().ping_delay;
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let s = self.0.lock().unwrap();
        Ok(Response::new(gw::PongResponse {
            frontend_api_caps: api_caps(&s.frontend_caps),
            llb_caps: api_caps(&s.llb_caps),
            workers: vec![],
        }))
    }
    async fn solve(
        &self,
        r: Request<gw::SolveRequest>,
    ) -> Result<Response<gw::SolveResponse>, Status> {
        if self.0.lock().unwrap().hang_solve {
            std::future::pending::<()>().await;
        }
        let req = r.into_inner();
        let named = |want: &dyn Fn(&str) -> bool| {
            req.definition.as_ref().is_some_and(|d| {
                d.metadata.values().any(|m| {
                    m.description
                        .get("llb.customname")
                        .is_some_and(|n| want(n.as_str()))
                })
            })
        };
        // The spec's own read is named after the spec file; the context's after its files.
        let preflight = named(&|n| n == "context paths");
        let inputs_read = named(&|n| n.starts_with("[internal] load ") && !n.contains(".yaml"));
        let delay = self.0.lock().unwrap().context_solve_delay;
        if let Some(d) = delay.filter(|_| preflight || inputs_read) {
            let count = |by: isize| {
                let mut s = self.0.lock().unwrap();
                if inputs_read {
                    s.inputs_reads_in_flight = s.inputs_reads_in_flight.wrapping_add_signed(by);
                }
            };
            count(1);
            tokio::time::sleep(d).await;
            count(-1);
        }
        let delay = self
            .0
            .lock()
            .unwrap()
            .evaluate_delay
            .filter(|_| req.evaluate);
        if let Some(d) = delay {
            {
                let mut s = self.0.lock().unwrap();
                s.in_flight += 1;
                s.max_in_flight = s.max_in_flight.max(s.in_flight);
            }
            tokio::time::sleep(d).await;
            self.0.lock().unwrap().in_flight -= 1;
        }
        let mut s = self.0.lock().unwrap();
        for needle in &s.fail_solves_containing {
            let failing = req.definition.as_ref().and_then(|d| {
                d.def.iter().find_map(|bytes| {
                    let op = <pb::Op as prost::Message>::decode(bytes.as_slice()).ok()?;
                    let Some(pb::op::Op::Exec(e)) = &op.op else {
                        return None;
                    };
                    let args = e.meta.as_ref()?.args.join(" ");
                    args.contains(needle.as_str())
                        .then(|| (digest_of(bytes), args))
                })
            });
            if let Some((digest, args)) = failing {
                let digest = if s.unknown_vertex_only {
                    "sha256:eeee".to_string()
                } else {
                    digest
                };
                let code = s.fail_status.unwrap_or(100);
                return Err(engine_failure(&digest, &args, s.errdefs_details, code));
            }
        }
        let results = req
            .definition
            .as_ref()
            .and_then(|d| play_verify(d, &s.verify_outcomes));
        s.solves.push(req);
        let id = format!("ref-{}", s.solves.len());
        if let Some(r) = results {
            s.verify_results.insert(id.clone(), r);
        }
        Ok(Response::new(gw::SolveResponse {
            r#ref: String::new(),
            result: Some(gw::Result {
                result: Some(gw::result::Result::Ref(gw::Ref { id, def: None })),
                ..Default::default()
            }),
        }))
    }
    async fn read_file(
        &self,
        r: Request<gw::ReadFileRequest>,
    ) -> Result<Response<gw::ReadFileResponse>, Status> {
        let mut s = self.0.lock().unwrap();
        let length = r.get_ref().range.as_ref().map(|r| r.length).unwrap_or(-1);
        s.read_lengths.push(length);
        if r.get_ref().file_path == "/tmp/kiln-verify/results" {
            return match s.verify_results.get(&r.get_ref().r#ref) {
                Some(t) => Ok(Response::new(gw::ReadFileResponse {
                    data: t.clone().into_bytes(),
                })),
                None => Err(Status::not_found("no verify results in that ref")),
            };
        }
        match s.files.get(&r.get_ref().file_path) {
            // The range asked for, as BuildKit reads it.
            Some(d) => {
                let (start, len) = r
                    .get_ref()
                    .range
                    .as_ref()
                    .map_or((0, d.len()), |r| (r.offset as usize, r.length as usize));
                let start = start.min(d.len());
                let end = start.saturating_add(len).min(d.len());
                Ok(Response::new(gw::ReadFileResponse {
                    data: d[start..end].to_vec(),
                }))
            }
            None => Err(Status::not_found(format!(
                "open {}: no such file or directory",
                r.get_ref().file_path
            ))),
        }
    }
    async fn resolve_image_config(
        &self,
        r: Request<gw::ResolveImageConfigRequest>,
    ) -> Result<Response<gw::ResolveImageConfigResponse>, Status> {
        assert_eq!(r.get_ref().r#ref, "docker.io/library/python:3.12-slim");
        {
            let mut s = self.0.lock().unwrap();
            s.resolved_during_inputs_read |= s.inputs_reads_in_flight > 0;
        }
        if self.0.lock().unwrap().no_base_image {
            return Err(Status::unknown(
                "docker.io/library/python:3.12-slim: not found",
            ));
        }
        let arch = match self.0.lock().unwrap().single_platform_base {
            Some(arch) => arch.to_string(),
            None => r
                .get_ref()
                .platform
                .as_ref()
                .map_or("amd64".into(), |p| p.architecture.clone()),
        };
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","config":{{"Env":["PATH=/usr/local/bin:/usr/bin:/bin","PYTHON_VERSION=3.12.8"],"Cmd":["python3"]}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        );
        Ok(Response::new(gw::ResolveImageConfigResponse {
            digest: DIGEST.into(),
            config: config.into_bytes(),
            r#ref: String::new(),
        }))
    }
    async fn stat_file(
        &self,
        r: Request<gw::StatFileRequest>,
    ) -> Result<Response<gw::StatFileResponse>, Status> {
        let mut s = self.0.lock().unwrap();
        let path = &r.get_ref().path;
        if s.missing_paths.contains(path) {
            return Err(Status::not_found(format!(
                "stat {path}: no such file or directory"
            )));
        }
        if path == "." {
            s.stats += 1;
        }
        Ok(Response::new(gw::StatFileResponse { stat: None }))
    }
    async fn r#return(
        &self,
        r: Request<gw::ReturnRequest>,
    ) -> Result<Response<gw::ReturnResponse>, Status> {
        self.0.lock().unwrap().returned = Some(r.into_inner());
        Ok(Response::new(gw::ReturnResponse {}))
    }
    async fn resolve_source_meta(
        &self,
        _: Request<gw::ResolveSourceMetaRequest>,
    ) -> Result<Response<gw::ResolveSourceMetaResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn read_dir(
        &self,
        r: Request<gw::ReadDirRequest>,
    ) -> Result<Response<gw::ReadDirResponse>, Status> {
        let s = self.0.lock().unwrap();
        let dir = &r.get_ref().dir_path;
        if let Some(names) = s.dirs.get(dir) {
            let entries = names
                .iter()
                .map(|n| bollard_buildkit_proto::fsutil::types::Stat {
                    path: n.clone(),
                    ..Default::default()
                })
                .collect();
            return Ok(Response::new(gw::ReadDirResponse { entries }));
        }
        let entries = if s.empty_dirs.contains(&r.get_ref().dir_path) {
            vec![]
        } else {
            vec![Default::default()]
        };
        Ok(Response::new(gw::ReadDirResponse { entries }))
    }
    async fn evaluate(
        &self,
        _: Request<gw::EvaluateRequest>,
    ) -> Result<Response<gw::EvaluateResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn inputs(
        &self,
        _: Request<gw::InputsRequest>,
    ) -> Result<Response<gw::InputsResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn new_container(
        &self,
        _: Request<gw::NewContainerRequest>,
    ) -> Result<Response<gw::NewContainerResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn release_container(
        &self,
        _: Request<gw::ReleaseContainerRequest>,
    ) -> Result<Response<gw::ReleaseContainerResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    type ExecProcessStream = ExecStream;
    async fn exec_process(
        &self,
        _: Request<tonic::Streaming<gw::ExecMessage>>,
    ) -> Result<Response<ExecStream>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn read_file_container(
        &self,
        _: Request<gw::ReadFileRequest>,
    ) -> Result<Response<gw::ReadFileResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn read_dir_container(
        &self,
        _: Request<gw::ReadDirRequest>,
    ) -> Result<Response<gw::ReadDirResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn stat_file_container(
        &self,
        _: Request<gw::StatFileRequest>,
    ) -> Result<Response<gw::StatFileResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn warn(
        &self,
        r: Request<gw::WarnRequest>,
    ) -> Result<Response<gw::WarnResponse>, Status> {
        self.0.lock().unwrap().warnings.push(r.into_inner());
        Ok(Response::new(gw::WarnResponse {}))
    }
}

/// A current engine's LLB caps: every one kiln uses.
const MODERN_LLB: &[Cap] = &[
    caps::SOURCE_IMAGE,
    caps::SOURCE_LOCAL,
    caps::SOURCE_LOCAL_INCLUDE_PATTERNS,
    caps::SOURCE_LOCAL_EXCLUDE_PATTERNS,
    caps::SOURCE_LOCAL_FOLLOW_PATHS,
    caps::SOURCE_LOCAL_SHARED_KEY_HINT,
    caps::SOURCE_LOCAL_SESSION_ID,
    caps::SOURCE_LOCAL_DIFFER,
    caps::EXEC_META_BASE,
    caps::EXEC_META_NETWORK,
    caps::EXEC_MOUNT_BIND,
    caps::EXEC_MOUNT_CACHE,
    caps::EXEC_MOUNT_CACHE_SHARING,
    caps::EXEC_MOUNT_SELECTOR,
    caps::EXEC_MOUNT_SECRET,
    caps::FILE_BASE,
    caps::META_DESCRIPTION,
    caps::META_IGNORE_CACHE,
    caps::MERGE_OP,
    caps::DIFF_OP,
    caps::SOURCE_HTTP,
    caps::SOURCE_HTTP_CHECKSUM,
];
/// A current engine's gateway caps, but for `GATEWAY_WARNINGS`, which the tests that need
/// it add.
const MODERN_FRONTEND: &[Cap] = &[
    caps::READ_DIR,
    caps::SOLVE_BASE,
    caps::RESOLVE_IMAGE,
    caps::READ_FILE,
    caps::RETURN_RESULT,
    caps::RETURN_MAP,
    caps::PROTO_REF_ARRAY,
    caps::STAT_FILE,
    caps::GATEWAY_EVALUATE_SOLVE,
];

/// An old engine's gateway caps: no evaluate, no refarray, no warnings (by BuildKit's
/// sources, as before 0.7, Docker 19.03; `caps::ALL` has each cap's release).
const OLD_FRONTEND: &[Cap] = &[
    caps::SOLVE_BASE,
    caps::RESOLVE_IMAGE,
    caps::READ_FILE,
    caps::RETURN_RESULT,
    caps::RETURN_MAP,
    caps::STAT_FILE,
];

/// `list` without `gone`: an engine that lacks those caps.
fn without(list: &[Cap], gone: &[Cap]) -> Vec<Cap> {
    list.iter().copied().filter(|c| !gone.contains(c)).collect()
}

fn fake(llb: &[Cap], frontend: &[Cap]) -> Fake {
    let mut s = State {
        llb_caps: llb.to_vec(),
        frontend_caps: frontend.to_vec(),
        ..Default::default()
    };
    s.files
        .insert("worker.yaml".into(), SPEC.as_bytes().to_vec());
    // The context's requirement file: kiln reads it (and its includes) before planning.
    s.files.insert("req.txt".into(), b"arq==0.26.3\n".to_vec());
    Fake(Arc::new(Mutex::new(s)))
}

fn opts(pairs: &[(&str, &str)]) -> Options {
    let mut all = vec![("filename", "worker.yaml")];
    all.extend_from_slice(pairs);
    frontend_options(&all)
}

/// The fake engine answering on one end of an in-memory pipe.
fn serve_fake(f: &Fake, io: tokio::io::DuplexStream) {
    // BuildKit's gateway server takes at most gRPC's default 4 MiB from a frontend.
    let svc = LlbBridgeServer::new(f.clone()).max_decoding_message_size(4 << 20);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(io)))
            .await
            .ok();
    });
}

async fn run(f: &Fake, o: Options) -> gw::ReturnRequest {
    let (client, server) = tokio::io::duplex(1 << 20);
    serve_fake(f, server);
    frontend_over(client, o).await.await.unwrap();
    f.0.lock()
        .unwrap()
        .returned
        .clone()
        .expect("the frontend returned")
}

fn error_message(r: &gw::ReturnRequest) -> String {
    r.error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn builds_the_target_with_a_pinned_base_and_its_config() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    let r = run(&f, opts(&[("target", "full"), ("label:team", "ml")])).await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    let result = r.result.unwrap();
    let cfg: serde_json::Value =
        serde_json::from_slice(&result.metadata["containerimage.config"]).unwrap();
    assert_eq!(
        cfg["config"]["Env"][0],
        "PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin"
    );
    assert!(
        cfg["config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("FULL=1"))
    );
    assert!(
        cfg["config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("PYTHON_VERSION=3.12.8"))
    );
    assert_eq!(cfg["config"]["Labels"]["team"], "ml");
    assert!(matches!(result.result, Some(gw::result::Result::Ref(_))));

    let s = f.0.lock().unwrap();
    // Every read is bounded: no file kiln reads may be larger than 1 MiB.
    assert!(!s.read_lengths.is_empty());
    assert!(
        s.read_lengths.iter().all(|l| *l == (1 << 20) + 1),
        "{:?}",
        s.read_lengths
    );
    // Solves: spec file, the context inputs (requirement files, .dockerignore), the app's
    // pre-flight source, the image, the verify step.
    assert_eq!(s.solves.len(), 5);
    let image_ops = ops(s.solves[3].definition.as_ref().unwrap());
    let src = image_ops
        .iter()
        .find_map(|o| match &o.op {
            Some(pb::op::Op::Source(s)) if s.identifier.starts_with("docker-image") => {
                Some(s.identifier.clone())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(
        src,
        format!("docker-image://docker.io/library/python:3.12-slim@{DIGEST}")
    );
    assert!(
        image_ops
            .iter()
            .any(|o| matches!(o.op, Some(pb::op::Op::Merge(_)))),
        "mergeop used when the engine has it"
    );
    assert!(s.solves[3].evaluate, "the image is evaluated before verify");
    assert!(s.solves[4].evaluate, "verify is evaluated");
    assert!(
        s.solves
            .iter()
            .all(|r| r.allow_result_return && r.allow_result_array_ref)
    );
}

#[tokio::test]
async fn old_engine_gets_copies_deprecated_refs_and_statfile_evaluation() {
    // An old engine: no mergeop or diffop, no differ (before BuildKit 0.9 and 0.10), no
    // evaluate, no refarray.
    let llb = without(
        MODERN_LLB,
        &[caps::MERGE_OP, caps::DIFF_OP, caps::SOURCE_LOCAL_DIFFER],
    );
    let f = fake(&llb, OLD_FRONTEND);
    let r = run(&f, opts(&[])).await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    assert!(matches!(
        r.result.unwrap().result,
        Some(gw::result::Result::RefDeprecated(_))
    ));
    let s = f.0.lock().unwrap();
    let image_ops = ops(s.solves[3].definition.as_ref().unwrap());
    assert!(
        !image_ops
            .iter()
            .any(|o| matches!(o.op, Some(pb::op::Op::Merge(_))))
    );
    assert!(!s.solves[4].evaluate);
    assert_eq!(s.stats, 2, "the image, then verify, forced by StatFile");
}

/// The image solve's base: its source attrs, and whether it ignores the cache.
fn base_attrs_and_ignore_cache(f: &Fake) -> (HashMap<String, String>, bool) {
    let s = f.0.lock().unwrap();
    let def = s.solves[3].definition.as_ref().unwrap();
    def.def
        .iter()
        .find_map(|bytes| match prost::Message::decode(bytes.as_slice()) {
            Ok(pb::Op {
                op: Some(pb::op::Op::Source(src)),
                ..
            }) if src.identifier.starts_with("docker-image") => {
                let ignored = def.metadata[&digest_of(bytes)].ignore_cache;
                Some((src.attrs.into_iter().collect(), ignored))
            }
            _ => None,
        })
        .unwrap()
}

#[tokio::test]
async fn no_cache_builds_get_vertices_of_their_own_on_every_engine() {
    // BuildKit 0.8 to 0.11 panics when builds with and without --no-cache load the same
    // op (moby/buildkit#3953), and Docker 28.5 failed a cached build beside a --no-cache
    // one ("failed to get state for index 0"): a --no-cache build's base carries its
    // session, so none of its ops is another build's.
    let old_llb = without(MODERN_LLB, &[caps::MERGE_OP, caps::SOURCE_LOCAL_DIFFER]);
    let own = HashMap::from([("kiln.build".to_string(), "session-1".to_string())]);

    let f = fake(&old_llb, OLD_FRONTEND);
    let r = run(&f, opts(&[("no-cache", "")])).await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    assert_eq!(base_attrs_and_ignore_cache(&f), (own.clone(), true));

    // The same build without --no-cache shares its ops with every other build, as before.
    let f = fake(&old_llb, OLD_FRONTEND);
    run(&f, opts(&[])).await;
    assert_eq!(base_attrs_and_ignore_cache(&f), (HashMap::new(), false));

    // A current engine: the same.
    let modern: Vec<Cap> = MODERN_FRONTEND
        .iter()
        .copied()
        .chain([caps::GATEWAY_WARNINGS])
        .collect();
    let f = fake(MODERN_LLB, &modern);
    run(&f, opts(&[("no-cache", "")])).await;
    assert_eq!(base_attrs_and_ignore_cache(&f), (own.clone(), true));
    let f = fake(MODERN_LLB, &modern);
    run(&f, opts(&[])).await;
    assert_eq!(base_attrs_and_ignore_cache(&f), (HashMap::new(), false));

    // Without a session (a bare engine), the build still gets a value of its own.
    let f = fake(&old_llb, OLD_FRONTEND);
    let o = frontend_options_without_session(&[("filename", "worker.yaml"), ("no-cache", "")]);
    run(&f, o).await;
    let (attrs, _) = base_attrs_and_ignore_cache(&f);
    assert!(
        attrs.get("kiln.build").is_some_and(|v| !v.is_empty()),
        "{attrs:?}"
    );
}

/// A definition that needs caps the engine lacks is refused before anything is built,
/// each cap named with the first release that has it (`file.base` came with BuildKit 0.5,
/// the exec caps with caps reporting itself, 0.3); a cap the definition does not use (no
/// secret here) is not named.
#[tokio::test]
async fn a_missing_cap_is_refused_by_name_and_first_release() {
    let llb = without(
        MODERN_LLB,
        &[
            caps::FILE_BASE,
            caps::EXEC_MOUNT_SECRET,
            caps::EXEC_MOUNT_CACHE,
        ],
    );
    let f = fake(&llb, MODERN_FRONTEND);
    let r = run(&f, opts(&[])).await;
    assert_eq!(
        r.error.as_ref().map(|e| e.code),
        Some(tonic::Code::FailedPrecondition as i32)
    );
    assert_eq!(
        error_message(&r),
        "this BuildKit lacks LLB capabilities kiln needs: exec.mount.cache (BuildKit 0.3, Docker 18.09), file.base (BuildKit 0.5, Docker 19.03); upgrade the engine (see docs/usage.md)"
    );
    assert_eq!(
        f.0.lock().unwrap().solves.len(),
        3,
        "spec, context inputs, app pre-flight: nothing was built"
    );
}

#[tokio::test]
async fn spec_errors_come_back_with_file_line_and_column() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    f.0.lock().unwrap().files.insert("worker.yaml".into(), b"version: 1\nname: w\npython:\n  base: python:3.12-slim\nsystem:\n  runtime: [\"Bad Pkg\"]\n".to_vec());
    let r = run(&f, opts(&[])).await;
    let msg = error_message(&r);
    assert!(
        msg.starts_with("worker.yaml:6:13: error: invalid apt package name `Bad Pkg`"),
        "{msg}"
    );
    // Unknown: BuildKit prints other codes as a `InvalidArgument: ` prefix at each hop.
    assert_eq!(r.error.unwrap().code, tonic::Code::Unknown as i32);
}

#[tokio::test]
async fn unknown_target_and_missing_spec_are_clear() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    let msg = error_message(&run(&f, opts(&[("target", "gpu")])).await);
    assert!(
        msg.contains("unknown target `gpu`") && msg.contains("minimal, full"),
        "{msg}"
    );
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    let msg = error_message(
        &run(
            &f,
            frontend_options_without_session(&[("filename", "nope.yaml")]),
        )
        .await,
    );
    assert!(
        msg.contains("cannot read the spec `nope.yaml`") && msg.contains("--file"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_failing_verify_names_the_spec_line() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    f.0.lock().unwrap().verify_outcomes = vec![("import app'".into(), "1".into())];
    let r = run(&f, opts(&[])).await;
    let msg = error_message(&r);
    assert_eq!(
        msg,
        "worker.yaml:12:10: error: verify command `python -c 'import app'` failed on the minimal image: exit code 1 (help: fix the image or the command)"
    );
    let sources = sources_of(&r);
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].ranges[0].start.line, 12);
}

/// Verify that cannot run at all (its solve fails) is an error at the first check, with
/// what verify needs from the image.
#[tokio::test]
async fn verify_that_cannot_run_names_the_first_check() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    f.0.lock().unwrap().fail_solves_containing = vec!["kiln-verify".into()];
    let r = run(&f, opts(&[])).await;
    let msg = error_message(&r);
    assert!(
        msg.starts_with(
            "worker.yaml:12:10: error: verify could not run on the minimal image: build failed: "
        ) && msg.ends_with(
            "(help: verify needs /bin/sh, sleep, kill and a writable /tmp in the image; `--build-arg KILN_SKIP_VERIFY=1` builds without it)"
        ),
        "{msg}"
    );
    assert_eq!(sources_of(&r)[0].ranges[0].start.line, 12);
}

/// Issue 10, 6: all checks of one image in ONE exec (one container start), each failing
/// one still named by its spec line; a timeout says so; the health check is checked too;
/// per-variant commands come after the spec-wide ones.
#[tokio::test]
async fn verify_runs_in_one_container_and_every_failure_is_named() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    spec_with(
        &f,
        "verify: [\"python -c 'import app'\"]\n",
        "verify:\n  - \"true one\"\n  - \"false two\"\n  - {run: \"sleep three\", timeout: 2s}\nverify_timeout: 60s\nhealthcheck: {cmd: [curl, -f, localhost]}\n",
    );
    {
        let mut s = f.0.lock().unwrap();
        let spec = String::from_utf8(s.files["worker.yaml"].clone())
            .unwrap()
            .replace(
                "full: {requirements: [core], env: {FULL: \"1\"}}",
                "full: {requirements: [core], verify: [\"false four\"]}",
            );
        s.files.insert("worker.yaml".into(), spec.into_bytes());
        s.verify_outcomes = vec![
            ("false two".into(), "1".into()),
            ("sleep three".into(), "timeout".into()),
            ("curl".into(), "127".into()),
        ];
    }
    let r = run(&f, opts(&[])).await;
    let msg = error_message(&r);
    let lines: Vec<&str> = msg.lines().collect();
    assert_eq!(lines.len(), 3, "{msg}");
    assert_eq!(
        lines[0],
        "worker.yaml:14:5: error: verify command `false two` failed on the minimal image: exit code 1 (help: fix the image or the command)"
    );
    assert!(
        lines[1].starts_with("worker.yaml:15:11: error: verify command `sleep three` failed on the minimal image: it did not finish within 2 s and was killed"),
        "{msg}"
    );
    assert!(
        lines[2].starts_with("worker.yaml:17:14: error: the health check `curl -f localhost` failed on the minimal image: exit code 127 (command not found in the image)")
            && lines[2].ends_with("(help: install what it calls, fix it, or set `healthcheck.verify: false`)"),
        "{msg}"
    );
    assert_eq!(sources_of(&r).len(), 3, "one errdefs.Source per failure");
    {
        let s = f.0.lock().unwrap();
        let verify_solves: Vec<&gw::SolveRequest> = s
            .solves
            .iter()
            .filter(|r| play_verify(r.definition.as_ref().unwrap(), &[]).is_some())
            .collect();
        assert_eq!(verify_solves.len(), 1, "one verify solve");
        let script = play_verify(verify_solves[0].definition.as_ref().unwrap(), &[]).unwrap();
        assert_eq!(
            script.lines().count(),
            4,
            "three commands and the health check"
        );
    }

    // The variant's own command is added after the spec-wide ones.
    let f2 = fake(MODERN_LLB, MODERN_FRONTEND);
    f2.0.lock().unwrap().files = f.0.lock().unwrap().files.clone();
    f2.0.lock().unwrap().verify_outcomes = vec![("false four".into(), "1".into())];
    let msg = error_message(&run(&f2, opts(&[("target", "full")])).await);
    assert!(
        msg.starts_with(
            "worker.yaml:20:41: error: verify command `false four` failed on the full image"
        ),
        "{msg}"
    );
}

#[tokio::test]
async fn several_platforms_return_a_ref_map() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    let r = run(&f, opts(&[("platform", "linux/amd64,linux/arm64")])).await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    let result = r.result.unwrap();
    let Some(gw::result::Result::Refs(map)) = &result.result else {
        panic!("{:?}", result.result)
    };
    assert_eq!(map.refs.len(), 2);
    assert!(
        result
            .metadata
            .contains_key("containerimage.config/linux/arm64")
    );
    let platforms: serde_json::Value =
        serde_json::from_slice(&result.metadata["refs.platforms"]).unwrap();
    assert_eq!(platforms["Platforms"][1]["ID"], "linux/arm64");
}

/// Issue 12: a base without the requested platform (BuildKit resolves a single-platform
/// image for any platform) fails before any step, at `python.base`, never a wrong image.
#[tokio::test]
async fn a_base_without_the_requested_platform_fails_at_python_base() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    f.0.lock().unwrap().single_platform_base = Some("amd64");
    let r = run(&f, opts(&[("platform", "linux/arm64")])).await;
    let msg = error_message(&r);
    assert!(
        msg.starts_with("worker.yaml:4:9: error: the `python.base` image `python:3.12-slim` has no linux/arm64 image: the engine resolved a linux/amd64 one"),
        "{msg}"
    );
    assert_eq!(
        sources_of(&r).len(),
        1,
        "the spec line travels as a source detail"
    );
    let execs =
        f.0.lock()
            .unwrap()
            .solves
            .iter()
            .filter_map(|r| r.definition.as_ref())
            .any(|d| {
                ops(d)
                    .iter()
                    .any(|o| matches!(o.op, Some(pb::op::Op::Exec(_))))
            });
    assert!(!execs, "no step was solved");

    // Both platforms asked, one missing: the same error; the one it has is fine alone.
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    f.0.lock().unwrap().single_platform_base = Some("amd64");
    let r = run(&f, opts(&[("platform", "linux/amd64,linux/arm64")])).await;
    assert!(
        error_message(&r).contains("has no linux/arm64 image"),
        "{}",
        error_message(&r)
    );
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    f.0.lock().unwrap().single_platform_base = Some("amd64");
    let r = run(&f, opts(&[("platform", "linux/amd64")])).await;
    assert!(r.error.is_none(), "{}", error_message(&r));
}

/// Issue 10, 7: the platforms of one build are built at once, each step named with its
/// platform (`[linux/arm64] ...`, merged into `[linux/arm64 image] ...`); one platform
/// keeps the plain names.
#[tokio::test]
async fn several_platforms_build_at_once_with_prefixed_steps() {
    let names = |f: &Fake| -> Vec<String> {
        f.0.lock()
            .unwrap()
            .solves
            .iter()
            .flat_map(|r| r.definition.as_ref().unwrap().metadata.values().cloned())
            .filter_map(|m| m.description.get("llb.customname").cloned())
            .collect()
    };
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    f.0.lock().unwrap().evaluate_delay = Some(std::time::Duration::from_millis(300));
    let r = run(&f, opts(&[("platform", "linux/amd64,linux/arm64")])).await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    assert!(
        f.0.lock().unwrap().max_in_flight >= 2,
        "the two platforms' images were solved at the same time"
    );
    let all = names(&f);
    for p in ["linux/amd64", "linux/arm64"] {
        assert!(
            all.iter()
                .any(|n| n == &format!("[{p}] uv install: core (worker.yaml:9)")
                    || n == &format!("[{p}] pip install: core (worker.yaml:9)")),
            "{p}: {all:?}"
        );
        assert!(
            all.iter().any(|n| n == &format!("[{p} image] app")),
            "{p}: {all:?}"
        );
    }

    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    let r = run(&f, opts(&[("platform", "linux/arm64")])).await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    let all = names(&f);
    assert!(all.iter().any(|n| n == "[image] app"), "{all:?}");
    assert!(!all.iter().any(|n| n.contains("linux/")), "{all:?}");
}

#[tokio::test]
async fn subrequests_describe_targets_outline_lint() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    let r = run(&f, opts(&[("requestid", "frontend.targets")])).await;
    let m = r.result.unwrap().metadata;
    let targets: GoTargetList = serde_json::from_slice(&m["result.json"]).unwrap();
    assert_eq!(targets.targets[0].name, "minimal");
    assert!(targets.targets[0].default);
    assert!(String::from_utf8_lossy(&m["result.txt"]).contains("minimal (default)"));

    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    let r = run(&f, opts(&[("requestid", "frontend.subrequests.describe")])).await;
    let list: serde_json::Value =
        serde_json::from_slice(&r.result.unwrap().metadata["result.json"]).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 4);

    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    f.0.lock().unwrap().files.insert("worker.yaml".into(), b"version: 1\nname: w\nargs: {IMG: python:3.12-slim}\npython:\n  base: ${IMG}\nuser: root\n".to_vec());
    let m = run(&f, opts(&[("requestid", "frontend.lint")]))
        .await
        .result
        .unwrap()
        .metadata;
    assert_eq!(m["result.statuscode"], b"1");
    let f2 = fake(MODERN_LLB, MODERN_FRONTEND);
    f2.0.lock().unwrap().files = f.0.lock().unwrap().files.clone();
    let m = run(&f2, opts(&[("requestid", "frontend.outline")]))
        .await
        .result
        .unwrap()
        .metadata;
    let outline: GoOutline = serde_json::from_slice(&m["result.json"]).unwrap();
    assert_eq!(outline.args[0].name, "IMG");
    assert_eq!(outline.args[0].value, "python:3.12-slim");
}

/// Issue 13: `SOURCE_DATE_EPOCH` (buildx passes it as a build arg) is the config's
/// `created` and reaches the exporter as `source.date.epoch`; buildx's git metadata
/// becomes the OCI source labels. Without them neither is there.
#[tokio::test]
async fn source_date_epoch_and_git_metadata_reach_the_image() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    let r = run(
        &f,
        opts(&[
            ("build-arg:SOURCE_DATE_EPOCH", "1700000000"),
            ("vcs:source", "https://github.com/acme/worker.git"),
            ("vcs:revision", "0123abc"),
        ]),
    )
    .await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    let result = r.result.unwrap();
    assert_eq!(result.metadata["source.date.epoch"], b"1700000000");
    let cfg: serde_json::Value =
        serde_json::from_slice(&result.metadata["containerimage.config"]).unwrap();
    assert_eq!(cfg["created"], "2023-11-14T22:13:20Z");
    let labels = &cfg["config"]["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.created"],
        "2023-11-14T22:13:20Z"
    );
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://github.com/acme/worker.git"
    );
    assert_eq!(labels["org.opencontainers.image.revision"], "0123abc");

    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    let r = run(&f, opts(&[])).await;
    let result = r.result.unwrap();
    assert!(!result.metadata.contains_key("source.date.epoch"));
    let cfg: serde_json::Value =
        serde_json::from_slice(&result.metadata["containerimage.config"]).unwrap();
    assert!(cfg.get("created").is_none(), "no build-time value: {cfg}");
}

#[tokio::test]
async fn skip_verify_build_arg_leaves_verify_out() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    let r = run(&f, opts(&[("build-arg:KILN_SKIP_VERIFY", "1")])).await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    assert_eq!(
        f.0.lock().unwrap().solves.len(),
        4,
        "spec, context inputs, app pre-flight, image: no verify solve"
    );
}

/// Serve the fake; returns the frontend's run (not started) and the connection's task.
async fn serve_raw(
    f: &Fake,
    o: Options,
) -> (
    impl std::future::Future<Output = Result<(), String>>,
    tokio::task::JoinHandle<()>,
) {
    // frontend <-> wire <-> engine: aborting the wire task is the engine going away
    // (the frontend's stdin and stdout close).
    let (client, mut wire_a) = tokio::io::duplex(1 << 20);
    let (mut wire_b, server) = tokio::io::duplex(1 << 20);
    serve_fake(f, server);
    let wire = tokio::spawn(async move {
        tokio::io::copy_bidirectional(&mut wire_a, &mut wire_b)
            .await
            .ok();
    });
    (frontend_over(client, o).await, wire)
}

#[tokio::test(start_paused = true)]
async fn a_silent_engine_is_given_up_on_after_15_seconds() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    f.0.lock().unwrap().ping_delay = Some(std::time::Duration::from_secs(3600));
    let (frontend, _server) = serve_raw(&f, opts(&[])).await;
    let started = tokio::time::Instant::now();
    let err = frontend.await.unwrap_err();
    assert!(err.contains("did not answer Ping within 15 s"), "{err}");
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(15) && waited < std::time::Duration::from_secs(16),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_bridge_closing_mid_solve_ends_the_frontend() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    f.0.lock().unwrap().hang_solve = true;
    let (frontend, server) = serve_raw(&f, opts(&[])).await;
    // Let the frontend reach its first Solve, then drop the engine's side.
    let close = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        server.abort();
    };
    let run = tokio::time::timeout(std::time::Duration::from_secs(10), frontend);
    let (outcome, ()) = tokio::join!(run, close);
    let err = outcome.expect("the frontend did not hang").unwrap_err();
    assert!(
        err.contains("returning the result to BuildKit failed"),
        "{err}"
    );
    assert!(f.0.lock().unwrap().returned.is_none());
}

// ---- BuildKit's Go types, as its encoding/json decodes what kiln sends ----

/// Go's `[]byte` in JSON: a standard base64 string (or null); anything else is the
/// error Go gives (`illegal base64 data`, or `cannot unmarshal object into ... []uint8`).
fn go_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    let text = match v {
        serde_json::Value::Null => return Ok(vec![]),
        serde_json::Value::String(t) => t,
        other => {
            return Err(serde::de::Error::custom(format!(
                "json: cannot unmarshal {other} into Go value of type []uint8"
            )));
        }
    };
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let body = text.trim_end_matches('=');
    if text.len() % 4 != 0 || text.len() - body.len() > 2 {
        return Err(serde::de::Error::custom("illegal base64 data"));
    }
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = vec![];
    for c in body.bytes() {
        let v = val(c).ok_or_else(|| serde::de::Error::custom("illegal base64 data"))?;
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Ok(out)
}

/// `errdefs.Source` (solver/errdefs/errdefs.proto: `pb.SourceInfo info = 1; repeated
/// pb.Range ranges = 2`).
#[derive(Deserialize, Debug)]
struct GoSource {
    info: GoSourceInfo,
    ranges: Vec<GoRange>,
}

/// `pb.SourceInfo`.
#[derive(Deserialize, Debug)]
struct GoSourceInfo {
    filename: String,
    #[serde(default, deserialize_with = "go_bytes")]
    data: Vec<u8>,
    #[serde(default)]
    language: String,
}

#[derive(Deserialize, Debug)]
struct GoRange {
    start: GoPosition,
    #[allow(dead_code)]
    end: GoPosition,
}

#[derive(Deserialize, Debug)]
struct GoPosition {
    #[serde(default)]
    line: i32,
    #[serde(default)]
    character: i32,
}

/// `pb.Location`.
#[derive(Deserialize, Debug)]
struct GoLocation {
    #[serde(default, rename = "sourceIndex")]
    source_index: i32,
    ranges: Vec<GoRange>,
}

/// The `errdefs.Source` details of a Return's error, decoded as BuildKit does.
fn sources_of(r: &gw::ReturnRequest) -> Vec<GoSource> {
    let details = &r.error.as_ref().expect("an error").details;
    details
        .iter()
        .filter(|d| d.type_url == "github.com/moby/buildkit/errdefs.Source+json")
        .map(|d| serde_json::from_slice(&d.value).expect("errdefs.Source decodes"))
        .collect()
}

fn spec_with(f: &Fake, from: &str, to: &str) {
    let spec = SPEC.replace(from, to);
    assert_ne!(spec, SPEC, "{from} is in the spec");
    f.0.lock()
        .unwrap()
        .files
        .insert("worker.yaml".into(), spec.into_bytes());
}

/// Issue 22: an install that failed building a sdist for want of a system package exits
/// with that hint's status; the build's error names the step at the group's line and
/// ends with what to add, on old and new engines alike. The same status from a step that
/// is not wrapped (apt), or another status from the install, adds nothing.
#[tokio::test]
async fn a_failed_sdist_build_ends_with_what_to_add() {
    use kiln::plan::build_hints::{FIRST_STATUS, HINTS, MARKER};
    let pg = HINTS
        .iter()
        .position(|h| h.needles.contains(&"pg_config executable not found"))
        .unwrap() as i32;
    for (frontend, details, unknown) in [
        (MODERN_FRONTEND, true, false),
        (MODERN_FRONTEND, true, true),
        (OLD_FRONTEND, false, false),
    ] {
        for (needle, status, want) in [
            (
                MARKER,
                FIRST_STATUS + pg,
                format!(
                    "worker.yaml:9: step `pip install: core` failed: exit code: {} (its output is in the build log above); kiln: psycopg2 needs pg_config (the PostgreSQL client library): add libpq-dev to system.build and libpq5 to system.runtime",
                    FIRST_STATUS + pg
                ),
            ),
            (
                MARKER,
                1,
                "worker.yaml:9: step `pip install: core` failed: exit code: 1 (its output is in the build log above)".to_string(),
            ),
            (
                "libpq5",
                FIRST_STATUS + pg,
                format!(
                    "worker.yaml:7: step `apt runtime: libpq5` failed: exit code: {} (its output is in the build log above)",
                    FIRST_STATUS + pg
                ),
            ),
        ] {
            let f = fake(MODERN_LLB, frontend);
            {
                let mut s = f.0.lock().unwrap();
                s.fail_solves_containing = vec![needle.into()];
                s.fail_status = Some(status);
                s.errdefs_details = details;
                s.unknown_vertex_only = unknown;
            }
            let r = run(&f, opts(&[])).await;
            assert_eq!(error_message(&r), want, "details {details}, unknown {unknown}");
            let line = if needle == MARKER { 9 } else { 7 };
            assert_eq!(sources_of(&r)[0].ranges[0].start.line, line);
        }
    }
}

/// Issue 23: the runtime-library check's verdict failed the image; the error is the
/// scan's report (solved again, cached), each missing library at its group's line with
/// the package to add, on old and new engines alike. When the report cannot be read, the
/// verdict's step is named as any failed step is.
#[tokio::test]
async fn a_failed_runtime_library_check_names_the_file_the_library_and_the_package() {
    for (frontend, details, unknown) in [
        (MODERN_FRONTEND, true, false),
        (MODERN_FRONTEND, true, true),
        (OLD_FRONTEND, false, false),
    ] {
        let f = fake(MODERN_LLB, frontend);
        {
            let mut s = f.0.lock().unwrap();
            s.fail_solves_containing = vec!["kiln-runtime-libs-verdict".into()];
            s.fail_status = Some(1);
            s.errdefs_details = details;
            s.unknown_vertex_only = unknown;
            s.files.insert(
                "misses".into(),
                b"0\tpsycopg2/_psycopg.so\tlibpq.so.5\tlibpq5\n".to_vec(),
            );
        }
        let r = run(&f, opts(&[("target", "minimal")])).await;
        assert_eq!(
            error_message(&r),
            "worker.yaml:9:3: error: `psycopg2/_psycopg.so` needs `libpq.so.5`, which the minimal image lacks: add `libpq5` to `system.runtime` (help: or set `system.runtime: auto`, and the builder names the packages the venv needs)",
            "details {details}, unknown {unknown}"
        );
        assert_eq!(sources_of(&r)[0].ranges[0].start.line, 9);
        // The report came from the scan's own definition, after the image failed.
        let s = f.0.lock().unwrap();
        let last = s.solves.last().unwrap().definition.as_ref().unwrap();
        assert!(
            ops(last).iter().any(|o| matches!(&o.op, Some(pb::op::Op::Exec(e)) if e.meta.as_ref().unwrap().args.join(" ").contains("exec python3 -I -c "))),
            "the scan was solved for its report"
        );
    }
    // No report to read: the verdict's step, at the group's line.
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    {
        let mut s = f.0.lock().unwrap();
        s.fail_solves_containing = vec!["kiln-runtime-libs-verdict".into()];
        s.fail_status = Some(1);
        s.errdefs_details = true;
    }
    let r = run(&f, opts(&[("target", "minimal")])).await;
    assert_eq!(
        error_message(&r),
        "worker.yaml:9: step `check: runtime libraries: core` failed: exit code: 1 (its output is in the build log above)"
    );
}

/// Issue 10, 1: a failing apt step with a verify list is that step's failure (its name
/// and spec line), not one verify failure per command; old and new engines alike.
#[tokio::test]
async fn a_failing_image_step_names_the_step_not_verify() {
    for (frontend, details, unknown) in [
        (MODERN_FRONTEND, true, false),
        (MODERN_FRONTEND, true, true),
        (OLD_FRONTEND, false, false),
    ] {
        let f = fake(MODERN_LLB, frontend);
        spec_with(
            &f,
            "verify: [\"python -c 'import app'\"]",
            "verify: [\"true\"]",
        );
        {
            let mut s = f.0.lock().unwrap();
            s.fail_solves_containing = vec!["libpq5".into()];
            s.errdefs_details = details;
            s.unknown_vertex_only = unknown;
        }
        let r = run(&f, opts(&[])).await;
        let msg = error_message(&r);
        assert_eq!(
            msg,
            "worker.yaml:7: step `apt runtime: libpq5` failed: exit code: 100 (its output is in the build log above)"
        );
        assert!(!msg.contains("verify"), "{msg}");
        assert_eq!(msg.matches("failed: ").count(), 1, "named once: {msg}");
        let sources = sources_of(&r);
        assert_eq!(sources.len(), 1, "one source position");
        assert_eq!(sources[0].info.filename, "worker.yaml");
        assert_eq!(sources[0].ranges[0].start.line, 7);
        if details {
            let e = r.error.as_ref().unwrap();
            assert!(
                e.details
                    .iter()
                    .any(|d| d.type_url.ends_with("errdefs.Vertex+json")),
                "the engine's own details are passed through"
            );
        }
        let s = f.0.lock().unwrap();
        assert!(
            s.solves.iter().all(|r| !ops(r.definition.as_ref().unwrap())
                .iter()
                .any(|o| matches!(&o.op, Some(pb::op::Op::Exec(e)) if e.meta.as_ref().unwrap().args.join(" ") == "/bin/sh -c true"))),
            "no verify solve after a failed image"
        );
    }
}

/// Issue 10, 2: spec errors carry `errdefs.Source` (file, its text, the range) with a
/// code BuildKit prints without a prefix.
#[tokio::test]
async fn spec_errors_carry_buildkit_source_details() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    let text = "# syntax=kiln/frontend:dev\nversion: 1\nname: w\npython:\n  base: python:3.12-slim\nsystem:\n  runtime: [\"Bad Pkg\"]\n";
    f.0.lock()
        .unwrap()
        .files
        .insert("worker.yaml".into(), text.as_bytes().to_vec());
    let r = run(&f, opts(&[])).await;
    assert_eq!(r.error.as_ref().unwrap().code, tonic::Code::Unknown as i32);
    let sources = sources_of(&r);
    assert_eq!(sources.len(), 1);
    let s = &sources[0];
    assert_eq!(s.info.filename, "worker.yaml");
    assert_eq!(s.info.data, text.as_bytes(), "the spec's text, base64");
    assert_eq!(s.info.language, "YAML");
    assert_eq!(
        (s.ranges[0].start.line, s.ranges[0].start.character),
        (7, 12)
    );
}

/// Issue 10, 4: warnings reach the client: `Warn` (with the spec file and line) where the
/// engine has `gateway.warnings`, else a vertex named after the warning.
#[tokio::test]
async fn warnings_reach_the_user() {
    let with_warnings = |frontend: &[Cap]| {
        let f = fake(MODERN_LLB, frontend);
        spec_with(&f, "app: {src: [app]}\n", "app: {src: [app]}\nuser: root\n");
        f
    };
    let mut modern = MODERN_FRONTEND.to_vec();
    modern.push(caps::GATEWAY_WARNINGS);
    let f = with_warnings(&modern);
    let r = run(&f, opts(&[("build-arg:NOT_DECLARED", "1")])).await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    {
        let s = f.0.lock().unwrap();
        let shorts: Vec<String> = s
            .warnings
            .iter()
            .map(|w| String::from_utf8_lossy(&w.short).into_owned())
            .collect();
        assert_eq!(shorts.len(), 2, "{shorts:?}");
        let root = s
            .warnings
            .iter()
            .find(|w| w.short.starts_with(b"KilnRootUser: the image runs as root"))
            .expect("the root warning");
        assert_eq!(root.level, 1);
        assert_eq!(root.info.as_ref().unwrap().filename, "worker.yaml");
        assert_eq!(root.ranges[0].start.unwrap().line, 11);
        assert!(!root.detail.is_empty(), "the help goes with it");
        // Attached to the vertex that loaded the spec, as the Dockerfile frontend does.
        let spec_load = ops(s.solves[0].definition.as_ref().unwrap());
        assert!(!spec_load.is_empty());
        assert!(root.digest.starts_with("sha256:"));
        assert!(
            shorts
                .iter()
                .any(|w| w.starts_with("KilnUndeclaredBuildArg: build arg `NOT_DECLARED`")),
            "{shorts:?}"
        );
    }

    // Docker 20.10: no Warn; each warning is a vertex of its own in the progress output.
    let f = with_warnings(OLD_FRONTEND);
    let r = run(&f, opts(&[("build-arg:NOT_DECLARED", "1")])).await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    let s = f.0.lock().unwrap();
    assert!(s.warnings.is_empty());
    let names: Vec<String> = s
        .solves
        .iter()
        .flat_map(|r| r.definition.as_ref().unwrap().metadata.values().cloned())
        .filter_map(|m| m.description.get("llb.customname").cloned())
        .filter(|n| n.starts_with("WARNING "))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let warning_ops: std::collections::BTreeSet<String> = s
        .solves
        .iter()
        .filter(|r| {
            r.definition.as_ref().unwrap().metadata.values().any(|m| {
                m.description
                    .get("llb.customname")
                    .is_some_and(|n| n.starts_with("WARNING "))
            })
        })
        .flat_map(|r| r.definition.as_ref().unwrap().metadata.keys().cloned())
        .collect();
    assert_eq!(
        warning_ops.len(),
        2,
        "each warning is an op of its own (equal ops would show as one vertex)"
    );
    assert!(
        names.iter().any(|n| n
            .starts_with("WARNING KilnRootUser: the image runs as root (worker.yaml:11:7; help: ")),
        "{names:?}"
    );
}

/// `[][]byte` in Go's JSON: a list of base64 strings.
fn go_bytes_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
    #[derive(Deserialize)]
    struct One(#[serde(deserialize_with = "go_bytes")] Vec<u8>);
    let list: Option<Vec<One>> = Option::deserialize(d)?;
    Ok(list.unwrap_or_default().into_iter().map(|o| o.0).collect())
}

/// `targets.List` (no JSON tags: Go's field names).
#[derive(Deserialize, Debug)]
struct GoTargetList {
    #[serde(rename = "Targets")]
    targets: Vec<GoTarget>,
    #[serde(rename = "Sources", deserialize_with = "go_bytes_list")]
    sources: Vec<Vec<u8>>,
}

/// `targets.Target`.
#[derive(Deserialize, Debug)]
struct GoTarget {
    name: String,
    #[serde(default)]
    default: bool,
    #[serde(default)]
    description: String,
    #[serde(default)]
    base: String,
    #[serde(rename = "Location")]
    location: Option<GoLocation>,
}

/// `outline.Outline`.
#[derive(Deserialize, Debug)]
struct GoOutline {
    #[serde(default)]
    args: Vec<GoArg>,
    #[serde(default)]
    secrets: Vec<GoSecret>,
    #[serde(default, deserialize_with = "go_bytes_list")]
    sources: Vec<Vec<u8>>,
}

/// `outline.Arg`.
#[derive(Deserialize, Debug)]
struct GoArg {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Value")]
    value: String,
    #[serde(rename = "Location")]
    location: Option<GoLocation>,
}

/// `outline.Secret`.
#[derive(Deserialize, Debug)]
struct GoSecret {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Required")]
    required: bool,
}

/// `lint.LintResults`.
#[derive(Deserialize, Debug)]
struct GoLint {
    warnings: Vec<GoWarning>,
    sources: Vec<GoSourceInfo>,
}

/// `lint.Warning`.
#[derive(Deserialize, Debug)]
struct GoWarning {
    #[serde(rename = "ruleName")]
    rule_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    detail: String,
    location: GoLocation,
}

async fn subrequest(spec: &[u8], id: &str) -> HashMap<String, Vec<u8>> {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    f.0.lock()
        .unwrap()
        .files
        .insert("worker.yaml".into(), spec.to_vec());
    let r = run(
        &f,
        opts(&[("requestid", id), ("build-arg:NOT_DECLARED", "1")]),
    )
    .await;
    assert!(r.error.is_none(), "{id}: {}", error_message(&r));
    r.result.unwrap().metadata
}

/// Issue 10, 3: `--call targets|outline|check` answers decode into BuildKit's Go types
/// (`sources` as base64 `[]byte`, lint's as `pb.SourceInfo`), and each lint warning has
/// its own rule name, a description of the rule and the message as its detail.
#[tokio::test]
async fn subrequest_answers_decode_as_buildkit_go_types() {
    let text = "version: 1\nname: w\nargs: {IMG: python:3.12-slim}\npython:\n  base: ${IMG}\nuser: root\nbuild_secrets: {ca_bundle: pipca}\nrequirements:\n  core: {packages: [arq]}\n  extra: {packages: [rich]}\nvariants:\n  minimal: {requirements: [core]}\n";

    let m = subrequest(text.as_bytes(), "frontend.targets").await;
    let t: GoTargetList = serde_json::from_slice(&m["result.json"]).expect("targets.List");
    assert_eq!(t.sources, vec![text.as_bytes().to_vec()]);
    assert_eq!(t.targets[0].name, "minimal");
    assert!(t.targets[0].default);
    assert_eq!(t.targets[0].base, "python:3.12-slim");
    assert_eq!(t.targets[0].description, "");
    let loc = t.targets[0].location.as_ref().unwrap();
    assert_eq!((loc.source_index, loc.ranges[0].start.line), (0, 12));

    let m = subrequest(text.as_bytes(), "frontend.outline").await;
    let o: GoOutline = serde_json::from_slice(&m["result.json"]).expect("outline.Outline");
    assert_eq!(o.sources, vec![text.as_bytes().to_vec()]);
    assert_eq!(
        (o.args[0].name.as_str(), o.args[0].value.as_str()),
        ("IMG", "python:3.12-slim")
    );
    assert_eq!(o.args[0].location.as_ref().unwrap().ranges[0].start.line, 3);
    assert_eq!(o.secrets[0].name, "pipca");
    assert!(!o.secrets[0].required);

    let m = subrequest(text.as_bytes(), "frontend.lint").await;
    let l: GoLint = serde_json::from_slice(&m["result.json"]).expect("lint.LintResults");
    assert_eq!(l.sources.len(), 1);
    assert_eq!(l.sources[0].filename, "worker.yaml");
    assert_eq!(l.sources[0].data, text.as_bytes());
    let rules: Vec<&str> = l.warnings.iter().map(|w| w.rule_name.as_str()).collect();
    assert_eq!(
        rules,
        ["KilnUndeclaredBuildArg", "KilnRootUser", "KilnUnusedGroup"],
        "one rule name per kind of warning"
    );
    let root = &l.warnings[1];
    assert_eq!(root.description, "The image runs as root");
    assert!(
        root.detail.starts_with("the image runs as root (help: "),
        "{}",
        root.detail
    );
    assert_eq!(root.location.ranges[0].start.line, 6);
    assert_eq!(root.location.ranges[0].start.character, 6);
    for w in &l.warnings {
        let r = &w.location.ranges[0];
        assert!(r.start.line >= 1, "BuildKit's printer reads line - 1");
        assert!((w.location.source_index as usize) < l.sources.len());
    }
    assert_eq!(m["result.statuscode"], b"1");
}

/// Issue 10, 5: the context files the spec names are checked before any step runs, each
/// missing one at its spec line; an app.src that .dockerignore empties says so; a base
/// image that cannot be resolved names `python.base`; the Python version check that
/// fails in its step names `python.version`.
#[tokio::test]
async fn the_context_and_base_are_checked_before_any_step() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    {
        let mut s = f.0.lock().unwrap();
        s.missing_paths = vec!["req.txt".into()];
        s.files.remove("req.txt");
        s.empty_dirs = vec!["app".into()];
        s.files.insert(".dockerignore".into(), b"app/*\n".to_vec());
    }
    let r = run(&f, opts(&[])).await;
    let msg = error_message(&r);
    let lines: Vec<&str> = msg.lines().collect();
    assert_eq!(lines.len(), 2, "{msg}");
    assert!(
        lines[0].starts_with(
            "worker.yaml:9:10: error: requirement file `req.txt` is not in the build context"
        ),
        "{msg}"
    );
    assert!(
        lines[1].starts_with("worker.yaml:10:13: error: app.src `app` is empty once .dockerignore and app.exclude are applied"),
        "{msg}"
    );
    assert_eq!(sources_of(&r).len(), 2);
    assert!(!any_step_ran(&f), "no step ran");

    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    f.0.lock().unwrap().no_base_image = true;
    let r = run(&f, opts(&[])).await;
    let msg = error_message(&r);
    assert!(
        msg.starts_with(
            "worker.yaml:4:9: error: the `python.base` image `python:3.12-slim` cannot be used: "
        ),
        "{msg}"
    );
    assert_eq!(sources_of(&r)[0].ranges[0].start.line, 4);

    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    f.0.lock().unwrap().fail_solves_containing = vec!["spec wants".into()];
    let msg = error_message(&run(&f, opts(&[])).await);
    assert!(
        msg.starts_with("worker.yaml:5: step `python: 3.12 check, venv /opt/venv` failed: "),
        "{msg}"
    );
}

/// The target's base is resolved while the context files are read (it needs only the
/// spec), and pre-flight runs beside the rest; the image's solve waits for pre-flight, so a
/// missing path still stops the build before any step.
#[tokio::test]
async fn the_base_is_resolved_while_the_context_is_read_and_preflight_gates_the_solve() {
    let slow = Some(std::time::Duration::from_millis(300));
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    f.0.lock().unwrap().context_solve_delay = slow;
    let r = run(&f, opts(&[("target", "minimal")])).await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    assert!(
        f.0.lock().unwrap().resolved_during_inputs_read,
        "the base was resolved while the context files were read"
    );

    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    {
        let mut s = f.0.lock().unwrap();
        s.context_solve_delay = slow;
        s.missing_paths = vec!["app".into()];
    }
    let r = run(&f, opts(&[("target", "minimal")])).await;
    let msg = error_message(&r);
    assert!(
        msg.starts_with("worker.yaml:10:13: error: app.src path `app` is not in the build context"),
        "{msg}"
    );
    assert!(
        !any_step_ran(&f),
        "no step ran: the image's solve waited for pre-flight"
    );
}

/// Whether any solve so far had an exec in its definition (a step, or a probe).
fn any_step_ran(f: &Fake) -> bool {
    f.0.lock().unwrap().solves.iter().any(|r| {
        ops(r.definition.as_ref().unwrap())
            .iter()
            .any(|o| matches!(o.op, Some(pb::op::Op::Exec(_))))
    })
}

/// The context's `.dockerignore` is read with the other inputs and leaves its patterns
/// out of the app's copy.
#[tokio::test]
async fn dockerignore_patterns_reach_the_app_source() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    f.0.lock()
        .unwrap()
        .files
        .insert(".dockerignore".into(), b"# notes\n**/*.md\n".to_vec());
    let r = run(&f, opts(&[("target", "minimal")])).await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    let s = f.0.lock().unwrap();
    let excludes: Vec<String> = s
        .solves
        .iter()
        .flat_map(|solve| ops(solve.definition.as_ref().unwrap()))
        .filter_map(|o| match o.op {
            Some(pb::op::Op::Source(src)) => src.attrs.get("local.excludepatterns").cloned(),
            _ => None,
        })
        .collect();
    assert!(
        excludes.iter().any(|e| e.contains("**/*.md")),
        "{excludes:?}"
    );
}

/// Issue 11: a spec under 1 MiB whose `${}` expansions make the image config larger than
/// the 4 MiB BuildKit takes in one message gets an error naming what was too large,
/// never a bare transport failure.
#[tokio::test]
async fn a_result_over_the_gateway_message_limit_is_named() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    let refs = "${X}".repeat(4000);
    let literal = "y".repeat(900_000);
    let spec = SPEC.replace(
        "name: w\n",
        &format!(
            "name: w\nargs: {{X: \"{}\"}}\nenv: {{A: \"{refs}\", B: \"{literal}\"}}\n",
            "x".repeat(1000)
        ),
    );
    assert!(
        spec.len() < 1 << 20,
        "the spec itself is under the 1 MiB limit"
    );
    f.0.lock()
        .unwrap()
        .files
        .insert("worker.yaml".into(), spec.into_bytes());
    let r = run(&f, opts(&[("build-arg:KILN_SKIP_VERIFY", "1")])).await;
    let message = error_message(&r);
    assert!(
        message.contains(", over the 4.0 MiB BuildKit accepts from a frontend in one message"),
        "{message}"
    );
    assert!(
        message.contains("`containerimage.config`") || message.contains("build definition"),
        "{message}"
    );
    assert!(r.result.is_none(), "nothing half-built is returned");
}

/// Issue 20: a credential in a spec URL never leaves the frontend. A spec that holds one
/// in a value fails with neither it in the message nor in the file text of the
/// `errdefs.Source` details; one in a comment (a valid spec) reaches no Warn, solved
/// definition (their source maps) or subrequest answer; an outline's `--build-arg` value
/// is shown without it.
#[tokio::test]
async fn credentials_in_the_spec_never_reach_buildkit() {
    const SECRETS: [&str; 3] = ["alice", "s3cret", "tok3n"];
    let url = "https://alice:s3cret@tok3n@host/simple";
    let clean = |what: &str, bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !SECRETS.iter().any(|s| text.contains(s)),
            "{what} holds a credential:\n{text}"
        );
    };

    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    spec_with(
        &f,
        "app: {src: [app]}\n",
        &format!("app: {{src: [app]}}\npip: {{index_url: \"{url}\"}}\n"),
    );
    let r = run(&f, opts(&[])).await;
    let msg = error_message(&r);
    assert!(
        msg.starts_with(
            "worker.yaml:11:18: error: invalid pip.index_url `https://***@host/simple`"
        ),
        "{msg}"
    );
    clean("the message", msg.as_bytes());
    for d in &r.error.as_ref().unwrap().details {
        clean("a detail", &d.value);
    }
    let sources = sources_of(&r);
    assert_eq!(sources.len(), 1);
    clean("errdefs.Source data", &sources[0].info.data);
    assert_eq!(sources[0].ranges[0].start.line, 11);

    // Valid, with the URL in a comment, a warning and an undeclared build arg's value.
    let mut modern = MODERN_FRONTEND.to_vec();
    modern.push(caps::GATEWAY_WARNINGS);
    let f = fake(MODERN_LLB, &modern);
    spec_with(
        &f,
        "app: {src: [app]}\n",
        &format!("app: {{src: [app]}}\n# index: {url}\nuser: root\n"),
    );
    let r = run(&f, opts(&[])).await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    let text = {
        let s = f.0.lock().unwrap();
        assert!(!s.warnings.is_empty());
        for w in &s.warnings {
            clean("a Warn's file", &w.info.as_ref().unwrap().data);
            clean(
                "a Warn's text",
                &[w.short.clone(), w.detail.concat()].concat(),
            );
        }
        assert!(
            s.solves
                .iter()
                .any(|r| r.definition.as_ref().unwrap().source.is_some())
        );
        for solve in &s.solves {
            for info in solve
                .definition
                .as_ref()
                .and_then(|d| d.source.as_ref())
                .map_or(&[][..], |s| &s.infos)
            {
                clean("a source map's file", &info.data);
                assert!(
                    String::from_utf8_lossy(&info.data)
                        .contains("# index: https://******************@host/simple")
                );
            }
        }
        s.files["worker.yaml"].clone()
    };
    for id in ["frontend.targets", "frontend.outline", "frontend.lint"] {
        let m = subrequest(&text, id).await;
        clean(id, &m["result.json"]);
        clean(id, &m["result.txt"]);
    }

    // An outline shows a declared arg's value; from a --build-arg, without credentials.
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    spec_with(
        &f,
        "app: {src: [app]}\n",
        "app: {src: [app]}\nargs: {MIRROR: \"\"}\n",
    );
    let r = run(
        &f,
        opts(&[("requestid", "frontend.outline"), ("build-arg:MIRROR", url)]),
    )
    .await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    let m = r.result.unwrap().metadata;
    let o: GoOutline = serde_json::from_slice(&m["result.json"]).expect("outline.Outline");
    assert_eq!(o.args[0].value, "https://***@host/simple");
    clean("the outline", &m["result.json"]);
    clean("the outline's text", &m["result.txt"]);
}

/// Issue 22: with a lock whose files the engine fetches, the frontend reads the base's
/// Python (one solve of a probe on the pinned base, its answer read) before planning, and
/// the lock's markers are decided on it: 3.12.1 takes the package for < 3.12.2, 3.12.8
/// the other. Without such a lock, no probe.
#[tokio::test]
async fn the_base_python_is_read_before_a_fetched_lock_is_planned() {
    let wheel = |name: &str, sha: char| {
        format!(
            "\n[[packages]]\nname = \"{name}\"\nversion = \"1.0\"\nmarker = \"{}\"\nwheels = [{{ url = \"https://files.pythonhosted.org/p/{name}-1.0-py3-none-any.whl\", hashes = {{ sha256 = \"{}\" }} }}]\n",
            if name == "below" {
                "python_full_version < '3.12.2'"
            } else {
                "python_full_version >= '3.12.2'"
            },
            sha.to_string().repeat(64)
        )
    };
    let lock = format!(
        "lock-version = \"1.0\"\n{}{}",
        wheel("below", 'a'),
        wheel("from", 'b')
    );
    let probe = |full: &str| {
        format!(
            "{{\"implementation_name\": \"cpython\", \"implementation_version\": \"{full}\", \"os_name\": \"posix\", \"platform_machine\": \"x86_64\", \"platform_python_implementation\": \"CPython\", \"platform_release\": \"6.1\", \"platform_system\": \"Linux\", \"platform_version\": \"#1\", \"python_full_version\": \"{full}\", \"python_version\": \"3.12\", \"sys_platform\": \"linux\", \"abiflags\": \"\", \"libc\": [\"glibc\", \"2.36\"]}}"
        )
    };
    for (full, want, not) in [
        ("3.12.1", "below-1.0", "from-1.0"),
        ("3.12.8", "from-1.0", "below-1.0"),
    ] {
        let f = fake(MODERN_LLB, MODERN_FRONTEND);
        let spec = SPEC
            .replace("core: [req.txt]", "core: {lock: pylock.toml}")
            .replace("version: \"3.12\"", "version: \"3.12\"\n  installer: uv");
        {
            let mut s = f.0.lock().unwrap();
            s.files.insert("worker.yaml".into(), spec.into_bytes());
            s.files
                .insert("pylock.toml".into(), lock.clone().into_bytes());
            s.files
                .insert("interpreter.json".into(), probe(full).into_bytes());
        }
        let r = run(&f, opts(&[("target", "minimal")])).await;
        assert!(r.error.is_none(), "{full}: {}", error_message(&r));
        let s = f.0.lock().unwrap();
        let probes = s
            .solves
            .iter()
            .filter(|q| format!("{:?}", q.definition).contains("read the base's Python"))
            .count();
        let names: Vec<String> = s
            .solves
            .iter()
            .flat_map(|q| q.definition.iter().flat_map(|d| d.metadata.values()))
            .filter_map(|m| m.description.get("llb.customname").cloned())
            .collect();
        assert_eq!(probes, 1, "{full}: one probe: {names:#?}");
        let image = format!("{:?}", s.solves.last().unwrap().definition);
        assert!(image.contains(want), "{full}: {want} fetched");
        assert!(!image.contains(not), "{full}: {not} left out");
    }
    // No fetched lock: nothing to read.
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    let r = run(&f, opts(&[("target", "minimal")])).await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    let probed =
        f.0.lock()
            .unwrap()
            .solves
            .iter()
            .any(|q| format!("{:?}", q.definition).contains("read the base's Python"));
    assert!(!probed);
}

/// Issue 21: the build checks every context path the target reads before any step runs,
/// in the one solve that checks app.src: a `files` entry not there, a step input that
/// `.dockerignore` leaves out, each at its line; paths only another variant reads are
/// not asked for.
#[tokio::test]
async fn every_context_path_of_the_target_is_checked_in_one_solve() {
    let spec = "version: 1\nname: w\npython:\n  base: python:3.12-slim\n\
                requirements:\n  core: [req.txt]\n\
                app: {src: [app]}\n\
                files:\n  - {src: conf/a.toml, dest: /etc/a.toml}\n  - {src: conf/gone.toml, dest: /etc/b.toml}\n\
                steps:\n  - {name: s, in: image, run: x, inputs: [secret.env, assets]}\n\
                variants:\n  minimal: {}\n  other: {files: [{src: conf/other.toml, dest: /etc/o.toml}]}\n";
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    {
        let mut s = f.0.lock().unwrap();
        s.files
            .insert("worker.yaml".into(), spec.as_bytes().to_vec());
        s.files.insert(".dockerignore".into(), b"*.env\n".to_vec());
        s.missing_paths = vec!["conf/gone.toml".into(), "conf/other.toml".into()];
    }
    let r = run(&f, opts(&[("target", "minimal")])).await;
    let msg = error_message(&r);
    let lines: Vec<&str> = msg.lines().collect();
    assert_eq!(lines.len(), 2, "{msg}");
    assert!(
        lines[0].starts_with(
            "worker.yaml:10:11: error: files.src `conf/gone.toml` is not in the build context"
        ),
        "{msg}"
    );
    assert!(
        lines[1].starts_with(
            "worker.yaml:12:43: error: steps.inputs `secret.env` is left out by .dockerignore"
        ),
        "{msg}"
    );
    let s = f.0.lock().unwrap();
    let checks: Vec<Vec<String>> = s
        .solves
        .iter()
        .flat_map(|r| ops(r.definition.as_ref().unwrap()))
        .filter_map(|o| match o.op {
            Some(pb::op::Op::Source(src)) if src.attrs.contains_key("local.excludepatterns") => {
                Some(serde_json::from_str(&src.attrs["local.includepattern"]).unwrap())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        checks,
        [vec!["app", "conf/a.toml", "conf/gone.toml", "assets"]],
        "one solve, the target's paths"
    );
}

/// Issue 21: what aborted the frontend (a stack overflow kills the process, and BuildKit
/// reports only its exit) is refused with a spec error: 5,000 chained groups, and a lock
/// marker nested 20,000 deep, each at its spec line. (The test thread has 2 MiB.)
#[tokio::test]
async fn graphs_and_markers_too_deep_are_refused_not_aborted() {
    let groups: String = (0..5_000)
        .map(|i| format!("  g{i}: {{packages: [arq]}}\n"))
        .collect();
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    f.0.lock().unwrap().files.insert(
        "worker.yaml".into(),
        format!("version: 1\nname: w\npython: {{base: python:3.12-slim}}\nrequirements:\n{groups}")
            .into_bytes(),
    );
    let msg = error_message(&run(&f, opts(&[])).await);
    assert!(
        msg.starts_with(
            "worker.yaml:69:3: error: variant `default` installs more than 64 requirement groups"
        ),
        "{msg}"
    );

    let marker = format!(
        "{}python_version > '3'{}",
        "(".repeat(20_000),
        ")".repeat(20_000)
    );
    let lock = format!(
        "lock-version = \"1.0\"\ncreated-by = \"t\"\n[[packages]]\nname = \"six\"\nmarker = \"{marker}\"\nwheels = [{{url = \"https://files.pythonhosted.org/six-1.17.0-py2.py3-none-any.whl\", hashes = {{sha256 = \"{}\"}}}}]\n",
        "0".repeat(64)
    );
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    {
        let mut s = f.0.lock().unwrap();
        s.files.insert(
            "worker.yaml".into(),
            b"version: 1\nname: w\npython: {base: python:3.12-slim, version: \"3.12\", installer: uv}\nrequirements:\n  core: {lock: pylock.toml}\n".to_vec(),
        );
        s.files.insert("pylock.toml".into(), lock.into_bytes());
    }
    let msg = error_message(&run(&f, opts(&[])).await);
    assert!(
        msg.starts_with("worker.yaml:5:16: error: cannot read the lock `pylock.toml`: line 5: the marker of package `six` nests parentheses 20000 deep"),
        "{msg}"
    );
}

/// What only the project's check runs.
const PROJECT_CHECK: &str = "cp -R /kiln/project-metadata/. /opt/venv/";

/// Issue 24: the project's `pip check` is a gate, solved beside the image (whose
/// definition holds no check); when it fails, the build's error is that step at
/// `app.project`'s line, before verify's failures, and no image is returned.
#[tokio::test]
async fn a_failed_project_check_is_its_step_and_no_image_is_returned() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    spec_with(&f, "app: {src: [app]}", "app: {project: .}");
    {
        let mut s = f.0.lock().unwrap();
        s.files.insert(
            "pyproject.toml".into(),
            b"[project]\nname = \"w\"\nversion = \"0.1\"\n\n[build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n".to_vec(),
        );
        // The project's check: its metadata copied into the venv, then `pip check`.
        s.fail_solves_containing = vec![PROJECT_CHECK.into()];
        s.fail_status = Some(1);
        s.errdefs_details = true;
        // Every verify check fails too (an empty needle matches each).
        s.verify_outcomes = vec![(String::new(), "1".into())];
    }
    let r = run(&f, opts(&[("target", "minimal")])).await;
    assert_eq!(
        error_message(&r),
        "worker.yaml:10: step `check: project .` failed: exit code: 1 (its output is in the build log above)"
    );
    assert!(r.result.is_none(), "no image is returned");
    let s = f.0.lock().unwrap();
    let has_check = |d: &pb::Definition| {
        ops(d).iter().any(|o| matches!(&o.op, Some(pb::op::Op::Exec(e)) if e.meta.as_ref().unwrap().args.join(" ").contains(PROJECT_CHECK)))
    };
    let defs: Vec<&pb::Definition> = s
        .solves
        .iter()
        .filter_map(|r| r.definition.as_ref())
        .collect();
    // The image (the largest definition) was solved, and holds no check.
    let image = defs.iter().max_by_key(|d| d.def.len()).unwrap();
    assert!(!has_check(image), "the image stands on no check");
}
