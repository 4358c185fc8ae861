//! The spec: YAML in, a checked and typed model out (with file:line:col on every error).
//!
//! `yaml` parses with positions, `load` follows `extends` and merges, `expand` applies
//! `${ARG}`s, `convert` checks every section into the `model`; `format` lists the keys, defaults and
//! ranges that `convert` and the JSON `schema` share; `validate` holds the one-value rules.

mod convert;
mod expand;
pub mod format;
pub mod load;
pub mod model;
pub mod schema;
pub mod validate;
pub mod yaml;

pub use load::{LoadOptions, Loaded, Sources, load_file, load_str};
pub use model::*;
