//! The end of every request: its route's metrics and its access log line.

use crate::ops::access_log::{AccessLogger, Entry};
use crate::pipeline::plan::RoutePlan;
use crate::pipeline::Protocol;
use pingora::http::RequestHeader;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// One finished request, as the last phase sees it.
pub struct Finished<'a> {
    pub plan: &'a Arc<RoutePlan>,
    pub req: &'a RequestHeader,
    /// 0 when no response was written.
    pub status: u16,
    pub protocol: Protocol,
    /// Response body bytes sent.
    pub bytes: usize,
    pub elapsed: Duration,
    pub client: Option<IpAddr>,
    /// Moved out of the request's context: the log line owns them.
    pub host: String,
    pub request_id: String,
    /// The origin endpoint the request went to last, if any.
    pub upstream: Option<SocketAddr>,
}

/// Count the request in its route's metrics and write its access log line.
pub fn record(finished: Finished<'_>, log: &AccessLogger) {
    let f = finished;
    f.plan
        .metrics
        .request(&f.req.method, f.status, f.protocol, f.elapsed, f.bytes);
    if log.enabled() {
        log.log(entry(f, SystemTime::now()));
    }
}

/// The access log line of a finished request: what it needs is moved or shared (reference
/// counts), and formatted by the log's own thread.
fn entry(f: Finished<'_>, time: SystemTime) -> Entry {
    let header = |name: http::HeaderName| f.req.headers.get(name).cloned();
    Entry {
        time,
        client: f.client,
        protocol: f.protocol.label(),
        method: f.req.method.clone(),
        host: f.host,
        uri: f.req.uri.clone(),
        status: f.status,
        bytes: f.bytes,
        duration_us: f.elapsed.as_micros() as u64,
        upstream: f.upstream,
        route: f.plan.name.clone(),
        filters: f.plan.filter_names.clone(),
        request_id: f.request_id,
        user_agent: header(http::header::USER_AGENT),
        referer: header(http::header::REFERER),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::metrics::Metrics;
    use std::sync::Arc;

    #[test]
    fn an_entry_says_what_happened() {
        let metrics = Arc::new(Metrics::new());
        let plan = Arc::new(RoutePlan::unrouted(&metrics));
        let mut req = RequestHeader::build("GET", b"/a/b?c=d", None).unwrap();
        req.insert_header("user-agent", "curl/8").unwrap();
        let finished = || Finished {
            plan: &plan,
            req: &req,
            status: 404,
            protocol: Protocol::Http2,
            bytes: 47,
            elapsed: Duration::from_micros(1500),
            client: Some("192.0.2.1".parse().unwrap()),
            host: "example.com".into(),
            request_id: "abc".into(),
            upstream: Some("127.0.0.1:8080".parse().unwrap()),
        };
        let mut out = Vec::new();
        entry(finished(), SystemTime::UNIX_EPOCH).write_json(&mut out, &mut Default::default());
        let e: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(e["client"], "192.0.2.1");
        assert_eq!(e["protocol"], "HTTP/2");
        assert_eq!(
            (e["method"].as_str(), e["path"].as_str()),
            (Some("GET"), Some("/a/b?c=d"))
        );
        assert_eq!(
            (e["status"].as_u64(), e["bytes"].as_u64()),
            (Some(404), Some(47))
        );
        assert_eq!(e["duration_ms"].as_f64(), Some(1.5));
        assert_eq!(e["upstream"], "127.0.0.1:8080");
        assert_eq!(
            (e["route"].as_str(), e["host"].as_str()),
            (Some("-"), Some("example.com"))
        );
        assert_eq!(
            (e["user_agent"].as_str(), e["referer"].as_str()),
            (Some("curl/8"), Some(""))
        );
        assert_eq!(e["time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(e["filters"], serde_json::json!([]));

        let off = breakwater_config::AccessLog {
            format: breakwater_config::AccessLogFormat::Off,
            path: None,
        };
        let log = AccessLogger::start(&off, metrics.access_log_dropped.clone()).unwrap();
        record(finished(), &log);
        let text = String::from_utf8(metrics.render()).unwrap();
        let line = r#"breakwater_requests_total{method="GET",protocol="HTTP/2",route="-",status_class="4xx"} 1"#;
        assert!(text.lines().any(|l| l == line), "{text}");
    }
}
