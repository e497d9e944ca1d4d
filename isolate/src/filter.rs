//! Filter components: compiled and pre-linked once, instances made ahead of need, one fresh
//! instance per request (its pool slot is reset to the copy-on-write image when it is freed).

use crate::abi::{BodyActionAbi, HeaderEditsAbi, Level, RequestActionAbi, ResponseHeadView};
use crate::error::IsolateError;
use crate::limits::{classify, Gate, MemoryLimit, Permit};
use crate::pool::ReadyPool;
use crate::runtime::Runtime;
use crate::types::{Edits, Request, RequestDecision};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{
    Component, ComponentExportIndex, Instance, InstancePre, Linker, ResourceTable,
};
use wasmtime::Store;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

const ON_REQUEST: &str = "breakwater:filter/on-request@0.1.0";
const ON_RESPONSE: &str = "breakwater:filter/on-response@0.1.0";
const ON_REQUEST_BODY: &str = "breakwater:filter/on-request-body@0.1.0";
const ON_RESPONSE_BODY: &str = "breakwater:filter/on-response-body@0.1.0";
const LOG: &str = "breakwater:filter/log@0.1.0";
const CONFIG: &str = "breakwater:filter/config@0.1.0";

/// Per-filter limits and settings.
#[derive(Clone, Debug)]
pub struct FilterSettings {
    /// Wall-clock limit for one call into the guest. Default 50 ms.
    pub deadline: Duration,
    /// Linear memory limit per instance (at most the runtime's). Default 16 MiB.
    pub max_memory_bytes: usize,
    /// Requests using this filter at once; more get `LimitReached` at once. Default 256.
    pub max_concurrency: usize,
    /// Instances kept ready ahead of requests. Default (`None`): 4 when an instantiation
    /// costs more than 50 µs, else none (instantiated inline, which is then cheaper).
    pub prewarm: Option<usize>,
    /// The `config:` map the guest reads through `config.get`.
    pub config: HashMap<String, String>,
}

impl Default for FilterSettings {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(50),
            max_memory_bytes: 16 << 20,
            max_concurrency: 256,
            prewarm: None,
            config: HashMap::new(),
        }
    }
}

/// What a store carries for the host functions and the limiter.
pub(crate) struct HostState {
    filter: Arc<str>,
    config: Arc<HashMap<String, String>>,
    limit: MemoryLimit,
    /// WASI as guest toolchains expect it (componentize-py, wasi-libc), with nothing behind
    /// it: no preopened directories, no sockets, no environment; clocks, random and stderr.
    /// Built on the guest's first WASI call: most filters make none, and building one
    /// (random generators seeded from the OS) would be a good part of an instance's cost.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(|| {
                WasiCtx::builder()
                    .inherit_stderr()
                    .allow_tcp(false)
                    .allow_udp(false)
                    .allow_ip_name_lookup(false)
                    .build()
            }),
            table: &mut self.table,
        }
    }
}

/// The imports a filter may have: WASI with no capabilities behind it (see `HostState::wasi`),
/// log and config. Only what is granted is linked.
pub(crate) fn linker(
    engine: &wasmtime::Engine,
    path: &Path,
) -> Result<Linker<HostState>, IsolateError> {
    let mut linker: Linker<HostState> = Linker::new(engine);
    let link_err = |e: wasmtime::Error| IsolateError::Link {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    // WASI with no capabilities behind it (see `HostState::wasi`): real toolchains import
    // it even when the guest never touches a file or a socket.
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(link_err)?;
    linker
        .instance(LOG)
        .and_then(|mut i| {
            i.func_wrap(
                "log",
                |store: wasmtime::StoreContextMut<'_, HostState>, (level, msg): (Level, String)| {
                    let filter = &*store.data().filter;
                    match level {
                        Level::Debug => tracing::debug!(filter, "{msg}"),
                        Level::Info => tracing::info!(filter, "{msg}"),
                        Level::Warn => tracing::warn!(filter, "{msg}"),
                        Level::Error => tracing::error!(filter, "{msg}"),
                    }
                    Ok(())
                },
            )
        })
        .map_err(link_err)?;
    linker
        .instance(CONFIG)
        .and_then(|mut i| {
            i.func_wrap(
                "get",
                |store: wasmtime::StoreContextMut<'_, HostState>, (key,): (String,)| {
                    Ok((store.data().config.get(&key).cloned(),))
                },
            )
        })
        .map_err(link_err)?;
    Ok(linker)
}

