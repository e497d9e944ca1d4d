//! Each route compiled, once per config generation, into what its requests need: the action
//! with its pool or handler resolved, the filters with their effective failure policies, the
//! pools a filter may switch to, header edits, cache policy and metric series. A request holds
//! its route's plan from routing to logging and looks nothing up again.

use crate::ops::metrics::{ComponentMetrics, Metrics, RouteMetrics};
use crate::pipeline::errors::LocalResponse;
use crate::pipeline::filters::{FilterPlan, PlannedFilter};
use crate::pipeline::upstream::Pool;
use crate::state::LoadedComponent;
use breakwater_config::{Config, HeaderEdits, Route, RouteAction, RouteCache};
use breakwater_isolate::Handler;
use std::sync::Arc;

/// One route, compiled.
pub struct RoutePlan {
    /// The route's name in logs and metrics; `-` for requests no route took.
    pub name: Arc<str>,
    pub action: Action,
    pub filters: FilterPlan,
    /// The filters' names in chain order, for the access log (shared, not copied per line).
    pub filter_names: Arc<[Arc<str>]>,
    /// Edits to the request sent to the origin.
    pub request_headers: HeaderEdits,
    /// Edits to every response of the route, whoever made it.
    pub response_headers: HeaderEdits,
    /// `None`: the route's responses are never cached.
    pub cache: Option<RouteCache>,
    /// Parent nodes the route's cache misses go to first (`shield:`).
    pub shield: Option<Arc<Pool>>,
    pub metrics: RouteMetrics,
}

/// What answers the route's requests.
pub enum Action {
    /// An origin of this pool (or of a pool a filter switched to).
    Forward(Arc<Pool>),
    /// A `wasi:http` handler component.
    Handler(PlannedHandler),
    /// A response the route gives itself (redirect, fixed response; 404 without a route).
    Local(LocalResponse),
}

/// A route's handler component.
pub struct PlannedHandler {
    pub handler: Handler,
    /// Largest request body the handler is given; more gets 413.
    pub max_body_bytes: usize,
    pub metrics: Arc<ComponentMetrics>,
}

/// A route names a component of the wrong kind (config validation prevents it).
#[derive(Debug, thiserror::Error)]
#[error("route {route}: component {component} is not a {expected}")]
pub struct KindMismatch {
    route: String,
    component: String,
    expected: &'static str,
}

/// What plans are built from: one generation's config, pools and loaded components.
pub struct PlanInputs<'a> {
    pub config: &'a Config,
    /// Indexed by `PoolId`.
    pub pools: &'a [Arc<Pool>],
    /// Indexed by `ComponentId`, with each component's metric series.
    pub components: &'a [(LoadedComponent, Arc<ComponentMetrics>)],
    pub metrics: &'a Arc<Metrics>,
}

impl RoutePlan {
    /// Compile `route`.
    pub fn build(route: &Route, inputs: &PlanInputs<'_>) -> Result<Self, KindMismatch> {
        let mismatch = |component: &str, expected| KindMismatch {
            route: route.name.clone(),
            component: component.to_string(),
            expected,
        };
        let action = match &route.action {
            RouteAction::Forward(id) => Action::Forward(inputs.pools[id.0].clone()),
            RouteAction::Handler(id) => {
                let config = &inputs.config.components[id.0];
                let (loaded, metrics) = &inputs.components[id.0];
                let LoadedComponent::Handler(handler) = loaded else {
                    return Err(mismatch(&config.name, "handler"));
                };
                Action::Handler(PlannedHandler {
                    handler: handler.clone(),
                    max_body_bytes: config.max_body_bytes,
                    metrics: metrics.clone(),
                })
            }
            RouteAction::Redirect { location, status } => {
                Action::Local(LocalResponse::redirect(*status, location.clone()))
            }
            RouteAction::Respond {
                status,
                headers,
                body,
            } => Action::Local(LocalResponse::fixed(*status, headers.clone(), body.clone())),
        };
        let mut filters = Vec::with_capacity(route.filters.len());
        for id in &route.filters {
            let config = &inputs.config.components[id.0];
            let (loaded, metrics) = &inputs.components[id.0];
            let LoadedComponent::Filter(filter) = loaded else {
                return Err(mismatch(&config.name, "filter"));
            };
            filters.push(PlannedFilter {
                filter: filter.clone(),
                name: config.name.as_str().into(),
                policy: route.on_filter_error.unwrap_or(config.on_error),
                max_body_bytes: config.max_body_bytes,
                metrics: metrics.clone(),
            });
        }
        let own = match &route.action {
            RouteAction::Forward(id) => Some(id),
            _ => None,
        };
        let pools = own
            .into_iter()
            .chain(&route.allowed_pools)
            .map(|id| {
                (
                    inputs.config.pools[id.0].name.clone(),
                    inputs.pools[id.0].clone(),
                )
            })
            .collect();
        let name: Arc<str> = route.name.as_str().into();
        let filter_names = filters.iter().map(|f| f.name.clone()).collect();
        Ok(Self {
            filter_names,
            filters: FilterPlan {
                route: name.clone(),
                filters,
                body_access: route.body_access,
                pools,
            },
            metrics: RouteMetrics::new(inputs.metrics, &name),
            name,
            action,
            request_headers: route.request_headers.clone(),
            response_headers: route.response_headers.clone(),
            cache: route.cache.clone(),
            shield: route.shield.map(|id| inputs.pools[id.0].clone()),
        })
    }

    /// The plan of a request no route takes: a 404, counted under the route `-`.
    pub fn unrouted(metrics: &Arc<Metrics>) -> Self {
        let name: Arc<str> = "-".into();
        Self {
            filter_names: Arc::new([]),
            filters: FilterPlan {
                route: name.clone(),
                filters: Vec::new(),
                body_access: false,
                pools: Vec::new(),
            },
            metrics: RouteMetrics::new(metrics, &name),
            name,
            action: Action::Local(LocalResponse::no_route()),
            request_headers: HeaderEdits::default(),
            response_headers: HeaderEdits::default(),
            cache: None,
            shield: None,
        }
    }
}
