//! The end of every request: its route's metrics and its access log line.

use crate::ops::access_log::{AccessLogger, Entry};
use crate::pipeline::plan::RoutePlan;
use crate::pipeline::Protocol;
use pingora::http::RequestHeader;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

/// One finished request, as the last phase sees it.
pub struct Finished<'a> {
    pub plan: &'a RoutePlan,
    pub req: &'a RequestHeader,
    /// 0 when no response was written.
    pub status: u16,
    pub protocol: Protocol,
    /// Response body bytes sent.
    pub bytes: usize,
    pub elapsed: Duration,
    pub client: Option<IpAddr>,
    pub host: &'a str,
    pub request_id: &'a str,
    /// The origin endpoint the request went to last, if any.
    pub upstream: Option<SocketAddr>,
}

/// Count the request in its route's metrics and write its access log line.
pub fn record(finished: &Finished<'_>, log: &AccessLogger) {
    let f = finished;
    f.plan
        .metrics
        .request(&f.req.method, f.status, f.protocol, f.elapsed, f.bytes);
    if log.enabled() {
        log.log(entry(f, SystemTime::now()));
    }
}

/// The access log line of a finished request.
fn entry(f: &Finished<'_>, time: SystemTime) -> Entry {
    let header = |name: http::HeaderName| {
        let value = f.req.headers.get(name).and_then(|v| v.to_str().ok());
        value.unwrap_or("").to_string()
    };
    Entry {
        time,
        client: f.client.map(|a| a.to_string()).unwrap_or_default(),
        protocol: f.protocol.label(),
        method: f.req.method.to_string(),
        host: f.host.to_string(),
        path: f
            .req
            .uri
            .path_and_query()
            .map_or("/".into(), |p| p.to_string()),
        status: f.status,
        bytes: f.bytes,
        duration_us: f.elapsed.as_micros() as u64,
        upstream: f.upstream.map(|a| a.to_string()),
        route: f.plan.name.to_string(),
        filters: f
            .plan
            .filters
            .filters
            .iter()
            .map(|p| p.name.to_string())
            .collect(),
        request_id: f.request_id.to_string(),
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
        let plan = RoutePlan::unrouted(&metrics);
        let mut req = RequestHeader::build("GET", b"/a/b?c=d", None).unwrap();
        req.insert_header("user-agent", "curl/8").unwrap();
        let f = Finished {
            plan: &plan,
            req: &req,
            status: 404,
            protocol: Protocol::Http2,
            bytes: 47,
            elapsed: Duration::from_micros(1500),
            client: Some("192.0.2.1".parse().unwrap()),
            host: "example.com",
            request_id: "abc",
            upstream: Some("127.0.0.1:8080".parse().unwrap()),
        };
        let e = entry(&f, SystemTime::UNIX_EPOCH);
        assert_eq!(e.client, "192.0.2.1");
        assert_eq!(e.protocol, "HTTP/2");
        assert_eq!((e.method.as_str(), e.path.as_str()), ("GET", "/a/b?c=d"));
        assert_eq!((e.status, e.bytes, e.duration_us), (404, 47, 1500));
        assert_eq!(e.upstream.as_deref(), Some("127.0.0.1:8080"));
        assert_eq!((e.route.as_str(), e.host.as_str()), ("-", "example.com"));
        assert_eq!((e.user_agent.as_str(), e.referer.as_str()), ("curl/8", ""));
        assert!(e.filters.is_empty());

        let off = breakwater_config::AccessLog {
            format: breakwater_config::AccessLogFormat::Off,
            path: None,
        };
        let log = AccessLogger::start(&off, metrics.access_log_dropped.clone()).unwrap();
        record(&f, &log);
        let text = String::from_utf8(metrics.render()).unwrap();
        let line = r#"breakwater_requests_total{method="GET",protocol="HTTP/2",route="-",status_class="4xx"} 1"#;
        assert!(text.lines().any(|l| l == line), "{text}");
    }
}
