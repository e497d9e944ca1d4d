//! The request pipeline: pingora's `ProxyHttp` phases (`edge`) for every front end.
//!
//! The path of one request: checks (`guard`) -> route match (`router`) to the route's
//! compiled [`plan::RoutePlan`] -> request filters (`filters`, may answer directly) -> cache
//! lookup (`cache`) -> [hit: answer] or [miss: a handler component answers (`handlers`), or
//! an origin is chosen from the route's pool (`upstream`) with forwarding headers
//! (`headers`)] -> cache admission -> response filters -> access log and metrics
//! (`logging`). Every failure becomes one status in `errors`.

pub mod cache;
pub mod edge;
pub mod errors;
pub mod filters;
pub mod guard;
pub mod handlers;
pub mod headers;
pub mod logging;
pub mod plan;
pub mod router;
pub mod upstream;

/// The scheme a listener serves: `https` when it terminates TLS (or QUIC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// The protocol a request arrived over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    Http3,
}

impl Protocol {
    /// The protocol of the request in `session` (the one custom session is HTTP/3's).
    pub fn of(session: &pingora::proxy::Session) -> Self {
        if session.is_custom() {
            Protocol::Http3
        } else if session.is_http2() {
            Protocol::Http2
        } else {
            Protocol::Http1
        }
    }

    /// The label in metrics and the access log.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Http1 => "HTTP/1.1",
            Protocol::Http2 => "HTTP/2",
            Protocol::Http3 => "HTTP/3",
        }
    }

    /// Whether the protocol frames bodies itself (no chunked coding, no `Content-Length`
    /// needed for a body of unknown length).
    pub fn frames_bodies(self) -> bool {
        self != Protocol::Http1
    }
}
