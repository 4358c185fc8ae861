//! The SBOM attestation a client asks for with `attest:sbom` (buildx `--sbom=true`,
//! `buildctl --opt attest:sbom=`): kiln's own SPDX document per image (`crate::sbom`),
//! attached to the result as an in-toto attestation (`Result.attestations`, keyed by the
//! platform id the refs are), so BuildKit runs no scanner image.
//!
//! The document is made after the image is built and verified: kiln reads the image
//! through the gateway (ReadDir of the venv's site-packages, ReadFile of `pyvenv.cfg`,
//! the dpkg status file and `os-release`; no step runs in the image), writes the JSON
//! with a FileOp on scratch and returns that ref with the document's path. BuildKit's
//! exporter wraps it in an in-toto statement whose subject is the image (no subject
//! given: `Self`) and stores it in the attestation manifest. The image's own definition
//! is the same with or without the SBOM.

use std::collections::HashMap;

use bollard_buildkit_proto::moby::buildkit::v1::frontend as gw;

use super::bridge::{Bridge, Failure, MAX_READ_BYTES, RefId};
use super::opts::Options;
use crate::context::ContextInfo;
use crate::context::interpreter::Interpreter;
use crate::llb::{self, Meta, caps, platform};
use crate::sbom::{self, Dist, Found, Image};
use crate::spec::{Spec, Variant};

/// The document's path in its ref.
pub const PATH: &str = "/kiln.spdx.json";
/// The attestation's `reason` metadata, as BuildKit's own SBOM scanner sets it.
const REASON: (&str, &[u8]) = ("reason", b"sbom");
/// The dpkg status file is read in parts of at most 1 MiB, up to this many bytes.
const MAX_DPKG_STATUS: usize = 16 << 20;
/// An SBOM of more than this is refused rather than put into a definition (which must fit
/// in one 4 MiB gateway message with the rest of the request).
const MAX_DOCUMENT: usize = 3 << 20;
/// At most this many unpinned distributions get their `METADATA` read for the name as
/// written; past it, their `.dist-info` directory's name stands (PEP 503-equal).
const MAX_METADATA_READS: usize = 1000;

/// What `attest:sbom` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// kiln's own document (no generator named: buildx's `--sbom=true` sends
    /// `type=sbom`).
    Kiln,
    /// A scanner image the client named (`generator=IMAGE`): kiln attaches nothing, so
    /// BuildKit runs that scanner on the image, as it does for any frontend.
    Generator(String),
}

impl Request {
    /// From `attest:sbom`'s value: comma-separated `key=value` fields, a field in double
    /// quotes when it holds a comma (CSV, as BuildKit reads it). Errors: an unterminated
    /// quote.
    pub fn parse(value: &str) -> Result<Request, String> {
        for field in csv_fields(value)? {
            if let Some(image) = field.strip_prefix("generator=")
                && !image.is_empty()
            {
                return Ok(Request::Generator(image.to_string()));
            }
        }
        Ok(Request::Kiln)
    }
}

/// The fields of one CSV record (RFC 4180 quoting: `"a,b"`, `""` for a quote).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = vec![];
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (false, '"') if field.is_empty() => quoted = true,
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return Err(format!(
            "invalid attest:sbom option `{line}`: a quote is not closed"
        ));
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
    }
    Ok(fields)
}

/// Refuse a build that asks for an SBOM the engine cannot carry, before anything is built:
/// without `reference.attestations` (BuildKit 0.11, Docker 24.0) the engine drops a
/// result's attestations, and the image would ship without the SBOM asked for.
pub fn check(bridge: &Bridge, opts: &Options) -> Result<(), Failure> {
    if opts.sbom.is_none() || bridge.caps.attestations() {
        return Ok(());
    }
    let cap = caps::REFERENCE_ATTESTATIONS;
    Err(Failure::new(
        tonic::Code::FailedPrecondition,
        format!(
            "an SBOM was asked for (attest:sbom, --sbom), but this BuildKit cannot attach attestations to an image (no `{}` gateway cap); use {}, or build without --sbom",
            cap.id,
            cap.since.at_least()
        ),
    ))
}

/// One image's facts beside its ref: what the SBOM says about it.
pub struct Subject<'a> {
    pub spec: &'a Spec,
    pub variant: &'a Variant,
    pub context: &'a ContextInfo,
    pub platform: &'a llb::pb::Platform,
    /// The base as pinned (`docker.io/library/python:3.12-slim@sha256:...`).
    pub base: &'a str,
    /// The base's interpreter, when the frontend read it (a fetched lock's choice).
    pub interpreter: Option<&'a Interpreter>,
    /// `[os/arch] ` for multi-platform builds.
    pub step_prefix: Option<&'a str>,
}

