//! A small typed LLB builder over BuildKit's protobuf types.
//!
//! A `State` is a filesystem: a source (image, local context), or the result of an
//! exec, a file operation or a merge on other states. States are cheap to clone and
//! chain (`image(..).run(..).root()`); `marshal` turns one into a `pb::Definition`
//! whose op digests are stable across runs and processes.

pub mod caps;
mod dump;
mod marshal;
mod ops;
pub mod platform;

pub use bollard_buildkit_proto::pb;
pub use dump::to_json;
pub use marshal::{digest_of, head, marshal};
pub use ops::*;
pub use platform::platform;
