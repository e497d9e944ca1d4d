//! The edge proxy: pingora's `ProxyHttp` phases for one listener.
//!
//! Each phase is short and calls into a module: the request is checked (`guard`), routed
//! (`router`), answered locally or forwarded to a pool (`upstream`), with headers edited on
//! the way (`headers`) and failures mapped to statuses in one place (`errors`).

use crate::errors::{self, LocalResponse};
use crate::filters::{self, BodyStep, FilterChain, Outcome};
use crate::guard;
use crate::handlers::{self, Failure};
use crate::headers;
use crate::router::request_host;
use crate::state::{Generation, Shared};
use crate::upstream::{Endpoint, Pool, SelectKey};
use crate::{access_log, cache, metrics};
use async_trait::async_trait;
use breakwater_config::{ComponentId, Route, RouteAction};
use bytes::Bytes;
use pingora::cache::key::{CacheKey, HashBinary};
use pingora::cache::{
    CacheMeta, CachePhase, ForcedFreshness, HitHandler, NoCacheReason, RespCacheable,
};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::Digest;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The proxy application of one listener.
pub struct Edge {
    shared: Arc<Shared>,
    /// Whether this listener terminates TLS (for `X-Forwarded-Proto` and `Forwarded`).
    tls: bool,
    /// `Alt-Svc` advertising HTTP/3 on this listener's UDP port, when it serves HTTP/3.
    alt_svc: Option<http::HeaderValue>,
}

impl Edge {
    pub fn new(shared: Arc<Shared>, tls: bool) -> Self {
        Self {
            shared,
            tls,
            alt_svc: None,
        }
    }

    /// Advertise HTTP/3 on `port` in every response (RFC 7838).
    pub fn with_alt_svc(mut self, port: u16) -> Self {
        self.alt_svc = http::HeaderValue::from_str(&format!("h3=\":{port}\"; ma=86400")).ok();
        self
    }

    /// The client's address (for HTTP/3, the QUIC connection's).
    fn client_ip(&self, session: &Session) -> Option<std::net::IpAddr> {
        session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
    }

    fn protocol(&self, session: &Session) -> &'static str {
        // The one custom session is the HTTP/3 front end's.
        if session.is_custom() {
            "HTTP/3"
        } else if session.is_http2() {
            "HTTP/2"
        } else {
            "HTTP/1.1"
        }
    }
}

/// Whether the client's protocol frames bodies itself (HTTP/2, HTTP/3): no chunked coding.
fn framed(session: &Session) -> bool {
    session.is_http2() || session.is_custom()
}

/// Per-request state.
#[derive(Default)]
pub struct RequestCtx {
    /// The config generation this request started under, kept to its end.
    generation: Option<Arc<Generation>>,
    route: Option<usize>,
    host: String,
    /// Endpoints already tried, so a retry goes elsewhere.
    tried: Vec<SocketAddr>,
    endpoint: Option<Arc<Endpoint>>,
    filters: FilterChain,
    started: Option<Instant>,
    /// `X-Request-Id` from the client, or generated; passed to the origin and logged.
    request_id: String,
    /// The listener's `Alt-Svc`, for responses made here rather than by an origin.
    alt_svc: Option<http::HeaderValue>,
    /// The origin failed this request (connect or exchange), retried or not.
    upstream_failed: bool,
}

impl RequestCtx {
    fn route(&self) -> Option<&Route> {
        Some(&self.generation.as_ref()?.config.routes[self.route?])
    }

    fn pool(&self) -> Option<&Arc<Pool>> {
        let generation = self.generation.as_ref()?;
        if let Some(id) = self.filters.pool {
            return generation.pools.get(id.0);
        }
        match &self.route()?.action {
            RouteAction::Forward(id) => generation.pools.get(id.0),
            _ => None,
        }
    }

    /// Write a locally generated response, through the route's response filters.
    async fn answer(
        &mut self,
        session: &mut Session,
        local: LocalResponse,
        metrics: &metrics::Metrics,
    ) -> Result<()> {
        let (mut head, body) =
            local.into_parts(session.req_header().method == http::Method::HEAD)?;
        if let Some(alt) = &self.alt_svc {
            head.insert_header(http::header::ALT_SVC, alt.clone())?;
        }
        if let (Some(generation), Some(i)) = (self.generation.clone(), self.route) {
            let route = &generation.config.routes[i];
            if let Err(status) = self
                .filters
                .on_response(&generation, route, &mut head, metrics)
            {
                let (h, b) = LocalResponse::error(status).into_parts(false)?;
                return errors::write(session, h, b).await;
            }
        }
        errors::write(session, head, body).await
    }
}

