//! Handler components, served with wasmtime-wasi and wasmtime-wasi-http:
//!
//! * WASI 0.2: `wasi:http/incoming-handler@0.2.x` (the `wasi:http/proxy` world, as
//!   `wasmtime serve`, componentize-py, componentize-js and wit-bindgen produce);
//! * WASI 0.3: `wasi:http/handler@0.3.x` (the `wasi:http/service` world, as the Spin SDK 5
//!   produces, with the Spin interfaces of [`crate::host::spin`]; release candidates of WASI 0.3
//!   and imports the host does not have are handled by [`crate::imports`]).
//!
//! Every request starts from a pristine instance, taken from a pool of instances made ahead
//! of need: a new one, or one reset in place after the request before it (wasmtime patched:
//! `component::Instance::reset`, isolate/vendor/README.md) when that request's guest finished
//! cleanly and nothing of it is alive; any other instance is dropped (its slot reset to the
//! copy-on-write image).
//!
//! A handler gets no filesystem, no sockets and no outgoing HTTP, except to the hosts its
//! settings allow. Its config map becomes its environment, as `wasmtime serve --env` does,
//! and its Spin variables.

mod body;
pub(crate) mod warm;
mod wasi_p2;
mod wasi_p3;

pub use body::{RequestBody, ResponseBody};
pub use warm::Warmup;
pub use warm::WarmupRequest;

use crate::error::IsolateError;
use crate::host::http::OutboundPolicy;
use crate::host::spin::{SharedKv, SpinCtx, SpinView};
use crate::limits::MemoryLimit;
use crate::pool::ReadyPool;
use crate::runtime::Runtime;
use crate::store::{HostData, Limits};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, Instance, InstancePre, Linker, ResourceTable};
use wasmtime::Store;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyIndices};
use wasmtime_wasi_http::p3::bindings::{Service, ServiceIndices};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Per-handler limits and grants.
#[derive(Clone, Debug)]
pub struct HandlerSettings {
    /// Wall-clock limit for the whole request, from instantiation to the end of the response
    /// body. A handler that has not answered by then gets `Deadline`. Default 30 s.
    pub deadline: Duration,
    /// Linear memory limit per instance (at most the runtime's). Default 64 MiB.
    pub max_memory_bytes: usize,
    /// Requests served at once; more get `LimitReached` at once. Default 256.
    pub max_concurrency: usize,
    /// Instances kept ready ahead of requests. Default (`None`): 4 when an instantiation
    /// costs more than 50 µs, else none (instantiated inline, which is then cheaper).
    pub prewarm: Option<usize>,
    /// Hosts (`host` or `host:port`) the handler may send outgoing HTTP requests to.
    /// Empty (the default): outgoing HTTP is denied.
    pub allowed_outbound_hosts: Vec<String>,
    /// Environment variables the guest sees (the `config:` map of the component).
    pub env: HashMap<String, String>,
    /// A request served once at load, before the snapshot every request's instance starts
    /// from. Default [`Warmup::Auto`].
    pub warmup: Warmup,
    /// Where Spin's `default` key-value store lives; `None` (the default): in memory, one per
    /// component.
    pub key_value: Option<SharedKv>,
    /// Reset an instance in place after a request the guest finished cleanly, and serve the
    /// next request with it, instead of instantiating again (see [`crate::handler`]). Default
    /// true.
    pub reset_in_place: bool,
}

impl Default for HandlerSettings {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(30),
            max_memory_bytes: 64 << 20,
            max_concurrency: 256,
            prewarm: None,
            allowed_outbound_hosts: Vec::new(),
            env: HashMap::new(),
            warmup: Warmup::Auto,
            key_value: None,
            reset_in_place: true,
        }
    }
}

/// Store data of one handler instance: the parts a handler is granted.
pub(crate) struct HandlerState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: OutboundPolicy,
    limit: MemoryLimit,
    spin: SpinCtx,
}

impl HostData for HandlerState {
    fn memory_limit(&mut self) -> &mut MemoryLimit {
        &mut self.limit
    }
}

