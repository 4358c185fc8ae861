//! `${NAME}` expansion of spec strings from the spec's `args` (and `--build-arg`s).

use std::collections::BTreeMap;

use super::yaml::{Node, Value};
use crate::diag::{Diagnostic, did_you_mean};

/// How many bytes expansion may add to a spec, all strings together: a 1 MiB spec that
/// repeats a large argument must not grow without bound (memory, and every later step).
pub const MAX_EXPANDED_BYTES: usize = 4 << 20;

/// Expand `${NAME}` in every string of `node` (`$$` is a literal `$`). `budget` is what
/// expansion may still add (see `MAX_EXPANDED_BYTES`); once it is spent, each string that
/// would grow is an error at its position.
pub(crate) fn expand(
    node: &mut Node,
    args: &BTreeMap<String, String>,
    budget: &mut usize,
    diags: &mut Vec<Diagnostic>,
) {
    match &mut node.value {
        Value::Str(s) if s.contains('$') => match expand_str(s, args, s.len() + *budget) {
            Ok(v) => {
                *budget -= v.len().saturating_sub(s.len()).min(*budget);
                *s = v;
            }
            Err((msg, help)) => diags.push(Diagnostic::error(node.loc, msg, help)),
        },
        Value::Seq(items) => items
            .iter_mut()
            .for_each(|i| expand(i, args, budget, diags)),
        Value::Map(entries) => entries
            .iter_mut()
            .for_each(|(_, v)| expand(v, args, budget, diags)),
        _ => {}
    }
}

/// `s` expanded, at most `limit` bytes long.
fn expand_str(
    s: &str,
    args: &BTreeMap<String, String>,
    limit: usize,
) -> Result<String, (String, String)> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        if out.len() > limit {
            return Err((
                format!(
                    "expanding `${{...}}` here makes the spec's strings more than {MAX_EXPANDED_BYTES} bytes longer"
                ),
                "use the argument in fewer places, or pass a shorter value".into(),
            ));
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err((
                    "unterminated `${` in string".into(),
                    "close it with `}`, or write `$$` for a literal `$`".into(),
                ));
            };
            let name = &body[..end];
            match args.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    let help = match did_you_mean(name, args.keys().map(String::as_str)) {
                        Some(s) => format!(
                            "did you mean `${{{s}}}`? otherwise declare `{name}` under `args:`"
                        ),
                        None => format!(
                            "declare `{name}` under `args:` (with a default), or write `$${{{name}}}` for the literal text"
                        ),
                    };
                    return Err((format!("undefined argument `${{{name}}}`"), help));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    if out.len() > limit {
        return Err((
            format!(
                "expanding `${{...}}` here makes the spec's strings more than {MAX_EXPANDED_BYTES} bytes longer"
            ),
            "use the argument in fewer places, or pass a shorter value".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion() {
        let args = BTreeMap::from([("A".to_string(), "x".to_string())]);
        assert_eq!(
            expand_str("${A}-$${A}-$5", &args, 100).unwrap(),
            "x-${A}-$5"
        );
        assert!(
            expand_str("${B}", &args, 100)
                .unwrap_err()
                .0
                .contains("undefined argument `${B}`")
        );
        assert!(expand_str("${A", &args, 100).is_err());
    }

    #[test]
    fn expansion_is_bounded() {
        let args = BTreeMap::from([("A".to_string(), "x".repeat(1 << 20))]);
        let mut doc =
            crate::spec::yaml::parse(0, b"a: ${A}\nb: ${A}\nc: ${A}\nd: ${A}\ne: ${A}\n").unwrap();
        let (mut budget, mut diags) = (MAX_EXPANDED_BYTES, vec![]);
        expand(&mut doc, &args, &mut budget, &mut diags);
        assert_eq!(
            diags.len(),
            1,
            "four 1 MiB expansions fit, the fifth does not: {diags:?}"
        );
        assert!(diags[0].message.contains("more than 4194304 bytes longer"));
        assert_eq!(diags[0].loc.line, 5);
    }
}
