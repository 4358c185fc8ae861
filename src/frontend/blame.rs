//! A failed solve named as the step that failed: the op the engine's error names, its
//! progress name and its spec line (the definition's source map), with BuildKit's typed
//! details passed on. The image's solve, its gates and the runtime-library check's verdict
//! all report a failure this way.

use super::bridge::Failure;
use super::errdefs;
use crate::diag::{Loc, SourceFile};
use crate::llb::{self, pb};
use crate::plan::build_hints;

/// A failed image solve, named by the step that failed and its spec line: the op the
/// engine's `errdefs.Vertex` detail names, else the exec whose command the message quotes
/// (BuildKit 0.8 says `executor failed running [/bin/sh -c ...]`). The position comes
/// from the definition's source map; an `errdefs.Source` detail is added when the engine
/// sent none. A step wrapped by `build_hints::wrap` that exited with a hint's status gets
/// the hint after its exit code (`...; kiln: psycopg2 needs pg_config ...`).
pub fn blame_step(def: &pb::Definition, files: &[SourceFile], mut f: Failure) -> Failure {
    let Some(digest) = failed_op(def, &f) else {
        return f;
    };
    let Some(name) = def
        .metadata
        .get(&digest)
        .and_then(|m| m.description.get("llb.customname"))
    else {
        return f;
    };
    // Progress names end with ` (file:line)`; the position leads the message instead.
    let name = match name.rsplit_once(" (") {
        Some((n, tail)) if tail.ends_with(')') => n,
        _ => name.as_str(),
    };
    let location = def.source.as_ref().and_then(|s| {
        let l = s.locations.get(&digest)?.locations.first()?;
        let line = l.ranges.first()?.start.as_ref()?.line;
        Some((l.source_index, line))
    });
    let loc = location.and_then(|(file, line)| {
        Some(Loc {
            file: u16::try_from(file).ok()?,
            line: u32::try_from(line).ok()?,
            col: 1,
        })
    });
    let position = match loc.and_then(|l| files.get(l.file as usize).map(|f| (f, l))) {
        Some((file, l)) => format!("{}:{}: ", file.name, l.line),
        None => String::new(),
    };
    let engine_said = f
        .message
        .strip_prefix("build failed: ")
        .unwrap_or(&f.message);
    // The engine quotes the whole script (many lines); its exit code is what matters here,
    // and the script's own output is in the build log above the error.
    let exit = engine_said
        .rsplit_once("did not complete successfully: ")
        .or_else(|| engine_said.rsplit_once("]: "))
        .map(|(_, tail)| tail)
        .filter(|tail| tail.starts_with("exit code") && !tail.contains('\n'));
    // A step that may build from source exits with a hint's own status when its output
    // showed a missing system package (`build_hints::wrap`): the status is all the
    // engine passes on, on every BuildKit.
    let hint = exit
        .and_then(|tail| {
            tail.trim_start_matches("exit code")
                .trim_start_matches(':')
                .trim()
                .parse()
                .ok()
        })
        .filter(|_| exec_args(def, &digest).is_some_and(|a| a.contains(build_hints::MARKER)))
        .and_then(build_hints::for_status)
        .map(|h| format!("; kiln: {}", h.message()))
        .unwrap_or_default();
    let said = match exit {
        Some(code) => format!("{code} (its output is in the build log above){hint}"),
        None => engine_said.to_string(),
    };
    f.message = format!("{position}step `{name}` failed: {said}");
    if let Some(l) = loc
        && !errdefs::has_source(&f.details)
        && let Some(d) = errdefs::source_detail(files, l)
    {
        f.details.push(d);
    }
    f
}

/// The digest of the op of `def` whose failure `f` reports: the one the engine's
/// `errdefs.Vertex` detail names, else the exec whose command the message quotes. The
/// engine may name the vertex by another digest than ours (it normalises ops, e.g. their
/// platform, before solving), so an unknown one falls back to the quote.
pub(super) fn failed_op(def: &pb::Definition, f: &Failure) -> Option<String> {
    errdefs::vertex_digests(&f.details)
        .into_iter()
        .rev()
        .find(|d| def.metadata.contains_key(d))
        .or_else(|| exec_quoted_in(def, &f.message))
}

/// The command line of the exec op `digest` in `def`, joined by spaces.
pub(super) fn exec_args(def: &pb::Definition, digest: &str) -> Option<String> {
    use prost::Message;
    def.def.iter().find_map(|bytes| {
        if llb::digest_of(bytes) != digest {
            return None;
        }
        match pb::Op::decode(bytes.as_slice()).ok()?.op {
            Some(pb::op::Op::Exec(e)) => Some(e.meta?.args.join(" ")),
            _ => None,
        }
    })
}

/// The digest of the exec op whose command line `message` quotes: as is (BuildKit 0.8,
/// `executor failed running [...]`) or Go-quoted (later, `process "..." did not complete`).
fn exec_quoted_in(def: &pb::Definition, message: &str) -> Option<String> {
    use prost::Message;
    def.def.iter().find_map(|bytes| {
        let op = pb::Op::decode(bytes.as_slice()).ok()?;
        let Some(pb::op::Op::Exec(e)) = &op.op else {
            return None;
        };
        let args = e.meta.as_ref()?.args.join(" ");
        let quoted = go_quote(&args);
        (!args.is_empty() && (message.contains(&args) || message.contains(&quoted)))
            .then(|| crate::llb::digest_of(bytes))
    })
}

/// `s` as Go's `%q` writes it (for the printable text and control characters a script
/// holds): in double quotes, with `\`, `"`, `\n`, `\t`, `\r` and `\xNN` escapes.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
