//! Wasm filters on the request path: each route's chain runs `on-request` in order after
//! routing, and `on-response` in reverse order before the response goes out; with body access,
//! the body phases see whole bodies. Free of pingora's `Session`, so every front end calls the
//! same code and it can be tested alone.

use crate::ops::metrics::{ComponentMetrics, ComponentPhase};
use crate::pipeline::errors::{EdgeError, LocalResponse};
use crate::pipeline::headers::apply_filter_edits;
use crate::pipeline::upstream::Pool;
use breakwater_config::FailurePolicy;
use breakwater_isolate::{Filter, FilterInstance, IsolateError, RequestDecision};
use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use std::sync::Arc;
use std::time::Instant;

/// A route's filters, resolved when its plan is built.
pub struct FilterPlan {
    pub route: Arc<str>,
    /// In chain order.
    pub filters: Vec<PlannedFilter>,
    /// Filters that export a body phase see whole bodies (else bodies stream past them).
    pub body_access: bool,
    /// Pools a filter may switch the request to, by name: the route's own and its
    /// `allowed_pools`.
    pub pools: Vec<(String, Arc<Pool>)>,
}

/// One filter of a route, with the policy that route applies to its failures.
pub struct PlannedFilter {
    pub filter: Filter,
    pub name: Arc<str>,
    pub policy: FailurePolicy,
    /// Largest body its body phases see.
    pub max_body_bytes: usize,
    pub metrics: Arc<ComponentMetrics>,
}

impl PlannedFilter {
    /// Count a failure; `Err` under fail-closed (the request gets its status), `Ok` under
    /// fail-open (the filter is skipped).
    fn fail(&self, route: &str, e: EdgeError) -> Result<(), EdgeError> {
        self.metrics.error(e.kind());
        match self.policy {
            FailurePolicy::FailClosed => {
                tracing::warn!(route, kind = e.kind(), error = %e, "filter failed; request refused");
                Err(e)
            }
            FailurePolicy::FailOpen => {
                tracing::warn!(route, kind = e.kind(), error = %e, "filter failed; skipped (fail-open)");
                Ok(())
            }
        }
    }
}

/// The filters' state for one request.
#[derive(Default)]
pub struct FilterChain {
    /// Who asks, as the filters see it; `None` until the request phase ran (or when the
    /// route has no filters): no later phase runs then.
    asker: Option<Asker>,
    /// The filters that passed `on-request` (index into the plan's filters), in order, with
    /// their instances for the later phases.
    ran: Vec<(usize, Held)>,
    /// Headers filters asked to add to the response.
    response_headers: Vec<(HeaderName, HeaderValue)>,
    /// A pool a filter switched the request to.
    pool: Option<Arc<Pool>>,
    /// Whole-body buffers for the body phases; `None` when no filter of the route sees the
    /// body in that direction (then it streams past).
    request_body: Option<BodyBuffer>,
    response_body: Option<BodyBuffer>,
    /// The response head as `on-response-body` sees it (after every header edit).
    response_head: Option<ResponseHead>,
}

/// A filter's instance for one request. It is made at the first phase the filter exports, not
/// before: a filter with only `on-response` holds no pool slot while the origin answers. It is
/// kept for the filter's later phases (one instance sees all of its request) and dropped after
/// its last, which frees its slot for another request.
enum Held {
    /// No phase has run yet.
    Later,
    Live(FilterInstance),
    /// Its last phase has run, or making the instance failed under fail-open.
    Done,
}

impl Held {
    /// The instance for a phase of `planned`, made now if none is yet. `Ok(None)`: the filter
    /// is skipped (it failed under fail-open, or before).
    fn live(
        &mut self,
        planned: &PlannedFilter,
        route: &str,
    ) -> Result<Option<&mut FilterInstance>, EdgeError> {
        if let Held::Later = self {
            *self = match planned.filter.instance() {
                Ok(instance) => Held::Live(instance),
                Err(e) => {
                    *self = Held::Done;
                    planned.fail(route, EdgeError::Component(e))?;
                    return Ok(None);
                }
            };
        }
        Ok(match self {
            Held::Live(instance) => Some(instance),
            Held::Later | Held::Done => None,
        })
    }
}