impl SpinView for HandlerState {
    fn spin(&mut self) -> (&SpinCtx, &mut ResourceTable) {
        (&self.spin, &mut self.table)
    }
}

impl WasiView for HandlerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HandlerState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// A handler pre-linked, with where to find the export of the generation of `wasi:http` it
/// exports.
struct Prelinked {
    pre: InstancePre<HandlerState>,
    exports: ExportIndices,
}

enum ExportIndices {
    Wasi02(ProxyIndices),
    Wasi03(ServiceIndices),
}

/// The `wasi:http` export of one instance.
enum HandlerExports {
    Wasi02(Proxy),
    Wasi03(Service),
}

/// An instance made ahead of a request (or reset in place after one), with its store.
struct ReadyHandler {
    store: Store<HandlerState>,
    instance: Instance,
    exports: HandlerExports,
    reset: Option<Reset>,
}

/// What puts an instance back to how instantiation left it, once a request is done with it.
pub(crate) struct Reset {
    instance: Instance,
    point: wasmtime::component::ResetPoint,
}

/// A handler component, compiled and pre-linked.
pub(crate) struct LoadedHandler {
    /// Keeps the engine and its epoch ticker alive as long as the handler is; runs guest
    /// tasks placed off the event loop.
    runtime: Arc<Runtime>,
    name: Arc<str>,
    path: PathBuf,
    pre: Prelinked,
    spin: SpinCtx,
    /// The environment, sorted.
    env: Vec<(String, String)>,
    allowed: Arc<[String]>,
    limits: Limits,
    ready: ReadyPool<ReadyHandler>,
    reset_in_place: bool,
}

/// A loaded handler component. Cheap to clone; shared by all requests of its routes.
///
/// A handler proved before (see [`Runtime::load_handler`]) is loaded *deferred*: only the
/// file and its compiled artifact are known until its first request, which maps the artifact,
/// pre-links it and makes its first instance (concurrent first requests share one load).
#[derive(Clone)]
pub struct Handler {
    name: Arc<str>,
    path: Arc<Path>,
    loaded: Arc<std::sync::OnceLock<Arc<LoadedHandler>>>,
    deferred: Option<Arc<Deferred>>,
}

/// What a deferred handler is loaded from on its first request.
pub(crate) struct Deferred {
    pub(crate) runtime: Arc<Runtime>,
    /// The compiled component in `wasm.cache_dir`.
    pub(crate) artifact: PathBuf,
    /// Compiled for the engine with concurrency support (WASI 0.3) or not.
    pub(crate) concurrent: bool,
    pub(crate) settings: HandlerSettings,
    /// Held by the request that loads it; the others wait for it.
    pub(crate) loading: tokio::sync::Mutex<()>,
}

/// The imports a handler may have: WASI with nothing behind it (and its environment), outgoing
/// HTTP within its policy, Spin's variables and key-value store; WASI 0.3 too on the engine
/// with concurrency support (`concurrent`). Built once per engine and shared by every handler
/// (see [`Runtime::handler_linker`]): a linker is hundreds of definitions.
pub(crate) fn base_linker(
    engine: &wasmtime::Engine,
    concurrent: bool,
) -> wasmtime::Result<Linker<HandlerState>> {
    let mut linker: Linker<HandlerState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    if concurrent {
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    }
    crate::host::spin::add_to_linker(&mut linker, concurrent)?;
    Ok(linker)
}

/// `component` pre-linked against the imports a handler may have. Imports none of them
/// provide are stubbed to trap when called (see [`crate::imports`]); their names are returned.
fn prelink(
    runtime: &Runtime,
    component: &Component,
) -> wasmtime::Result<(wasmtime::component::InstancePre<HandlerState>, Vec<String>)> {
    let concurrent = wasmtime::Engine::same(component.engine(), &runtime.handler_engine);
    let linker = runtime.handler_linker(concurrent)?;
    crate::imports::instantiate_pre_with_stubs(linker, component)
}

