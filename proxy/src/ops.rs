//! Operations: the admin API (health, readiness, reload, purge, metrics), the Prometheus
//! metrics every part records into, and the access log.

pub mod access_log;
pub mod admin;
pub mod metrics;
