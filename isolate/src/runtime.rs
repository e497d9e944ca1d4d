//! One wasmtime `Engine` per process: pooling allocator, copy-on-write memory images and
//! epoch interruption, with the epoch ticker thread owned by the [`Runtime`].

use crate::cache::CompiledCache;
use crate::error::IsolateError;
use crate::filter::FilterState;
use crate::filter::{Filter, FilterSettings};
use crate::handler::warm::Refusal;
use crate::handler::{Deferred, Handler, HandlerSettings, HandlerState, WarmupRequest};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

/// How long a component's `wizer-initialize` may run at load.
const INIT_DEADLINE: Duration = Duration::from_secs(10);

/// Process-wide limits of the runtime (per-filter limits are in [`FilterSettings`]).
#[derive(Clone, Debug)]
pub struct RuntimeSettings {
    /// Instances alive at once, across all components (pool slots). Default 1000.
    pub max_instances: u32,
    /// Largest linear memory one instance may have. Default 64 MiB.
    pub max_memory_bytes: usize,
    /// Largest table one instance may have. Default 20 000 elements.
    pub max_table_elements: usize,
    /// Granularity of call deadlines: a call is stopped within one tick after its deadline.
    /// Default 10 ms, as Spin's: each tick wakes the ticker thread, which preempts whatever
    /// serves requests on its core (at 1 ms it showed as 2-3% of a pinned node's CPU in a first
    /// profile; at 10 ms 0.2%, bench/results/profile-20261203-105152).
    pub epoch_tick: Duration,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Pooling (default) or on-demand instance allocation (for comparison in benchmarks).
    pub allocator: Allocator,
    /// A component whose calls cost more than this on average runs off the listeners' event
    /// loops (see `placement`). Default 100 µs; `None` keeps every guest on them.
    pub offload_above: Option<Duration>,
    /// Threads that run the handlers placed off the event loops. `None` (default): one per
    /// core.
    pub guest_threads: Option<usize>,
    /// How the guest threads give way to the listeners' event loops on a shared core.
    /// Default [`GuestPriority::Low`].
    pub guest_priority: GuestPriority,
    /// Bytes of linear memory a freed pool slot keeps resident and resets in place (only
    /// the pages a request dirtied are restored); the rest is returned to the kernel and
    /// faulted in again by the next instance. Default 16 MiB (an interpreter dirties about
    /// 6 MiB of its heap per request: bench/README.md, keep-resident).
    pub keep_resident_bytes: usize,
    /// A component with no request for this long drops its ready instances and filler
    /// thread (scale to zero; one without an explicit `prewarm` holds none until its first
    /// request anyway). Default 5 minutes; `None`: never.
    pub idle_unload: Option<Duration>,
}

/// Events of the runtime its host may count.
pub trait Observer: Send + Sync {
    /// `component` served a request for the first time since load or since it was idle for
    /// `idle_unload`; getting its instance took `took`.
    fn cold_start(&self, component: &str, took: Duration);
    /// A component was compiled (not found in `cache_dir`, or there is none).
    fn compiled(&self, took: Duration);
    /// A component's compiled code was loaded from `cache_dir`.
    fn cache_hit(&self);
}

/// How the guest threads share a core with the listeners' event loops, which serve every
/// other request of the node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GuestPriority {
    /// Linux's `SCHED_IDLE`: a guest thread runs on the CPU time that no other thread wants,
    /// and a waking event loop preempts it at once. A saturated interpreter route then costs
    /// cheap routes next to it almost nothing (bench/noisy-neighbour.sh); on a core busy
    /// with anything else the guests, and the host calls they wait on (a key-value lookup,
    /// an outbound request), get almost nothing, and meet their deadlines and timeouts.
    Idle,
    /// 10 nice levels down: about a tenth of a contended core, and an event loop that wakes
    /// may wait for the guest's time slice.
    #[default]
    Low,
}

