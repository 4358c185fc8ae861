//! kiln's integration tests, one crate (one link, one binary) with a module per area.
//!
//! Run one area with `cargo test --test integration <module>::`, e.g.
//! `cargo test --test integration graph::`. Regenerate the golden definitions with
//! `KILN_UPDATE_GOLDEN=1 cargo test --test integration golden`.

mod common;
mod context;
mod credentials;
mod fetched;
mod frontend_fake;
mod golden;
mod graph;
mod hostile;
mod init;
mod lock;
mod project;
mod runtime_libs;
mod spec_errors;