/// A response's status and headers, owned.
type ResponseHead = (u16, http::HeaderMap);

/// A body being collected for the body phases, up to the smallest limit of their filters.
struct BodyBuffer {
    data: BytesMut,
    limit: usize,
}

/// Which body a body phase sees.
#[derive(Clone, Copy)]
enum Direction {
    Request,
    Response,
}

impl Direction {
    fn has_phase(self, filter: &Filter) -> bool {
        match self {
            Direction::Request => filter.has_on_request_body(),
            Direction::Response => filter.has_on_response_body(),
        }
    }
}

impl FilterChain {
    /// Run the plan's `on-request` phases in order, applying their edits to `req`.
    /// `Ok(Some(response))`: a filter answered the request itself.
    pub fn on_request(
        &mut self,
        plan: &FilterPlan,
        req: &mut RequestHeader,
        client: &Client,
    ) -> Result<Option<LocalResponse>, EdgeError> {
        if plan.filters.is_empty() {
            return Ok(None);
        }
        let asker = Asker::new(client);
        let result = self.run_on_request(plan, req, &asker);
        // Kept whatever happened: the later phases see the request as it was last.
        self.asker = Some(asker);
        result
    }

    fn run_on_request(
        &mut self,
        plan: &FilterPlan,
        req: &mut RequestHeader,
        asker: &Asker,
    ) -> Result<Option<LocalResponse>, EdgeError> {
        for (i, planned) in plan.filters.iter().enumerate() {
            let filter = &planned.filter;
            let later = filter.has_on_response()
                || filter.has_on_request_body()
                || filter.has_on_response_body();
            if !filter.has_on_request() {
                self.ran.push((i, Held::Later));
                continue;
            }
            let started = Instant::now();
            let mut held = Held::Later;
            let Some(instance) = held.live(planned, &plan.route)? else {
                continue;
            };
            let decision = asker.with_view(req, &plan.route, |view| instance.on_request(view));
            if decision.is_some() {
                planned.metrics.call(ComponentPhase::Request, started);
            }
            if !later {
                // Its slot is free for other requests while this one goes on.
                held = Held::Done;
            }
            let fwd = match decision.transpose() {
                Err(e) => {
                    planned.fail(&plan.route, EdgeError::Component(e))?;
                    continue;
                }
                Ok(None) => None,
                Ok(Some(RequestDecision::Respond(r))) => {
                    self.ran.push((i, held));
                    return Ok(Some(LocalResponse::fixed(
                        r.status,
                        r.headers,
                        r.body.into(),
                    )));
                }
                Ok(Some(RequestDecision::Continue(fwd))) => Some(fwd),
            };
            if let Some(name) = fwd.as_ref().and_then(|f| f.pool.as_deref()) {
                match plan.pools.iter().find(|(n, _)| n == name) {
                    Some((_, pool)) => self.pool = Some(pool.clone()),
                    None => {
                        let e = EdgeError::PoolNotAllowed {
                            filter: planned.name.to_string(),
                            pool: name.to_string(),
                            route: plan.route.to_string(),
                        };
                        planned.fail(&plan.route, e)?;
                        continue;
                    }
                }
            }
            self.ran.push((i, held));
            let Some(fwd) = fwd else { continue };
            // Later filters see the edited request: their view is of `req`.
            apply_filter_edits(req, fwd.edits);
            let rewrites = fwd.path.is_some() || fwd.query.is_some();
            if rewrites {
                rewrite_uri(req, fwd.path.as_deref(), fwd.query.as_deref());
            }
            self.response_headers.extend(fwd.response_headers);
        }
        Ok(None)
    }