impl Handler {
    pub(crate) fn new(
        runtime: Arc<Runtime>,
        name: &str,
        path: &Path,
        component: Component,
        settings: HandlerSettings,
    ) -> Result<Self, IsolateError> {
        let (pre, stubbed) = prelink(&runtime, &component).map_err(|e| IsolateError::Link {
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        })?;
        if !stubbed.is_empty() {
            tracing::info!(
                handler = name,
                imports = %stubbed.join(", "),
                "imports not provided by this host: they trap when called"
            );
        }
        let exports = match ProxyIndices::new(&pre) {
            Ok(p2) => ExportIndices::Wasi02(p2),
            Err(e2) => ExportIndices::Wasi03(ServiceIndices::new(&pre).map_err(|e3| {
                IsolateError::Load {
                    path: path.to_path_buf(),
                    reason: format!(
                        "not a wasi:http handler (export wasi:http/incoming-handler@0.2.x or \
                     wasi:http/handler@0.3.x): {e2:#}; {e3:#}"
                    ),
                }
            })?),
        };
        let pre = Prelinked { pre, exports };
        let limits = Limits::new(
            &runtime.slots,
            &runtime.settings,
            settings.deadline,
            settings.max_memory_bytes,
            settings.max_concurrency,
        );
        let mut env: Vec<(String, String)> = settings.env.clone().into_iter().collect();
        env.sort();
        let ready = ReadyPool::new(runtime.settings.idle_unload, runtime.slots.clone());
        let allowed: Arc<[String]> = settings.allowed_outbound_hosts.into();
        let inner = Arc::new(LoadedHandler {
            runtime,
            name: name.into(),
            path: path.to_path_buf(),
            pre,
            spin: SpinCtx::new(settings.env, settings.key_value, allowed.clone()),
            env,
            allowed,
            ready,
            limits,
            reset_in_place: settings.reset_in_place,
        });
        // Instantiation is async (WASI's host functions are); at load, which may itself run
        // on a tokio runtime, it runs on the runtime's loader thread, which has a
        // current-thread runtime of its own (as the filler thread does).
        let (job, job_name, prewarm) = (inner.clone(), name.to_string(), settings.prewarm);
        let instantiation = inner.runtime.on_loader(move |rt| {
            ReadyPool::start(
                &job,
                job_name,
                |h: &LoadedHandler| &h.ready,
                |h: &LoadedHandler| h.limits.gate.room(),
                prewarm,
                || rt.block_on(job.instantiate()),
                || {
                    let rt = current_thread_runtime();
                    move |h: &LoadedHandler| rt.block_on(h.instantiate())
                },
            )
        })?;
        inner.limits.placement.seed(instantiation);
        let weak = Arc::downgrade(&inner);
        inner
            .runtime
            .sweep_while(move || weak.upgrade().map(|h| h.ready.sweep()).is_some());
        Ok(Self {
            name: inner.name.clone(),
            path: inner.path.as_path().into(),
            loaded: Arc::new(std::sync::OnceLock::from(inner)),
            deferred: None,
        })
    }

    /// A handler loaded on its first request from `deferred`.
    pub(crate) fn deferred(name: &str, path: &Path, deferred: Deferred) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
            loaded: Arc::new(std::sync::OnceLock::new()),
            deferred: Some(Arc::new(deferred)),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the handler has been loaded (a deferred one is not until its first request).
    pub fn is_loaded(&self) -> bool {
        self.loaded.get().is_some()
    }

    /// The loaded handler, if it is.
    pub(crate) fn loaded(&self) -> Result<&Arc<LoadedHandler>, String> {
        self.loaded
            .get()
            .ok_or_else(|| format!("handler {} is not loaded yet", self.name))
    }

    /// Instances kept ready ahead of requests (the setting, or chosen at load; 0 until a
    /// deferred handler is loaded).
    pub fn prewarm(&self) -> usize {
        self.loaded.get().map_or(0, |h| h.ready.prewarm())
    }

    /// Instances ready now (none while the handler is scaled to zero or not loaded).
    pub fn ready_now(&self) -> usize {
        self.loaded.get().map_or(0, |h| h.ready.ready_now())
    }

    /// Instances reset in place after a request since the handler was loaded.
    pub fn resets(&self) -> u64 {
        self.loaded.get().map_or(0, |h| h.ready.resets())
    }

