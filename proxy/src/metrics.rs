//! Prometheus metrics: one typed struct, registered once into its own registry, passed to
//! whoever records. Labels are config names (routes, pools, components), never raw client
//! input, so cardinality is bounded by the config.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Requests by route, method, status class and protocol.
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub response_bytes: IntCounterVec,
    pub upstream_connect_errors: IntCounterVec,
    pub upstream_errors: IntCounterVec,
    pub upstream_retries: IntCounterVec,
    /// DNS lookups of named endpoints, by host (from the config) and result.
    pub dns_lookups: IntCounterVec,
    /// 1 when the endpoint can take traffic, by pool and endpoint (set at scrape time).
    pub endpoint_available: IntGaugeVec,
    pub component_invocations: IntCounterVec,
    pub component_errors: IntCounterVec,
    pub component_duration: HistogramVec,
    /// Instances in use by requests right now (set at scrape time).
    pub component_in_use: IntGaugeVec,
    pub config_reloads: IntCounterVec,
    /// Unix time of the config load that is serving.
    pub config_loaded_at: IntGauge,
    pub access_log_dropped: prometheus::IntCounter,
    /// Responses of cache-enabled routes by what the cache did (hit, stale, revalidated,
    /// miss, uncacheable, bypass).
    pub cache_responses: IntCounterVec,
    pub cache_purged: prometheus::IntCounter,
    /// Objects and bytes in the cache (set at scrape time).
    pub cache_objects: IntGauge,
    pub cache_bytes: IntGauge,
    /// Objects evicted to stay within the memory budget (set at scrape time).
    pub cache_evictions: IntGauge,
    /// Open client connections and request streams, by protocol (`h3` for now).
    pub active_connections: IntGaugeVec,
    pub active_streams: IntGaugeVec,
    /// Open TCP client connections by listener, and those closed by the client limits.
    pub client_connections: IntGaugeVec,
    pub client_connections_closed: IntCounterVec,
}

/// Latency buckets from 100 µs to 10 s.
const LATENCY: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Wasm calls: from 1 µs to 100 ms.
const WASM: &[f64] = &[
    0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
    0.01, 0.1,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("breakwater".into()), None).expect("valid prefix");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )
            .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("registered once");
            h
        };
        let config_loaded_at = IntGauge::new(
            "config_loaded_timestamp_seconds",
            "When the serving config was loaded",
        )
        .expect("valid metric");
        registry
            .register(Box::new(config_loaded_at.clone()))
            .expect("registered once");
        let access_log_dropped = prometheus::IntCounter::new(
            "access_log_dropped_total",
            "Access log lines dropped (buffer full)",
        )
        .expect("valid metric");
        registry
            .register(Box::new(access_log_dropped.clone()))
            .expect("registered once");
        Self {
            requests: counter(
                "requests_total",
                "Requests answered",
                &["route", "method", "status_class", "protocol"],
            ),
            request_duration: histogram(
                "request_duration_seconds",
                "Time from request head to the end of the response",
                &["route"],
                LATENCY,
            ),
            response_bytes: counter(
                "response_body_bytes_total",
                "Response body bytes sent",
                &["route"],
            ),
            upstream_connect_errors: counter(
                "upstream_connect_errors_total",
                "Failed connections to origin endpoints",
                &["pool"],
            ),
            upstream_errors: counter(
                "upstream_errors_total",
                "Origin exchanges that failed after connecting, by kind (closed, reset, timeout, invalid_response, h2, other)",
                &["pool", "kind"],
            ),
            upstream_retries: counter(
                "upstream_retries_total",
                "Requests retried on another endpoint",
                &["pool"],
            ),
            dns_lookups: counter(
                "dns_lookups_total",
                "DNS lookups of named pool endpoints",
                &["host", "result"],
            ),
            endpoint_available: gauge(
                "endpoint_available",
                "1 if the endpoint can take traffic (healthy, not ejected)",
                &["pool", "endpoint"],
            ),
            component_invocations: counter(
                "component_invocations_total",
                "Calls into Wasm components",
                &["component", "phase"],
            ),
            component_errors: counter(
                "component_errors_total",
                "Failed calls into Wasm components",
                &["component", "kind"],
            ),
            component_duration: histogram(
                "component_duration_seconds",
                "Time of one call into a Wasm component, instance included",
                &["component", "phase"],
                WASM,
            ),
            component_in_use: gauge(
                "component_instances_in_use",
                "Wasm instances held by requests",
                &["component"],
            ),
            config_reloads: counter("config_reloads_total", "Config reloads", &["result"]),
            cache_responses: counter(
                "cache_responses_total",
                "Responses of cache-enabled routes by cache outcome",
                &["route", "outcome"],
            ),
            client_connections: gauge(
                "client_connections",
                "Open TCP client connections (HTTP/1.1 and HTTP/2) by listener",
                &["listener"],
            ),
            client_connections_closed: counter(
                "client_connections_closed_total",
                "TCP client connections closed by the listener's client limits, by reason",
                &["listener", "reason"],
            ),
            active_connections: gauge(
                "active_connections",
                "Open client connections by protocol",
                &["protocol"],
            ),
            active_streams: gauge(
                "active_streams",
                "Requests in flight by protocol",
                &["protocol"],
            ),
            cache_purged: {
                let c = prometheus::IntCounter::new("cache_purged_total", "Objects purged")
                    .expect("valid metric");
                registry
                    .register(Box::new(c.clone()))
                    .expect("registered once");
                c
            },
            cache_evictions: {
                let g = IntGauge::new("cache_evictions", "Objects evicted for room, since start")
                    .expect("valid");
                registry
                    .register(Box::new(g.clone()))
                    .expect("registered once");
                g
            },
            cache_objects: {
                let g = IntGauge::new("cache_objects", "Objects in the cache").expect("valid");
                registry
                    .register(Box::new(g.clone()))
                    .expect("registered once");
                g
            },
            cache_bytes: {
                let g = IntGauge::new("cache_bytes", "Bytes held by the cache").expect("valid");
                registry
                    .register(Box::new(g.clone()))
                    .expect("registered once");
                g
            },
            config_loaded_at,
            access_log_dropped,
            registry,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// A bounded label for a method: the standard ones, else `other`.
pub fn method_label(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}
