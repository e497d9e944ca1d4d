//! Breakwater's edge proxy: pingora wired to the validated config.
//!
//! The path of one request: accept (`server`) -> checks (`guard`) -> route (`router`) ->
//! local answer or origin pool (`upstream`) -> header edits (`headers`) -> response; every
//! failure is mapped to a status in `errors`. `state` holds the config generations that
//! reload swaps.

mod access_log;
mod admin;
mod cache;
mod clients;
mod demo;
mod edge;
mod errors;
mod filters;
mod guard;
mod h3;
mod handlers;
mod headers;
mod metrics;
mod router;
mod server;
mod state;
mod tls;
mod upstream;

pub use server::{check, run, RunOptions, StartError};

/// Write the demo's filter and `wasi:http` handler components (built from WAT) into `dir`.
pub fn write_demo_components(dir: &std::path::Path) -> std::io::Result<()> {
    demo::write_components(dir).map(|_| ())
}