    /// Requests this handler is serving right now.
    pub fn in_use(&self) -> usize {
        self.loaded.get().map_or(0, |h| h.limits.gate.in_use())
    }

    /// The loaded handler, loading a deferred one now (off the event loop: mapping and
    /// pre-linking it and proving it instantiates run on a blocking thread); with the time the
    /// load started when this call did it.
    async fn load(
        &self,
    ) -> Result<(&Arc<LoadedHandler>, Option<std::time::Instant>), IsolateError> {
        if let Some(h) = self.loaded.get() {
            return Ok((h, None));
        }
        let deferred = self.deferred.as_ref().ok_or_else(|| IsolateError::Load {
            path: self.path.to_path_buf(),
            reason: "handler not loaded".into(),
        })?;
        let _loading = deferred.loading.lock().await;
        if let Some(h) = self.loaded.get() {
            return Ok((h, None));
        }
        let started = std::time::Instant::now();
        let (job, name, path) = (deferred.clone(), self.name.clone(), self.path.clone());
        let loaded = tokio::task::spawn_blocking(move || {
            job.runtime.load_deferred_handler(&name, &path, &job)
        })
        .await
        .map_err(|e| IsolateError::Load {
            path: self.path.to_path_buf(),
            reason: format!("load task: {e}"),
        })??;
        let inner = loaded
            .loaded
            .get()
            .cloned()
            .ok_or_else(|| IsolateError::Load {
                path: self.path.to_path_buf(),
                reason: "deferred load gave no handler".into(),
            })?;
        Ok((self.loaded.get_or_init(|| inner), Some(started)))
    }

    /// Serve one request. Resolves when the handler has set its response head; the body then
    /// streams from the guest, which keeps running until the body ends or the deadline.
    /// The scheme the guest is told is the request URI's (`http` when it has none). Must be
    /// called within a tokio runtime.
    pub async fn handle(
        &self,
        request: http::Request<RequestBody>,
    ) -> Result<http::Response<ResponseBody>, IsolateError> {
        let (inner, loading) = self.load().await?;
        // Held by the request's task: the slot is given back when the guest is done.
        let permit = inner.limits.gate.enter(&inner.name)?;
        let ready = inner.take_instance_since(loading).await?;
        // What the guest's work costs is recorded by its task (`Metered`).
        inner.serve(ready, permit, request, None).await
    }
}

impl LoadedHandler {
    /// The engine it was compiled for.
    pub(crate) fn engine(&self) -> &wasmtime::Engine {
        self.pre.pre.engine()
    }

    /// A ready instance, or one made now (off the event loop when instantiating is dear).
    async fn take_instance(self: &Arc<Self>) -> Result<ReadyHandler, IsolateError> {
        self.take_instance_since(None).await
    }

    /// Like `take_instance`; a cold start is timed from `loading` when the handler was loaded
    /// for this request (its load is part of the cold start).
    async fn take_instance_since(
        self: &Arc<Self>,
        loading: Option<std::time::Instant>,
    ) -> Result<ReadyHandler, IsolateError> {
        let taken = self.ready.take();
        // Timed only for a cold start (rare): no clock read on the warm path.
        let started = taken
            .cold
            .then(|| loading.unwrap_or_else(std::time::Instant::now));
        let ready = match taken.ready {
            Some(r) => r,
            None if self.limits.placement.off_loop() => {
                let make = self.clone();
                let task = async move { make.instantiate().await };
                match self.runtime.guest_threads().spawn(task).await {
                    Ok(made) => made?,
                    Err(e) => return Err(self.invalid(format!("instantiation task: {e}"))),
                }
            }
            None => self.instantiate().await?,
        };
        if let Some(started) = started {
            self.runtime.cold_start(&self.name, started.elapsed());
        }
        Ok(ready)
    }

