//! The request as filters see it.

use crate::pipeline::headers::client_ip_value;
use crate::pipeline::Scheme;
use breakwater_isolate::Request;
use http::{HeaderMap, HeaderValue, Method, Uri};
use pingora::http::RequestHeader;
use std::sync::Arc;

/// Who is asking, as filters see it.
pub struct Client {
    pub scheme: Scheme,
    pub addr: Option<std::net::IpAddr>,
}

/// The request as filters see it, kept so `on-response` can see it too. It shares the head's
/// bytes (a header map's clone counts references to its names and values, where a copy of
/// each as a `String` and a `Vec` cost two allocations a header).
pub(super) struct FilterRequest {
    method: Method,
    scheme: &'static str,
    authority: String,
    uri: Uri,
    headers: HeaderMap,
    client_addr: Option<HeaderValue>,
    route: Arc<str>,
}

impl FilterRequest {
    pub(super) fn new(req: &RequestHeader, client: &Client, route: &Arc<str>) -> Self {
        let authority = req
            .uri
            .authority()
            .map(|a| a.to_string())
            .or_else(|| {
                let host = req.headers.get(http::header::HOST)?;
                host.to_str().ok().map(str::to_string)
            })
            .unwrap_or_default();
        Self {
            method: req.method.clone(),
            scheme: client.scheme.as_str(),
            authority,
            uri: req.uri.clone(),
            headers: req.headers.clone(),
            client_addr: client.addr.map(client_ip_value),
            route: route.clone(),
        }
    }

    pub(super) fn with_view<R>(&self, f: impl FnOnce(&Request<'_>) -> R) -> R {
        let client_addr = self.client_addr.as_ref().and_then(|a| a.to_str().ok());
        f(&Request {
            method: self.method.as_str(),
            scheme: self.scheme,
            authority: &self.authority,
            path: self.uri.path(),
            query: self.uri.query().unwrap_or(""),
            headers: (&self.headers).into(),
            client_addr: client_addr.unwrap_or(""),
            route: &self.route,
        })
    }
}
