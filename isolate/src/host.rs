//! The host capabilities a component may import, one part each, as Spin's factors are: each
//! part has its per-instance state and adds its functions to a linker. A component is linked
//! against the parts its kind grants and nothing else, so any other import fails at load.
//!
//! - `filter_api`: the filter world's `log` and `config` (filters);
//! - `heads`: interface 0.2's request and response heads, lent to a filter per call;
//! - `wasi`: WASI with nothing behind it: no files, no sockets; clocks, random, stderr and the
//!   component's environment (both kinds; real toolchains import it even when unused);
//! - `http`: outgoing HTTP, only to the hosts a handler is allowed (handlers);
//! - `spin`: Spin's variables and key-value store (handlers).

pub(crate) mod filter_api;
pub(crate) mod heads;
pub(crate) mod http;
pub(crate) mod spin;
pub(crate) mod spin_redis;
pub(crate) mod wasi;
