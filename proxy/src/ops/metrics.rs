//! Prometheus metrics: one typed struct, registered once into its own registry, passed to
//! whoever records. Labels are config names (routes, pools, components), never raw client
//! input, so cardinality is bounded by the config.

use crate::pipeline::Protocol;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

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
    /// Instances made ahead and ready, per component (0 when scaled to zero).
    pub component_ready: IntGaugeVec,
    /// Instances reset in place after a request and kept for the next, since load (set at
    /// scrape time).
    pub component_resets: IntGaugeVec,
    pub component_cold_starts: IntCounterVec,
    pub component_cold_start: HistogramVec,
    pub components_loaded: prometheus::IntCounter,
    pub wasm_compiles: prometheus::IntCounter,
    pub wasm_compile_seconds: prometheus::Counter,
    pub wasm_cache_hits: prometheus::IntCounter,
    pub config_reloads: IntCounterVec,
    /// Unix time of the config load that is serving.
    pub config_loaded_at: IntGauge,
    pub access_log_dropped: prometheus::IntCounter,
    /// Responses of cache-enabled routes by what the cache did (hit, stale, revalidated,
    /// miss, uncacheable, bypass).
    pub cache_responses: IntCounterVec,
    pub cache_purged: prometheus::IntCounter,
    /// The fleet (`fleet:`): 1 while Redis answers; purges published to and received from
    /// the other nodes; purges waiting for Redis, and those dropped with the queue full.
    pub fleet_redis_up: IntGauge,
    pub fleet_purges_published: IntCounter,
    pub fleet_purges_received: IntCounter,
    pub fleet_purges_pending: IntGauge,
    pub fleet_purges_dropped: IntCounter,
    /// Whole-cache purges of a node that could not tell which purges it missed.
    pub fleet_full_purges: IntCounter,
    /// Objects and bytes in the cache (set at scrape time).
    pub cache_objects: IntGauge,
    pub cache_bytes: IntGauge,
    /// Objects evicted to stay within the memory budget (set at scrape time).
    pub cache_evictions: IntGauge,
    /// The disk tier (set at scrape time): open or not, objects served from it, reads that
    /// failed, bytes written.
    pub cache_disk_up: IntGauge,
    pub cache_disk_hits: IntGauge,
    pub cache_disk_errors: IntGauge,
    pub cache_disk_written_bytes: IntGauge,
    /// Open client connections and request streams, by protocol (`h3` for now).
    pub active_connections: IntGaugeVec,
    pub active_streams: IntGaugeVec,
    /// HTTP/3 handshakes by outcome: `confirmed`, or `failed` (the connection ended first, as
    /// a replayed 0-RTT flight's always does).
    pub h3_handshakes: IntCounterVec,
    /// HTTP/3 requests with side effects that arrived in 0-RTT early data, by outcome:
    /// `released` once the handshake was confirmed, `dropped` when the connection ended first.
    pub h3_early_requests: IntCounterVec,
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

/// Counts the Wasm runtime's cold starts.
impl breakwater_isolate::Observer for Metrics {
    fn cold_start(&self, component: &str, took: std::time::Duration) {
        self.component_cold_starts
            .with_label_values(&[component])
            .inc();
        self.component_cold_start
            .with_label_values(&[component])
            .observe(took.as_secs_f64());
    }

    fn compiled(&self, took: std::time::Duration) {
        self.wasm_compiles.inc();
        self.wasm_compile_seconds.inc_by(took.as_secs_f64());
    }