/// How instance memory is allocated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Allocator {
    /// Pre-reserved slots, reset to the copy-on-write image on reuse: microseconds.
    #[default]
    Pooling,
    /// mmap per instance: several times slower; for benchmarks.
    OnDemand,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            max_memory_bytes: 64 << 20,
            max_table_elements: 20_000,
            epoch_tick: Duration::from_millis(10),
            cache_dir: None,
            allocator: Allocator::Pooling,
            offload_above: Some(Duration::from_micros(100)),
            guest_threads: None,
            guest_priority: GuestPriority::Low,
            keep_resident_bytes: 16 << 20,
            idle_unload: Some(Duration::from_secs(300)),
        }
    }
}

/// The Wasm runtime: build once, load components into it, share it.
///
/// Two engines with the same limits: filters and WASI 0.2 handlers run on one without the
/// component model's concurrency support (which makes every store dearer to create), WASI
/// 0.3 handlers on one with it. Each has its own pool of `max_instances` slots.
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) handler_engine: Engine,
    pub(crate) settings: RuntimeSettings,
    /// Live instances, counted so that the filler threads leave slots for requests.
    pub(crate) slots: Arc<crate::limits::Slots>,
    cache: Option<CompiledCache>,
    handler_cache: Option<CompiledCache>,
    /// Started on first use.
    guest_threads: std::sync::OnceLock<GuestThreads>,
    observer: std::sync::OnceLock<Arc<dyn Observer>>,
    /// The imports of filters, and of handlers on each engine, built on first use.
    filter_linker: std::sync::OnceLock<Result<Linker<FilterState>, String>>,
    handler_linkers: [std::sync::OnceLock<Result<Linker<HandlerState>, String>>; 2],
    /// Runs load-time instantiations (see [`Runtime::on_loader`]); started on first use.
    loader: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<LoaderJob>>>,
    _ticker: EpochTicker,
    /// What the ticker runs about once a second (see [`Runtime::sweep_while`]).
    sweeps: Sweeps,
}

/// Jobs the epoch ticker runs about once a second; each says whether to keep it.
type Sweeps = Arc<std::sync::Mutex<Vec<Box<dyn FnMut() -> bool + Send>>>>;

impl Runtime {
    pub fn new(settings: RuntimeSettings) -> Result<Arc<Self>, IsolateError> {
        let new_engine = |concurrency| {
            Engine::new(&engine_config(&settings, concurrency)).map_err(|e| IsolateError::Load {
                path: PathBuf::from("<engine>"),
                reason: e.to_string(),
            })
        };
        let engine = new_engine(false)?;
        let handler_engine = new_engine(true)?;
        let cache_for = |engine: &Engine| {
            settings
                .cache_dir
                .as_ref()
                .map(|d| CompiledCache::new(d, engine))
        };
        let (cache, handler_cache) = (cache_for(&engine), cache_for(&handler_engine));
        if let (Some(dir), Some(c), Some(h)) = (&settings.cache_dir, &cache, &handler_cache) {
            let pruned = crate::cache::prune(dir, &[c, h], std::time::SystemTime::now());
            if pruned.files > 0 {
                tracing::info!(dir = %dir.display(), files = pruned.files, bytes = pruned.bytes,
                    "removed compiled components no engine of this build can load");
            }
        }
        let sweeps = Sweeps::default();
        let ticker = EpochTicker::start(
            vec![engine.clone(), handler_engine.clone()],
            settings.epoch_tick,
            sweeps.clone(),
        );
        Ok(Arc::new(Self {
            engine,
            handler_engine,
            slots: crate::limits::Slots::new(settings.max_instances),
            settings,
            cache,
            handler_cache,
            guest_threads: std::sync::OnceLock::new(),
            observer: std::sync::OnceLock::new(),
            filter_linker: std::sync::OnceLock::new(),
            handler_linkers: Default::default(),
            loader: std::sync::OnceLock::new(),
            _ticker: ticker,
            sweeps,
        }))
    }

    /// The linker of filter components (shared by all).
    pub(crate) fn filter_linker(&self, path: &Path) -> Result<&Linker<FilterState>, IsolateError> {
        self.filter_linker
            .get_or_init(|| {
                crate::filter::linker(&self.engine, path).map_err(|e| match e {
                    IsolateError::Link { reason, .. } => reason,
                    other => other.to_string(),
                })
            })
            .as_ref()
            .map_err(|reason| IsolateError::Link {
                path: path.to_path_buf(),
                reason: reason.clone(),
            })
    }