    /// The pool a filter switched the request to, if one did.
    pub fn pool(&self) -> Option<&Arc<Pool>> {
        self.pool.as_ref()
    }

    /// After `on-request`: buffer the request body if the plan allows body access and a
    /// filter that ran exports `on-request-body`.
    pub fn start_request_body(&mut self, plan: &FilterPlan) {
        if plan.body_access {
            self.request_body = self.body_buffer(plan, Direction::Request);
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
        plan: &FilterPlan,
        head_only: bool,
        resp: &ResponseHeader,
    ) -> bool {
        let status = resp.status.as_u16();
        if !plan.body_access || head_only || matches!(status, 100..=199 | 204 | 206 | 304) {
            return false;
        }
        self.response_body = self.body_buffer(plan, Direction::Response);
        if self.response_body.is_some() {
            self.response_head = Some((status, resp.headers.clone()));
        }
        self.response_body.is_some()
    }

    fn body_buffer(&self, plan: &FilterPlan, direction: Direction) -> Option<BodyBuffer> {
        self.body_filters(plan, direction)
            .map(|f| f.max_body_bytes)
            .min()
            .map(|limit| BodyBuffer {
                data: BytesMut::new(),
                limit,
            })
    }

    /// The filters that ran and see the body in `direction`.
    fn body_filters<'p>(
        &self,
        plan: &'p FilterPlan,
        direction: Direction,
    ) -> impl Iterator<Item = &'p PlannedFilter> + use<'p, '_> {
        self.ran
            .iter()
            .map(|(i, _)| &plan.filters[*i])
            .filter(move |f| direction.has_phase(&f.filter))
    }

    /// Collect a request body chunk; at the end run `on-request-body` in chain order and put
    /// the resulting body in `body`.
    pub fn request_body_chunk(
        &mut self,
        plan: &FilterPlan,
        req: &RequestHeader,
        body: &mut Option<Bytes>,
        end: bool,
    ) -> Result<(), EdgeError> {
        let Some(mut whole) = self.collect(plan, Direction::Request, body, end)? else {
            return Ok(());
        };
        let Some(asker) = &self.asker else {
            return Ok(());
        };
        for (i, held) in self.ran.iter_mut() {
            let planned = &plan.filters[*i];
            if !planned.filter.has_on_request_body() {
                continue;
            }
            let started = Instant::now();
            let Some(instance) = held.live(planned, &plan.route)? else {
                continue;
            };
            let result = asker.with_view(req, &plan.route, |view| {
                instance.on_request_body(view, &whole)
            });
            whole = body_result(
                plan,
                planned,
                ComponentPhase::RequestBody,
                started,
                result,
                whole,
            )?;
        }
        *body = Some(whole);
        Ok(())
    }

    /// Collect a response body chunk; at the end run `on-response-body` in reverse chain
    /// order and put the resulting body in `body`.
    pub fn response_body_chunk(
        &mut self,
        plan: &FilterPlan,
        req: &RequestHeader,
        body: &mut Option<Bytes>,
        end: bool,
    ) -> Result<(), EdgeError> {
        let Some(mut whole) = self.collect(plan, Direction::Response, body, end)? else {
            return Ok(());
        };
        let (Some(asker), Some((status, head))) = (&self.asker, &self.response_head) else {
            return Ok(());
        };
        for (i, held) in self.ran.iter_mut().rev() {
            let planned = &plan.filters[*i];
            if !planned.filter.has_on_response_body() {
                continue;
            }
            let started = Instant::now();
            let Some(instance) = held.live(planned, &plan.route)? else {
                continue;
            };
            let result = asker.with_view(req, &plan.route, |view| {
                instance.on_response_body(view, *status, head.into(), &whole)
            });
            whole = body_result(
                plan,
                planned,
                ComponentPhase::ResponseBody,
                started,
                result,
                whole,
            )?;
        }
        *body = Some(whole);
        Ok(())
    }

    /// Take `body` into the direction's buffer. `Ok(Some(whole body))` once it has ended (the
    /// buffer is then done with); `Ok(None)` while it is still coming, when nothing is
    /// buffered, or when it outgrew the limit and every body filter is fail-open (what was
    /// buffered goes on and the rest streams past them); `Err` when it outgrew the limit of
    /// a fail-closed filter.
    fn collect(
        &mut self,
        plan: &FilterPlan,
        direction: Direction,
        body: &mut Option<Bytes>,
        end: bool,
    ) -> Result<Option<Bytes>, EdgeError> {
        let slot = match direction {
            Direction::Request => &mut self.request_body,
            Direction::Response => &mut self.response_body,
        };
        let Some(buffer) = slot.as_mut() else {
            return Ok(None);
        };
        if let Some(chunk) = body.take() {
            buffer.data.extend_from_slice(&chunk);
        }
        if buffer.data.len() <= buffer.limit {
            if !end {
                return Ok(None);
            }
            let whole = std::mem::take(&mut buffer.data).freeze();
            *slot = None;
            return Ok(Some(whole));
        }
        let Some(BodyBuffer { data, limit }) = slot.take() else {
            return Ok(None);
        };
        let mut closed = false;
        for planned in self.body_filters(plan, direction) {
            let e = IsolateError::BodyTooLarge {
                component: planned.name.to_string(),
                limit_bytes: planned.max_body_bytes,
            };
            closed |= planned.fail(&plan.route, EdgeError::Component(e)).is_err();
        }
        if closed {
            return Err(match direction {
                Direction::Request => EdgeError::RequestBodyTooLarge { limit_bytes: limit },
                Direction::Response => EdgeError::ResponseBodyTooLarge { limit_bytes: limit },
            });
        }
        *body = Some(data.freeze());
        Ok(None)
    }

    /// Run `on-response` of the filters that ran, in reverse order, editing `resp`; first
    /// add the headers their `on-request` asked for.
    pub fn on_response(
        &mut self,
        plan: &FilterPlan,
        req: &RequestHeader,
        resp: &mut ResponseHeader,
    ) -> Result<(), EdgeError> {
        for (n, v) in self.response_headers.drain(..) {
            let _ = resp.append_header(n, v);
        }
        let Some(asker) = &self.asker else {
            return Ok(());
        };
        for (i, held) in self.ran.iter_mut().rev() {
            let planned = &plan.filters[*i];
            if !planned.filter.has_on_response() {
                continue;
            }
            let started = Instant::now();
            let Some(instance) = held.live(planned, &plan.route)? else {
                continue;
            };
            let status = resp.status.as_u16();
            let headers = (&resp.headers).into();
            let result = asker.with_view(req, &plan.route, |view| {
                instance.on_response(view, status, headers)
            });
            if !planned.filter.has_on_response_body() {
                // Its last phase: the slot is free again before the body goes out.
                *held = Held::Done;
            }
            let Some(result) = result else { continue };
            planned.metrics.call(ComponentPhase::Response, started);
            match result {
                Ok(e) => apply_filter_edits(resp, e),
                Err(e) => planned.fail(&plan.route, EdgeError::Component(e))?,
            }
        }
        Ok(())
    }
}

/// What one body phase call leaves as the body; a failure follows the filter's policy.
fn body_result(
    plan: &FilterPlan,
    planned: &PlannedFilter,
    phase: ComponentPhase,
    started: Instant,
    result: Option<Result<Option<Vec<u8>>, IsolateError>>,
    whole: Bytes,
) -> Result<Bytes, EdgeError> {
    let Some(result) = result else {
        return Ok(whole);
    };
    planned.metrics.call(phase, started);
    match result {
        Ok(None) => Ok(whole),
        Ok(Some(new)) => Ok(Bytes::from(new)),
        Err(e) => planned
            .fail(&plan.route, EdgeError::Component(e))
            .map(|()| whole),
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

mod request;
#[cfg(test)]
mod tests;

use request::Asker;
pub use request::Client;