impl HostState {
    pub(crate) fn new(
        filter: Arc<str>,
        config: Arc<HashMap<String, String>>,
        max_memory_bytes: usize,
    ) -> Self {
        Self {
            filter,
            config,
            limit: MemoryLimit::new(max_memory_bytes),
            wasi: None,
            table: ResourceTable::new(),
        }
    }
}

/// A store for running a filter's `wizer-initialize` at load: its config and memory limit,
/// and a deadline of `deadline` (init may do more than a request, but never loop forever).
pub(crate) fn init_store(
    runtime: &Runtime,
    name: &str,
    settings: &FilterSettings,
    deadline: Duration,
) -> Store<HostState> {
    let state = HostState::new(
        name.into(),
        Arc::new(settings.config.clone()),
        settings
            .max_memory_bytes
            .min(runtime.settings.max_memory_bytes),
    );
    let mut store = Store::new(&runtime.engine, state);
    store.limiter(|s| &mut s.limit);
    let tick = runtime.settings.epoch_tick.as_nanos().max(1);
    store.set_epoch_deadline(deadline.as_nanos().div_ceil(tick) as u64 + 1);
    store.epoch_deadline_trap();
    store
}

struct Ready {
    store: Store<HostState>,
    instance: Instance,
}

struct Inner {
    /// Keeps the engine and its epoch ticker alive as long as the filter is.
    _runtime: Arc<Runtime>,
    name: Arc<str>,
    path: PathBuf,
    pre: InstancePre<HostState>,
    on_request: Option<ComponentExportIndex>,
    on_response: Option<ComponentExportIndex>,
    on_request_body: Option<ComponentExportIndex>,
    on_response_body: Option<ComponentExportIndex>,
    settings: FilterSettings,
    config: Arc<HashMap<String, String>>,
    deadline_ticks: u64,
    gate: Gate,
    ready: ReadyPool<Ready>,
}

/// A loaded filter component. Cheap to clone; shared by all requests of its routes.
#[derive(Clone)]
pub struct Filter {
    inner: Arc<Inner>,
}

impl Filter {
    pub(crate) fn new(
        runtime: Arc<Runtime>,
        name: &str,
        path: &Path,
        component: Component,
        settings: FilterSettings,
    ) -> Result<Self, IsolateError> {
        let linker = linker(&runtime.engine, path)?;
        // Only what is granted is linked: any other import fails here, at load.
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| IsolateError::Link {
                path: path.to_path_buf(),
                reason: format!("{e:#}"),
            })?;
        let func = |iface: &str| {
            let (_, inst) = component.get_export(None, iface)?;
            component.get_export_index(Some(&inst), "handle")
        };
        let (on_request, on_response) = (func(ON_REQUEST), func(ON_RESPONSE));
        let (on_request_body, on_response_body) = (func(ON_REQUEST_BODY), func(ON_RESPONSE_BODY));
        if [on_request, on_response, on_request_body, on_response_body]
            .iter()
            .all(Option::is_none)
        {
            return Err(IsolateError::NoPhase {
                path: path.to_path_buf(),
            });
        }
        let tick = runtime.settings.epoch_tick.as_nanos().max(1);
        let deadline_ticks = settings.deadline.as_nanos().div_ceil(tick) as u64 + 1;
        let mut settings = settings;
        settings.max_memory_bytes = settings
            .max_memory_bytes
            .min(runtime.settings.max_memory_bytes);
        let inner = Arc::new(Inner {
            _runtime: runtime.clone(),
            name: name.into(),
            path: path.to_path_buf(),
            pre,
            on_request,
            on_response,
            on_request_body,
            on_response_body,
            config: Arc::new(std::mem::take(&mut settings.config)),
            gate: Gate::new(settings.max_concurrency),
            settings,
            deadline_ticks,
            ready: ReadyPool::default(),
        });
        // Prove it instantiates now (a trapping start function is a load error); the second
        // instantiation, warm, tells what one costs.
        let first = inner.instantiate()?;
        let started = std::time::Instant::now();
        let second = inner.instantiate()?;
        let cost = started.elapsed();
        if inner
            .ready
            .start([first, second], inner.settings.prewarm, cost)
            > 0
        {
            ReadyPool::spawn_filler(
                &inner,
                format!("wasm-fill-{}", inner.name),
                |i: &Inner| &i.ready,
                || |i: &Inner| i.instantiate(),
            );
        }
        Ok(Self { inner })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Instances kept ready ahead of requests (the setting, or chosen at load).
    pub fn prewarm(&self) -> usize {
        self.inner.ready.prewarm()
    }

