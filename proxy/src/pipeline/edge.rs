//! pingora's `ProxyHttp` phases for every front end. Each phase is short and calls into the
//! module that does the work; what earlier phases resolved (the route's plan above all) lives
//! in [`RequestCtx`], and no phase looks it up again.

use crate::pipeline::errors::{self, EdgeError, LocalResponse};
use crate::pipeline::filters::FilterChain;
use crate::pipeline::logging::{self, Finished};
use crate::pipeline::plan::{Action, RoutePlan};
use crate::pipeline::upstream::{Endpoint, Pool, SelectKey};
use crate::pipeline::{cache, guard, headers, Protocol, Scheme};
use crate::state::{Generation, Shared};
use async_trait::async_trait;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use pingora::cache::key::{CacheKey, HashBinary};
use pingora::cache::{CacheMeta, ForcedFreshness, HitHandler, NoCacheReason, RespCacheable};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::Digest;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

mod answer;

/// The proxy application of one listener.
pub struct Edge {
    shared: Arc<Shared>,
    /// `https` when the listener terminates TLS (for the forwarding headers, the cache key and
    /// what filters and handlers are told).
    scheme: Scheme,
    /// `Alt-Svc` advertising HTTP/3 on this listener's UDP port, when it serves HTTP/3.
    alt_svc: Option<http::HeaderValue>,
}

impl Edge {
    pub fn new(shared: Arc<Shared>, scheme: Scheme) -> Self {
        Self {
            shared,
            scheme,
            alt_svc: None,
        }
    }

    /// After a successful unsafe request (`POST`, `PUT`, `DELETE`, ...) on a caching route,
    /// drop what is stored for its URL and the same-host URLs its answer names (RFC 9111
    /// section 4.4); once per request.
    fn invalidate(
        &self,
        req: &RequestHeader,
        status: u16,
        answer: &http::HeaderMap,
        ctx: &mut RequestCtx,
    ) {
        let Some(policy) = &ctx.plan.cache else {
            return;
        };
        if ctx.invalidated || req.method.is_safe() || !(200..400).contains(&status) {
            return;
        }
        ctx.invalidated = true;
        let storage = self.shared.cache.storage;
        let purged = cache::invalidate(storage, policy, req, &ctx.host, Some(answer));
        self.shared.metrics.cache_purged.inc_by(purged as u64);
    }

    /// Advertise HTTP/3 on `port` in every response (RFC 7838).
    pub fn with_alt_svc(mut self, port: u16) -> Self {
        self.alt_svc = http::HeaderValue::from_str(&format!("h3=\":{port}\"; ma=86400")).ok();
        self
    }
}

/// Per-request state: what the phases resolved, in the order they did.
pub struct RequestCtx {
    started: Instant,
    /// The config generation this request started under, kept to its end.
    generation: Arc<Generation>,
    /// The route's plan; the unrouted plan until a route is found.
    plan: Arc<RoutePlan>,
    /// The request's host, lower-cased, without port.
    host: String,
    /// `X-Request-Id` from the client, or generated; passed on and logged.
    request_id: String,
    filters: FilterChain,
    upstream: Attempts,
    /// The request's own `Cache-Control`, on routes that honour it.
    client_cache: cache::RequestDirectives,
    /// The fields of the origin's 304 to a revalidation, for the stored response's update.
    not_modified: Option<Box<http::HeaderMap>>,
    /// The version the origin's response came in, for `Via` (pingora may change the head's
    /// before `response_filter` sees it).
    upstream_version: Option<http::Version>,
    /// The cache holds a copy for this request (fresh or not); when the origin then fails,
    /// the copy could not be served and the answer is 504.
    stored_copy: bool,
    /// What an unsafe request's success invalidates has been dropped from the cache.
    invalidated: bool,
}

/// What happened with origins for one request.
#[derive(Default)]
struct Attempts {
    /// Endpoints already tried, so a retry goes elsewhere.
    tried: Vec<SocketAddr>,
    /// The endpoint of the latest attempt.
    endpoint: Option<Arc<Endpoint>>,
    /// An origin failed this request (connect or exchange), retried or not.
    failed: bool,
    /// The latest attempt went to the route's shield (a parent node), not to its pool.
    shielded: bool,
    /// The shield was tried: a failure there falls back to the pool, once.
    shield_tried: bool,
    /// The latest attempt found its reused connection closed by the origin: the next goes to
    /// the same endpoint (see `error_while_proxy`).
    again: bool,
    /// Attempts made again for that reason, up to [`STALE_RETRIES`].
    stale_retries: u8,
}