    fn cache_hit(&self) {
        self.wasm_cache_hits.inc();
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("breakwater".into()), None).expect("valid prefix");
        let register = |c: Box<dyn prometheus::core::Collector>| {
            registry.register(c).expect("registered once");
        };
        let single = |name: &str, help: &str| {
            let c = prometheus::IntCounter::new(name, help).expect("valid metric");
            register(Box::new(c.clone()));
            c
        };
        let single_gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            register(Box::new(g.clone()));
            g
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            register(Box::new(c.clone()));
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            register(Box::new(g.clone()));
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )
            .expect("valid metric");
            register(Box::new(h.clone()));
            h
        };
        let config_loaded_at = single_gauge(
            "config_loaded_timestamp_seconds",
            "When the serving config was loaded",
        );
        let access_log_dropped = single(
            "access_log_dropped_total",
            "Access log lines dropped (buffer full)",
        );
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
            component_ready: gauge(
                "component_instances_ready",
                "Wasm instances made ahead of requests (0 when the component is scaled to zero)",
                &["component"],
            ),
            component_resets: gauge(
                "component_instance_resets",
                "Wasm instances reset in place after a request and kept for the next, since load",
                &["component"],
            ),
            component_cold_starts: counter(
                "component_cold_starts_total",
                "Requests that found their component unused since load or idle past wasm.idle_unload",
                &["component"],
            ),
            component_cold_start: histogram(
                "component_cold_start_seconds",
                "Time a cold start took to get its instance",
                &["component"],
                WASM,
            ),
            components_loaded: single(
                "components_loaded_total",
                "Components loaded (a reload reuses those whose config and file are unchanged)",
            ),
            wasm_compiles: single(
                "wasm_compiles_total",
                "Components compiled (not found in wasm.cache_dir)",
            ),
            wasm_compile_seconds: {
                let c = prometheus::Counter::new(
                    "wasm_compile_seconds_total",
                    "Time spent compiling components",
                )
                .expect("valid metric");
                register(Box::new(c.clone()));
                c
            },
            wasm_cache_hits: single(
                "wasm_cache_hits_total",
                "Components whose compiled code was loaded from wasm.cache_dir",
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
            h3_handshakes: counter(
                "h3_handshakes_total",
                "HTTP/3 handshakes by outcome (confirmed, failed)",
                &["outcome"],
            ),
            h3_early_requests: counter(
                "h3_early_requests_total",
                "HTTP/3 requests with side effects received in 0-RTT data, by outcome (released after the handshake, dropped)",
                &["outcome"],
            ),
            cache_purged: single("cache_purged_total", "Objects purged"),
            fleet_redis_up: single_gauge("fleet_redis_up", "1 while the fleet's Redis answers"),
            fleet_purges_published: single(
                "fleet_purges_published_total",
                "Purges published to the fleet",
            ),
            fleet_purges_received: single(
                "fleet_purges_received_total",
                "Purges from other nodes applied here",
            ),
            fleet_purges_pending: single_gauge(
                "fleet_purges_pending",
                "Purges applied here and waiting for Redis to be published",
            ),
            fleet_purges_dropped: single(
                "fleet_purges_dropped_total",
                "Purges applied here but not published (the queue was full)",
            ),
            fleet_full_purges: single(
                "fleet_full_purges_total",
                "Whole-cache purges after missing purges that could not be told (trimmed history, lost stream)",
            ),
            cache_evictions: single_gauge(
                "cache_evictions",
                "Objects evicted for room, since start",
            ),
            cache_disk_up: single_gauge(
                "cache_disk_up",
                "1 when the cache's disk tier is open, 0 when it is not (none, or it failed)",
            ),
            cache_disk_hits: single_gauge(
                "cache_disk_hits",
                "Objects read back from the disk tier, since start",
            ),
            cache_disk_errors: single_gauge(
                "cache_disk_errors",
                "Disk tier failures (opening, reads, writes that did not reach the disk, records that do not decode), since start",
            ),
            cache_disk_written_bytes: single_gauge(
                "cache_disk_written_bytes",
                "Bytes written to the disk tier's device, since start",
            ),
            cache_objects: single_gauge("cache_objects", "Objects in the cache"),
            cache_bytes: single_gauge("cache_bytes", "Bytes held by the cache"),
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

/// Bounded labels for a method: the standard ones, else `other`.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];

fn method_index(m: &http::Method) -> usize {
    match *m {
        http::Method::GET => 0,
        http::Method::HEAD => 1,
        http::Method::POST => 2,
        http::Method::PUT => 3,
        http::Method::DELETE => 4,
        http::Method::PATCH => 5,
        http::Method::OPTIONS => 6,
        _ => 7,
    }
}

const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

fn status_class_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => 5,
    }
}

const PROTOCOLS: [Protocol; 3] = [Protocol::Http1, Protocol::Http2, Protocol::Http3];
const REQUEST_SERIES: usize = METHODS.len() * STATUS_CLASSES.len() * PROTOCOLS.len();

/// Series of one metric family, each resolved from its labels on first use and then kept, so
/// the request path hashes no label values. Nothing is allocated until the first use.
struct Series<M, const N: usize>(OnceLock<Box<[OnceLock<M>; N]>>);

impl<M, const N: usize> Default for Series<M, N> {
    fn default() -> Self {
        Self(OnceLock::new())
    }
}

impl<M, const N: usize> Series<M, N> {
    fn get(&self, i: usize, make: impl FnOnce() -> M) -> &M {
        let slots = self
            .0
            .get_or_init(|| Box::new(std::array::from_fn(|_| OnceLock::new())));
        slots[i].get_or_init(make)
    }
}

/// What a cache-enabled route's response was: the `outcome` label of `cache_responses_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Stale,
    Revalidated,
    Miss,
    Uncacheable,
    Bypass,
}

impl CacheOutcome {
    pub fn label(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Stale => "stale",
            CacheOutcome::Revalidated => "revalidated",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Uncacheable => "uncacheable",
            CacheOutcome::Bypass => "bypass",
        }
    }
}

