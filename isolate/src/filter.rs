//! Filter components: compiled and pre-linked once, instances made ahead of need, one fresh
//! instance per request (its pool slot is reset to the copy-on-write image when it is freed).

use crate::abi::{
    with_request_record, with_response_records, BodyActionAbi, HeaderEditsAbi, RequestActionAbi,
    RequestRecord, ResponseHeadView,
};
use crate::error::IsolateError;
use crate::host::filter_api::FilterApi;
use crate::host::heads::{lend, RequestHead, ResponseHead};
use crate::limits::Permit;
use crate::pool::ReadyPool;
use crate::runtime::Runtime;
use crate::store::Limits;
use crate::types::{Edits, Headers, Request, RequestDecision};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{
    Component, ComponentExportIndex, Instance, InstancePre, ResetPoint, Resource,
};
use wasmtime::Store;

/// The versions of the filter interface a component may export (`wit/filter.wit` is 0.1,
/// `wit/0.2/filter.wit` 0.2), newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    /// The heads are resources the guest reads through methods.
    V0_2,
    /// The heads are records lowered whole into the guest.
    V0_1,
}

impl Version {
    const ALL: [Version; 2] = [Version::V0_2, Version::V0_1];

    fn name(self) -> &'static str {
        match self {
            Version::V0_2 => "0.2",
            Version::V0_1 => "0.1",
        }
    }

    /// The export names of the four phases, in `Phases` order (looked up once, at load).
    fn phases(self) -> [String; 4] {
        [
            "on-request",
            "on-response",
            "on-request-body",
            "on-response-body",
        ]
        .map(|phase| format!("breakwater:filter/{phase}@{}.0", self.name()))
    }
}

/// Per-filter limits and settings.
#[derive(Clone, Debug)]
pub struct FilterSettings {
    /// Wall-clock limit for one call into the guest. Default 50 ms.
    pub deadline: Duration,
    /// Linear memory limit per instance (at most the runtime's). Default 16 MiB.
    pub max_memory_bytes: usize,
    /// Instances of this filter alive at once (a request holds one from the first phase it
    /// runs to the last); one more gets `LimitReached` at once. Default 256.
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

mod state;

pub(crate) use state::FilterState;
pub(crate) use state::{init_store, linker};

/// An instance made ahead of a request (or reset in place after one), with its store.
struct ReadyFilter {
    store: Store<FilterState>,
    instance: Instance,
    /// Where a reset in place puts it back to (`None`: it cannot be reset; dropped after use).
    reset: Option<ResetPoint>,
}

/// A filter component, compiled and pre-linked.
pub(crate) struct LoadedFilter {
    /// Keeps the engine and its epoch ticker alive as long as the filter is.
    runtime: Arc<Runtime>,
    name: Arc<str>,
    pre: InstancePre<FilterState>,
    version: Version,
    on_request: Option<ComponentExportIndex>,
    on_response: Option<ComponentExportIndex>,
    on_request_body: Option<ComponentExportIndex>,
    on_response_body: Option<ComponentExportIndex>,
    api: FilterApi,
    limits: Limits,
    ready: ReadyPool<ReadyFilter>,
}

// Each phase's parameters and results as the host lowers and lifts them: the types its export
// is checked against at load, and the only ones `FilterInstance::call` is called with. 0.1
// lowers the heads as records; 0.2 passes borrowed handles to them.
type OnRequestParams<'a> = (&'a RequestRecord<'a>,);
type OnRequestResults = (RequestActionAbi,);
type OnResponseParams<'a> = (&'a RequestRecord<'a>, ResponseHeadView<'a>);
type OnResponseResults = (HeaderEditsAbi,);
type OnRequestBodyParams<'a> = (&'a RequestRecord<'a>, &'a [u8]);
type OnResponseBodyParams<'a> = (&'a RequestRecord<'a>, ResponseHeadView<'a>, &'a [u8]);
type BodyResults = (BodyActionAbi,);
type Req = Resource<RequestHead>;
type Resp = Resource<ResponseHead>;
type OnRequestParams2 = (Req,);
type OnResponseParams2 = (Req, Resp);
type OnRequestBodyParams2<'a> = (Req, &'a [u8]);
type OnResponseBodyParams2<'a> = (Req, Resp, &'a [u8]);

/// The handles a 0.2 call passes: the heads are lent for the call (`host::heads`), so the
/// handles' representation carries nothing.
fn heads() -> (Req, Resp) {
    (Resource::new_borrow(0), Resource::new_borrow(0))
}

