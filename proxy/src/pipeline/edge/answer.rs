//! How responses leave the pipeline: routing a request to its plan, the one place every
//! response head is finished (`Alt-Svc`, the route's edits, the response filters), answers made
//! here, and answers from a handler component.

use super::{Edge, RequestCtx};
use crate::ops::metrics::ComponentPhase;
use crate::pipeline::errors::{EdgeError, LocalResponse};
use crate::pipeline::filters::Client;
use crate::pipeline::handlers::{self, Ready, Target};
use crate::pipeline::plan::PlannedHandler;
use crate::pipeline::router::request_host;
use crate::pipeline::{cache, headers, Protocol};
use http::header::ALT_SVC;
use pingora::cache::CachePhase;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::Session;
use std::time::Instant;

impl Edge {
    /// Route the request: its id, host and plan go into `ctx`.
    pub(super) fn route(&self, req: &RequestHeader, ctx: &mut RequestCtx) {
        ctx.request_id = request_id(req);
        let host_header = req.headers.get(http::header::HOST);
        ctx.host = request_host(&req.uri, host_header.and_then(|v| v.to_str().ok()));
        let found = ctx
            .generation
            .router
            .find(&ctx.host, req.uri.path(), &req.method);
        if let Some(plan) = found {
            ctx.plan = plan.clone();
        }
    }

    /// Run the route's request filters: `Some` answer when one answered the request itself
    /// or failed it (fail-closed).
    pub(super) fn request_filters(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Option<LocalResponse> {
        let client = Client {
            scheme: self.scheme,
            addr: super::client_ip(session),
        };
        let req = session.req_header_mut();
        match ctx.filters.on_request(&ctx.plan.filters, req, &client) {
            Ok(local) => local,
            Err(e) => Some(LocalResponse::error(e.status())),
        }
    }

    /// What every response head gets on its way to the client, whoever made it (origin,
    /// cache, handler, route, error of a filter): `Alt-Svc`, the route's edits, then the
    /// response filters. The one place these happen.
    pub(super) fn finish_head(
        &self,
        ctx: &mut RequestCtx,
        req: &RequestHeader,
        head: &mut ResponseHeader,
    ) -> Result<(), EdgeError> {
        if let Some(alt) = &self.alt_svc {
            let _ = head.insert_header(ALT_SVC, alt.clone());
        }
        headers::edit(head, &ctx.plan.response_headers);
        ctx.filters.on_response(&ctx.plan.filters, req, head)
    }

    /// Finish `head` and write it. A response filter that fails turns it into its error
    /// response; returns whether `head` went out (and its body should follow).
    async fn send_head(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        mut head: ResponseHeader,
        end: bool,
    ) -> Result<bool> {
        if let Err(e) = self.finish_head(ctx, session.req_header(), &mut head) {
            super::respond(session, ctx, LocalResponse::error(e.status())).await?;
            return Ok(false);
        }
        super::http1_framing(session, &mut head);
        session.write_response_header(Box::new(head), end).await?;
        Ok(true)
    }

    /// Answer with a response made here (the route's own, or a filter's, or an error).
    pub(super) async fn answer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        local: LocalResponse,
    ) -> Result<()> {
        let head_only = session.req_header().method == http::Method::HEAD;
        let (head, body) =
            local.into_parts(head_only, ctx.generation.config.server.server_header)?;
        if self.send_head(session, ctx, head, body.is_none()).await? && body.is_some() {
            session.write_response_body(body, true).await?;
        }
        Ok(())
    }

    /// Serve the request with the route's `wasi:http` handler; its response goes out like
    /// an origin's.
    pub(super) async fn serve_handler(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        planned: &PlannedHandler,
    ) -> Result<()> {
        let target = Target {
            scheme: self.scheme,
            host: &ctx.host,
            request_id: &ctx.request_id,
        };
        let started = Instant::now();
        let result = handlers::call(session, &planned.handler, &target, planned.max_body_bytes);
        let result = result.await;
        planned.metrics.call(ComponentPhase::Handle, started);
        let response = match result {
            Ok(response) => response,
            Err(EdgeError::Proxy(e)) => return Err(e),
            Err(e) => return self.handler_failed(session, ctx, planned, e).await,
        };
        let (parts, body) = response.into_parts();
        let head_only = session.req_header().method == http::Method::HEAD;
        let ready = match handlers::ready_body(body) {
            Ok(ready) => ready,
            Err(e) => return self.handler_failed(session, ctx, planned, e).await,
        };
        // No Content-Length where none may be sent (RFC 9110 8.6: 1xx, 204; 304 says the
        // stored length).
        let bodyless =
            parts.status.is_informational() || matches!(parts.status.as_u16(), 204 | 304);
        let length = match &ready {
            Ready::Whole(body) if !head_only && !bodyless => Some(body.len()),
            _ => None,
        };
        let head = handlers::response_head(&parts, Protocol::of(session), length)?;
        let empty = head_only || length == Some(0);
        if !self.send_head(session, ctx, head, empty).await? || empty {
            return Ok(());
        }
        match ready {
            Ready::Whole(body) => session.write_response_body(Some(body), true).await?,
            Ready::Partial(read, rest) => {
                handlers::stream_body(session, read, rest).await?;
            }
        }
        Ok(())
    }

    async fn handler_failed(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        planned: &PlannedHandler,
        e: EdgeError,
    ) -> Result<()> {
        if let EdgeError::Component(failure) = &e {
            planned.metrics.error(failure.kind());
            tracing::warn!(route = %ctx.plan.name, error = %e, "handler failed");
        }
        if matches!(e, EdgeError::RequestBodyTooLarge { .. }) {
            // The rest of the body is not read: the connection cannot be reused.
            session.set_keepalive(None);
        }
        self.answer(session, ctx, LocalResponse::error(e.status()))
            .await
    }

    /// `Cache-Status` and the cache metric for a response of a cache-enabled route.
    pub(super) fn cache_status(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &RequestCtx,
    ) {
        let phase = session.cache.phase();
        let stale_or_hit = matches!(
            phase,
            CachePhase::Hit | CachePhase::Stale | CachePhase::StaleUpdating
        );
        let meta = stale_or_hit.then(|| session.cache.cache_meta());
        // RFC 9211: this cache's entry first, then those of the caches the response came
        // through (a shield tier's parent, a CDN in front of the origin).
        let mut status = cache::status(&phase, meta);
        for upstream in resp.headers.get_all("cache-status") {
            if let Ok(v) = upstream.to_str() {
                status.push_str(", ");
                status.push_str(v);
            }
        }
        let _ = resp.insert_header("cache-status", status);
        if phase == CachePhase::Stale && ctx.upstream.failed {
            // A stale copy served because the origin failed (stale-if-error): pingora does not
            // reuse the client connection after it, so say so rather than let the client's
            // next request meet a closed socket.
            session.set_keepalive(None);
        }
        ctx.plan.metrics.cache(cache::outcome(&phase));
    }
}

/// The client's `X-Request-Id` when it is short and printable, else a new random one.
fn request_id(req: &RequestHeader) -> String {
    let sent = req
        .headers
        .get(headers::X_REQUEST_ID.name())
        .and_then(|v| v.to_str().ok());
    match sent {
        Some(id)
            if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            id.to_string()
        }
        _ => {
            // 32 hex digits, without the formatting machinery (a quarter of this function).
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let n = rand::random::<u128>();
            (0..32)
                .rev()
                .map(|i| char::from(HEX[(n >> (4 * i)) as usize & 0xf]))
                .collect()
        }
    }
}