/// How many times a request goes again to the same endpoint because the kept-alive
/// connection it was sent on turned out closed.
const STALE_RETRIES: u8 = 2;

impl RequestCtx {
    /// The pool the request goes to: the one a filter switched to, else the route's.
    fn pool(&self) -> Option<&Arc<Pool>> {
        match &self.plan.action {
            Action::Forward(own) => Some(self.filters.pool().unwrap_or(own)),
            _ => None,
        }
    }

    /// The pool of the latest attempt: the shield's or the request's.
    fn attempt_pool(&self) -> Option<&Arc<Pool>> {
        match self.upstream.shielded {
            true => self.plan.shield.as_ref(),
            false => self.pool(),
        }
    }
}

/// The client's address (for HTTP/3, the QUIC connection's).
fn client_ip(session: &Session) -> Option<IpAddr> {
    let addr = session.client_addr()?.as_inet()?;
    Some(addr.ip())
}

#[async_trait]
impl ProxyHttp for Edge {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        let generation = self.shared.current();
        RequestCtx {
            started: Instant::now(),
            plan: generation.unrouted.clone(),
            generation,
            host: String::new(),
            request_id: String::new(),
            filters: FilterChain::default(),
            upstream: Attempts::default(),
            client_cache: cache::RequestDirectives::default(),
            not_modified: None,
            upstream_version: None,
            stored_copy: false,
            invalidated: false,
        }
    }

    /// Check the request head, route it, run the request filters, and answer here unless
    /// the route forwards to an origin.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        // RFC 9112 9.3.2: requests pipelined on an HTTP/1.1 connection are answered in order
        // (pingora's default drops them and closes). Sticks for the connection's later
        // requests; a no-op for HTTP/2 and HTTP/3.
        session.as_downstream_mut().set_pipelining_enabled(true);
        if let Err(refusal) = guard::check(session, &ctx.generation.config.server) {
            session.set_keepalive(None);
            let status = EdgeError::Refused(refusal).status();
            respond(session, ctx, LocalResponse::error(status)).await?;
            return Ok(true);
        }
        if session.req_header().raw_path() == b"*" {
            // The asterisk form asks about the server as a whole and only with OPTIONS (RFC
            // 9112 3.2.4): answered here, a "ping" (RFC 9110 9.3.7), never routed.
            let local = if session.req_header().method == http::Method::OPTIONS {
                headers::answer_as_final_recipient(session.req_header())
            } else {
                session.set_keepalive(None);
                LocalResponse::error(400)
            };
            respond(session, ctx, local).await?;
            return Ok(true);
        }
        // Routed, cached and forwarded by the authority and path of an absolute-form target.
        headers::origin_form(session.req_header_mut());
        if headers::loops_through(session.req_header(), &self.shared.cdn_loop) {
            // This node forwarded the request before (RFC 8586): a shield tier pointing back.
            session.set_keepalive(None);
            respond(session, ctx, LocalResponse::error(508)).await?;
            return Ok(true);
        }
        self.route(session.req_header(), ctx);
        if let Some(local) = self.request_filters(session, ctx) {
            return self.answer(session, ctx, local).await.map(|()| true);
        }
        let plan = ctx.plan.clone();
        match &plan.action {
            Action::Forward(_) if headers::max_forwards(session.req_header()) == Some(0) => {
                let local = headers::answer_as_final_recipient(session.req_header());
                self.answer(session, ctx, local).await.map(|()| true)
            }
            Action::Forward(_) => {
                if !session.is_body_empty() {
                    ctx.filters.start_request_body(&plan.filters);
                }
                Ok(false)
            }
            Action::Handler(planned) => self
                .serve_handler(session, ctx, planned)
                .await
                .map(|()| true),
            Action::Local(local) => self
                .answer(session, ctx, local.clone())
                .await
                .map(|()| true),
        }
    }

    /// Turn the cache on for `GET`/`HEAD` on routes that cache. Runs after `request_filter`,
    /// so filters have already edited the request (and with it the key). A request's
    /// `no-store`, where the route honours it, bypasses the cache.
    fn request_cache_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        let Some(policy) = &ctx.plan.cache else {
            return Ok(());
        };
        if !cache::method_cacheable(session.req_header()) {
            return Ok(());
        }
        if policy.honor_client_cache_control {
            ctx.client_cache = cache::RequestDirectives::of(&session.req_header().headers);
            if ctx.client_cache.no_store {
                return Ok(());
            }
        }
        let c = &self.shared.cache;
        session
            .cache
            .enable(c.storage, None, None, Some(c.lock), None);
        session.cache.set_max_file_size_bytes(c.max_object_bytes);
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, ctx: &mut RequestCtx) -> Result<CacheKey> {
        let Some(policy) = &ctx.plan.cache else {
            return Error::e_explain(ErrorType::InternalError, "cache key without a cache policy");
        };
        let req = session.req_header();
        Ok(cache::key(policy, req, &ctx.host, self.scheme))
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<RespCacheable> {
        let Some(policy) = &ctx.plan.cache else {
            return Ok(RespCacheable::Uncacheable(NoCacheReason::NeverEnabled));
        };
        let req = session.req_header();
        Ok(match ctx.not_modified.take() {
            // A revalidation's 304: the stored response takes its fields (RFC 9111 4.3.4).
            Some(fields) => cache::cacheable(policy, req, &cache::update_from_304(resp, &fields)),
            None => cache::cacheable(policy, req, resp),
        })
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        ctx: &mut RequestCtx,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        cache::variance(meta, req, ctx.plan.cache.as_ref()?)
    }

    /// The request's `Cache-Control`, where the route honours it: `no-cache`, `max-age` and
    /// `min-fresh` make a fresh hit revalidate, `max-stale` lets a stale one be served.
    async fn cache_hit_filter(
        &self,
        _session: &mut Session,
        meta: &CacheMeta,
        _hit: &mut HitHandler,
        is_fresh: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<ForcedFreshness>> {
        ctx.stored_copy = true;
        match &ctx.plan.cache {
            Some(policy) if ctx.client_cache.any() => Ok(cache::client_freshness(
                &ctx.client_cache,
                policy,
                meta,
                is_fresh,
            )),
            _ => Ok(None),
        }
    }

    /// `only-if-cached` (where the route honours it) is answered 504 rather than forwarded.
    async fn proxy_upstream_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        if !ctx.client_cache.only_if_cached {
            return Ok(true);
        }
        let _ = respond(session, ctx, LocalResponse::error(504)).await;
        Ok(false)
    }

    /// Refuse a status code outside 100-599 (RFC 9110 15; the parser takes any three digits):
    /// the client gets a 502, as from any invalid response. Note the version it came in (for
    /// `Via`). Keep the fields of a 304 the origin sends to a revalidation, to update the
    /// stored response with (pingora's merge takes only a few of them).
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if !(100..600).contains(&resp.status.as_u16()) {
            let reason = format!("status code {} outside 100-599", resp.status.as_u16());
            return Err(Error::explain(ErrorType::InvalidHTTPHeader, reason).into_up());
        }
        ctx.upstream_version = Some(resp.version);
        if resp.status == http::StatusCode::NOT_MODIFIED && ctx.plan.cache.is_some() {
            ctx.not_modified = Some(Box::new(resp.headers.clone()));
        }
        Ok(())
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

    /// Choose an endpoint of the request's pool that this request has not tried yet.
    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        // Its kept-alive connection was closed under it: the same endpoint again.
        if std::mem::take(&mut ctx.upstream.again) {
            if let (Some(pool), Some(ep)) = (ctx.attempt_pool(), &ctx.upstream.endpoint) {
                return Ok(Box::new(pool.peer(ep)));
            }
        }
        let req = session.req_header();
        // A cache miss (or revalidation) of a shielded route asks the URL's parent first.
        if let Some(shield) = ctx.plan.shield.clone() {
            if session.cache.enabled() && !ctx.upstream.shield_tried {
                ctx.upstream.shield_tried = true;
                if let Some(ep) = shield.select_hashed((&ctx.host, req.uri.path())) {
                    ctx.upstream.shielded = true;
                    let peer = shield.peer(&ep);
                    ctx.upstream.endpoint = Some(ep);
                    return Ok(Box::new(peer));
                }
            }
        }
        ctx.upstream.shielded = false;
        let Some(pool) = ctx.pool().cloned() else {
            return Error::e_explain(ErrorType::InternalError, "forwarding without a pool");
        };
        let header = |name: &http::HeaderName| req.headers.get(name).map(|v| v.as_bytes());
        let key = SelectKey {
            path: req.uri.path(),
            client_ip: client_ip(session),
            header: &header,
        };
        let Some(ep) = pool.select(&key, &ctx.upstream.tried) else {
            let why = format!("pool {}: no endpoint left to try", pool.config.name);
            return Error::e_explain(ErrorType::ConnectNoRoute, why);
        };
        ctx.upstream.tried.push(ep.addr);
        let peer = pool.peer(&ep);
        ctx.upstream.endpoint = Some(ep);
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
        if let (Some(pool), Some(ep)) = (ctx.attempt_pool(), &ctx.upstream.endpoint) {
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
        ctx.upstream.failed = true;
        if let (Some(pool), Some(ep)) = (ctx.attempt_pool(), &ctx.upstream.endpoint) {
            pool.report_failure(ep);
            // A parent that cannot be reached leaves the request to the route's pool.
            let retry = ctx.upstream.shielded || retry_allowed(pool, &ctx.upstream.tried);
            e.set_retry(retry);
            let m = &self.shared.metrics;
            let name = pool.config.name.as_str();
            m.upstream_connect_errors.with_label_values(&[name]).inc();
            if retry {
                m.upstream_retries.with_label_values(&[name]).inc();
            }
        }
        e
    }

    /// An error after the request was sent: retry only idempotent requests whose body is
    /// still buffered, only for connection failures (not timeouts), and only elsewhere; but
    /// a kept-alive connection that the origin closed before it answered anything (pingora's
    /// `ReusedOnly`: the race between reusing a connection and the origin's idle timeout,
    /// which says nothing of the endpoint) sends the request again to the same endpoint, on
    /// another connection (RFC 9112 9.3.1), up to [`STALE_RETRIES`] times.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        ctx.upstream.failed = true;
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
        let Some(pool) = ctx.attempt_pool() else {
            e.set_retry(false);
            return e;
        };
        let labels = [pool.config.name.as_str(), upstream_error_kind(e.etype())];
        let errors = &self.shared.metrics.upstream_errors;
        errors.with_label_values(&labels).inc();
        let elsewhere = ctx.upstream.shielded || retry_allowed(pool, &ctx.upstream.tried);
        let stale = client_reused
            && e.retry == pingora::RetryType::ReusedOnly
            && ctx.upstream.stale_retries < STALE_RETRIES;
        match safe {
            true if stale => {
                ctx.upstream.stale_retries += 1;
                ctx.upstream.again = true;
                e.set_retry(true);
            }
            true if connection_failure && elsewhere => e.set_retry(true),
            true => e.retry.decide_reuse(client_reused),
            false => e.set_retry(false),
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
        // Room for what is added below: the head pingora cloned has none, and each growth
        // of its maps rehashes every header.
        let edits = &ctx.plan.request_headers;
        upstream.reserve(headers::ADDED_UPSTREAM + edits.set.len() + edits.add.len());
        headers::finish_upstream_request(session.req_header(), upstream);
        headers::decrement_max_forwards(upstream);
        if let Ok(id) = http::HeaderValue::from_str(&ctx.request_id) {
            let _ = upstream.insert_header(&headers::X_REQUEST_ID, id);
        }
        let client = headers::ClientInfo {
            ip: client_ip(session),
            scheme: self.scheme,
            http_version: session.req_header().version,
            host: &ctx.host,
        };
        headers::add_forwarding(upstream, &ctx.generation.config.forwarding, &client);
        let _ = upstream.append_header(&headers::CDN_LOOP, self.shared.cdn_loop.clone());
        headers::edit(upstream, &ctx.plan.request_headers);
        if ctx.filters.buffers_request_body() {
            // A body filter may change the body's length: send it chunked.
            upstream.remove_header(&CONTENT_LENGTH);
            let _ = upstream.insert_header(TRANSFER_ENCODING, "chunked");
        }
        Ok(())
    }

    /// Request bodies stream to the origin, unless a filter's `on-request-body` needs them
    /// whole (see `FilterChain::request_body_chunk`).
    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if !ctx.filters.buffers_request_body() {
            return Ok(());
        }
        let plan = &ctx.plan.filters;
        let step = ctx
            .filters
            .request_body_chunk(plan, session.req_header(), body, end_of_stream);
        step.map_err(EdgeError::into_pingora)
    }

    /// Response bodies stream to the client, unless a filter's `on-response-body` needs them
    /// whole.
    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if !ctx.plan.filters.body_access {
            return Ok(None);
        }
        let plan = &ctx.plan.filters;
        let step = ctx
            .filters
            .response_body_chunk(plan, session.req_header(), body, end_of_stream);
        step.map_err(EdgeError::into_pingora).map(|()| None)
    }

    /// Edit the origin's (or the cache's) response for the client.
    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // Before the client sees the answer: a client that has it and asks again must not
        // get the copy its request made stale.
        self.invalidate(
            session.req_header(),
            resp.status.as_u16(),
            &resp.headers,
            ctx,
        );
        headers::strip_hop_by_hop_response(resp);
        if ctx.generation.config.forwarding.via {
            // The version the response came in (RFC 9110 7.6.3: the received protocol), not
            // the client's.
            let received = ctx.upstream_version.unwrap_or(resp.version);
            let via = http::HeaderValue::from_static(headers::via_value(received));
            let _ = resp.append_header(&headers::VIA, via);
        }
        if let Some(policy) = &ctx.plan.cache {
            cache::strip_targeted(policy, resp);
            if cache::method_cacheable(session.req_header()) {
                self.cache_status(session, resp, ctx);
            }
        }
        self.finish_head(ctx, session.req_header(), resp)
            .map_err(EdgeError::into_pingora)?;
        let head_only = session.req_header().method == http::Method::HEAD;
        if ctx
            .filters
            .start_response_body(&ctx.plan.filters, head_only, resp)
        {
            // The body may change length: no Content-Length; HTTP/1.1 clients get it
            // chunked (HTTP/2 and HTTP/3 frames carry their own lengths).
            resp.remove_header(&CONTENT_LENGTH);
            if !Protocol::of(session).frames_bodies() {
                let _ = resp.insert_header(TRANSFER_ENCODING, "chunked");
            }
        }
        http1_framing(session, resp);
        Ok(())
    }

    /// The end of every request: invalidation after an unsafe method answered here (an origin's
    /// answer invalidated in `response_filter`), metrics, access log.
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let written = session.response_written();
        let status = written.map_or(0, |r| r.status.as_u16());
        let req = session.req_header();
        if let Some(written) = written {
            self.invalidate(req, status, &written.headers, ctx);
        }
        let finished = Finished {
            plan: &ctx.plan,
            req,
            status,
            protocol: Protocol::of(session),
            bytes: session.body_bytes_sent(),
            elapsed: ctx.started.elapsed(),
            client: client_ip(session),
            host: std::mem::take(&mut ctx.host),
            request_id: std::mem::take(&mut ctx.request_id),
            upstream: ctx.upstream.endpoint.as_ref().map(|e| e.addr),
        };
        logging::record(finished, &self.shared.access_log);
    }

    /// Every failure becomes one status, chosen in `EdgeError::status_of`.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let mut code = EdgeError::status_of(e);
        if code == 502 && ctx.stored_copy {
            // A stored copy that could not be revalidated and may not be served stale: the
            // cache's answer is 504 (RFC 9111 5.2.2.2), not the origin's failure.
            code = 504;
        }
        if code > 0 {
            // The connection is not reused after a failure: say so (`Connection: close`),
            // so an HTTP/1.1 client does not send its next request into a closing socket.
            session.set_keepalive(None);
            let _ = respond(session, ctx, LocalResponse::error(code)).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
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

/// Answer `local` as it is (no filters, no route edits), with `Server` as the request's
/// generation says (`server.server_header`).
async fn respond(session: &mut Session, ctx: &RequestCtx, local: LocalResponse) -> Result<()> {
    errors::respond(session, local, ctx.generation.config.server.server_header).await
}

/// An HTTP/1 client's response head as an intermediary must send it: in its own version,
/// HTTP/1.1, whatever the origin's (RFC 9110 6.2: pingora passes an HTTP/1.0 origin's on), and
/// without the chunked coding an HTTP/1.0 client cannot read (RFC 9112 6.1): a body of unknown
/// length then ends with the connection (RFC 9112 6.3), which is therefore not kept alive.
/// HTTP/2 and HTTP/3 heads are left as they are.
fn http1_framing(session: &mut Session, resp: &mut ResponseHeader) {
    if Protocol::of(session).frames_bodies() {
        return;
    }
    resp.set_version(http::Version::HTTP_11);
    if session.req_header().version < http::Version::HTTP_11
        && resp.headers.contains_key(TRANSFER_ENCODING)
    {
        resp.remove_header(&TRANSFER_ENCODING);
        session.as_downstream_mut().set_keepalive(None);
    }
}