/// A loaded filter component. Cheap to clone; shared by all requests of its routes.
///
/// A filter proved before (see [`Runtime::load_filter_bytes`]) is loaded *deferred*: its
/// phases are known from the proof's marker, and its compiled code is mapped, pre-linked
/// and instantiated by its first request (concurrent first requests share one load).
#[derive(Clone)]
pub struct Filter {
    name: Arc<str>,
    path: Arc<Path>,
    phases: Phases,
    loaded: Arc<std::sync::OnceLock<Arc<LoadedFilter>>>,
    deferred: Option<Arc<DeferredFilter>>,
}

/// Which phases a filter exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Phases {
    pub on_request: bool,
    pub on_response: bool,
    pub on_request_body: bool,
    pub on_response_body: bool,
}

impl Phases {
    /// As kept in a proof marker: four `0`/`1` digits.
    pub(crate) fn encode(self) -> String {
        [
            self.on_request,
            self.on_response,
            self.on_request_body,
            self.on_response_body,
        ]
        .iter()
        .map(|&b| if b { '1' } else { '0' })
        .collect()
    }

    pub(crate) fn decode(text: &str) -> Option<Phases> {
        let b: Vec<bool> = text.trim().chars().map(|c| c == '1').collect();
        let valid = text.trim().len() == 4 && text.trim().chars().all(|c| c == '0' || c == '1');
        (valid && b.iter().any(|&x| x)).then(|| Phases {
            on_request: b[0],
            on_response: b[1],
            on_request_body: b[2],
            on_response_body: b[3],
        })
    }
}

/// What a deferred filter is loaded from on its first request.
pub(crate) struct DeferredFilter {
    pub runtime: Arc<Runtime>,
    pub artifact: PathBuf,
    pub settings: FilterSettings,
    pub loading: std::sync::Mutex<()>,
}

impl Filter {
    /// A filter loaded now.
    pub(crate) fn new(
        runtime: Arc<Runtime>,
        name: &str,
        path: &Path,
        component: Component,
        settings: FilterSettings,
    ) -> Result<Self, IsolateError> {
        let inner = LoadedFilter::build(runtime, name, path, component, settings)?;
        Ok(Self {
            name: name.into(),
            path: path.into(),
            phases: inner.phases(),
            loaded: Arc::new(std::sync::OnceLock::from(inner)),
            deferred: None,
        })
    }

    /// A filter loaded by its first request.
    pub(crate) fn deferred(
        name: &str,
        path: &Path,
        phases: Phases,
        deferred: DeferredFilter,
    ) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
            phases,
            loaded: Arc::new(std::sync::OnceLock::new()),
            deferred: Some(Arc::new(deferred)),
        }
    }

    /// Whether its compiled code is loaded (always, unless it is deferred and unused).
    pub fn is_loaded(&self) -> bool {
        self.loaded.get().is_some()
    }

    /// The loaded filter, loading a deferred one now (blocking: it maps and pre-links its
    /// compiled code, a fraction of a millisecond for a small filter).
    fn loaded(&self) -> Result<&Arc<LoadedFilter>, IsolateError> {
        if let Some(l) = self.loaded.get() {
            return Ok(l);
        }
        // A filter is loaded at construction unless it is deferred.
        let d = self.deferred.as_ref().ok_or_else(|| IsolateError::Load {
            path: self.path.to_path_buf(),
            reason: "neither loaded nor deferred".into(),
        })?;
        let _one = d.loading.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = self.loaded.get() {
            return Ok(l);
        }
        let inner = d.runtime.load_deferred_filter(&self.name, &self.path, d)?;
        Ok(self.loaded.get_or_init(|| inner))
    }
}

impl LoadedFilter {
    fn phases(&self) -> Phases {
        Phases {
            on_request: self.on_request.is_some(),
            on_response: self.on_response.is_some(),
            on_request_body: self.on_request_body.is_some(),
            on_response_body: self.on_response_body.is_some(),
        }
    }