    /// Serve `request` with `ready`; the guest's task sends its store to `keep` when it is
    /// done with it (the warm-up snapshot reads it).
    async fn serve(
        self: &Arc<Self>,
        ready: ReadyHandler,
        permit: crate::limits::Permit,
        request: http::Request<RequestBody>,
        keep: Option<Keep>,
    ) -> Result<http::Response<ResponseBody>, IsolateError> {
        let ReadyHandler {
            store,
            exports,
            reset,
            ..
        } = ready;
        // The warm-up's instance is the snapshot's source: never served again.
        let reset = if keep.is_some() { None } else { reset };
        match exports {
            HandlerExports::Wasi02(proxy) => {
                self.handle_p2(store, proxy, reset, permit, request, keep)
                    .await
            }
            HandlerExports::Wasi03(service) => {
                self.handle_p3(store, service, reset, permit, request, keep)
                    .await
            }
        }
    }

    /// Why a guest's task ended without giving a response head.
    async fn without_response(
        &self,
        task: tokio::task::JoinHandle<Result<(), IsolateError>>,
    ) -> IsolateError {
        match task.await {
            Ok(Err(e)) => e,
            Ok(Ok(())) => self.invalid("handler returned without a response".into()),
            Err(e) => self.invalid(format!("handler task failed: {e}")),
        }
    }

    /// What a request's store holds: the grants, and nothing of any other request.
    fn fresh_state(&self) -> HandlerState {
        HandlerState {
            wasi: crate::host::wasi::context(&self.env),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundPolicy {
                allowed: self.allowed.clone(),
            },
            limit: self.limits.memory_limit(),
            spin: self.spin.clone(),
        }
    }

    async fn instantiate(&self) -> Result<ReadyHandler, IsolateError> {
        let mut store = self.limits.store(self.pre.pre.engine(), self.fresh_state());
        let made = async {
            let instance = self.pre.pre.instantiate_async(&mut store).await?;
            let exports = match &self.pre.exports {
                ExportIndices::Wasi02(ix) => {
                    HandlerExports::Wasi02(ix.load(&mut store, &instance)?)
                }
                ExportIndices::Wasi03(ix) => {
                    HandlerExports::Wasi03(ix.load(&mut store, &instance)?)
                }
            };
            wasmtime::Result::Ok((instance, exports))
        };
        let (instance, exports) =
            made.await
                .map_err(|e: wasmtime::Error| IsolateError::Instantiate {
                    component: self.name.to_string(),
                    reason: format!("{e:#}"),
                })?;
        let reset = self
            .reset_in_place
            .then(|| self.ready.reset_point(&self.name, instance, &mut store))
            .flatten()
            .map(|point| Reset { instance, point });
        Ok(ReadyHandler {
            store,
            instance,
            exports,
            reset,
        })
    }

    /// After a request its guest finished cleanly: `store`'s instance reset in place, with a
    /// fresh store state, back among the ready instances (the host resources of the request,
    /// even those the guest never dropped, go with the old state: the reset guest no longer
    /// names them). An instance that cannot be reset (a task of it is still alive, say) is
    /// dropped, as every instance used to be.
    fn recycle(&self, mut store: Store<HandlerState>, exports: HandlerExports, reset: Reset) {
        if let Err(e) = reset.instance.reset(&mut store, &reset.point) {
            tracing::debug!(handler = %self.name, error = %format!("{e:#}"), "instance not reset");
            return;
        }
        *store.data_mut() = self.fresh_state();
        // The request's deadline callback holds this handler: a kept store must not (the
        // next request sets its own).
        store.epoch_deadline_trap();
        self.ready.give_back(ReadyHandler {
            store,
            instance: reset.instance,
            exports,
            reset: Some(reset),
        });
    }

