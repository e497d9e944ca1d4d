//! Breakwater's WebAssembly runtime: filter components (`wit/0.2/filter.wit`, and 0.1's
//! `wit/filter.wit`) and `wasi:http`
//! handler components run in pooled, pre-instantiated isolates, one fresh instance per
//! request. Knows nothing of pingora.
//!
//! Lifecycle: one [`Runtime`] (engines, pooling allocator, epoch ticker, compile cache) per
//! process; [`Runtime::load_filter`] and [`Runtime::load_handler`] compile (or load from the
//! on-disk cache) and pre-link a component once, against the host parts its kind is granted
//! (`host`), prove it instantiates and keep instances ready (`pool`); each request takes a
//! [`FilterInstance`] from [`Filter::instance`] (or calls [`Handler::handle`]), which runs
//! under the component's deadline and memory limit (`store`), and drops it, which frees the
//! instance's pool slot to be reset to its copy-on-write snapshot.

mod abi;
mod cache;
mod error;
mod filter;
mod handler;
mod host;
mod imports;
mod init;
mod limits;
mod placement;
mod pool;
mod runtime;
mod sched;
mod store;
mod types;

pub use error::IsolateError;
pub use filter::{Filter, FilterInstance, FilterSettings};
pub use handler::{Handler, HandlerSettings, RequestBody, ResponseBody, Warmup, WarmupRequest};
pub use host::spin::{SharedKv, SharedStore, StoreFuture};
pub use runtime::{Allocator, GuestPriority, Observer, Runtime, RuntimeSettings};
pub use types::{DirectResponse, Edits, ForwardEdits, Headers, Request, RequestDecision};
