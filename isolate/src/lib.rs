//! Breakwater's WebAssembly runtime: filter components (`wit/filter.wit`) and `wasi:http`
//! handler components run in pooled, pre-instantiated isolates, one fresh instance per
//! request. Knows nothing of pingora.
//!
//! Lifecycle: one [`Runtime`] (engine, pooling allocator, epoch ticker) per process;
//! [`Runtime::load_filter`] compiles (or loads from the on-disk cache) and pre-links a
//! component once; each request takes a [`Session`] from [`Filter::session`], calls its
//! phases under a deadline and memory limit, and drops it, which frees the instance's pool
//! slot to be reset to its copy-on-write snapshot.

mod abi;
mod cache;
mod error;
mod filter;
mod handler;
mod imports;
mod init;
mod limits;
mod pool;
mod runtime;
mod spin;
mod types;

pub use error::IsolateError;
pub use filter::{Filter, FilterSettings, Session};
pub use handler::{Handler, HandlerSettings, RequestBody, ResponseBody};
pub use runtime::{Allocator, Runtime, RuntimeSettings};
pub use types::{DirectResponse, Edits, ForwardEdits, Request, RequestDecision};