    /// The linker of handlers on the engine with (`concurrent`) or without concurrency
    /// support (shared by all).
    pub(crate) fn handler_linker(
        &self,
        concurrent: bool,
    ) -> wasmtime::Result<&Linker<HandlerState>> {
        let engine = if concurrent {
            &self.handler_engine
        } else {
            &self.engine
        };
        self.handler_linkers[usize::from(concurrent)]
            .get_or_init(|| {
                crate::handler::base_linker(engine, concurrent).map_err(|e| format!("{e:#}"))
            })
            .as_ref()
            .map_err(|e| wasmtime::Error::msg(e.clone()))
    }

    /// Run `job` on the loader thread, with its current-thread tokio runtime, and wait for its
    /// result. Loading may itself run within a tokio runtime, which must not be blocked on
    /// from within; one thread for every load, rather than one per component, because a tokio
    /// runtime (its epoll instance, timers) costs more than instantiating a small component.
    /// `job` must not call `on_loader` itself.
    pub(crate) fn on_loader<R: Send + 'static>(
        &self,
        job: impl FnOnce(&tokio::runtime::Runtime) -> R + Send + 'static,
    ) -> R {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let run: LoaderJob = Box::new(move |rt| {
            let _ = tx.send(job(rt));
        });
        let sender = self.loader.get_or_init(|| {
            let (jobs, incoming) = std::sync::mpsc::channel::<LoaderJob>();
            std::thread::Builder::new()
                .name("wasm-loader".into())
                .spawn(move || {
                    let rt = crate::handler::current_thread_runtime();
                    // Ends when the runtime (the sender) is dropped.
                    while let Ok(job) = incoming.recv() {
                        // A job that panics fails its caller (its result never comes), not
                        // the loads after it.
                        let job = std::panic::AssertUnwindSafe(|| job(&rt));
                        let _ = std::panic::catch_unwind(job);
                    }
                })
                .expect("spawn the wasm loader thread");
            std::sync::Mutex::new(jobs)
        });
        sender
            .lock()
            .expect("loader lock")
            .send(run)
            .expect("the loader thread runs while the runtime lives");
        rx.recv()
            .expect("the loader thread runs every job to its end")
    }

    /// Where the runtime reports its events (set once; later calls are ignored).
    pub fn observe(&self, observer: Arc<dyn Observer>) {
        let _ = self.observer.set(observer);
    }

    /// Run `sweep` about once a second on the ticker thread, for as long as it returns true
    /// (the ready pools of components drop their instances when idle: see
    /// [`crate::pool::ReadyPool::sweep`]).
    pub(crate) fn sweep_while(&self, sweep: impl FnMut() -> bool + Send + 'static) {
        self.sweeps
            .lock()
            .expect("sweeps lock")
            .push(Box::new(sweep));
    }

    /// Report a cold start to the observer, if any.
    pub(crate) fn cold_start(&self, component: &str, took: Duration) {
        if let Some(o) = self.observer.get() {
            o.cold_start(component, took);
        }
    }

    /// Compile (or load from the cache) and pre-link a filter component from a file.
    pub fn load_filter(
        self: &Arc<Self>,
        name: &str,
        path: &Path,
        settings: FilterSettings,
    ) -> Result<Filter, IsolateError> {
        let bytes = std::fs::read(path).map_err(|e| IsolateError::Load {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        self.load_filter_bytes(name, path, &bytes, settings)
    }

    /// Like [`Runtime::load_filter`], from bytes (`path` only names it in errors).
    pub fn load_filter_bytes(
        self: &Arc<Self>,
        name: &str,
        path: &Path,
        bytes: &[u8],
        settings: FilterSettings,
    ) -> Result<Filter, IsolateError> {
        let proven = format!("filter-mem{}", settings.max_memory_bytes);
        let artifact = self.cache.as_ref().map(|c| c.path_for(bytes));
        if let Some(artifact) = &artifact {
            if let Some(filter) = self.deferrable_filter(name, path, artifact, &proven, &settings) {
                // As for handlers: the linker is built once per node now, not by a request.
                let _ = self.filter_linker(path);
                return Ok(filter);
            }
        }
        let mut component = self.compile(&self.engine, &self.cache, path, bytes)?;
        let init = crate::init::wants_init(&component);
        if init {
            let linker = self.filter_linker(path)?;
            let store = crate::filter::init_store(self, name, &settings, INIT_DEADLINE);
            let snapshot = crate::init::snapshot(path, bytes, linker, store)?;
            component = self.compile(&self.engine, &self.cache, path, &snapshot)?;
        }
        let filter = Filter::new(self.clone(), name, path, component, settings)?;
        if let (Some(artifact), false, 0) = (&artifact, init, filter.prewarm()) {
            // Proved: its exported phases go in the marker, for a deferred load next time. Not
            // deferred: a filter with an init function (its snapshot is another artifact), and
            // one dear to instantiate (an interpreter, made ahead by a filler thread), whose
            // load, timing included, would take milliseconds inline on its first request.
            let phases = crate::filter::Phases {
                on_request: filter.has_on_request(),
                on_response: filter.has_on_response(),
                on_request_body: filter.has_on_request_body(),
                on_response_body: filter.has_on_response_body(),
            };
            crate::cache::mark_proven_with(artifact, &proven, &phases.encode());
        }
        Ok(filter)
    }

    /// A filter whose compiled form is in the cache directory, proved by an earlier load
    /// with the same memory limit (its marker holds the phases it exports), and that has no
    /// explicit `prewarm`: loaded by its first request.
    fn deferrable_filter(
        self: &Arc<Self>,
        name: &str,
        path: &Path,
        artifact: &Path,
        proven: &str,
        settings: &FilterSettings,
    ) -> Option<Filter> {
        if settings.prewarm.is_some_and(|n| n > 0) || !artifact.exists() {
            return None;
        }
        let marker = std::fs::read_to_string(crate::cache::proven_marker(artifact, proven)).ok()?;
        let phases = crate::filter::Phases::decode(&marker)?;
        let deferred = crate::filter::DeferredFilter {
            runtime: self.clone(),
            artifact: artifact.to_path_buf(),
            settings: settings.clone(),
            loading: std::sync::Mutex::new(()),
        };
        Some(Filter::deferred(name, path, phases, deferred))
    }

    /// Load a deferred filter (see [`Runtime::deferrable_filter`]); blocks.
    pub(crate) fn load_deferred_filter(
        self: &Arc<Self>,
        name: &str,
        path: &Path,
        deferred: &crate::filter::DeferredFilter,
    ) -> Result<Arc<crate::filter::LoadedFilter>, IsolateError> {
        let component = self.load_proven(&self.engine, &deferred.artifact, path)?;
        crate::filter::LoadedFilter::build(
            self.clone(),
            name,
            path,
            component,
            deferred.settings.clone(),
        )
    }

    /// Compile (or load from the cache) and pre-link a `wasi:http` handler component.
    pub fn load_handler(
        self: &Arc<Self>,
        name: &str,
        path: &Path,
        settings: HandlerSettings,
    ) -> Result<Handler, IsolateError> {
        let bytes = std::fs::read(path).map_err(|e| IsolateError::Load {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        self.load_handler_bytes(name, path, &bytes, settings)
    }

    /// Like [`Runtime::load_handler`], from bytes (`path` only names it in errors).
    pub fn load_handler_bytes(
        self: &Arc<Self>,
        name: &str,
        path: &Path,
        bytes: &[u8],
        settings: HandlerSettings,
    ) -> Result<Handler, IsolateError> {
        let names = crate::imports::top_level_names(bytes).unwrap_or_default();
        let mapped = crate::imports::map_wasi_release_candidates(bytes, &names);
        // A WASI 0.2 handler runs on the engine without concurrency support (cheaper stores)
        // unless it uses the async ABI anyway; everything else on the handler engine.
        let p2 = crate::imports::exports_wasi_http_0_2(&names);
        let bytes = mapped.as_deref().unwrap_or(bytes);
        if let Some(request) = settings.warmup.request_for(bytes.len()) {
            let started = std::time::Instant::now();
            match self.warm_handler(name, path, bytes, p2, &settings, &request) {
                Ok(handler) => {
                    tracing::info!(handler = name, warmup = %format!("{} {}", request.method, request.path),
                        took = ?started.elapsed(), "instances start from a warm snapshot");
                    return Ok(handler);
                }
                Err(reason) => {
                    tracing::warn!(handler = name, %reason, "no warm snapshot: instances start as built")
                }
            }
        }
        if let Some(deferred) = self.deferrable_handler(bytes, p2, &settings) {
            // The linker (hundreds of definitions, milliseconds to build) is built now, once
            // per node, not by the first request; an error here comes again on that request.
            let _ = self.handler_linker(deferred.concurrent);
            return Ok(Handler::deferred(name, path, deferred));
        }
        let handler = self.handler_from(name, path, bytes, p2, settings.clone())?;
        // Proved: it pre-linked and instantiated. The next load may defer it.
        if let Ok(inner) = handler.loaded() {
            let concurrent = Engine::same(inner.engine(), &self.handler_engine);
            if let Some(cache) = self.cache_of(concurrent) {
                crate::cache::mark_proven(&cache.path_for(bytes), &proven_as(&settings));
            }
        }
        Ok(handler)
    }

    fn cache_of(&self, concurrent: bool) -> Option<&CompiledCache> {
        match concurrent {
            true => self.handler_cache.as_ref(),
            false => self.cache.as_ref(),
        }
    }

    /// A handler whose compiled form is in the cache directory and was proved by an earlier
    /// load with the same memory limit, and that has no explicit `prewarm`, is not loaded now
    /// but on its first request: its load
    /// costs reading and hashing its file, and holds no compiled code, no pre-linked
    /// component and no instance until then.
    fn deferrable_handler(
        self: &Arc<Self>,
        bytes: &[u8],
        p2: bool,
        settings: &HandlerSettings,
    ) -> Option<Deferred> {
        if settings.prewarm.is_some_and(|n| n > 0) {
            // An explicit `prewarm` keeps its instances from load.
            return None;
        }
        let proven = proven_as(settings);
        // A WASI 0.2 handler runs on the plain engine when it compiles for it.
        let engines: &[bool] = if p2 { &[false, true] } else { &[true] };
        engines.iter().find_map(|&concurrent| {
            let artifact = self.cache_of(concurrent)?.path_for(bytes);
            let marked = crate::cache::proven_marker(&artifact, &proven).exists();
            (marked && artifact.exists()).then(|| {
                self.prepare_deferred(concurrent);
                Deferred {
                    runtime: self.clone(),
                    artifact,
                    concurrent,
                    settings: settings.clone(),
                    loading: tokio::sync::Mutex::new(()),
                }
            })
        })
    }

    /// Build now, once, what the first cold start of any deferred handler would otherwise
    /// build on its request: the linker of its engine (WASI's hundreds of host functions) and
    /// the loader thread with its runtime.
    fn prepare_deferred(&self, concurrent: bool) {
        if let Err(e) = self.handler_linker(concurrent) {
            // The first load reports it, as it did before.
            tracing::debug!("handler linker not built ahead: {e:#}");
        }
        self.on_loader(|_| ());
    }

    /// Load a deferred handler (see [`Runtime::deferrable_handler`]); blocks.
    pub(crate) fn load_deferred_handler(
        self: &Arc<Self>,
        name: &str,
        path: &Path,
        deferred: &Deferred,
    ) -> Result<Handler, IsolateError> {
        let engine = match deferred.concurrent {
            true => &self.handler_engine,
            false => &self.engine,
        };
        let component = self.load_proven(engine, &deferred.artifact, path)?;
        Handler::new(
            self.clone(),
            name,
            path,
            component,
            deferred.settings.clone(),
        )
    }

    /// A deferred component's compiled code, mapped from the cache (counted as a cache hit).
    fn load_proven(
        &self,
        engine: &Engine,
        artifact: &Path,
        path: &Path,
    ) -> Result<wasmtime::component::Component, IsolateError> {
        let component =
            crate::cache::load_artifact(engine, artifact).map_err(|reason| IsolateError::Load {
                path: path.to_path_buf(),
                reason,
            })?;
        if let Some(o) = self.observer.get() {
            o.cache_hit();
        }
        Ok(component)
    }

    fn handler_from(
        self: &Arc<Self>,
        name: &str,
        path: &Path,
        bytes: &[u8],
        p2: bool,
        settings: HandlerSettings,
    ) -> Result<Handler, IsolateError> {
        let component = self.compile_handler(path, bytes, p2)?;
        Handler::new(self.clone(), name, path, component, settings)
    }

    fn compile_handler(
        &self,
        path: &Path,
        bytes: &[u8],
        p2: bool,
    ) -> Result<wasmtime::component::Component, IsolateError> {
        let plain = p2
            .then(|| self.compile(&self.engine, &self.cache, path, bytes).ok())
            .flatten();
        match plain {
            Some(c) => Ok(c),
            None => self.compile(&self.handler_engine, &self.handler_cache, path, bytes),
        }
    }

    /// A handler whose instances start from a snapshot taken after `request` (see
    /// `handler::warm`), from the cache directory when it was taken before.
    fn warm_handler(
        self: &Arc<Self>,
        name: &str,
        path: &Path,
        bytes: &[u8],
        p2: bool,
        settings: &HandlerSettings,
        request: &WarmupRequest,
    ) -> Result<Handler, String> {
        let mut env: Vec<_> = settings.env.clone().into_iter().collect();
        env.sort();
        let key = format!("warm-{}", request.cache_key(bytes, &env));
        let dir = self.settings.cache_dir.as_deref();
        // A guest that keeps host resources keeps them on every load: that refusal is kept
        // beside the snapshots, so that later loads do not instrument and warm it again.
        let refused = dir.map(|d| d.join(format!("{key}.refused")));
        if let Some(reason) = refused
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
        {
            return Err(reason);
        }
        let cached = dir.and_then(|d| crate::cache::read_derived(d, &key));
        let snapshot = match cached {
            Some(snapshot) => snapshot,
            None => {
                let (wizer, cx, instrumented) = crate::handler::warm::instrument(bytes)?;
                let warmup = crate::handler::warm::warmup_settings(settings);
                let handler = self
                    .handler_from(name, path, &instrumented, p2, warmup)
                    .map_err(|e| e.to_string())?;
                let taken = on_a_runtime(crate::handler::warm::snapshot(
                    &handler, &wizer, &cx, request,
                ));
                let snapshot = match taken {
                    Ok(snapshot) => snapshot,
                    Err(refusal) => {
                        let reason = refusal.to_string();
                        if let (Refusal::HoldsResources, Some(f)) = (refusal, &refused) {
                            let _ = std::fs::write(f, &reason);
                        }
                        return Err(reason);
                    }
                };
                if let Some(d) = dir {
                    crate::cache::write_derived(d, &key, &snapshot);
                }
                snapshot
            }
        };
        // The proof runs with the warm-up's settings (its own key-value store, no outgoing
        // HTTP), so that it changes nothing the handler's requests see.
        let component = self
            .compile_handler(path, &snapshot, p2)
            .map_err(|e| e.to_string())?;
        let warmup = crate::handler::warm::warmup_settings(settings);
        let proof = Handler::new(self.clone(), name, path, component.clone(), warmup)
            .map_err(|e| e.to_string())?;
        on_a_runtime(crate::handler::warm::prove(&proof, request))?;
        Handler::new(self.clone(), name, path, component, settings.clone())
            .map_err(|e| e.to_string())
    }

    /// The runtime of the guest threads, which run handlers placed off the listeners' event
    /// loops; started on first use.
    pub(crate) fn guest_threads(&self) -> &tokio::runtime::Handle {
        self.guest_threads
            .get_or_init(|| {
                GuestThreads::start(self.settings.guest_threads, self.settings.guest_priority)
            })
            .0
            .as_ref()
            .expect("present until drop")
            .handle()
    }

    fn compile(
        &self,
        engine: &Engine,
        cache: &Option<CompiledCache>,
        path: &Path,
        bytes: &[u8],
    ) -> Result<wasmtime::component::Component, IsolateError> {
        let started = std::time::Instant::now();
        let compiled = match cache {
            Some(cache) => cache.load_or_compile(engine, bytes),
            None => wasmtime::component::Component::new(engine, bytes)
                .map(|c| (c, false))
                .map_err(|e| e.to_string()),
        };
        if let (Some(o), Ok((_, hit))) = (self.observer.get(), &compiled) {
            match hit {
                true => o.cache_hit(),
                false => o.compiled(started.elapsed()),
            }
        }
        compiled
            .map(|(c, _)| c)
            .map_err(|reason| IsolateError::Load {
                path: path.to_path_buf(),
                reason,
            })
    }
}

/// What a handler's load proof depends on, for its marker in the cache: its kind and memory
/// limit (an instance whose initial memory is over it does not instantiate).
fn proven_as(settings: &HandlerSettings) -> String {
    format!("handler-mem{}", settings.max_memory_bytes)
}

type LoaderJob = Box<dyn FnOnce(&tokio::runtime::Runtime) + Send>;

/// Run `f` to its end on a current-thread runtime of a thread of its own (loading may itself
/// run on a tokio runtime, which must not be blocked from within).
fn on_a_runtime<F>(f: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| crate::handler::current_thread_runtime().block_on(f))
            .join()
            .expect("load thread")
    })
}

