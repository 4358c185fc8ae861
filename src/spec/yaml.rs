//! The YAML layer: a spec file becomes a tree of nodes, each with its line and column.
//! Everything after this (extends, ${ARG} expansion, typed conversion) works on this
//! tree, so every later error can still point at the exact place in the file.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::diag::{Diagnostic, Loc};

/// Largest spec file accepted; a worker spec is a few kilobytes.
pub const MAX_SPEC_BYTES: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order; keys are unique (checked while parsing).
    Map(Vec<(Key, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub loc: Loc,
}

impl Key {
    /// A key made in code (e.g. the implicit `default` variant), at `loc`.
    pub fn new(name: &str, loc: Loc) -> Self {
        Key {
            name: name.to_string(),
            loc,
        }
    }
}

impl Node {
    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Parse one spec file. `file` is the index recorded in every location.
pub fn parse(file: u16, bytes: &[u8]) -> Result<Node, Diagnostic> {
    let top = Loc {
        file,
        line: 1,
        col: 1,
    };
    if bytes.len() > MAX_SPEC_BYTES {
        return Err(Diagnostic::error(
            top,
            format!(
                "spec file is {} bytes, more than the {} allowed",
                bytes.len(),
                MAX_SPEC_BYTES
            ),
            "a spec is a short description; move data into requirement files",
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let (line, col) = line_col(&bytes[..e.valid_up_to()]);
        Diagnostic::error(
            Loc { file, line, col },
            "spec file is not valid UTF-8",
            "save the file as UTF-8",
        )
    })?;
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(Diagnostic::error(
            top,
            "spec file is empty",
            "start from `kiln schema` or specs/worker.yaml",
        ));
    }
    let parsed: Result<Spanned<Raw>, _> = serde_saphyr::from_str(text);
    match parsed {
        Ok(raw) => {
            let node = into_node(raw, file);
            if !matches!(node.value, Value::Map(_)) {
                return Err(Diagnostic::error(
                    node.loc,
                    format!(
                        "the spec must be a mapping of keys, found {}",
                        node.type_name()
                    ),
                    "write `key: value` lines at the top level, starting with `version: 1`",
                ));
            }
            Ok(node)
        }
        Err(e) => {
            let loc = e
                .location()
                .map(|l| Loc {
                    file,
                    line: l.line() as u32,
                    col: l.column() as u32,
                })
                .unwrap_or(top);
            let message = yaml_message(&e);
            if let Some(key) = message.strip_prefix("invalid YAML: duplicate mapping key: ") {
                let key = key.split(',').next().unwrap_or(key);
                return Err(Diagnostic::error(
                    loc,
                    format!("duplicate key `{key}`"),
                    "each key may appear once in a mapping; merge the two entries",
                ));
            }
            Err(Diagnostic::error(
                loc,
                message,
                "fix the YAML syntax at this position",
            ))
        }
    }
}

/// serde-saphyr's own message, without the snippet it renders (we render our own).
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let full = e.without_snippet().to_string();
    let first = full.lines().next().unwrap_or("invalid YAML").trim();
    // Drop a trailing " at line X, column Y" that duplicates our position.
    let cut = first
        .find(" at line ")
        .map(|i| &first[..i])
        .unwrap_or(first);
    format!("invalid YAML: {cut}")
}

fn line_col(prefix: &[u8]) -> (u32, u32) {
    let line = prefix.iter().filter(|b| **b == b'\n').count() as u32 + 1;
    let col = prefix.iter().rev().take_while(|b| **b != b'\n').count() as u32 + 1;
    (line, col)
}

/// Serde's view of a YAML node before locations are attached to our own types.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<String>, Spanned<Raw>)>),
}

fn loc_of<T>(s: &Spanned<T>, file: u16) -> Loc {
    Loc {
        file,
        line: s.referenced.line() as u32,
        col: s.referenced.column() as u32,
    }
}

fn into_node(raw: Spanned<Raw>, file: u16) -> Node {
    let loc = loc_of(&raw, file);
    let value = match raw.value {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(b),
        Raw::Int(i) => Value::Int(i),
        Raw::Float(f) => Value::Float(f),
        Raw::Str(s) => Value::Str(s),
        Raw::Seq(items) => Value::Seq(items.into_iter().map(|i| into_node(i, file)).collect()),
        Raw::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    (
                        Key {
                            loc: loc_of(&k, file),
                            name: k.value,
                        },
                        into_node(v, file),
                    )
                })
                .collect(),
        ),
    };
    Node { value, loc }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        i64::try_from(v)
            .map(Raw::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        i64::try_from(v)
            .map(Raw::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        i64::try_from(v)
            .map(Raw::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Raw, E> {
        Err(E::custom("binary values are not allowed in a spec"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries: Vec<(Spanned<String>, Spanned<Raw>)> = Vec::new();
        // Key -> its line: a mapping of n keys is checked in O(n), not O(n^2).
        let mut seen: HashMap<String, u64> = HashMap::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            if let Some(line) = seen.get(&key.value) {
                return Err(de::Error::custom(format!(
                    "duplicate key `{}` (first defined at line {line})",
                    key.value,
                )));
            }
            seen.insert(key.value.clone(), key.referenced.line());
            let value = map.next_value::<Spanned<Raw>>()?;
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_and_columns() {
        let n = parse(0, b"name: w\npython:\n  base: img\nlist: [a, b]\n").unwrap();
        let py = n.get("python").unwrap();
        let base = py.get("base").unwrap();
        assert_eq!((base.loc.line, base.loc.col), (3, 9));
        let Value::Seq(items) = &n.get("list").unwrap().value else {
            panic!()
        };
        assert_eq!((items[1].loc.line, items[1].loc.col), (4, 11));
    }

    #[test]
    fn rejects_duplicate_keys_with_position() {
        let e = parse(0, b"a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(e.message.contains("duplicate key `a`"), "{}", e.message);
        assert_eq!(e.loc.line, 3);
    }

    #[test]
    fn rejects_non_mapping_top_level() {
        let e = parse(0, b"- a\n- b\n").unwrap_err();
        assert!(e.message.contains("must be a mapping"), "{}", e.message);
        let e = parse(0, b"# only a comment\n").unwrap_err();
        assert!(e.message.contains("empty"));
    }

    #[test]
    fn rejects_non_utf8_with_position() {
        let e = parse(0, b"name: w\nbad: \xff\n").unwrap_err();
        assert_eq!((e.loc.line, e.loc.col), (2, 6));
    }
}
