//! BuildKit's typed error details, as they travel in `google.rpc.Status.details`.
//!
//! BuildKit registers its `errdefs` messages with containerd's `typeurl` under JSON type
//! URLs (`github.com/moby/buildkit/errdefs.Source+json`), so an `Any`'s value is the JSON
//! of the Go struct, not protobuf bytes (moby/buildkit `solver/errdefs/vertex.go`,
//! `util/grpcerrors/grpcerrors.go`, since v0.8). Go's JSON writes `[]byte` as standard
//! base64. A `Source` detail is what makes `docker buildx build` print the spec line with
//! its `>>>` snippet; a `Vertex` detail names the op that failed.

use bollard_buildkit_proto::google::protobuf::Any;
use bollard_buildkit_proto::google::rpc::Status;
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::diag::{Loc, SourceFile};

pub const SOURCE_TYPE_URL: &str = "github.com/moby/buildkit/errdefs.Source+json";
pub const VERTEX_TYPE_URL: &str = "github.com/moby/buildkit/errdefs.Vertex+json";

/// `errdefs.Source`: the file (`pb.SourceInfo`) and the ranges in it.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
pub struct SourceJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<SourceInfoJson>,
    #[serde(default)]
    pub ranges: Vec<RangeJson>,
}

/// `pb.SourceInfo` in Go's JSON: `data` is base64.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
pub struct SourceInfoJson {
    #[serde(default)]
    pub filename: String,
    #[serde(default, with = "b64")]
    pub data: Vec<u8>,
    #[serde(default)]
    pub language: String,
}

/// `pb.Range`; lines are 1-based (BuildKit prints `data` line `start.line - 1`).
#[derive(Serialize, Deserialize, Debug, Default, Clone, Copy, PartialEq)]
pub struct RangeJson {
    #[serde(default)]
    pub start: PositionJson,
    #[serde(default)]
    pub end: PositionJson,
}

#[derive(Serialize, Deserialize, Debug, Default, Clone, Copy, PartialEq)]
pub struct PositionJson {
    #[serde(default)]
    pub line: i32,
    #[serde(default)]
    pub character: i32,
}

#[derive(Deserialize)]
struct VertexJson {
    #[serde(default)]
    digest: String,
}

impl RangeJson {
    /// The range of one spec position: its whole line, from its column.
    pub fn at(loc: Loc) -> RangeJson {
        let pos = |character: u32| PositionJson {
            line: loc.line as i32,
            character: character as i32,
        };
        RangeJson {
            start: pos(loc.col.saturating_sub(1)),
            end: pos(loc.col.saturating_sub(1)),
        }
    }
}

/// Above this size a file travels as an excerpt (see `excerpt`).
const WHOLE_FILE_BYTES: usize = 64 << 10;
/// Lines kept each side of the one shown; buildx prints at most 4.
const EXCERPT_LINES: u32 = 8;

/// The bytes of `text` a client needs to show `line`: all of a small file; of a large one,
/// the lines near `line` with every other line left empty, so line numbers still hold
/// while a 1 MiB spec with many errors does not travel once per error.
pub fn excerpt(text: &str, line: u32) -> Vec<u8> {
    if text.len() <= WHOLE_FILE_BYTES {
        return text.as_bytes().to_vec();
    }
    let (first, last) = (line.saturating_sub(EXCERPT_LINES), line + EXCERPT_LINES);
    let mut out = Vec::new();
    for (i, l) in text.split('\n').enumerate() {
        let n = i as u32 + 1;
        if n > last {
            break;
        }
        if n > 1 {
            out.push(b'\n');
        }
        if n >= first {
            out.extend_from_slice(l.as_bytes());
        }
    }
    out
}

/// The `errdefs.Source` detail for `loc` in `files`; `None` when `loc` has no line or file.
pub fn source_detail(files: &[SourceFile], loc: Loc) -> Option<Any> {
    let file = files.get(loc.file as usize)?;
    if loc.line == 0 {
        return None;
    }
    let source = SourceJson {
        info: Some(SourceInfoJson {
            filename: file.name.clone(),
            data: excerpt(file.text(), loc.line),
            language: "YAML".into(),
        }),
        ranges: vec![RangeJson::at(loc)],
    };
    Some(Any {
        type_url: SOURCE_TYPE_URL.into(),
        value: serde_json::to_vec(&source).expect("json"),
    })
}

