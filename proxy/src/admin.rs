//! The admin listener: liveness and readiness for orchestrators. Loopback unless configured.

use crate::state::Shared;
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

pub struct Admin {
    shared: Arc<Shared>,
}

impl Admin {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Gauges that are read at scrape time, then every metric.
    fn metrics(&self) -> Vec<u8> {
        let generation = self.shared.current();
        let m = &self.shared.metrics;
        m.endpoint_available.reset();
        for p in &generation.pools {
            for ep in p.endpoints().iter() {
                let v = i64::from(p.is_available(ep));
                m.endpoint_available
                    .with_label_values(&[p.config.name.as_str(), &ep.addr.to_string()])
                    .set(v);
            }
        }
        for (c, f) in generation
            .config
            .components
            .iter()
            .zip(&generation.components)
        {
            m.component_in_use
                .with_label_values(&[c.name.as_str()])
                .set(f.in_use() as i64);
        }
        m.render()
    }

    /// Ready when every pool has at least one endpoint able to take traffic.
    fn readiness(&self) -> (StatusCode, String) {
        let generation = self.shared.current();
        let down: Vec<&str> = generation
            .pools
            .iter()
            .filter(|p| !p.has_available())
            .map(|p| p.config.name.as_str())
            .collect();
        if down.is_empty() {
            (StatusCode::OK, "ready\n".into())
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "not ready: no available endpoint in pools: {}\n",
                    down.join(", ")
                ),
            )
        }
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let (status, body, content_type) = match path.as_str() {
            "/healthz" => (
                StatusCode::OK,
                b"ok\n".to_vec(),
                "text/plain; charset=utf-8",
            ),
            "/readyz" => {
                let (status, body) = self.readiness();
                (status, body.into_bytes(), "text/plain; charset=utf-8")
            }
            "/metrics" => (StatusCode::OK, self.metrics(), "text/plain; version=0.0.4"),
            _ => (
                StatusCode::NOT_FOUND,
                b"not found\n".to_vec(),
                "text/plain; charset=utf-8",
            ),
        };
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("content-length", body.len())
            .body(body)
            .expect("valid response")
    }
}
