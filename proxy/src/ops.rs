//! Operations: the admin API (health, readiness, reload, purge, metrics), the Prometheus
//! metrics every part records into, the access log, the fleet's shared purges, and the
//! allocator's memory given back when an event loop idles.

pub mod access_log;
pub mod admin;
pub mod fleet;
pub mod memory;
pub mod metrics;