/// The details of a gRPC status the engine sent (`grpc-status-details-bin` holds a whole
/// `google.rpc.Status`); empty when there are none or they do not decode.
pub fn status_details(status: &tonic::Status) -> Vec<Any> {
    if status.details().is_empty() {
        return vec![];
    }
    Status::decode(status.details())
        .map(|s| s.details)
        .unwrap_or_default()
}

/// The digests of the ops the details name (`errdefs.Vertex`), innermost last.
pub fn vertex_digests(details: &[Any]) -> Vec<String> {
    details
        .iter()
        .filter(|d| d.type_url == VERTEX_TYPE_URL)
        .filter_map(|d| serde_json::from_slice::<VertexJson>(&d.value).ok())
        .map(|v| v.digest)
        .filter(|d| !d.is_empty())
        .collect()
}

/// Whether the details already carry a source position.
pub fn has_source(details: &[Any]) -> bool {
    details.iter().any(|d| d.type_url == SOURCE_TYPE_URL)
}

/// Standard base64 with padding, as Go's `encoding/json` writes `[]byte`.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The inverse of [`base64`]; `None` on anything that is not standard padded base64.
pub fn unbase64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let v = if i >= 4 - pad { 0 } else { value(*c)? };
            n = (n << 6) | v;
        }
        let got = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&got[..3 - pad]);
    }
    Some(out)
}

/// serde for `Vec<u8>` as Go's JSON `[]byte` (base64 string; `null` is empty).
pub mod b64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::base64(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        match text {
            None => Ok(vec![]),
            Some(t) => {
                super::unbase64(&t).ok_or_else(|| serde::de::Error::custom("illegal base64 data"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
        for n in 0..40u8 {
            let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(unbase64(&base64(&data)).unwrap(), data);
        }
        assert_eq!(unbase64("Zm9"), None);
        assert_eq!(unbase64("Z!9v"), None);
    }

    #[test]
    fn a_source_detail_is_the_json_buildkit_reads() {
        let files = vec![SourceFile::new("w.yaml", "a: 1\nb: 2\n")];
        let any = source_detail(
            &files,
            Loc {
                file: 0,
                line: 2,
                col: 4,
            },
        )
        .unwrap();
        assert_eq!(any.type_url, SOURCE_TYPE_URL);
        let v: serde_json::Value = serde_json::from_slice(&any.value).unwrap();
        assert_eq!(v["info"]["filename"], "w.yaml");
        assert_eq!(v["info"]["data"], base64(b"a: 1\nb: 2\n"));
        assert_eq!(v["ranges"][0]["start"]["line"], 2);
        assert_eq!(v["ranges"][0]["start"]["character"], 3);
        assert!(source_detail(&files, Loc::default()).is_none());
    }

    #[test]
    fn a_large_file_travels_as_the_lines_near_the_error() {
        let text: String = (1..=20_000).map(|i| format!("key{i}: value\n")).collect();
        assert!(text.len() > WHOLE_FILE_BYTES);
        let got = String::from_utf8(excerpt(&text, 10_000)).unwrap();
        let lines: Vec<&str> = got.split('\n').collect();
        assert_eq!(lines.len(), 10_008, "up to 8 lines past the error");
        assert_eq!(lines[9_999], "key10000: value", "line numbers hold");
        assert_eq!(lines[9_991], "key9992: value");
        assert_eq!(lines[9_990], "", "lines far away are empty");
        assert!(got.len() < 20_000 * 2);
        assert_eq!(
            excerpt("a: 1\nb: 2\n", 1),
            b"a: 1\nb: 2\n",
            "a small file whole"
        );
    }

    #[test]
    fn vertex_details_name_their_digest() {
        let d = Any {
            type_url: VERTEX_TYPE_URL.into(),
            value: br#"{"digest":"sha256:ab"}"#.to_vec(),
        };
        let junk = Any {
            type_url: VERTEX_TYPE_URL.into(),
            value: b"{not json".to_vec(),
        };
        assert_eq!(vertex_digests(&[junk, d]), vec!["sha256:ab".to_string()]);
    }
}
