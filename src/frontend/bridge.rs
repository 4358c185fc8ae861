//! The calls kiln makes to BuildKit's LLBBridge, each with the engine's caps in mind.

use std::collections::HashMap;
use std::time::Duration;

use bollard_buildkit_proto::google::protobuf::Any;
use bollard_buildkit_proto::google::rpc::Status;
use bollard_buildkit_proto::moby::buildkit::v1::frontend::{
    self as gw, CacheOptionsEntry, llb_bridge_client::LlbBridgeClient, result::Result as ResultKind,
};
use bollard_buildkit_proto::moby::buildkit::v1::types::WorkerRecord;
use prost::Message;
use tonic::transport::Channel;

use super::errdefs;
use super::opts::CacheImport;
use crate::diag::{Diagnostic, Loc, SourceFile};
use crate::llb::caps::{self, Caps};
use crate::llb::pb;

/// What kiln accepts from BuildKit in one message (a large image config or error).
pub const MAX_MESSAGE: usize = 16 << 20;
/// What BuildKit's gateway server accepts from a frontend in one message: gRPC's default
/// receive limit, 4 MiB, since `serveLLBBridgeForwarder` sets none of its own (BuildKit
/// 0.8 through 0.2x). A larger Solve or Return is refused with a bare transport error,
/// so kiln checks its own requests first and says what was too large.
pub const MAX_SEND: usize = 4 << 20;
/// Spec positions attached to one failure as `errdefs.Source` details.
const MAX_SOURCE_DETAILS: usize = 10;
/// An error message longer than this is cut: the user reads its start.
const MAX_ERROR_MESSAGE: usize = 64 << 10;
/// See `Bridge::read_file`.
pub const MAX_READ_BYTES: usize = (1 << 20) + 1;
const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// A failure to hand back to BuildKit (and the user) through `Return`.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub code: tonic::Code,
    pub message: String,
    /// Typed details (`google.rpc.Status.details`): BuildKit's `errdefs.Source` for a spec
    /// position, or whatever the engine attached to a failed solve (passed through).
    pub details: Vec<Any>,
}

impl Failure {
    pub fn new(code: tonic::Code, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            details: vec![],
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Failure::new(tonic::Code::InvalidArgument, message)
    }

    /// A failure made of errors in the spec: their `one_line`s, one a line (the first
    /// `diag::MAX_SHOWN`, then how many more), each position an `errdefs.Source` detail,
    /// so buildx prints the line with its snippet. The code is `Unknown`, which
    /// BuildKit's Go errors print without a `Code: ` prefix (it would be repeated at every
    /// hop otherwise).
    pub fn from_diagnostics(files: &[SourceFile], diagnostics: &[Diagnostic]) -> Self {
        Failure {
            code: tonic::Code::Unknown,
            message: crate::diag::one_lines(files, diagnostics),
            // buildx prints each; a report of thousands shows its first few.
            details: diagnostics
                .iter()
                .take(MAX_SOURCE_DETAILS)
                .filter_map(|d| errdefs::source_detail(files, d.loc))
                .collect(),
        }
    }

    /// The engine's status, its code and details kept, its message after `what`.
    pub fn engine(what: &str, status: tonic::Status) -> Self {
        Failure {
            code: status.code(),
            message: format!("{what}: {}", status.message()),
            details: errdefs::status_details(&status),
        }
    }
}

/// Cheap to clone (one HTTP/2 channel underneath): clones solve at the same time.
#[derive(Clone)]
pub struct Bridge {
    client: LlbBridgeClient<Channel>,
    /// What the engine offers, from its Ping.
    pub caps: Caps,
    pub workers: Vec<WorkerRecord>,
    pub cache_imports: Vec<CacheImport>,
}

/// A solved result's reference, in the form this engine speaks.
#[derive(Clone, Debug, PartialEq)]
pub struct RefId(pub String);

