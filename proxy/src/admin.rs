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
        let (status, body) = match path.as_str() {
            "/healthz" => (StatusCode::OK, "ok\n".to_string()),
            "/readyz" => self.readiness(),
            _ => (StatusCode::NOT_FOUND, "not found\n".to_string()),
        };
        Response::builder()
            .status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .header("content-length", body.len())
            .body(body.into_bytes())
            .expect("valid response")
    }
}
