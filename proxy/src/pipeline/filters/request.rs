//! The request as filters see it.

use crate::pipeline::Scheme;
use breakwater_isolate::Request;
use pingora::http::RequestHeader;
use std::sync::Arc;

/// Who is asking, as filters see it.
pub struct Client {
    pub scheme: Scheme,
    pub addr: Option<std::net::IpAddr>,
}

/// The request as filters see it, owned so `on-response` can see it too.
pub(super) struct FilterRequest {
    method: String,
    scheme: &'static str,
    authority: String,
    path: String,
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    client_addr: String,
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
            method: req.method.to_string(),
            scheme: client.scheme.as_str(),
            authority,
            path: req.uri.path().to_string(),
            query: req.uri.query().unwrap_or("").to_string(),
            headers: req
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
                .collect(),
            client_addr: client.addr.map(|a| a.to_string()).unwrap_or_default(),
            route: route.clone(),
        }
    }

    pub(super) fn with_view<R>(&self, f: impl FnOnce(&Request<'_>) -> R) -> R {
        let headers: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        f(&Request {
            method: &self.method,
            scheme: self.scheme,
            authority: &self.authority,
            path: &self.path,
            query: &self.query,
            headers: &headers,
            client_addr: &self.client_addr,
            route: &self.route,
        })
    }
}