/// Every setting has its reason.
fn engine_config(s: &RuntimeSettings, concurrency: bool) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    // One slot per live instance; a component instance of a filter holds one core instance
    // of the guest plus adapter/shim instances, hence the factor.
    pool.total_component_instances(s.max_instances);
    pool.total_core_instances(s.max_instances * 8);
    pool.total_memories(s.max_instances * 2);
    pool.total_tables(s.max_instances * 4);
    // Real guests link several core modules into one component: componentize-py links 14
    // (libc, libpython, ...) plus WASI adapter and shim instances, each with a table; C and
    // JS guests need one module plus the adapter. These per-component caps fit the largest.
    pool.max_memories_per_component(4);
    pool.max_tables_per_component(32);
    pool.max_core_instances_per_component(64);
    // The memory limit per instance is enforced by the pool itself (growth fails past it).
    pool.max_memory_size(s.max_memory_bytes);
    pool.table_elements(s.max_table_elements);
    // A freed slot keeps its first `keep_resident_bytes` resident and resets it in place (with
    // `pagemap_scan`, only the pages the request dirtied are restored; a guest's stack and hot
    // data are then not faulted in again by the next request); the rest is madvised away,
    // which restores the copy-on-write image.
    pool.linear_memory_keep_resident(s.keep_resident_bytes);
    pool.table_keep_resident(64 << 10);
    pool.pagemap_scan(wasmtime::Enabled::Auto);
    // Component metadata of real guests (componentize-py) is large.
    pool.max_component_instance_size(1 << 20);
    pool.max_core_instance_size(1 << 20);

    let mut c = Config::new();
    c.wasm_component_model(true);
    // WASI 0.3 (async functions, streams, futures) for handlers; off for filters.
    c.concurrency_support(concurrency);
    c.wasm_component_model_async(concurrency);
    // Deadlines: a ticker bumps the epoch; a call traps once its deadline in ticks passes.
    // Much cheaper than fuel, which instruments every basic block.
    c.epoch_interruption(true);
    // Instances start from a copy-on-write image of their initial memory: instantiation does
    // not copy data segments, and reuse of a slot restores it with madvise.
    c.memory_init_cow(true);
    c.cranelift_opt_level(OptLevel::Speed);
    // Deep recursion in a guest traps instead of using the host's stack.
    c.max_wasm_stack(512 << 10);
    match s.allocator {
        Allocator::Pooling => c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool)),
        Allocator::OnDemand => c.allocation_strategy(InstanceAllocationStrategy::OnDemand),
    };
    c
}