/// The metric series of one route, built with its plan: per request, an index into a table.
pub struct RouteMetrics {
    metrics: Arc<Metrics>,
    route: Arc<str>,
    requests: Series<IntCounter, REQUEST_SERIES>,
    duration: OnceLock<Histogram>,
    bytes: OnceLock<IntCounter>,
    cache: Series<IntCounter, 6>,
}

impl RouteMetrics {
    pub fn new(metrics: &Arc<Metrics>, route: &Arc<str>) -> Self {
        Self {
            metrics: metrics.clone(),
            route: route.clone(),
            requests: Series::default(),
            duration: OnceLock::new(),
            bytes: OnceLock::new(),
            cache: Series::default(),
        }
    }

    /// Count one answered request: its method, status, protocol, duration and body bytes.
    pub fn request(
        &self,
        method: &http::Method,
        status: u16,
        protocol: Protocol,
        elapsed: Duration,
        bytes: usize,
    ) {
        let (m, s, p) = (
            method_index(method),
            status_class_index(status),
            protocol as usize,
        );
        let i = (m * STATUS_CLASSES.len() + s) * PROTOCOLS.len() + p;
        let route = &*self.route;
        self.requests
            .get(i, || {
                let labels = [route, METHODS[m], STATUS_CLASSES[s], PROTOCOLS[p].label()];
                self.metrics.requests.with_label_values(&labels)
            })
            .inc();
        self.duration
            .get_or_init(|| self.metrics.request_duration.with_label_values(&[route]))
            .observe(elapsed.as_secs_f64());
        self.bytes
            .get_or_init(|| self.metrics.response_bytes.with_label_values(&[route]))
            .inc_by(bytes as u64);
    }

    /// Count what the cache did for one response.
    pub fn cache(&self, outcome: CacheOutcome) {
        self.cache
            .get(outcome as usize, || {
                let labels = [&*self.route, outcome.label()];
                self.metrics.cache_responses.with_label_values(&labels)
            })
            .inc();
    }
}

/// Which call into a component: the `phase` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComponentPhase {
    Request,
    Response,
    RequestBody,
    ResponseBody,
    /// A handler serving a request.
    Handle,
}

impl ComponentPhase {
    fn label(self) -> &'static str {
        match self {
            ComponentPhase::Request => "request",
            ComponentPhase::Response => "response",
            ComponentPhase::RequestBody => "request_body",
            ComponentPhase::ResponseBody => "response_body",
            ComponentPhase::Handle => "handle",
        }
    }
}

/// The metric series of one component, shared by the routes that use it.
pub struct ComponentMetrics {
    metrics: Arc<Metrics>,
    component: Arc<str>,
    calls: Series<(IntCounter, Histogram), 5>,
}

impl ComponentMetrics {
    pub fn new(metrics: &Arc<Metrics>, component: &Arc<str>) -> Self {
        Self {
            metrics: metrics.clone(),
            component: component.clone(),
            calls: Series::default(),
        }
    }

    /// Count one call that started at `started` and has just ended.
    pub fn call(&self, phase: ComponentPhase, started: Instant) {
        let (calls, duration) = self.calls.get(phase as usize, || {
            let labels = [&*self.component, phase.label()];
            (
                self.metrics
                    .component_invocations
                    .with_label_values(&labels),
                self.metrics.component_duration.with_label_values(&labels),
            )
        });
        calls.inc();
        duration.observe(started.elapsed().as_secs_f64());
    }

    /// Count a failed call (rare: resolved by label).
    pub fn error(&self, kind: &str) {
        self.metrics
            .component_errors
            .with_label_values(&[&*self.component, kind])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_series_are_labelled_as_resolved() {
        let metrics = Arc::new(Metrics::new());
        let route = RouteMetrics::new(&metrics, &Arc::from("r"));
        let ms = Duration::from_millis(1);
        route.request(&http::Method::GET, 204, Protocol::Http2, ms, 10);
        route.request(&http::Method::GET, 204, Protocol::Http2, ms, 5);
        route.request(&"PURGE".parse().unwrap(), 999, Protocol::Http3, ms, 0);
        route.cache(CacheOutcome::Stale);
        let text = String::from_utf8(metrics.render()).unwrap();
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(
            has(
                r#"breakwater_requests_total{method="GET",protocol="HTTP/2",route="r",status_class="2xx"} 2"#
            ),
            "{text}"
        );
        assert!(
            has(
                r#"breakwater_requests_total{method="other",protocol="HTTP/3",route="r",status_class="none"} 1"#
            ),
            "{text}"
        );
        assert!(
            has(r#"breakwater_response_body_bytes_total{route="r"} 15"#),
            "{text}"
        );
        assert!(
            has(r#"breakwater_cache_responses_total{outcome="stale",route="r"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn status_classes() {
        let class = |s| STATUS_CLASSES[status_class_index(s)];
        assert_eq!(class(100), "1xx");
        assert_eq!(class(599), "5xx");
        assert_eq!(class(0), "none");
        assert_eq!(class(600), "none");
    }
}
