//! `${NAME}` expansion of spec strings from the spec's `args` (and `--build-arg`s).

use std::collections::BTreeMap;

use super::yaml::{Node, Value};
use crate::diag::{Diagnostic, did_you_mean};

/// Expand `${NAME}` in every string of `node` (`$$` is a literal `$`).
pub(crate) fn expand(
    node: &mut Node,
    args: &BTreeMap<String, String>,
    diags: &mut Vec<Diagnostic>,
) {
    match &mut node.value {
        Value::Str(s) if s.contains('$') => match expand_str(s, args) {
            Ok(v) => *s = v,
            Err((msg, help)) => diags.push(Diagnostic::error(node.loc, msg, help)),
        },
        Value::Seq(items) => items.iter_mut().for_each(|i| expand(i, args, diags)),
        Value::Map(entries) => entries.iter_mut().for_each(|(_, v)| expand(v, args, diags)),
        _ => {}
    }
}

fn expand_str(s: &str, args: &BTreeMap<String, String>) -> Result<String, (String, String)> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
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
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion() {
        let args = BTreeMap::from([("A".to_string(), "x".to_string())]);
        assert_eq!(expand_str("${A}-$${A}-$5", &args).unwrap(), "x-${A}-$5");
        assert!(
            expand_str("${B}", &args)
                .unwrap_err()
                .0
                .contains("undefined argument `${B}`")
        );
        assert!(expand_str("${A", &args).is_err());
    }
}