/// The SBOM of the built image `image`: read what it holds, write the document, solve it.
/// Returns the attestation for `Result.attestations`. Errors: a read the engine failed
/// (other than a missing file), or a document too large for one definition.
pub async fn attest(
    bridge: &Bridge,
    s: &Subject<'_>,
    image: &RefId,
) -> Result<gw::Attestation, Failure> {
    let started = std::time::Instant::now();
    let pinned = sbom::pinned(s.spec, s.variant, s.context, s.interpreter);
    let found = read_image(bridge, image, &s.variant.python.venv, &pinned).await?;
    let platform_id = platform::id(s.platform);
    let doc = sbom::spdx::document(
        &Image {
            spec: &s.spec.name.v,
            spec_file: s.spec.files.first().map_or("", |f| f.name.as_str()),
            variant: &s.variant.name.v,
            platform: &platform_id,
            base: s.base,
            venv: &s.variant.python.venv,
            created: s.spec.source_date_epoch.unwrap_or(0),
        },
        &pinned,
        &found,
    );
    if doc.len() > MAX_DOCUMENT {
        return Err(Failure::new(
            tonic::Code::ResourceExhausted,
            format!(
                "the SBOM of {} is {} bytes, over the {MAX_DOCUMENT} kiln sends to BuildKit in one definition; build without --sbom",
                s.variant.name.v,
                doc.len()
            ),
        ));
    }
    let name = format!(
        "{}sbom: SPDX document of {} ({} Python, {} Debian packages)",
        s.step_prefix.unwrap_or_default(),
        s.variant.name.v,
        found.dists.len(),
        found.debs.len()
    );
    // (the state is not Send: marshalled before the await)
    let def = {
        let st = llb::scratch()
            .file(Meta {
                name: Some(name),
                ..Default::default()
            })
            .mkfile(PATH, 0o644, &doc)
            .done();
        llb::marshal(&st, &[])
    };
    let r = bridge.solve(def, true).await?;
    eprintln!(
        "kiln: SBOM of {} ({platform_id}): {} Python ({} pinned), {} Debian packages, {} bytes, in {} ms",
        s.variant.name.v,
        found.dists.len(),
        found
            .dists
            .iter()
            .filter(|d| !sbom::pins_of(d, &pinned).is_empty())
            .count(),
        found.debs.len(),
        doc.len(),
        started.elapsed().as_millis()
    );
    Ok(attestation(r))
}

/// The attestation of the document at `PATH` in `r`: in-toto, SPDX, no subject (BuildKit
/// makes the image its subject).
pub fn attestation(r: RefId) -> gw::Attestation {
    gw::Attestation {
        kind: gw::AttestationKind::InToto as i32,
        metadata: HashMap::from([(REASON.0.to_string(), REASON.1.to_vec())]),
        r#ref: Some(gw::Ref { id: r.0, def: None }),
        path: PATH.into(),
        in_toto_predicate_type: sbom::PREDICATE_SPDX.into(),
        in_toto_subjects: vec![],
    }
}

/// What the image holds: its venv's distributions and interpreter, its dpkg packages and
/// its os-release. A file or directory the image does not have is no fact (an image
/// without dpkg); any other failed read is an error.
async fn read_image(
    bridge: &Bridge,
    image: &RefId,
    venv: &str,
    pinned: &[sbom::Pinned],
) -> Result<Found, Failure> {
    let mut found = Found {
        python: optional(read_all(bridge, image, &format!("{venv}/pyvenv.cfg"), 1 << 20).await)?
            .and_then(|t| sbom::image::pyvenv_version(&String::from_utf8_lossy(&t))),
        ..Default::default()
    };
    let lib = format!("{venv}/lib");
    let pythons = optional(
        bridge
            .dir_names(image, &lib, "python*")
            .await
            .map_err(|s| fail(&lib, s)),
    )?
    .unwrap_or_default();
    let mut reads = 0;
    for py in pythons.iter().filter(|p| p.starts_with("python")) {
        let site = format!("{lib}/{py}/site-packages");
        let names = optional(
            bridge
                .dir_names(image, &site, "*.dist-info")
                .await
                .map_err(|s| fail(&site, s)),
        )?
        .unwrap_or_default();
        for dir in names {
            let Some((name, version)) = sbom::image::dist_info(&dir) else {
                continue;
            };
            let mut dist = Dist { name, version };
            // A pin names it as its lock writes it; an unpinned one by its metadata.
            if sbom::pins_of(&dist, pinned).is_empty() && reads < MAX_METADATA_READS {
                reads += 1;
                let path = format!("{site}/{dir}/METADATA");
                if let Some(text) = optional(read_all(bridge, image, &path, 1 << 20).await)?
                    && let Some((n, v)) =
                        sbom::image::metadata_name_version(&String::from_utf8_lossy(&text))
                {
                    dist = Dist {
                        name: n,
                        version: v,
                    };
                }
            }
            found.dists.push(dist);
        }
    }
    let status = "/var/lib/dpkg/status";
    if let Some(text) = optional(read_all(bridge, image, status, MAX_DPKG_STATUS).await)? {
        found.debs = sbom::image::dpkg_status(&String::from_utf8_lossy(&text));
    }
    for path in ["/etc/os-release", "/usr/lib/os-release"] {
        if let Some(text) = optional(read_all(bridge, image, path, 64 << 10).await)? {
            found.os = sbom::image::os_release(&String::from_utf8_lossy(&text));
            break;
        }
    }
    Ok(found)
}