    pub(crate) fn build(
        runtime: Arc<Runtime>,
        name: &str,
        path: &Path,
        component: Component,
        settings: FilterSettings,
    ) -> Result<Arc<Self>, IsolateError> {
        let linker = runtime.filter_linker(path)?;
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
        // The version the component exports phases of: one, not a mix (the host would call
        // some phases and silently skip the others).
        let mut exported = Version::ALL
            .into_iter()
            .map(|v| (v, v.phases().map(|p| func(&p))))
            .filter(|(_, found)| found.iter().any(Option::is_some));
        let Some((version, [on_request, on_response, on_request_body, on_response_body])) =
            exported.next()
        else {
            return Err(IsolateError::NoPhase {
                path: path.to_path_buf(),
            });
        };
        if let Some((other, _)) = exported.next() {
            return Err(IsolateError::Link {
                path: path.to_path_buf(),
                reason: format!(
                    "it exports phases of two versions of the filter interface ({} and {}): \
                     export those of one",
                    version.name(),
                    other.name()
                ),
            });
        }
        let limits = Limits::new(
            &runtime.slots,
            &runtime.settings,
            settings.deadline,
            settings.max_memory_bytes,
            settings.max_concurrency,
        );
        let inner = Arc::new(LoadedFilter {
            runtime: runtime.clone(),
            name: name.into(),
            pre,
            version,
            on_request,
            on_response,
            on_request_body,
            on_response_body,
            api: FilterApi {
                filter: name.into(),
                config: Arc::new(settings.config),
            },
            limits,
            ready: ReadyPool::new(runtime.settings.idle_unload, runtime.slots.clone()),
        });
        // The first instance (the proof that it instantiates) has its exports' types checked:
        // every instance comes from the same `pre`, so the check holds for all of them and
        // calls skip it.
        let mut unchecked = true;
        let instantiation = ReadyPool::start(
            &inner,
            name.to_string(),
            |f: &LoadedFilter| &f.ready,
            |f: &LoadedFilter| f.limits.gate.room(),
            settings.prewarm,
            || {
                let mut made = inner.instantiate()?;
                if std::mem::take(&mut unchecked) {
                    inner.check_exports(&mut made, path)?;
                }
                Ok(made)
            },
            || |f: &LoadedFilter| f.instantiate(),
        )?;
        inner.limits.placement.seed(instantiation);
        let weak = Arc::downgrade(&inner);
        runtime.sweep_while(move || weak.upgrade().map(|f| f.ready.sweep()).is_some());
        Ok(inner)
    }
}

impl Filter {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Instances kept ready ahead of requests (the setting, or chosen at load; 0 until a
    /// deferred filter is loaded).
    pub fn prewarm(&self) -> usize {
        self.loaded.get().map_or(0, |l| l.ready.prewarm())
    }

    pub fn has_on_request(&self) -> bool {
        self.phases.on_request
    }

    pub fn has_on_response(&self) -> bool {
        self.phases.on_response
    }

    /// Whether the filter exports `on-request-body` (the host buffers request bodies for it).
    pub fn has_on_request_body(&self) -> bool {
        self.phases.on_request_body
    }

    /// Whether the filter exports `on-response-body`.
    pub fn has_on_response_body(&self) -> bool {
        self.phases.on_response_body
    }

    /// Instances ready now (none while the filter is scaled to zero).
    pub fn ready_now(&self) -> usize {
        self.loaded.get().map_or(0, |l| l.ready.ready_now())
    }

    /// Requests using this filter right now.
    pub fn in_use(&self) -> usize {
        self.loaded.get().map_or(0, |l| l.limits.gate.in_use())
    }

    /// Instances reset in place after a request and kept for another, since load.
    pub fn resets(&self) -> u64 {
        self.loaded.get().map_or(0, |l| l.ready.resets())
    }

    /// Take an instance for one request: a ready one, or a new one if none is ready (a
    /// deferred filter's first request loads it first, and counts that in its cold start).
    /// Fails at once with `LimitReached` when the concurrency limit is reached.
    pub fn instance(&self) -> Result<FilterInstance, IsolateError> {
        let loading = (!self.is_loaded()).then(std::time::Instant::now);
        let inner = self.loaded()?;
        let permit = inner.limits.gate.enter(&inner.name)?;
        let taken = inner.ready.take();
        // Timed only for a cold start (rare): no clock read on the warm path.
        let started = loading.or_else(|| taken.cold.then(std::time::Instant::now));
        let ready = match taken.ready {
            Some(r) => r,
            None => inner.instantiate()?,
        };
        if let Some(started) = started {
            inner.runtime.cold_start(&inner.name, started.elapsed());
        }
        Ok(FilterInstance {
            filter: inner.clone(),
            _permit: permit,
            store: std::sync::Mutex::new(Some(ready.store)),
            instance: ready.instance,
            reset: ready.reset,
        })
    }
}

impl LoadedFilter {
    fn instantiate(&self) -> Result<ReadyFilter, IsolateError> {
        let state = FilterState::new(self.api.clone(), self.limits.memory_limit());
        let mut store = self.limits.store(self.pre.engine(), state);
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| IsolateError::Instantiate {
                component: self.name.to_string(),
                reason: format!("{e:#}"),
            })?;
        let reset = self.ready.reset_point(&self.name, instance, &mut store);
        Ok(ReadyFilter {
            store,
            instance,
            reset,
        })
    }

