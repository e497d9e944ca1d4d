//! Warm snapshots of handlers. A component that embeds an interpreter (componentize-py,
//! componentize-js) does much of its work on the first request an instance serves: imports,
//! caches, allocator growth. With per-request isolation every instance is a first one, so
//! that work is paid on every request. At load, the handler is instead instrumented by
//! wasmtime-wizer, one instance serves a synthetic request through the real serving path,
//! and its memories and globals are snapshotted into a new component; every request's
//! instance then starts from that warm state (each still from a pristine copy of it: the
//! warm-up request is the only one any instance has seen).
//!
//! A snapshot must not keep what cannot be snapshotted: if the guest still holds a host
//! resource (a stream, a field map: anything in the store's resource table) after its
//! warm-up request, its memory names a handle no later instance will have, and the handler
//! is served cold instead. The snapshot is also proved: one request through a handler made
//! from it must succeed, or the handler is served cold (with a warning saying why).

use super::{Handler, RequestBody};
use crate::error::IsolateError;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use wasmtime_wizer::{ComponentContext, Wizer};

/// How a handler's instances start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warmup {
    /// As the component was built.
    Off,
    /// Warmed with `GET /` when the component is over 1 MiB (an interpreter and its standard
    /// library: componentize-py, componentize-js), else as built (a compiled guest has no
    /// first-request work worth a snapshot).
    Auto,
    /// Warmed with this request.
    Request(WarmupRequest),
}

/// The synthetic request a handler is warmed with: no body, no headers but `host:
/// localhost`, outgoing HTTP denied, a key-value store of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WarmupRequest {
    pub method: http::Method,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Components over this size embed an interpreter (`Warmup::Auto`).
const AUTO_ABOVE_BYTES: usize = 1 << 20;

/// Why a warm-up gave no snapshot.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The guest kept host resources past its request: it does so on every load, so the
    /// refusal may be kept (see `Runtime::warm_handler`).
    HoldsResources,
    /// Anything else, as said.
    Failed(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::HoldsResources => f.write_str(
                "the guest still holds host resources after its warm-up request (a handle \
                 kept across requests would dangle in every later instance)",
            ),
            Refusal::Failed(reason) => f.write_str(reason),
        }
    }
}

/// Longest a warm-up request may take (less if the handler's own deadline is shorter).
pub(crate) const WARMUP_DEADLINE: Duration = Duration::from_secs(10);

impl Warmup {
    /// The request to warm a component of `size` bytes with, if any.
    pub(crate) fn request_for(&self, size: usize) -> Option<WarmupRequest> {
        match self {
            Warmup::Off => None,
            Warmup::Auto if size <= AUTO_ABOVE_BYTES => None,
            Warmup::Auto => Some(WarmupRequest {
                method: http::Method::GET,
                path: "/".into(),
            }),
            Warmup::Request(r) => Some(r.clone()),
        }
    }
}

impl WarmupRequest {
    fn to_http(&self) -> http::Request<RequestBody> {
        http::Request::builder()
            .method(self.method.clone())
            .uri(format!("http://localhost{}", self.path))
            .header(http::header::HOST, "localhost")
            .body(RequestBody::empty())
            .expect("a valid request: the path was validated with the config")
    }

