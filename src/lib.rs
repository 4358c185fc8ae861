#![recursion_limit = "256"]
//! kiln: a BuildKit frontend that turns a short YAML spec into LLB for Python worker images.
//!
//! The pipeline: `spec` (YAML -> checked, typed model) -> `plan` (model -> stage graph)
//! -> `llb` (stage graph -> BuildKit definition). `frontend` runs it inside BuildKit.

pub mod context;
pub mod diag;
pub mod frontend;
pub mod init;
pub mod llb;
pub mod lock;
pub mod plan;
pub mod reference;
pub mod sbom;
pub mod spec;
pub mod stack;
pub mod sysdeps;
pub mod url;