    pub fn has_on_request(&self) -> bool {
        self.inner.on_request.is_some()
    }

    pub fn has_on_response(&self) -> bool {
        self.inner.on_response.is_some()
    }

    /// Whether the filter exports `on-request-body` (the host buffers request bodies for it).
    pub fn has_on_request_body(&self) -> bool {
        self.inner.on_request_body.is_some()
    }

    /// Whether the filter exports `on-response-body`.
    pub fn has_on_response_body(&self) -> bool {
        self.inner.on_response_body.is_some()
    }

    /// Requests using this filter right now.
    pub fn in_use(&self) -> usize {
        self.inner.gate.in_use()
    }

    /// Take an instance for one request: a ready one, or a new one if none is ready.
    /// Fails at once with `LimitReached` when the concurrency limit is reached.
    pub fn session(&self) -> Result<Session, IsolateError> {
        let inner = &self.inner;
        let permit = inner.gate.enter(&inner.name)?;
        let ready = match inner.ready.take() {
            Some(r) => r,
            None => inner.instantiate()?,
        };
        Ok(Session {
            inner: inner.clone(),
            _permit: permit,
            store: std::sync::Mutex::new(ready.store),
            instance: ready.instance,
        })
    }
}

impl Inner {
    fn instantiate(&self) -> Result<Ready, IsolateError> {
        let state = HostState::new(
            self.name.clone(),
            self.config.clone(),
            self.settings.max_memory_bytes,
        );
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limit);
        store.set_epoch_deadline(self.deadline_ticks);
        store.epoch_deadline_trap();
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| IsolateError::Instantiate {
                filter: self.name.to_string(),
                reason: format!("{e:#}"),
            })?;
        Ok(Ready { store, instance })
    }

    fn invalid(&self, reason: String) -> IsolateError {
        IsolateError::InvalidOutput {
            filter: self.name.to_string(),
            reason,
        }
    }

    fn classify(&self, store: &Store<HostState>, e: wasmtime::Error) -> IsolateError {
        classify(&self.name, &store.data().limit, self.settings.deadline, e)
    }
}

/// One request's instance: call its phases, then drop it (the slot goes back to the pool).
pub struct Session {
    inner: Arc<Inner>,
    _permit: Permit,
    /// In a `Mutex` only to make `Session` `Sync` (WASI's state is `Send` but not `Sync`, and
    /// a request's context is shared across awaits); it is only ever reached through
    /// `get_mut`, which takes no lock.
    store: std::sync::Mutex<Store<HostState>>,
    instance: Instance,
}

impl Session {
    /// Run `on-request`; `None` when the filter does not export it.
    pub fn on_request(
        &mut self,
        req: &Request<'_>,
    ) -> Option<Result<RequestDecision, IsolateError>> {
        let idx = self.inner.on_request?;
        Some(self.call_on_request(idx, req))
    }