    /// Names a snapshot in the cache: everything the warm state depends on (the component,
    /// the request, the environment) and the snapshotting code.
    pub(crate) fn cache_key(&self, component: &[u8], env: &[(String, String)]) -> String {
        let mut h = Sha256::new();
        h.update(b"breakwater warm snapshot 1, wasmtime-wizer 48.0.8\0");
        h.update(Sha256::digest(component));
        h.update(self.method.as_str());
        h.update(b"\0");
        h.update(&self.path);
        for (k, v) in env {
            h.update(b"\0");
            h.update(k);
            h.update(b"=");
            h.update(v);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Instrument `bytes` for a snapshot: the instrumented component and what wizer needs to
/// read its state back.
pub(crate) fn instrument(bytes: &[u8]) -> Result<(Wizer, ComponentContext<'_>, Vec<u8>), String> {
    let mut wizer = Wizer::new();
    // There is no init export to remove (and removing one breaks the component's lift of it).
    wizer.keep_init_func(true);
    let (cx, instrumented) = wizer
        .instrument_component(bytes)
        .map_err(|e| format!("instrumenting: {e:#}"))?;
    Ok((wizer, cx, instrumented))
}

/// Serve `request` once on `instrumented` (a handler loaded from wizer's instrumented
/// component) and snapshot the instance it ran in.
pub(crate) async fn snapshot(
    instrumented: &Handler,
    wizer: &Wizer,
    cx: &ComponentContext<'_>,
    request: &WarmupRequest,
) -> Result<Vec<u8>, Refusal> {
    let failed = |reason: String| Refusal::Failed(reason);
    let inner = instrumented.loaded().map_err(Refusal::Failed)?;
    let ready = inner
        .take_instance()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let instance = ready.instance;
    let (keep, kept) = tokio::sync::oneshot::channel();
    serve_once(instrumented, request, |permit, req| {
        inner.serve(ready, permit, req, Some(keep))
    })
    .await
    .map_err(failed)?;
    let mut store = kept
        .await
        .map_err(|_| failed("the guest did not finish its warm-up request".into()))?;
    if !store.data().table.is_empty() {
        return Err(Refusal::HoldsResources);
    }
    let mut state = crate::init::State::new(&mut store, instance);
    let taken = wizer.snapshot_component(cx, &mut state).await;
    state
        .outcome(taken)
        .map_err(|e| failed(format!("snapshot: {e}")))
}

/// Serve `request` once through `handler` (made from a snapshot): the snapshot's proof.
pub(crate) async fn prove(handler: &Handler, request: &WarmupRequest) -> Result<(), String> {
    let inner = handler.loaded()?;
    let ready = inner.take_instance().await.map_err(|e| e.to_string())?;
    serve_once(handler, request, |permit, req| {
        inner.serve(ready, permit, req, None)
    })
    .await
    .map_err(|e| format!("the warm snapshot failed its proof request: {e}"))
}

/// Serve the warm-up request with `serve` and read the whole response: an error unless the
/// handler answers without a server error in time.
async fn serve_once<F>(
    handler: &Handler,
    request: &WarmupRequest,
    serve: impl FnOnce(crate::limits::Permit, http::Request<RequestBody>) -> F,
) -> Result<(), String>
where
    F: std::future::Future<Output = Result<http::Response<super::ResponseBody>, IsolateError>>,
{
    let inner = handler.loaded()?;
    let started = Instant::now();
    let permit = inner
        .limits
        .gate
        .enter(&inner.name)
        .map_err(|e| e.to_string())?;
    let response = serve(permit, request.to_http())
        .await
        .map_err(|e| format!("warm-up {} {}: {e}", request.method, request.path))?;
    let status = response.status();
    let left = inner.limits.deadline.saturating_sub(started.elapsed());
    tokio::time::timeout(left, response.into_body().collect(64 << 20))
        .await
        .map_err(|_| "the warm-up response body did not end in time".to_string())?
        .map_err(|e| format!("warm-up response body: {e}"))?;
    if status.is_server_error() {
        return Err(format!(
            "warm-up {} {} answered {status}",
            request.method, request.path
        ));
    }
    Ok(())
}

/// The settings a handler is warmed with: no outgoing HTTP, no instances kept ready (one is
/// used, once), a bounded deadline.
pub(crate) fn warmup_settings(settings: &super::HandlerSettings) -> super::HandlerSettings {
    super::HandlerSettings {
        deadline: settings.deadline.min(WARMUP_DEADLINE),
        prewarm: Some(0),
        allowed_outbound_hosts: Vec::new(),
        warmup: Warmup::Off,
        // The warm-up's writes stay its own.
        key_value: None,
        // Its one instance is snapshotted, never served again.
        reset_in_place: false,
        ..settings.clone()
    }
}
