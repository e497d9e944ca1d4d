//! Breakwater's edge proxy: pingora wired to the validated config.
//!
//! The folders follow the path of a request:
//! - `frontend`: where connections arrive (TCP listeners and their client limits, TLS with a
//!   certificate per SNI name, HTTP/3 over QUIC); every front end hands requests to the one
//!   pipeline;
//! - `pipeline`: what happens to a request: checks (`guard`), route match (`router`) into the
//!   route's compiled `plan`, request filters, cache, a handler component or an origin pool
//!   (`upstream`), response filters, and the one mapping from failures to statuses (`errors`);
//! - `ops`: what operators see and drive: the admin API, metrics, the access log.
//!
//! `state` holds the config generations that a reload swaps; `server` starts the process.

mod demo;
mod frontend;
mod ops;
mod pipeline;
mod server;
mod state;

pub use ops::memory::Allocator;
pub use server::{check, run, RunOptions, StartError};

/// Write the demo's filter and `wasi:http` handler components (built from WAT) into `dir`.
pub fn write_demo_components(dir: &std::path::Path) -> std::io::Result<()> {
    demo::write_components(dir).map(|_| ())
}