impl Bridge {
    pub async fn connect(channel: Channel) -> Result<Bridge, Failure> {
        let mut client = LlbBridgeClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let pong = tokio::time::timeout(PING_TIMEOUT, client.ping(gw::PingRequest {}))
            .await
            .map_err(|_| {
                Failure::new(
                    tonic::Code::DeadlineExceeded,
                    "BuildKit did not answer Ping within 15 s",
                )
            })?
            .map_err(|s| Failure::engine("ping BuildKit", s))?
            .into_inner();
        Ok(Bridge {
            client,
            caps: Caps::from_ping(&pong.frontend_api_caps, &pong.llb_caps),
            workers: pong.workers,
            cache_imports: vec![],
        })
    }

    /// Refuse a definition that uses an op the engine does not know, naming each cap it
    /// lacks and the first release that has it.
    pub fn check_caps(&self, def: &pb::Definition) -> Result<(), Failure> {
        let missing = self.caps.missing(def);
        if missing.is_empty() {
            return Ok(());
        }
        Err(Failure::new(
            tonic::Code::FailedPrecondition,
            format!(
                "this BuildKit lacks LLB capabilities kiln needs: {}; upgrade the engine (see docs/usage.md)",
                missing.join(", ")
            ),
        ))
    }

    pub async fn solve(&self, def: pb::Definition, evaluate: bool) -> Result<RefId, Failure> {
        let mut client = self.client.clone();
        self.check_caps(&def)?;
        let req = gw::SolveRequest {
            definition: Some(def),
            allow_result_return: true,
            allow_result_array_ref: self.caps.ref_array(),
            cache_imports: self
                .cache_imports
                .iter()
                .map(|c| CacheOptionsEntry {
                    r#type: c.kind.clone(),
                    attrs: c.attrs.clone().into_iter().collect(),
                })
                .collect(),
            evaluate: evaluate && self.caps.evaluate(),
            ..Default::default()
        };
        fits("build definition", req.encoded_len())?;
        let resp = client
            .solve(req)
            .await
            .map_err(|s| Failure::engine("build failed", s))?
            .into_inner();
        let id = match resp.result.and_then(|r| r.result) {
            Some(ResultKind::Ref(r)) => r.id,
            Some(ResultKind::RefDeprecated(id)) => id,
            _ => resp.r#ref,
        };
        let id = RefId(id);
        // Older engines have no evaluate flag: reading from the result forces it to be built.
        if evaluate && !self.caps.evaluate() {
            if self.caps.stat_file() {
                client
                    .stat_file(gw::StatFileRequest {
                        r#ref: id.0.clone(),
                        path: ".".into(),
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| Failure::engine("build failed", s))?;
            } else {
                return Err(Failure::new(
                    tonic::Code::FailedPrecondition,
                    format!(
                        "this BuildKit can neither evaluate a solve nor stat a result, so kiln cannot build the image before verifying it; upgrade to {}",
                        caps::GATEWAY_EVALUATE_SOLVE.since.at_least()
                    ),
                ));
            }
        }
        Ok(id)
    }

    /// The first `MAX_READ_BYTES` of `path` in the result `r`: every file kiln reads (a
    /// spec, a requirement file, a lock, verify's results) is at most 1 MiB, and one byte
    /// more lets that limit be reported, so a huge file in the context costs no more.
    pub async fn read_file(&mut self, r: &RefId, path: &str) -> Result<Vec<u8>, tonic::Status> {
        self.read_range(r, path, 0, MAX_READ_BYTES as i64).await
    }

    /// Up to `length` bytes of `path` in `r` from `offset` (a large file read in parts).
    pub async fn read_range(
        &self,
        r: &RefId,
        path: &str,
        offset: i64,
        length: i64,
    ) -> Result<Vec<u8>, tonic::Status> {
        Ok(self
            .client
            .clone()
            .read_file(gw::ReadFileRequest {
                r#ref: r.0.clone(),
                file_path: path.into(),
                range: Some(gw::FileRange { offset, length }),
                ..Default::default()
            })
            .await?
            .into_inner()
            .data)
    }

    /// The names in the directory `path` of `r` that match `pattern` (ReadDir's include
    /// pattern, a glob such as `*.dist-info`).
    pub async fn dir_names(
        &self,
        r: &RefId,
        path: &str,
        pattern: &str,
    ) -> Result<Vec<String>, tonic::Status> {
        Ok(self
            .client
            .clone()
            .read_dir(gw::ReadDirRequest {
                r#ref: r.0.clone(),
                dir_path: path.into(),
                include_pattern: pattern.into(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .entries
            .into_iter()
            .map(|e| e.path)
            .collect())
    }

    /// Whether `path` exists in the result `r` (StatFile).
    pub async fn stat(&self, r: &RefId, path: &str) -> Result<(), tonic::Status> {
        self.client
            .clone()
            .stat_file(gw::StatFileRequest {
                r#ref: r.0.clone(),
                path: path.into(),
                ..Default::default()
            })
            .await
            .map(|_| ())
    }

    /// How many entries the directory `path` of `r` has (ReadDir); an error for a file.
    pub async fn dir_entries(&self, r: &RefId, path: &str) -> Result<usize, tonic::Status> {
        Ok(self
            .client
            .clone()
            .read_dir(gw::ReadDirRequest {
                r#ref: r.0.clone(),
                dir_path: path.into(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .entries
            .len())
    }

    pub async fn resolve_image(
        &self,
        reference: &str,
        platform: &pb::Platform,
    ) -> Result<(String, Vec<u8>), Failure> {
        let resp = self
            .client
            .clone()
            .resolve_image_config(gw::ResolveImageConfigRequest {
                r#ref: reference.into(),
                platform: Some(platform.clone()),
                resolve_mode: if self.caps.resolve_mode() {
                    "default".into()
                } else {
                    String::new()
                },
                log_name: format!("[internal] load metadata for {reference}"),
                ..Default::default()
            })
            .await
            .map_err(|s| Failure::engine(&format!("cannot resolve base image {reference}"), s))?
            .into_inner();
        Ok((resp.digest, resp.config))
    }

    /// A build warning (`Warn`, `Caps::warnings`), shown by buildx with the spec
    /// line when `loc` has one; attached to the vertex `digest` (the spec's load).
    pub async fn warn(
        &self,
        digest: &str,
        short: &str,
        detail: &[String],
        files: &[SourceFile],
        loc: Loc,
    ) -> Result<(), Failure> {
        let file = files.get(loc.file as usize).filter(|_| loc.line > 0);
        let pos = |character: u32| pb::Position {
            line: loc.line as i32,
            character: character as i32,
        };
        let req = gw::WarnRequest {
            digest: digest.into(),
            // The Dockerfile frontend's level for its lint warnings.
            level: 1,
            short: short.as_bytes().to_vec(),
            detail: detail.iter().map(|d| d.as_bytes().to_vec()).collect(),
            url: String::new(),
            info: file.map(|f| pb::SourceInfo {
                filename: f.name.clone(),
                data: errdefs::excerpt(f.text(), loc.line),
                definition: None,
                language: "YAML".into(),
            }),
            ranges: file
                .map(|_| {
                    vec![pb::Range {
                        start: Some(pos(loc.col.saturating_sub(1))),
                        end: Some(pos(loc.col.saturating_sub(1))),
                    }]
                })
                .unwrap_or_default(),
        };
        self.client
            .clone()
            .warn(req)
            .await
            .map(|_| ())
            .map_err(|s| Failure::engine("warn", s))
    }

    /// Hand the result (or the failure) back; the build ends here. A result over
    /// `MAX_SEND` goes back as the failure that says so; a failure's message is cut to
    /// `MAX_ERROR_MESSAGE`, so every Return fits.
    pub async fn finish(&mut self, result: Result<Returned, Failure>) -> Result<(), tonic::Status> {
        let result = result.and_then(|r| {
            let len: usize = r.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
            match fits("image config and result metadata", len) {
                Ok(()) => Ok(r),
                Err(f) => Err(largest_entry(&r.metadata, f)),
            }
        });
        let req = match result {
            Ok(r) => {
                let refarray = self.caps.ref_array();
                let to_ref = |id: String| gw::Ref { id, def: None };
                let kind = match r.refs {
                    Refs::None => None,
                    Refs::Single(id) if refarray => Some(ResultKind::Ref(to_ref(id.0))),
                    Refs::Single(id) => Some(ResultKind::RefDeprecated(id.0)),
                    Refs::Map(m) if refarray => Some(ResultKind::Refs(gw::RefMap {
                        refs: m.into_iter().map(|(k, v)| (k, to_ref(v.0))).collect(),
                    })),
                    Refs::Map(m) => Some(ResultKind::RefsDeprecated(gw::RefMapDeprecated {
                        refs: m.into_iter().map(|(k, v)| (k, v.0)).collect(),
                    })),
                };
                gw::ReturnRequest {
                    result: Some(gw::Result {
                        metadata: r.metadata,
                        attestations: r.attestations,
                        result: kind,
                    }),
                    error: None,
                }
            }
            Err(f) => {
                let mut status = Status {
                    code: f.code as i32,
                    message: cut(f.message, MAX_ERROR_MESSAGE),
                    details: f.details,
                };
                if status.encoded_len() > MAX_SEND / 2 {
                    status.details.clear();
                }
                gw::ReturnRequest {
                    result: None,
                    error: Some(status),
                }
            }
        };
        self.client.r#return(req).await.map(|_| ())
    }
}

/// `Ok` when a request of `len` bytes fits in one gateway message; otherwise the failure
/// that names `what` and both sizes.
fn fits(what: &str, len: usize) -> Result<(), Failure> {
    if len <= MAX_SEND {
        return Ok(());
    }
    Err(Failure::new(
        tonic::Code::ResourceExhausted,
        format!(
            "the {what} is {}, over the {} BuildKit accepts from a frontend in one message; make the spec's largest values smaller (env, labels, args and what `${{}}` expands to)",
            mib(len),
            mib(MAX_SEND)
        ),
    ))
}

/// `f` with the largest metadata entry named (the image config, as a rule).
fn largest_entry(metadata: &HashMap<String, Vec<u8>>, f: Failure) -> Failure {
    match metadata.iter().max_by_key(|(k, v)| (v.len(), k.as_str())) {
        Some((k, v)) => Failure {
            message: format!(
                "{}; the largest part is `{k}` ({})",
                f.message,
                mib(v.len())
            ),
            ..f
        },
        None => f,
    }
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// `text` cut to at most `max` bytes on a char boundary, saying how much was left out.
fn cut(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{} [... {} more bytes of this message cut]",
        &text[..end],
        text.len() - end
    )
}

pub enum Refs {
    None,
    Single(RefId),
    Map(Vec<(String, RefId)>),
}

pub struct Returned {
    pub refs: Refs,
    pub metadata: HashMap<String, Vec<u8>>,
    /// Attestations (an SBOM) by the platform id the refs are keyed by.
    pub attestations: HashMap<String, gw::Attestations>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_over_the_gateway_limit_is_named_with_its_size() {
        assert!(fits("build definition", MAX_SEND).is_ok());
        let f = fits("build definition", MAX_SEND + 1).unwrap_err();
        assert_eq!(f.code, tonic::Code::ResourceExhausted);
        assert!(
            f.message
                .starts_with("the build definition is 4.0 MiB, over the 4.0 MiB")
        );
        let meta = HashMap::from([
            ("containerimage.config".to_string(), vec![b'x'; 5 << 20]),
            ("small".to_string(), vec![]),
        ]);
        let f = largest_entry(&meta, f);
        assert!(
            f.message
                .ends_with("the largest part is `containerimage.config` (5.0 MiB)"),
            "{}",
            f.message
        );
    }

    #[test]
    fn a_long_message_is_cut_on_a_char_boundary() {
        assert_eq!(cut("short".into(), 10), "short");
        let long = "é".repeat(10); // 20 bytes
        assert_eq!(cut(long, 5), "éé [... 16 more bytes of this message cut]");
    }
}
