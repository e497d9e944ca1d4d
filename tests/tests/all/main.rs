//! End-to-end tests: the real `breakwater` binary on loopback with real origins, clients and
//! Wasm components, one module per topic. One test binary, so the large dependency tree is
//! linked once; the shared harness is the `breakwater-tests` library (tests/src).

mod bad_input;
mod cache;
mod cache_disk;
mod cache_rfc;
mod chaos;
mod deploy;
mod filters;
mod fleet;
mod fuzz_heads;
mod handlers;
mod http3;
mod lifecycle;
mod operations;
mod pools;
mod routing;
mod scale;
mod slow_clients;
mod smuggling;
mod soak;
mod tls;
mod trailers;
mod versions;
