//! Wasm filters on the request path: each route's chain runs `on-request` in order after
//! routing, and `on-response` in reverse order before the response goes out. Independent of
//! pingora's `Session`, so every front end (HTTP/1.1, HTTP/2, later HTTP/3) calls the same code.

use crate::metrics::Metrics;
use crate::state::Generation;
use breakwater_config::{ComponentId, FailurePolicy, PoolId, Route, RouteAction};
use breakwater_isolate::{Edits, IsolateError, Request, RequestDecision, Session};
use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, StatusCode};
use pingora::http::{RequestHeader, ResponseHeader};
use std::time::Instant;

/// The request as filters see it, owned so `on-response` can see it too.
pub struct FilterRequest {
    method: String,
    scheme: &'static str,
    authority: String,
    path: String,
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    client_addr: String,
    route: String,
}

impl FilterRequest {
    pub fn new(
        req: &RequestHeader,
        tls: bool,
        client_addr: Option<std::net::IpAddr>,
        route: &str,
    ) -> Self {
        let authority = req
            .uri
            .authority()
            .map(|a| a.to_string())
            .or_else(|| {
                req.headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        Self {
            method: req.method.to_string(),
            scheme: if tls { "https" } else { "http" },
            authority,
            path: req.uri.path().to_string(),
            query: req.uri.query().unwrap_or("").to_string(),
            headers: req
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
                .collect(),
            client_addr: client_addr.map(|a| a.to_string()).unwrap_or_default(),
            route: route.to_string(),
        }
    }

    fn with_view<R>(&self, f: impl FnOnce(&Request<'_>) -> R) -> R {
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

/// The filters' state for one request.
#[derive(Default)]
pub struct FilterChain {
    request: Option<FilterRequest>,
    /// Sessions of the filters that ran `on-request`, in order; kept for `on-response`.
    sessions: Vec<(ComponentId, Session)>,
    /// Headers filters asked to add to the response.
    response_headers: Vec<(HeaderName, HeaderValue)>,
    /// A pool a filter switched the request to.
    pub pool: Option<PoolId>,
    /// Whole-body buffers for the body phases; `None` when no filter of the route sees the
    /// body in that direction (then it streams past).
    request_body: Option<BodyBuffer>,
    response_body: Option<BodyBuffer>,
    /// The response head as `on-response-body` sees it (after every header edit).
    response_head: Option<(u16, OwnedHeaders)>,
}

/// A body being collected for the body phases, up to the smallest limit of their filters.
struct BodyBuffer {
    data: BytesMut,
    limit: usize,
}

/// What a body chunk turned into.
pub enum BodyStep {
    /// Nothing to do: the chunk (possibly replaced) goes on.
    Pass,
    /// A fail-closed body filter failed, or the body is over the limit: give up with this
    /// status (on the response side the head is out already, so the stream is cut).
    Fail(u16),
}

/// What `on-request` decided for the request as a whole.
pub enum Outcome {
    Continue,
    Respond {
        status: StatusCode,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Vec<u8>,
    },
    /// A filter failed under fail-closed: answer with this status.
    Fail(u16),
}

/// The status a fail-closed filter error gives the request.
pub fn status_for(e: &IsolateError) -> u16 {
    match e {
        IsolateError::Deadline { .. } => 504,
        IsolateError::LimitReached { .. } | IsolateError::Instantiate { .. } => 503,
        _ => 500,
    }
}

impl FilterChain {
    /// Run the route's `on-request` phases in order, applying their edits to `req`.
    pub fn on_request(
        &mut self,
        generation: &Generation,
        route: &Route,
        req: &mut RequestHeader,
        tls: bool,
        client: Option<std::net::IpAddr>,
        metrics: &Metrics,
    ) -> Outcome {
        self.request = Some(FilterRequest::new(req, tls, client, &route.name));
        for &id in &route.filters {
            let filter = generation.filter(id);
            let policy = policy(generation, route, id);
            let name = generation.config.components[id.0].name.as_str();
            let started = Instant::now();
            let mut session = match filter.session() {
                Ok(s) => s,
                Err(e) => match fail(policy, route, &e, name, metrics) {
                    Some(status) => return Outcome::Fail(status),
                    None => continue,
                },
            };
            let request = self.request.as_ref().expect("set above");
            let decision = match request.with_view(|view| session.on_request(view)) {
                None => Ok(None),
                Some(Ok(d)) => Ok(Some(d)),
                Some(Err(e)) => Err(e),
            };
            if filter.has_on_request() {
                observe(metrics, name, "request", started);
            }
            let decision = match decision.and_then(|d| self.check_pool(generation, route, d)) {
                Ok(d) => d,
                Err(e) => match fail(policy, route, &e, name, metrics) {
                    Some(status) => return Outcome::Fail(status),
                    None => continue,
                },
            };
            self.sessions.push((id, session));
            match decision {
                None => {}
                Some(RequestDecision::Respond(r)) => {
                    return Outcome::Respond {
                        status: r.status,
                        headers: r.headers,
                        body: r.body,
                    }
                }
                Some(RequestDecision::Continue(fwd)) => {
                    apply_request_edits(req, &fwd.edits);
                    if fwd.path.is_some() || fwd.query.is_some() {
                        rewrite_uri(req, fwd.path.as_deref(), fwd.query.as_deref());
                    }
                    self.response_headers.extend(fwd.response_headers);
                    // Later filters see the edited request.
                    self.request = Some(FilterRequest::new(req, tls, client, &route.name));
                }
            }
        }
        Outcome::Continue
    }

    /// After `on-request`: buffer the request body if the route allows body access and a
    /// filter that ran exports `on-request-body`. `has_body`: the request has one at all.
    pub fn start_request_body(&mut self, generation: &Generation, route: &Route, has_body: bool) {
        if route.body_access && has_body {
            self.request_body = self.body_limit(generation, |f| f.has_on_request_body());
        }
    }

    /// Whether the request body is being buffered (its length will change: the upstream
    /// request goes chunked).
    pub fn buffers_request_body(&self) -> bool {
        self.request_body.is_some()
    }

    /// Before the response head goes out: buffer the response body when a filter exports
    /// `on-response-body` and the response has a whole body to see (not HEAD, 204, 206, 304).
    /// Returns true when it will: the caller drops `Content-Length`.
    pub fn start_response_body(
        &mut self,
        generation: &Generation,
        route: &Route,
        head_only: bool,
        resp: &ResponseHeader,
    ) -> bool {
        let status = resp.status.as_u16();
        if !route.body_access || head_only || matches!(status, 100..=199 | 204 | 206 | 304) {
            return false;
        }
        self.response_body = self.body_limit(generation, |f| f.has_on_response_body());
        if self.response_body.is_some() {
            self.response_head = Some((status, owned_headers(&resp.headers)));
        }
        self.response_body.is_some()
    }

    fn body_limit(
        &self,
        generation: &Generation,
        has_phase: impl Fn(&breakwater_isolate::Filter) -> bool,
    ) -> Option<BodyBuffer> {
        self.sessions
            .iter()
            .filter(|(id, _)| has_phase(generation.filter(*id)))
            .map(|(id, _)| generation.config.components[id.0].max_body_bytes)
            .min()
            .map(|limit| BodyBuffer {
                data: BytesMut::new(),
                limit,
            })
    }

    /// Collect a request body chunk; at the end run `on-request-body` in chain order and put
    /// the resulting body in `body`.
    pub fn request_body_chunk(
        &mut self,
        generation: &Generation,
        route: &Route,
        body: &mut Option<Bytes>,
        end: bool,
        metrics: &Metrics,
    ) -> BodyStep {
        let whole = match self.collect(Direction::Request, generation, route, body, end, metrics) {
            Ok(whole) => whole,
            Err(step) => return step,
        };
        let Some(request) = &self.request else {
            return BodyStep::Pass;
        };
        let ctx = PhaseCtx {
            generation,
            route,
            metrics,
            phase: "request_body",
        };
        body_phase(
            &ctx,
            self.sessions.iter_mut(),
            body,
            whole,
            |session, whole| request.with_view(|view| session.on_request_body(view, whole)),
        )
    }

    /// Collect a response body chunk; at the end run `on-response-body` in reverse chain
    /// order and put the resulting body in `body`.
    pub fn response_body_chunk(
        &mut self,
        generation: &Generation,
        route: &Route,
        body: &mut Option<Bytes>,
        end: bool,
        metrics: &Metrics,
    ) -> BodyStep {
        let whole = match self.collect(Direction::Response, generation, route, body, end, metrics) {
            Ok(whole) => whole,
            Err(step) => return step,
        };
        let (Some(request), Some((status, head))) = (&self.request, &self.response_head) else {
            return BodyStep::Pass;
        };
        let headers: Vec<(&str, &[u8])> = head
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let ctx = PhaseCtx {
            generation,
            route,
            metrics,
            phase: "response_body",
        };
        body_phase(
            &ctx,
            self.sessions.iter_mut().rev(),
            body,
            whole,
            |session, whole| {
                request.with_view(|view| session.on_response_body(view, *status, &headers, whole))
            },
        )
    }

    /// Take `body` into the direction's buffer. `Ok(whole body)` once it has ended (the buffer
    /// is then done with); `Err(step)` while it is still coming, when nothing is buffered, or
    /// when it outgrew the limit: then fail-closed filters refuse (413 for a request body, 502
    /// for a response body) and, if every body filter is fail-open, what was buffered goes on
    /// and the rest streams past them.
    fn collect(
        &mut self,
        direction: Direction,
        generation: &Generation,
        route: &Route,
        body: &mut Option<Bytes>,
        end: bool,
        metrics: &Metrics,
    ) -> Result<Bytes, BodyStep> {
        let slot = match direction {
            Direction::Request => &mut self.request_body,
            Direction::Response => &mut self.response_body,
        };
        let Some(buffer) = slot.as_mut() else {
            return Err(BodyStep::Pass);
        };
        if let Some(chunk) = body.take() {
            buffer.data.extend_from_slice(&chunk);
        }
        if buffer.data.len() <= buffer.limit {
            if !end {
                return Err(BodyStep::Pass);
            }
            let whole = std::mem::take(&mut buffer.data).freeze();
            *slot = None;
            return Ok(whole);
        }
        let buffered = slot.take().map(|b| b.data.freeze()).unwrap_or_default();
        let mut closed = false;
        for (id, _) in &self.sessions {
            let filter = generation.filter(*id);
            let has_phase = match direction {
                Direction::Request => filter.has_on_request_body(),
                Direction::Response => filter.has_on_response_body(),
            };
            if !has_phase {
                continue;
            }
            let component = &generation.config.components[id.0];
            let e = IsolateError::BodyTooLarge {
                filter: component.name.clone(),
                limit_bytes: component.max_body_bytes,
            };
            let policy = policy(generation, route, *id);
            closed |= fail(policy, route, &e, &component.name, metrics).is_some();
        }
        if closed {
            return Err(BodyStep::Fail(match direction {
                Direction::Request => 413,
                Direction::Response => 502,
            }));
        }
        *body = Some(buffered);
        Err(BodyStep::Pass)
    }

    /// Resolve a pool override; only the route's pool and its `allowed_pools` may be chosen.
    fn check_pool(
        &mut self,
        generation: &Generation,
        route: &Route,
        d: Option<RequestDecision>,
    ) -> Result<Option<RequestDecision>, IsolateError> {
        if let Some(RequestDecision::Continue(fwd)) = &d {
            if let Some(name) = &fwd.pool {
                let own = match route.action {
                    RouteAction::Forward(p) => Some(p),
                    _ => None,
                };
                let id = generation
                    .config
                    .pools
                    .iter()
                    .position(|p| &p.name == name)
                    .map(PoolId);
                match id {
                    Some(id) if Some(id) == own || route.allowed_pools.contains(&id) => {
                        self.pool = Some(id)
                    }
                    _ => {
                        return Err(IsolateError::InvalidOutput {
                            filter: "pool override".into(),
                            reason: format!(
                                "pool \"{name}\" is not allowed on route {}",
                                route.name
                            ),
                        })
                    }
                }
            }
        }
        Ok(d)
    }

    /// Run `on-response` of the filters that ran, in reverse order, editing `resp`.
    /// `Err(status)` when a fail-closed filter failed.
    pub fn on_response(
        &mut self,
        generation: &Generation,
        route: &Route,
        resp: &mut ResponseHeader,
        metrics: &Metrics,
    ) -> Result<(), u16> {
        for (n, v) in self.response_headers.drain(..) {
            let _ = resp.append_header(n, v);
        }
        let Some(request) = &self.request else {
            return Ok(());
        };
        for (id, session) in self.sessions.iter_mut().rev() {
            let policy = policy(generation, route, *id);
            let owned = owned_headers(&resp.headers);
            let headers: Vec<(&str, &[u8])> = owned
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_slice()))
                .collect();
            let status = resp.status.as_u16();
            let name = generation.config.components[id.0].name.as_str();
            let started = Instant::now();
            let result = request.with_view(|view| session.on_response(view, status, &headers));
            if result.is_some() {
                observe(metrics, name, "response", started);
            }
            match result {
                None => {}
                Some(Ok(edits)) => apply_response_edits(resp, &edits),
                Some(Err(e)) => {
                    if let Some(status) = fail(policy, route, &e, name, metrics) {
                        return Err(status);
                    }
                }
            }
        }
        Ok(())
    }
}

/// What a body phase run needs besides the sessions.
struct PhaseCtx<'a> {
    generation: &'a Generation,
    route: &'a Route,
    metrics: &'a Metrics,
    /// Metric label: `request_body` or `response_body`.
    phase: &'static str,
}

/// Run one body phase over `sessions` in the given order, each filter seeing the body the
/// previous one left; the final body goes to `out`. A failure follows the filter's policy.
fn body_phase<'s>(
    ctx: &PhaseCtx<'_>,
    sessions: impl Iterator<Item = &'s mut (ComponentId, Session)>,
    out: &mut Option<Bytes>,
    mut whole: Bytes,
    mut call: impl FnMut(&mut Session, &[u8]) -> Option<Result<Option<Vec<u8>>, IsolateError>>,
) -> BodyStep {
    for (id, session) in sessions {
        let name = ctx.generation.config.components[id.0].name.as_str();
        let started = Instant::now();
        let result = call(session, &whole);
        if result.is_some() {
            observe(ctx.metrics, name, ctx.phase, started);
        }
        match result {
            None | Some(Ok(None)) => {}
            Some(Ok(Some(new))) => whole = Bytes::from(new),
            Some(Err(e)) => {
                let policy = policy(ctx.generation, ctx.route, *id);
                if let Some(status) = fail(policy, ctx.route, &e, name, ctx.metrics) {
                    return BodyStep::Fail(status);
                }
            }
        }
    }
    *out = Some(whole);
    BodyStep::Pass
}

/// Which body a body phase sees.
#[derive(Clone, Copy)]
enum Direction {
    Request,
    Response,
}

fn policy(generation: &Generation, route: &Route, id: ComponentId) -> FailurePolicy {
    route
        .on_filter_error
        .unwrap_or(generation.config.components[id.0].on_error)
}

/// Header names and values as a guest gets them.
type OwnedHeaders = Vec<(String, Vec<u8>)>;

fn owned_headers(headers: &http::HeaderMap) -> OwnedHeaders {
    headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
        .collect()
}

/// Log a filter failure; the status to answer with under fail-closed, None to skip it.
fn fail(
    policy: FailurePolicy,
    route: &Route,
    e: &IsolateError,
    component: &str,
    metrics: &Metrics,
) -> Option<u16> {
    metrics
        .component_errors
        .with_label_values(&[component, e.kind()])
        .inc();
    match policy {
        FailurePolicy::FailClosed => {
            tracing::warn!(route = %route.name, kind = e.kind(), error = %e, "filter failed; request refused");
            Some(status_for(e))
        }
        FailurePolicy::FailOpen => {
            tracing::warn!(route = %route.name, kind = e.kind(), error = %e, "filter failed; skipped (fail-open)");
            None
        }
    }
}

fn observe(metrics: &Metrics, component: &str, phase: &str, started: Instant) {
    metrics
        .component_invocations
        .with_label_values(&[component, phase])
        .inc();
    metrics
        .component_duration
        .with_label_values(&[component, phase])
        .observe(started.elapsed().as_secs_f64());
}

fn apply_request_edits(req: &mut RequestHeader, edits: &Edits) {
    for n in &edits.remove {
        req.remove_header(n);
    }
    for (n, v) in &edits.set {
        let _ = req.insert_header(n.clone(), v.clone());
    }
    for (n, v) in &edits.append {
        let _ = req.append_header(n.clone(), v.clone());
    }
}

fn apply_response_edits(resp: &mut ResponseHeader, edits: &Edits) {
    for n in &edits.remove {
        resp.remove_header(n);
    }
    for (n, v) in &edits.set {
        let _ = resp.insert_header(n.clone(), v.clone());
    }
    for (n, v) in &edits.append {
        let _ = resp.append_header(n.clone(), v.clone());
    }
}

fn rewrite_uri(req: &mut RequestHeader, path: Option<&str>, query: Option<&str>) {
    let path = path.unwrap_or(req.uri.path()).to_string();
    let query = match query {
        Some(q) => q.to_string(),
        None => req.uri.query().unwrap_or("").to_string(),
    };
    let pq = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    let mut parts = req.uri.clone().into_parts();
    if let Ok(pq) = pq.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            req.set_uri(uri);
        }
    }
}