/// The runtime of the guest threads. Dropped without waiting for its tasks (a runtime may be
/// dropped from async code, where waiting would panic): what still runs there is cancelled.
struct GuestThreads(Option<tokio::runtime::Runtime>);

impl GuestThreads {
    fn start(threads: Option<usize>, priority: GuestPriority) -> Self {
        let threads =
            threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("wasm-guest")
            .on_thread_start(move || crate::sched::yield_to_event_loops(priority))
            .enable_all()
            .build()
            .expect("start the guest threads");
        Self(Some(runtime))
    }
}

impl Drop for GuestThreads {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A thread that increments the engines' epoch every tick; stopped and joined on drop.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engines: Vec<Engine>, tick: Duration, sweeps: Sweeps) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let per_sweep = (Duration::from_secs(1).as_nanos() / tick.as_nanos().max(1)).max(1);
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                let mut ticks = 0u128;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    for engine in &engines {
                        engine.increment_epoch();
                    }
                    ticks += 1;
                    if ticks.is_multiple_of(per_sweep) {
                        sweeps
                            .lock()
                            .expect("sweeps lock")
                            .retain_mut(|sweep| sweep());
                    }
                }
            })
            .expect("spawn the epoch ticker");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Field `n` (1-based, as proc(5) numbers them) of the calling thread's
    /// `/proc/thread-self/stat`; the fields after the command name, which may hold spaces.
    fn stat_field(n: usize) -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(n - 3).unwrap().parse().unwrap()
    }

    /// The calling thread's nice value (field 19) and scheduling policy (field 41: 0
    /// `SCHED_OTHER`, 5 `SCHED_IDLE`).
    fn nice() -> i64 {
        stat_field(19)
    }

    fn policy() -> i64 {
        stat_field(41)
    }

    /// (nice, policy) of a guest thread of a runtime with `priority`.
    fn guest_thread_scheduling(priority: GuestPriority) -> (i64, i64) {
        let runtime = Runtime::new(RuntimeSettings {
            max_instances: 4,
            guest_priority: priority,
            ..RuntimeSettings::default()
        })
        .unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                current_thread()
                    .block_on(runtime.guest_threads().spawn(async { (nice(), policy()) }))
                    .unwrap()
            })
            .join()
            .unwrap()
        })
    }

    #[test]
    fn a_start_removes_only_the_compiled_code_no_engine_of_this_build_can_load() {
        let dir = tempfile::tempdir().unwrap();
        let settings = RuntimeSettings {
            max_instances: 4,
            cache_dir: Some(dir.path().to_path_buf()),
            ..RuntimeSettings::default()
        };
        let runtime = Runtime::new(settings.clone()).unwrap();
        let name_of = |p: PathBuf| p.file_name().unwrap().to_str().unwrap().to_owned();
        let filter_ours = name_of(runtime.cache.as_ref().unwrap().path_for(b"f"));
        let handler_ours = name_of(runtime.handler_cache.as_ref().unwrap().path_for(b"h"));
        drop(runtime);
        let now = std::time::SystemTime::now();
        let two_days_ago = now - Duration::from_secs(2 * 24 * 3600);
        let files = [
            // (name, written at, kept)
            (filter_ours, two_days_ago, true),
            (handler_ours.clone(), two_days_ago, true),
            (
                format!("{handler_ours}.handler-mem1.proven"),
                two_days_ago,
                true,
            ),
            ("aa-00000000000000ff.cwasm".into(), two_days_ago, false),
            (
                "aa-00000000000000ff.cwasm.filter.proven".into(),
                two_days_ago,
                false,
            ),
            // Another build's, but recent: an upgrade may still roll back to it.
            ("bb-00000000000000ff.cwasm".into(), now, true),
            ("cc-00000000000000ff.tmp41".into(), two_days_ago, false),
            ("dd-00000000000000ff.tmp42".into(), now, true),
            ("warm-ee.wasm".into(), two_days_ago, true),
            ("warm-ee.refused".into(), two_days_ago, true),
        ];
        for (name, at, _) in &files {
            let f = std::fs::File::create(dir.path().join(name)).unwrap();
            f.set_modified(*at).unwrap();
        }
        Runtime::new(settings).unwrap();
        for (name, _, kept) in &files {
            assert_eq!(dir.path().join(name).exists(), *kept, "{name}");
        }
    }

    #[test]
    fn guest_threads_give_way_to_the_event_loops() {
        let (here_nice, here_policy) = (nice(), policy());
        assert_eq!(
            guest_thread_scheduling(GuestPriority::Idle),
            (here_nice, libc::SCHED_IDLE as i64),
            "idle: SCHED_IDLE"
        );
        assert_eq!(
            guest_thread_scheduling(GuestPriority::default()),
            ((here_nice + 10).min(19), here_policy),
            "the default, low: 10 nice levels down"
        );
    }

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }
}