    /// After a request whose every call succeeded: the instance reset in place, with a fresh
    /// store state, back among the ready instances; else (or when it cannot be reset) dropped.
    fn recycle(&self, mut store: Store<FilterState>, instance: Instance, point: ResetPoint) {
        if let Err(e) = instance.reset(&mut store, &point) {
            tracing::debug!(filter = %self.name, error = %format!("{e:#}"), "instance not reset");
            return;
        }
        *store.data_mut() = FilterState::new(self.api.clone(), self.limits.memory_limit());
        self.ready.give_back(ReadyFilter {
            store,
            instance,
            reset: Some(point),
        });
    }

    /// Whether each phase's export has the type the host calls it with (a component built
    /// against another version of the WIT may not): refused at load if not.
    fn check_exports(&self, ready: &mut ReadyFilter, path: &Path) -> Result<(), IsolateError> {
        fn check<P, R>(
            ready: &mut ReadyFilter,
            idx: Option<ComponentExportIndex>,
        ) -> wasmtime::Result<()>
        where
            P: wasmtime::component::ComponentNamedList + wasmtime::component::Lower,
            R: wasmtime::component::ComponentNamedList + wasmtime::component::Lift,
        {
            match idx {
                Some(idx) => ready
                    .instance
                    .get_typed_func::<P, R>(&mut ready.store, idx)
                    .map(drop),
                None => Ok(()),
            }
        }
        let mut all = || -> wasmtime::Result<()> {
            match self.version {
                Version::V0_1 => {
                    check::<OnRequestParams<'_>, OnRequestResults>(ready, self.on_request)?;
                    check::<OnResponseParams<'_>, OnResponseResults>(ready, self.on_response)?;
                    check::<OnRequestBodyParams<'_>, BodyResults>(ready, self.on_request_body)?;
                    check::<OnResponseBodyParams<'_>, BodyResults>(ready, self.on_response_body)
                }
                Version::V0_2 => {
                    check::<OnRequestParams2, OnRequestResults>(ready, self.on_request)?;
                    check::<OnResponseParams2, OnResponseResults>(ready, self.on_response)?;
                    check::<OnRequestBodyParams2<'_>, BodyResults>(ready, self.on_request_body)?;
                    check::<OnResponseBodyParams2<'_>, BodyResults>(ready, self.on_response_body)
                }
            }
        };
        all().map_err(|e| IsolateError::Link {
            path: path.to_path_buf(),
            reason: format!("an export does not have the filter interface's type: {e:#}"),
        })
    }

    fn invalid(&self, reason: String) -> IsolateError {
        IsolateError::InvalidOutput {
            component: self.name.to_string(),
            reason,
        }
    }

    fn classify(&self, store: &Store<FilterState>, e: wasmtime::Error) -> IsolateError {
        self.limits.classify(&self.name, &store.data().limit, e)
    }
}

/// One request's instance: call its phases, then drop it: reset in place and kept for
/// another request when every call succeeded, else dropped (the slot goes back to the pool).
pub struct FilterInstance {
    filter: Arc<LoadedFilter>,
    _permit: Permit,
    /// In a `Mutex` only to make `FilterInstance` `Sync` (WASI's state is `Send` but not
    /// `Sync`, and a request's context is shared across awaits); it is only ever reached
    /// through `get_mut`, which takes no lock. `None` once dropped.
    store: std::sync::Mutex<Option<Store<FilterState>>>,
    instance: Instance,
    /// Taken when a call fails: an instance that trapped or ran out of time or memory is
    /// never served again.
    reset: Option<ResetPoint>,
}

impl Drop for FilterInstance {
    fn drop(&mut self) {
        let store = self
            .store
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let (Some(store), Some(point)) = (store, self.reset.take()) {
            self.filter.recycle(store, self.instance, point);
        }
    }
}

