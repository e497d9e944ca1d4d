//! The request as filters see it.

use crate::pipeline::headers::client_ip_value;
use crate::pipeline::Scheme;
use breakwater_isolate::Request;
use http::HeaderValue;
use pingora::http::RequestHeader;

/// Who is asking, as filters see it.
pub struct Client {
    pub scheme: Scheme,
    pub addr: Option<std::net::IpAddr>,
}

/// What filters see of a request besides its head, fixed for the request. The head itself is
/// not copied: every phase gets a view of the request head as the request filters left it
/// (their edits are made to it), which is the head the front end keeps for the request.
pub(super) struct Asker {
    scheme: &'static str,
    /// The client's address as text (made once per client in a row, then shared).
    client_addr: Option<HeaderValue>,
}

impl Asker {
    pub(super) fn new(client: &Client) -> Self {
        Self {
            scheme: client.scheme.as_str(),
            client_addr: client.addr.map(client_ip_value),
        }
    }

    /// Call `f` with the filters' view of `req` on `route`.
    pub(super) fn with_view<R>(
        &self,
        req: &RequestHeader,
        route: &str,
        f: impl FnOnce(&Request<'_>) -> R,
    ) -> R {
        let authority = req
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| req.headers.get(http::header::HOST)?.to_str().ok());
        let client_addr = self.client_addr.as_ref().and_then(|a| a.to_str().ok());
        f(&Request {
            method: req.method.as_str(),
            scheme: self.scheme,
            authority: authority.unwrap_or(""),
            path: req.uri.path(),
            query: req.uri.query().unwrap_or(""),
            headers: (&req.headers).into(),
            client_addr: client_addr.unwrap_or(""),
            route,
        })
    }
}
