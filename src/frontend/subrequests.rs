//! Subrequests: `docker build --call targets|outline|check` and `frontend.subrequests.describe`.
//!
//! The JSON answers have the shapes BuildKit's Go types decode (moby/buildkit
//! `frontend/subrequests/targets`, `outline`, `lint`): fields without a JSON tag keep
//! their Go name (`Targets`, `Location`, `Name`), `[]byte` is base64, lint's sources are
//! `pb.SourceInfo`, and a `pb.Location` is `{sourceIndex, ranges: [{start, end}]}` with
//! 1-based lines.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::bridge::{Bridge, Failure, Refs, Returned};
use super::context::read_spec;
use super::errdefs::base64;
use super::opts::Options;
use crate::diag::{Loc, Severity};
use crate::spec::Loaded;
use crate::url::redact_text;

const VERSION: &str = "1.0.0";

/// A `pb.Location`. A diagnostic without a line (an undeclared build arg) points at line
/// 1: BuildKit's lint printers read the first range of every warning.
fn location(loc: Loc) -> Value {
    let line = loc.line.max(1);
    let character = loc.col.saturating_sub(1);
    let pos = json!({"line": line, "character": character});
    json!({"sourceIndex": loc.file, "ranges": [{"start": pos, "end": pos}]})
}

fn result(json_value: Value, text: String, extra: &[(&str, String)]) -> Returned {
    let mut metadata = HashMap::new();
    metadata.insert(
        "result.json".to_string(),
        serde_json::to_vec_pretty(&json_value).expect("json"),
    );
    metadata.insert("result.txt".to_string(), text.into_bytes());
    metadata.insert("version".to_string(), VERSION.as_bytes().to_vec());
    for (k, v) in extra {
        metadata.insert(k.to_string(), v.as_bytes().to_vec());
    }
    Returned {
        refs: Refs::None,
        metadata,
        attestations: HashMap::new(),
    }
}

/// Answer the subrequest `id` (`docker build --call ...`) instead of building.
pub async fn handle(bridge: &mut Bridge, opts: &Options, id: &str) -> Result<Returned, Failure> {
    match id {
        "frontend.subrequests.describe" => Ok(describe()),
        "frontend.targets" => Ok(targets(&read_spec(bridge, opts).await?)),
        "frontend.outline" => Ok(outline(&read_spec(bridge, opts).await?)),
        "frontend.lint" => Ok(lint(&read_spec(bridge, opts).await?)),
        other => Err(Failure::new(
            tonic::Code::Unimplemented,
            format!("kiln does not support the subrequest `{other}`"),
        )),
    }
}

fn describe() -> Returned {
    let list = [
        (
            "frontend.subrequests.describe",
            "List available subrequest types",
        ),
        (
            "frontend.outline",
            "List the spec's build arguments and secrets",
        ),
        ("frontend.targets", "List the variants this spec can build"),
        ("frontend.lint", "Check the spec and report warnings"),
    ];
    let requests: Vec<Value> = list
        .iter()
        .map(|(name, desc)| json!({"name": name, "version": VERSION, "type": "type.rpc", "description": desc, "metadata": [{"name": "result.json"}, {"name": "result.txt"}]}))
        .collect();
    let text = list.iter().map(|(n, d)| format!("{n:32} {d}\n")).collect();
    result(json!(requests), text, &[])
}

/// The variants, the default marked.
fn targets(loaded: &Loaded) -> Returned {
    let spec = &loaded.spec;
    let targets: Vec<Value> = spec
        .variants
        .iter()
        .map(|v| {
            json!({"name": v.name.v, "default": v.name.v == spec.default_variant, "description": v.description, "base": v.python.base.v, "Location": location(v.name.loc)})
        })
        .collect();
    let mut text = String::from("TARGET            DESCRIPTION\n");
    for v in &spec.variants {
        let name = if v.name.v == spec.default_variant {
            format!("{} (default)", v.name.v)
        } else {
            v.name.v.clone()
        };
        text.push_str(&format!("{name:17} {}\n", v.description));
    }
    result(
        json!({"Targets": targets, "Sources": file_bytes(loaded)}),
        text,
        &[],
    )
}

/// The build args (with their values; a `--build-arg` URL without its credentials) and
/// the secrets the spec uses.
fn outline(loaded: &Loaded) -> Returned {
    let spec = &loaded.spec;
    let args: Vec<Value> = spec
        .args
        .iter()
        .map(|a| json!({"Name": a.name, "Description": "", "Value": redact_text(&a.value), "Location": location(a.loc)}))
        .collect();
    let secrets: Vec<Value> = [&spec.secrets.ca_bundle, &spec.secrets.netrc]
        .into_iter()
        .flatten()
        .map(|id| json!({"Name": id, "Required": false}))
        .collect();
    let mut text = String::from("BUILD ARG         VALUE\n");
    for a in &spec.args {
        text.push_str(&format!("{:17} {}\n", a.name, redact_text(&a.value)));
    }
    result(
        json!({"args": args, "secrets": secrets, "sources": file_bytes(loaded)}),
        text,
        &[],
    )
}

/// The spec's warnings: the rule name is the diagnostic's code, the description what
/// the rule is about, the detail the message and its help (buildx prints
/// `WARNING: <rule>`, then the detail, then the spec lines).
fn lint(loaded: &Loaded) -> Returned {
    let spec = &loaded.spec;
    let warnings: Vec<Value> = loaded
        .warnings
        .iter()
        .filter(|w| w.severity == Severity::Warning)
        .map(|w| {
            json!({"ruleName": w.code, "description": w.rule_description(), "detail": format!("{} (help: {})", w.message, w.help), "location": location(w.loc)})
        })
        .collect();
    let text: String = loaded
        .warnings
        .iter()
        .map(|w| format!("{}\n", w.one_line(&spec.files)))
        .collect();
    let status = if warnings.is_empty() { "0" } else { "1" };
    result(
        json!({"warnings": warnings, "sources": source_infos(loaded)}),
        text,
        &[("result.statuscode", status.to_string())],
    )
}

/// Each spec file's text (credentials masked, see `SourceFile`) as Go's `[]byte`
/// (targets, outline).
fn file_bytes(loaded: &Loaded) -> Vec<Value> {
    loaded
        .spec
        .files
        .iter()
        .map(|f| json!(base64(f.text().as_bytes())))
        .collect()
}

/// Each spec file as a `pb.SourceInfo` (lint).
fn source_infos(loaded: &Loaded) -> Vec<Value> {
    loaded
        .spec
        .files
        .iter()
        .map(|f| json!({"filename": f.name, "language": "YAML", "data": base64(f.text().as_bytes())}))
        .collect()
}
