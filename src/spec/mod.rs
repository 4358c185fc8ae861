//! The spec: YAML in, a checked and typed model out (with file:line:col on every error).

pub mod convert;
pub mod load;
pub mod model;
pub mod schema;
pub mod validate;
pub mod yaml;

pub use convert::{LoadOptions, Loaded, load_file, load_str};
pub use load::Sources;
pub use model::*;