impl Edge {
    /// Serve the request with the route's `wasi:http` handler; its response goes through the
    /// route's header edits and response filters like an origin's.
    async fn serve_handler(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        generation: &Arc<Generation>,
        id: ComponentId,
    ) -> Result<()> {
        let route = &generation.config.routes[ctx.route.expect("routed")];
        let component = &generation.config.components[id.0];
        let name = component.name.as_str();
        let m = &self.shared.metrics;
        m.component_invocations
            .with_label_values(&[name, "handle"])
            .inc();
        let started = Instant::now();
        let result = handlers::call(
            session,
            generation.handler(id),
            &ctx.host,
            self.tls,
            &ctx.request_id,
            component.max_body_bytes,
        )
        .await;
        m.component_duration
            .with_label_values(&[name, "handle"])
            .observe(started.elapsed().as_secs_f64());
        let response = match result {
            Ok(r) => r,
            Err(Failure::Component(e)) => {
                m.component_errors
                    .with_label_values(&[name, e.kind()])
                    .inc();
                tracing::warn!(route = %route.name, component = name, error = %e, "handler failed");
                let local = LocalResponse::error(filters::status_for(&e));
                return ctx
                    .answer(session, local.with_edits(&route.response_headers), m)
                    .await;
            }
            Err(Failure::TooLarge) => {
                session.set_keepalive(None);
                let local = LocalResponse::error(413);
                return ctx
                    .answer(session, local.with_edits(&route.response_headers), m)
                    .await;
            }
            Err(Failure::Downstream(e)) => return Err(e),
        };
        let (parts, body) = response.into_parts();
        let mut head = handlers::response_head(&parts, !framed(session))?;
        if let Some(alt) = &self.alt_svc {
            head.insert_header(http::header::ALT_SVC, alt.clone())?;
        }
        headers::edit_response(&mut head, &route.response_headers);
        if let Err(status) = ctx.filters.on_response(generation, route, &mut head, m) {
            let (h, b) = LocalResponse::error(status).into_parts(false)?;
            return errors::write(session, h, b).await;
        }
        let head_only = session.req_header().method == http::Method::HEAD;
        session
            .write_response_header(Box::new(head), head_only)
            .await?;
        if !head_only {
            handlers::stream_body(session, body).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl ProxyHttp for Edge {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Some(Instant::now()),
            ..RequestCtx::default()
        }
    }

    /// Check the request head, route it, and answer locally when the route says so.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let generation = self.shared.current();
        if let Err(refusal) = guard::check(session, &generation.config.server) {
            session.set_keepalive(None);
            errors::respond(session, refusal.response()).await?;
            return Ok(true);
        }
        ctx.request_id = request_id(session.req_header());
        ctx.alt_svc = self.alt_svc.clone();
        let req = session.req_header();
        let host = request_host(
            &req.uri,
            req.headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok()),
        );
        let found = generation.router.find(
            &generation.config.routes,
            &host,
            req.uri.path(),
            &req.method,
        );
        ctx.host = host;
        ctx.route = found;
        ctx.generation = Some(generation);
        let Some(route) = ctx.route() else {
            errors::respond(session, LocalResponse::no_route()).await?;
            return Ok(true);
        };
        if !route.filters.is_empty() {
            let generation = ctx.generation.clone().expect("set above");
            let route = &generation.config.routes[ctx.route.expect("found")];
            let client = self.client_ip(session);
            let outcome = ctx.filters.on_request(
                &generation,
                route,
                session.req_header_mut(),
                self.tls,
                client,
                &self.shared.metrics,
            );
            let local = match outcome {
                Outcome::Continue => None,
                Outcome::Respond {
                    status,
                    headers,
                    body,
                } => Some(LocalResponse::fixed(status, &headers, body.into())),
                Outcome::Fail(code) => Some(LocalResponse::error(code)),
            };
            if let Some(local) = local {
                ctx.answer(
                    session,
                    local.with_edits(&route.response_headers),
                    &self.shared.metrics,
                )
                .await?;
                return Ok(true);
            }
        }
        let Some(route) = ctx.route() else {
            return Ok(false);
        };
        if matches!(route.action, RouteAction::Forward(_)) && route.body_access {
            let generation = ctx.generation.clone().expect("set above");
            let route = &generation.config.routes[ctx.route.expect("found")];
            let has_body = !session.is_body_empty();
            ctx.filters.start_request_body(&generation, route, has_body);
        }
        let Some(route) = ctx.route() else {
            return Ok(false);
        };
        let local = match &route.action {
            RouteAction::Forward(_) => return Ok(false),
            RouteAction::Handler(id) => {
                let (id, generation) = (*id, ctx.generation.clone().expect("set above"));
                self.serve_handler(session, ctx, &generation, id).await?;
                return Ok(true);
            }
            RouteAction::Redirect { location, status } => {
                LocalResponse::redirect(*status, location.clone())
            }
            RouteAction::Respond {
                status,
                headers,
                body,
            } => LocalResponse::fixed(*status, headers, body.clone()),
        };
        let local = local.with_edits(&route.response_headers);
        ctx.answer(session, local, &self.shared.metrics).await?;
        Ok(true)
    }

    /// Turn the cache on for `GET`/`HEAD` on routes that cache. Runs after `request_filter`,
    /// so filters have already edited the request (and with it the key).
    fn request_cache_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        if ctx.route().and_then(|r| r.cache.as_ref()).is_none()
            || !cache::method_cacheable(session.req_header())
        {
            return Ok(());
        }
        let c = &self.shared.cache;
        session
            .cache
            .enable(c.storage, None, None, Some(c.lock), None);
        session.cache.set_max_file_size_bytes(c.max_object_bytes);
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, ctx: &mut RequestCtx) -> Result<CacheKey> {
        let Some(policy) = ctx.route().and_then(|r| r.cache.as_ref()) else {
            return Error::e_explain(ErrorType::InternalError, "cache key without a cache policy");
        };
        Ok(cache::key(
            policy,
            session.req_header(),
            &ctx.host,
            self.tls,
        ))
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<RespCacheable> {
        Ok(match ctx.route().and_then(|r| r.cache.as_ref()) {
            Some(policy) => cache::cacheable(policy, session.req_header(), resp),
            None => RespCacheable::Uncacheable(NoCacheReason::NeverEnabled),
        })
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        ctx: &mut RequestCtx,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        let policy = ctx.route().and_then(|r| r.cache.as_ref())?;
        cache::variance(meta, req, policy)
    }

    /// A client's `no-cache` makes a fresh hit revalidate, where the route honours it.
    async fn cache_hit_filter(
        &self,
        session: &mut Session,
        _meta: &CacheMeta,
        _hit: &mut HitHandler,
        is_fresh: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<ForcedFreshness>> {
        let honor = ctx
            .route()
            .and_then(|r| r.cache.as_ref())
            .is_some_and(|p| p.honor_client_no_cache);
        if honor && is_fresh && cache::client_no_cache(session.req_header()) {
            return Ok(Some(ForcedFreshness::ForceExpired));
        }
        Ok(None)
    }

    /// Stale content is served when the origin fails (within `stale-if-error`) and while a
    /// refresh runs (within `stale-while-revalidate`); pingora checks those windows.
    fn should_serve_stale(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
        error: Option<&Error>,
    ) -> bool {
        error.is_none_or(|e| e.esource() == &pingora::ErrorSource::Upstream)
    }

    /// Choose an endpoint of the route's pool that this request has not tried yet.
    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(pool) = ctx.pool().cloned() else {
            return Error::e_explain(ErrorType::InternalError, "forwarding without a pool");
        };
        let req = session.req_header();
        let header = |name: &http::HeaderName| req.headers.get(name).map(|v| v.as_bytes());
        let key = SelectKey {
            path: req.uri.path(),
            client_ip: self.client_ip(session),
            header: &header,
        };
        let Some(ep) = pool.select(&key, &ctx.tried) else {
            return Error::e_explain(
                ErrorType::ConnectNoRoute,
                format!("pool {}: no endpoint left to try", pool.config.name),
            );
        };
        ctx.tried.push(ep.addr);
        let peer = pool.peer(&ep);
        ctx.endpoint = Some(ep);
        Ok(Box::new(peer))
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let (Some(pool), Some(ep)) = (ctx.pool(), &ctx.endpoint) {
            pool.report_success(ep);
        }
        Ok(())
    }

    /// A connection failed: count it against the endpoint and retry elsewhere if allowed.
    /// Nothing was sent yet, so this is safe for any method.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        ctx.upstream_failed = true;
        if let (Some(pool), Some(ep)) = (ctx.pool(), &ctx.endpoint) {
            pool.report_failure(ep);
            let retry = retry_allowed(pool, &ctx.tried);
            e.set_retry(retry);
            let m = &self.shared.metrics;
            m.upstream_connect_errors
                .with_label_values(&[pool.config.name.as_str()])
                .inc();
            if retry {
                m.upstream_retries
                    .with_label_values(&[pool.config.name.as_str()])
                    .inc();
            }
        }
        e
    }

    /// An error after the request was sent: retry only idempotent requests whose body is
    /// still buffered, only for connection failures (not timeouts), and only elsewhere.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        ctx.upstream_failed = true;
        let mut e = e.more_context(format!("peer: {peer}"));
        let safe = session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated();
        let connection_failure = matches!(
            e.etype(),
            ErrorType::ConnectionClosed
                | ErrorType::ReadError
                | ErrorType::WriteError
                | ErrorType::H2Error
        );
        if let Some(pool) = ctx.pool() {
            self.shared
                .metrics
                .upstream_errors
                .with_label_values(&[pool.config.name.as_str(), upstream_error_kind(e.etype())])
                .inc();
        }
        match ctx.pool() {
            Some(pool) if safe && connection_failure && retry_allowed(pool, &ctx.tried) => {
                e.set_retry(true)
            }
            _ if safe => e.retry.decide_reuse(client_reused),
            _ => e.set_retry(false),
        }
        e
    }

    /// Edit the request for the origin: hop-by-hop headers out, forwarding headers and the
    /// route's edits in.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        headers::strip_hop_by_hop_request(upstream);
        if let Ok(id) = http::HeaderValue::from_str(&ctx.request_id) {
            let _ = upstream.insert_header("x-request-id", id);
        }
        if let Some(generation) = &ctx.generation {
            let client = headers::ClientInfo {
                ip: self.client_ip(session),
                tls: self.tls,
                http_version: session.req_header().version,
                host: &ctx.host,
            };
            headers::add_forwarding(upstream, &generation.config.forwarding, &client);
        }
        if let Some(route) = ctx.route() {
            headers::edit_request(upstream, &route.request_headers);
        }
        if ctx.filters.buffers_request_body() {
            // A body filter may change the body's length: send it chunked.
            upstream.remove_header(&http::header::CONTENT_LENGTH);
            let _ = upstream.insert_header(http::header::TRANSFER_ENCODING, "chunked");
        }
        Ok(())
    }

    /// Request bodies stream to the origin, unless a filter's `on-request-body` needs them
    /// whole (see `FilterChain::request_body_chunk`).
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if !ctx.filters.buffers_request_body() {
            return Ok(());
        }
        let (Some(generation), Some(i)) = (ctx.generation.clone(), ctx.route) else {
            return Ok(());
        };
        let route = &generation.config.routes[i];
        match ctx.filters.request_body_chunk(
            &generation,
            route,
            body,
            end_of_stream,
            &self.shared.metrics,
        ) {
            BodyStep::Pass => Ok(()),
            BodyStep::Fail(status) => {
                Error::e_explain(ErrorType::HTTPStatus(status), "request body filter failed")
            }
        }
    }

    /// Response bodies stream to the client, unless a filter's `on-response-body` needs them
    /// whole.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        let (Some(generation), Some(i)) = (ctx.generation.clone(), ctx.route) else {
            return Ok(None);
        };
        let route = &generation.config.routes[i];
        if !route.body_access {
            return Ok(None);
        }
        match ctx.filters.response_body_chunk(
            &generation,
            route,
            body,
            end_of_stream,
            &self.shared.metrics,
        ) {
            BodyStep::Pass => Ok(None),
            BodyStep::Fail(status) => {
                Error::e_explain(ErrorType::HTTPStatus(status), "response body filter failed")
            }
        }
    }

    /// Edit the origin's response for the client.
    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        headers::strip_hop_by_hop_response(resp);
        if let Some(alt) = &self.alt_svc {
            let _ = resp.insert_header(http::header::ALT_SVC, alt.clone());
        }
        if ctx
            .generation
            .as_ref()
            .is_some_and(|g| g.config.forwarding.via)
        {
            let _ = resp.append_header(
                http::header::VIA,
                headers::via_value(session.req_header().version),
            );
        }
        if let Some(route) = ctx.route() {
            if route.cache.is_some() && cache::method_cacheable(session.req_header()) {
                let phase = session.cache.phase();
                let meta = matches!(
                    phase,
                    CachePhase::Hit | CachePhase::Stale | CachePhase::StaleUpdating
                )
                .then(|| session.cache.cache_meta());
                let value = cache::status(&phase, meta);
                let _ = resp.insert_header("cache-status", value);
                if phase == CachePhase::Stale && ctx.upstream_failed {
                    // A stale copy served because the origin failed (stale-if-error):
                    // pingora does not reuse the client connection after it, so say so
                    // rather than let the client's next request meet a closed socket.
                    session.set_keepalive(None);
                }
                self.shared
                    .metrics
                    .cache_responses
                    .with_label_values(&[route.name.as_str(), cache::outcome(&phase)])
                    .inc();
            }
            headers::edit_response(resp, &route.response_headers);
        }
        if let (Some(generation), Some(i)) = (ctx.generation.clone(), ctx.route) {
            let route = &generation.config.routes[i];
            if let Err(status) =
                ctx.filters
                    .on_response(&generation, route, resp, &self.shared.metrics)
            {
                return Error::e_explain(ErrorType::HTTPStatus(status), "response filter failed");
            }
            let head_only = session.req_header().method == http::Method::HEAD;
            if ctx
                .filters
                .start_response_body(&generation, route, head_only, resp)
            {
                // The body may change length: no Content-Length; HTTP/1.1 clients get it
                // chunked (HTTP/2 frames carry their own lengths).
                resp.remove_header(&http::header::CONTENT_LENGTH);
                if !framed(session) {
                    let _ = resp.insert_header(http::header::TRANSFER_ENCODING, "chunked");
                }
            }
        }
        Ok(())
    }

    /// The end of every request: metrics and the access log.
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.started.map(|s| s.elapsed()).unwrap_or_default();
        let req = session.req_header();
        let route = ctx.route().map_or("-", |r| r.name.as_str());
        let protocol = self.protocol(session);
        let bytes = session.body_bytes_sent();
        let m = &self.shared.metrics;
        if let Some(policy) = ctx.route().and_then(|r| r.cache.as_ref()) {
            if !req.method.is_safe() && (200..400).contains(&status) {
                let written = session.response_written();
                let purged = cache::invalidate(
                    self.shared.cache.storage,
                    policy,
                    req,
                    &ctx.host,
                    written.map(|r| &r.headers),
                );
                m.cache_purged.inc_by(purged as u64);
            }
        }
        let req = session.req_header();
        m.requests
            .with_label_values(&[
                route,
                metrics::method_label(&req.method),
                metrics::status_class(status),
                protocol,
            ])
            .inc();
        m.request_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
        m.response_bytes
            .with_label_values(&[route])
            .inc_by(bytes as u64);
        let log = &self.shared.access_log;
        if log.enabled() {
            let header = |n: &str| {
                req.headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            log.log(access_log::Entry {
                time: std::time::SystemTime::now(),
                client: self
                    .client_ip(session)
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                protocol,
                method: req.method.to_string(),
                host: ctx.host.clone(),
                path: req
                    .uri
                    .path_and_query()
                    .map_or("/".into(), |p| p.to_string()),
                status,
                bytes,
                duration_us: elapsed.as_micros() as u64,
                upstream: ctx.endpoint.as_ref().map(|e| e.addr.to_string()),
                route: route.to_string(),
                filters: ctx
                    .route()
                    .zip(ctx.generation.as_ref())
                    .map(|(r, g)| {
                        r.filters
                            .iter()
                            .map(|id| g.config.components[id.0].name.clone())
                            .collect()
                    })
                    .unwrap_or_default(),
                request_id: ctx.request_id.clone(),
                user_agent: header("user-agent"),
                referer: header("referer"),
            });
        }
    }

    /// Every failure becomes one status, chosen in `errors::status_for`.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = errors::status_for(e);
        if code > 0 {
            // The connection is not reused after a failure: say so (`Connection: close`),
            // so an HTTP/1.1 client does not send its next request into a closing socket.
            session.set_keepalive(None);
            let _ = errors::respond(session, LocalResponse::error(code)).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }
}

/// The client's `X-Request-Id` when it is short and printable, else a new random one.
fn request_id(req: &RequestHeader) -> String {
    match req
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
    {
        Some(id)
            if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            id.to_string()
        }
        _ => format!("{:032x}", rand::random::<u128>()),
    }
}

/// A bounded label for what went wrong with an origin after connecting.
fn upstream_error_kind(e: &ErrorType) -> &'static str {
    match e {
        ErrorType::ConnectionClosed => "closed",
        ErrorType::ReadError | ErrorType::WriteError => "reset",
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => "timeout",
        ErrorType::InvalidHTTPHeader | ErrorType::H1Error => "invalid_response",
        ErrorType::H2Error | ErrorType::H2Downgrade | ErrorType::InvalidH2 => "h2",
        _ => "other",
    }
}

fn retry_allowed(pool: &Pool, tried: &[SocketAddr]) -> bool {
    tried.len() <= pool.config.retries as usize && pool.has_untried(tried)
}