/// A read's failure, with the path and what the engine said.
struct ReadError {
    missing: bool,
    failure: Failure,
}

fn fail(path: &str, s: tonic::Status) -> ReadError {
    // BuildKit reports a missing path as its `os` error text, with code Unknown or NotFound.
    let missing = s.code() == tonic::Code::NotFound
        || s.message().contains("no such file or directory")
        || s.message().contains("not a directory");
    ReadError {
        missing,
        failure: Failure::engine(&format!("the SBOM could not read {path} in the image"), s),
    }
}

/// `Ok(None)` for a path the image does not have.
fn optional<T>(r: Result<T, ReadError>) -> Result<Option<T>, Failure> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.missing => Ok(None),
        Err(e) => Err(e.failure),
    }
}

/// All of `path` in `r`, read in parts of at most `MAX_READ_BYTES`, up to `max` bytes.
/// Errors: the read's, or a file larger than `max`.
async fn read_all(
    bridge: &Bridge,
    r: &RefId,
    path: &str,
    max: usize,
) -> Result<Vec<u8>, ReadError> {
    let part = MAX_READ_BYTES - 1;
    let mut out = vec![];
    loop {
        let data = bridge
            .read_range(r, path, out.len() as i64, part as i64)
            .await
            .map_err(|s| fail(path, s))?;
        let done = data.len() < part;
        out.extend(data);
        if out.len() > max {
            return Err(ReadError {
                missing: false,
                failure: Failure::new(
                    tonic::Code::ResourceExhausted,
                    format!("{path} in the image is over {max} bytes, more than the SBOM reads"),
                ),
            });
        }
        if done {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildx_and_buildctl_values_ask_for_kilns_document() {
        assert_eq!(Request::parse(""), Ok(Request::Kiln));
        assert_eq!(Request::parse("type=sbom"), Ok(Request::Kiln));
        assert_eq!(
            Request::parse("type=sbom,disabled=false"),
            Ok(Request::Kiln)
        );
        assert_eq!(
            Request::parse("type=sbom,generator=docker/buildkit-syft-scanner"),
            Ok(Request::Generator("docker/buildkit-syft-scanner".into()))
        );
        assert_eq!(
            Request::parse("\"generator=reg/scan:1\",\"ARG=a,b\""),
            Ok(Request::Generator("reg/scan:1".into()))
        );
        assert!(Request::parse("\"generator=x").is_err());
    }

    #[test]
    fn csv_fields_as_buildkit_reads_them() {
        assert_eq!(csv_fields("a=1,b=2").unwrap(), ["a=1", "b=2"]);
        assert_eq!(csv_fields("\"a=1,2\",b").unwrap(), ["a=1,2", "b"]);
        assert_eq!(csv_fields("\"say \"\"hi\"\"\"").unwrap(), ["say \"hi\""]);
        assert!(csv_fields("").unwrap().is_empty());
    }

    #[test]
    fn the_attestation_is_an_in_toto_spdx_document_without_subjects() {
        let a = attestation(RefId("r1".into()));
        assert_eq!(a.kind, gw::AttestationKind::InToto as i32);
        assert_eq!(a.in_toto_predicate_type, "https://spdx.dev/Document");
        assert_eq!(a.path, PATH);
        assert_eq!(a.r#ref.unwrap().id, "r1");
        assert!(a.in_toto_subjects.is_empty());
        assert_eq!(a.metadata["reason"], b"sbom");
    }
}