impl FilterInstance {
    /// Run `on-request`; `None` when the filter does not export it.
    pub fn on_request(
        &mut self,
        req: &Request<'_>,
    ) -> Option<Result<RequestDecision, IsolateError>> {
        let idx = self.filter.on_request?;
        let called = match self.filter.version {
            Version::V0_2 => {
                self.call::<OnRequestParams2, OnRequestResults>(idx, (heads().0,), req, None)
            }
            Version::V0_1 => with_request_record(req, |record| {
                self.call::<OnRequestParams<'_>, OnRequestResults>(idx, (record,), req, None)
            }),
        };
        let (action,) = match called {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        Some(action.validate().map_err(|r| self.filter.invalid(r)))
    }

    /// Run `on-response` on the response head `status` and `headers`; `None` when the filter
    /// does not export it.
    pub fn on_response(
        &mut self,
        req: &Request<'_>,
        status: u16,
        headers: Headers<'_>,
    ) -> Option<Result<Edits, IsolateError>> {
        let idx = self.filter.on_response?;
        let resp = Some((status, &headers));
        let called = match self.filter.version {
            Version::V0_2 => {
                self.call::<OnResponseParams2, OnResponseResults>(idx, heads(), req, resp)
            }
            Version::V0_1 => with_response_records(req, status, headers, |record, head| {
                self.call::<OnResponseParams<'_>, OnResponseResults>(idx, (record, head), req, resp)
            }),
        };
        let (edits,) = match called {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        Some(edits.validate().map_err(|r| self.filter.invalid(r)))
    }

    /// Run `on-request-body` on the whole request body; `None` when the filter does not
    /// export it. `Ok(Some(body))` replaces the body, `Ok(None)` keeps it.
    pub fn on_request_body(
        &mut self,
        req: &Request<'_>,
        body: &[u8],
    ) -> Option<Result<Option<Vec<u8>>, IsolateError>> {
        let idx = self.filter.on_request_body?;
        Some(match self.filter.version {
            Version::V0_2 => {
                self.call_body::<OnRequestBodyParams2<'_>>(idx, (heads().0, body), req, None)
            }
            Version::V0_1 => with_request_record(req, |record| {
                self.call_body::<OnRequestBodyParams<'_>>(idx, (record, body), req, None)
            }),
        })
    }

    /// Run `on-response-body` on the whole response body; like `on_request_body`.
    pub fn on_response_body(
        &mut self,
        req: &Request<'_>,
        status: u16,
        headers: Headers<'_>,
        body: &[u8],
    ) -> Option<Result<Option<Vec<u8>>, IsolateError>> {
        let idx = self.filter.on_response_body?;
        let resp = Some((status, &headers));
        Some(match self.filter.version {
            Version::V0_2 => {
                let (r, h) = heads();
                self.call_body::<OnResponseBodyParams2<'_>>(idx, (r, h, body), req, resp)
            }
            Version::V0_1 => with_response_records(req, status, headers, |record, head| {
                self.call_body::<OnResponseBodyParams<'_>>(idx, (record, head, body), req, resp)
            }),
        })
    }

    fn call_body<P>(
        &mut self,
        idx: ComponentExportIndex,
        params: P,
        req: &Request<'_>,
        resp: Option<(u16, &Headers<'_>)>,
    ) -> Result<Option<Vec<u8>>, IsolateError>
    where
        P: wasmtime::component::ComponentNamedList + wasmtime::component::Lower + Send + Sync,
    {
        match self.call::<P, BodyResults>(idx, params, req, resp)? {
            (BodyActionAbi::Keep,) => Ok(None),
            (BodyActionAbi::Replace(body),) => Ok(Some(body)),
        }
    }

    /// Call the export `idx` under the deadline and memory limit, with the heads lent to the
    /// guest for the call. `P` and `R` are the phase's types above, which `check_exports`
    /// checked the export against at load.
    fn call<P, R>(
        &mut self,
        idx: ComponentExportIndex,
        params: P,
        req: &Request<'_>,
        resp: Option<(u16, &Headers<'_>)>,
    ) -> Result<R, IsolateError>
    where
        P: wasmtime::component::ComponentNamedList + wasmtime::component::Lower + Send + Sync,
        R: wasmtime::component::ComponentNamedList + wasmtime::component::Lift + Send + Sync,
    {
        let filter = &self.filter;
        let store = self
            .store
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .expect("a filter instance's store lives until it is dropped");
        store.set_epoch_deadline(filter.limits.deadline_ticks);
        let func = self
            .instance
            .get_func(&mut *store, idx)
            .ok_or_else(|| filter.invalid(format!("no function exported at {idx:?}")))?;
        // SAFETY: `P` and `R` are the phase's types (see `call`'s callers), which its export
        // was checked against at load (`check_exports`) in an instance of the same component:
        // a filter's instances all come from its one `InstancePre`. (The check walks the
        // request's record type: a tenth of a trivial filter's call, saved on every call.)
        #[allow(unsafe_code)]
        let func = unsafe { wasmtime::component::TypedFunc::<P, R>::new_unchecked(func) };
        let result = lend(store, req, resp, |store| {
            filter
                .limits
                .placement
                .run(&filter.name, || func.call(&mut *store, params))
        });
        let failed = result.is_err();
        let result = result.map_err(|e| filter.classify(store, e));
        if failed {
            self.reset = None;
        }
        result
    }
}
