//! Operations: the admin API (health, readiness, reload, purge, metrics), the Prometheus
//! metrics every part records into, the access log, and the fleet's shared purges.

pub mod access_log;
pub mod admin;
pub mod fleet;
pub mod metrics;