    fn call_on_request(
        &mut self,
        idx: ComponentExportIndex,
        req: &Request<'_>,
    ) -> Result<RequestDecision, IsolateError> {
        let inner = &self.inner;
        let store = self.store.get_mut().unwrap_or_else(|p| p.into_inner());
        store.set_epoch_deadline(inner.deadline_ticks);
        let func = self
            .instance
            .get_typed_func::<(&Request<'_>,), (RequestActionAbi,)>(&mut *store, idx)
            .map_err(|e| inner.invalid(e.to_string()))?;
        let (action,) = match func.call(&mut *store, (req,)) {
            Ok(r) => r,
            Err(e) => return Err(inner.classify(store, e)),
        };
        action.validate().map_err(|reason| self.invalid(reason))
    }

    /// Run `on-response`; `None` when the filter does not export it.
    pub fn on_response(
        &mut self,
        req: &Request<'_>,
        status: u16,
        headers: &[(&str, &[u8])],
    ) -> Option<Result<Edits, IsolateError>> {
        let idx = self.inner.on_response?;
        Some(self.call_on_response(idx, req, status, headers))
    }

    fn call_on_response(
        &mut self,
        idx: ComponentExportIndex,
        req: &Request<'_>,
        status: u16,
        headers: &[(&str, &[u8])],
    ) -> Result<Edits, IsolateError> {
        let head = ResponseHeadView { status, headers };
        let inner = &self.inner;
        let store = self.store.get_mut().unwrap_or_else(|p| p.into_inner());
        store.set_epoch_deadline(inner.deadline_ticks);
        let func = self
            .instance
            .get_typed_func::<(&Request<'_>, ResponseHeadView<'_>), (HeaderEditsAbi,)>(
                &mut *store,
                idx,
            )
            .map_err(|e| inner.invalid(e.to_string()))?;
        let (edits,) = match func.call(&mut *store, (req, head)) {
            Ok(r) => r,
            Err(e) => return Err(inner.classify(store, e)),
        };
        edits.validate().map_err(|reason| self.invalid(reason))
    }

    /// Run `on-request-body` on the whole request body; `None` when the filter does not
    /// export it. `Ok(Some(body))` replaces the body, `Ok(None)` keeps it.
    pub fn on_request_body(
        &mut self,
        req: &Request<'_>,
        body: &[u8],
    ) -> Option<Result<Option<Vec<u8>>, IsolateError>> {
        let idx = self.inner.on_request_body?;
        Some(self.call_body::<(&Request<'_>, &[u8])>(idx, (req, body)))
    }

    /// Run `on-response-body` on the whole response body; like `on_request_body`.
    pub fn on_response_body(
        &mut self,
        req: &Request<'_>,
        status: u16,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> Option<Result<Option<Vec<u8>>, IsolateError>> {
        let idx = self.inner.on_response_body?;
        let head = ResponseHeadView { status, headers };
        Some(self.call_body::<(&Request<'_>, ResponseHeadView<'_>, &[u8])>(idx, (req, head, body)))
    }

    fn call_body<P>(
        &mut self,
        idx: ComponentExportIndex,
        params: P,
    ) -> Result<Option<Vec<u8>>, IsolateError>
    where
        P: wasmtime::component::ComponentNamedList + wasmtime::component::Lower + Send + Sync,
    {
        let inner = &self.inner;
        let store = self.store.get_mut().unwrap_or_else(|p| p.into_inner());
        store.set_epoch_deadline(inner.deadline_ticks);
        let func = self
            .instance
            .get_typed_func::<P, (BodyActionAbi,)>(&mut *store, idx)
            .map_err(|e| inner.invalid(e.to_string()))?;
        match func.call(&mut *store, params) {
            Ok((BodyActionAbi::Keep,)) => Ok(None),
            Ok((BodyActionAbi::Replace(body),)) => Ok(Some(body)),
            Err(e) => Err(inner.classify(store, e)),
        }
    }

    fn invalid(&self, reason: String) -> IsolateError {
        IsolateError::InvalidOutput {
            filter: self.inner.name.to_string(),
            reason,
        }
    }
}
