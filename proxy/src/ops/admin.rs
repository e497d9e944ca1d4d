//! The admin listener: liveness and readiness for orchestrators, metrics, and cache purges.
//! Loopback unless configured; purging takes the bearer token of `admin.token`.

use crate::ops::fleet::Purge;
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
        for (c, (f, _)) in generation
            .config
            .components
            .iter()
            .zip(&generation.components)
        {
            m.component_in_use
                .with_label_values(&[c.name.as_str()])
                .set(f.in_use() as i64);
            m.component_ready
                .with_label_values(&[c.name.as_str()])
                .set(f.ready_now() as i64);
            m.component_resets
                .with_label_values(&[c.name.as_str()])
                .set(f.resets() as i64);
        }
        let (objects, bytes) = self.shared.cache.storage.usage();
        m.cache_objects.set(objects as i64);
        m.cache_bytes.set(bytes as i64);
        m.cache_evictions
            .set(self.shared.cache.storage.evictions() as i64);
        if let Some(disk) = self.shared.cache.storage.disk() {
            let (hits, errors, written) = disk.counters();
            m.cache_disk_up.set(i64::from(disk.up()));
            m.cache_disk_hits.set(hits as i64);
            m.cache_disk_errors.set(errors as i64);
            m.cache_disk_written_bytes.set(written as i64);
        }
        m.render()
    }

    /// Mutating endpoints take `POST` and the bearer token of `admin.token`; without a
    /// configured token they are refused.
    fn authorize(&self, session: &ServerSession) -> Result<(), (StatusCode, String)> {
        let req = session.req_header();
        if req.method != http::Method::POST {
            return Err((StatusCode::METHOD_NOT_ALLOWED, "use POST\n".into()));
        }
        let generation = self.shared.current();
        let Some(token) = generation.config.admin.token.as_deref() else {
            return Err((
                StatusCode::FORBIDDEN,
                "this endpoint needs admin.token in the config\n".into(),
            ));
        };
        let given = req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            return Err((StatusCode::UNAUTHORIZED, "bearer token required\n".into()));
        }
        Ok(())
    }

    /// `POST /reload`: what SIGHUP does; answers with the outcome.
    async fn reload(&self, session: &ServerSession) -> (StatusCode, String) {
        if let Err(refused) = self.authorize(session) {
            return refused;
        }
        let shared = self.shared.clone();
        let done = self
            .shared
            .control
            .spawn(async move { shared.reload_reported().await })
            .await;
        match done {
            Ok(Ok(())) => (StatusCode::OK, "{\"reloaded\":true}\n".into()),
            Ok(Err(e)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "{{\"reloaded\":false,\"error\":{}}}\n",
                    serde_json::json!(e)
                ),
            ),
            Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "reload failed\n".into()),
        }
    }

    /// `POST /cache/purge?url=HOST/PATH` (every variant of one URL), `?prefix=HOST/PATH`,
    /// `?key=SURROGATE-KEY` or `?all=true`, with `Authorization: Bearer TOKEN`. Answers
    /// `{"purged": N}`, with `"fleet": true` once the fleet's Redis stored the purge for the
    /// other nodes, `false` when it did not within `fleet.timeout` (it is queued and goes
    /// out when Redis is back; this node purged all the same).
    async fn purge(&self, session: &ServerSession) -> (StatusCode, String) {
        if let Err(refused) = self.authorize(session) {
            return refused;
        }
        let req = session.req_header();
        let query = req.uri.query().unwrap_or("");
        let param = |name: &str| {
            query.split('&').find_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k == name).then(|| percent_decode(v))
            })
        };
        let purge = if let Some(url) = param("url") {
            Purge::Url(url)
        } else if let Some(prefix) = param("prefix") {
            Purge::Prefix(prefix)
        } else if let Some(key) = param("key") {
            Purge::Key(key)
        } else if param("all").as_deref() == Some("true") {
            Purge::All
        } else {
            return (
                StatusCode::BAD_REQUEST,
                "give url=, prefix=, key= or all=true\n".into(),
            );
        };
        let purged = self.shared.cache.storage.purge_matching(&purge.selector());
        self.shared.metrics.cache_purged.inc_by(purged as u64);
        // The other nodes of the fleet purge it too.
        let body = match &self.shared.fleet {
            Some(fleet) => {
                let stored = fleet.publish(purge).await;
                format!("{{\"purged\":{purged},\"fleet\":{stored}}}\n")
            }
            None => format!("{{\"purged\":{purged}}}\n"),
        };
        (StatusCode::OK, body)
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
            "/reload" => {
                let (status, body) = self.reload(session).await;
                (status, body.into_bytes(), "application/json")
            }
            "/cache/purge" => {
                let (status, body) = self.purge(session).await;
                (status, body.into_bytes(), "application/json")
            }
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decode `%XX` escapes (and `+` as space) of a query parameter value.
fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() && v.is_char_boundary(i + 3) => {
                match u8::from_str_radix(&v[i + 1..i + 3], 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