    /// Start the request's deadline on `store`. The guest is interrupted at each epoch tick it
    /// runs across: it yields to the executor there, so a guest computing for long (or for
    /// ever) on a listener's event loop lets that loop's other connections through every
    /// tick, and from its second tick (it has run a whole tick: far past any budget; a cheap
    /// call that merely straddles a tick is not dear) the handler is marked dear, so it moves
    /// off the loop. Past the deadline the call traps (`Deadline`).
    fn start_deadline(self: &Arc<Self>, store: &mut Store<HandlerState>) {
        let mut left = self.limits.deadline_ticks;
        let mut crossed = 0u32;
        let this = self.clone();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            crossed += 1;
            if crossed > 1 {
                this.limits.placement.mark_dear();
            }
            left = left.saturating_sub(1);
            Ok(if left == 0 {
                wasmtime::UpdateDeadline::Interrupt
            } else {
                wasmtime::UpdateDeadline::Yield(1)
            })
        });
    }

    /// Run a guest task: on the guest threads when the handler is dear; else on the caller's
    /// runtime (a listener's event loop), from which it moves to the guest threads as soon
    /// as it yields at an epoch tick having become dear (see `start_deadline`). A suspended
    /// guest call is a `Send` future: it may resume on any thread.
    fn spawn_guest<F>(
        self: &Arc<Self>,
        task: F,
    ) -> tokio::task::JoinHandle<Result<(), IsolateError>>
    where
        F: std::future::Future<Output = Result<(), IsolateError>> + Send + 'static,
    {
        let task = Metered {
            handler: self.clone(),
            task: Box::pin(task),
            spent: std::time::Duration::ZERO,
        };
        if self.limits.placement.off_loop() {
            return self.runtime.guest_threads().spawn(task);
        }
        tokio::spawn(Migrating {
            handler: self.clone(),
            here: Some(task),
            moved: None,
        })
    }

    fn classify(&self, state: &HandlerState, e: wasmtime::Error) -> IsolateError {
        self.limits.classify(&self.name, &state.limit, e)
    }

    fn deadline(&self) -> IsolateError {
        crate::limits::deadline_error(&self.name, self.limits.deadline)
    }

    fn invalid(&self, reason: String) -> IsolateError {
        IsolateError::InvalidOutput {
            component: self.name.to_string(),
            reason,
        }
    }
}

/// A guest task that adds up the time its polls take, the guest's own work (not the time it
/// waits to be scheduled behind the event loop's other connections, or for I/O), and records
/// it as the handler's cost when it ends. Timing the request from start to response head
/// counted the wait too: under load every call of a microsecond guest looked dear and moved
/// it off the loop, where each request then paid two thread hand-offs.
struct Metered<F> {
    handler: Arc<LoadedHandler>,
    task: std::pin::Pin<Box<F>>,
    spent: std::time::Duration,
}

impl<F: std::future::Future<Output = Result<(), IsolateError>>> std::future::Future for Metered<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let started = std::time::Instant::now();
        let polled = self.task.as_mut().poll(cx);
        self.spent += started.elapsed();
        if polled.is_ready() {
            self.handler.limits.placement.record(self.spent);
        }
        polled
    }
}

/// A guest task polled on the caller's runtime until it turns dear, then on the guest threads.
struct Migrating<F> {
    handler: Arc<LoadedHandler>,
    here: Option<Metered<F>>,
    moved: Option<tokio::task::JoinHandle<Result<(), IsolateError>>>,
}

impl<F> std::future::Future for Migrating<F>
where
    F: std::future::Future<Output = Result<(), IsolateError>> + Send + 'static,
{
    type Output = Result<(), IsolateError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        let this = &mut *self;
        if let Some(task) = &mut this.here {
            if let Poll::Ready(done) = std::pin::Pin::new(task).poll(cx) {
                return Poll::Ready(done);
            }
            if !this.handler.limits.placement.off_loop() {
                return Poll::Pending;
            }
        }
        // Dear now: the boxed guest future moves as a pointer, and resumes where it yielded.
        if let Some(task) = this.here.take() {
            this.moved = Some(this.handler.runtime.guest_threads().spawn(task));
        }
        let Some(moved) = &mut this.moved else {
            return Poll::Pending;
        };
        std::pin::Pin::new(moved).poll(cx).map(|joined| {
            joined.unwrap_or_else(|e| Err(this.handler.invalid(format!("handler task: {e}"))))
        })
    }
}

impl<F> Drop for Migrating<F> {
    /// Cancelling the task cancels the guest, wherever it runs.
    fn drop(&mut self) {
        if let Some(moved) = &self.moved {
            moved.abort();
        }
    }
}

/// Where a guest's task sends its store when it is done with it.
type Keep = tokio::sync::oneshot::Sender<Store<HandlerState>>;

pub(crate) fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a current-thread runtime")
}
