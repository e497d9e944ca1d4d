//! Config generations: everything the request path needs, compiled from one config.
//!
//! A request takes the current generation at its start and keeps it to its end, so a reload
//! swaps the generation atomically without touching requests already in flight.

use crate::frontend::tls::{CertError, CertStore, SniResolver};
use crate::ops::metrics::{ComponentMetrics, Metrics};
use crate::pipeline::plan::{KindMismatch, PlanInputs, RoutePlan};
use crate::pipeline::router::Router;
use crate::pipeline::upstream::{Pool, PoolError, Resolver};
use arc_swap::ArcSwap;
use breakwater_config::{ComponentKind, Config, ConfigError, ListenerKind};
use breakwater_isolate::{
    Filter, FilterSettings, Handler, HandlerSettings, IsolateError, Runtime, Warmup, WarmupRequest,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// One loaded config, compiled.
pub struct Generation {
    pub config: Config,
    /// Finds a request's route plan.
    pub router: Router<Arc<RoutePlan>>,
    /// The plan of requests no route takes (and of those refused before routing).
    pub unrouted: Arc<RoutePlan>,
    /// Indexed by `PoolId`.
    pub pools: Vec<Arc<Pool>>,
    /// Indexed by `ComponentId`, with each component's metric series.
    pub components: Vec<(LoadedComponent, Arc<ComponentMetrics>)>,
    /// Indexed by `ComponentId`: each component's file as it was loaded.
    stamps: Vec<FileStamp>,
    /// Certificates per HTTPS listener name.
    certs: HashMap<String, Arc<CertStore>>,
}

/// A component file's length and a hash of its bytes: a reload reuses a loaded component
/// whose config and file are unchanged. (Not the modification time: a file rewritten within
/// the file system's timestamp granularity would look unchanged.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    hash: u64,
}

impl FileStamp {
    fn of(bytes: &[u8]) -> Self {
        use std::hash::Hasher;
        let mut h = std::hash::DefaultHasher::new();
        h.write(bytes);
        Self {
            len: bytes.len() as u64,
            hash: h.finish(),
        }
    }
}

/// Whether two components' configs are the same but for where they are written.
fn same_component(a: &breakwater_config::Component, b: &breakwater_config::Component) -> bool {
    a == &breakwater_config::Component {
        at: a.at.clone(),
        ..b.clone()
    }
}

/// A loaded component, of the kind its config says.
#[derive(Clone)]
pub enum LoadedComponent {
    Filter(Filter),
    Handler(Handler),
}

impl LoadedComponent {
    /// Read `c`'s file: the bytes a load and the reload check share.
    pub fn read(c: &breakwater_config::Component) -> Result<Vec<u8>, LoadError> {
        std::fs::read(&c.path).map_err(|e| LoadError::Component {
            at: c.at.clone(),
            name: c.name.clone(),
            source: Box::new(IsolateError::Load {
                path: c.path.clone(),
                reason: e.to_string(),
            }),
        })
    }

    /// Compile (or take from the compile cache) and pre-link `c` as its kind from its file's
    /// `bytes`, with `prewarm` ready instances; `fleet` for a handler whose key-value store
    /// is the fleet's Redis.
    pub fn load(
        wasm: &Arc<Runtime>,
        c: &breakwater_config::Component,
        bytes: &[u8],
        prewarm: Option<usize>,
        fleet: Option<&breakwater_config::Fleet>,
    ) -> Result<Self, LoadError> {
        let key_value = match (c.key_value, fleet) {
            (breakwater_config::KeyValue::Redis, Some(fleet)) => {
                let store = crate::ops::fleet::RedisKv::new(fleet, &c.name).map_err(|e| {
                    LoadError::Component {
                        at: c.at.clone(),
                        name: c.name.clone(),
                        source: Box::new(IsolateError::Load {
                            path: c.path.clone(),
                            reason: format!("key-value store: {e}"),
                        }),
                    }
                })?;
                Some(breakwater_isolate::SharedKv(Arc::new(store)))
            }
            _ => None,
        };
        match c.kind {
            ComponentKind::Filter => wasm
                .load_filter_bytes(
                    &c.name,
                    &c.path,
                    bytes,
                    FilterSettings {
                        deadline: c.deadline,
                        max_memory_bytes: c.max_memory_bytes,
                        max_concurrency: c.max_concurrency,
                        prewarm,
                        config: c.config.iter().cloned().collect(),
                    },
                )
                .map(LoadedComponent::Filter),
            ComponentKind::Handler => wasm
                .load_handler_bytes(
                    &c.name,
                    &c.path,
                    bytes,
                    HandlerSettings {
                        deadline: c.deadline,
                        max_memory_bytes: c.max_memory_bytes,
                        max_concurrency: c.max_concurrency,
                        prewarm,
                        allowed_outbound_hosts: c.allowed_outbound_hosts.clone(),
                        env: c.config.iter().cloned().collect(),
                        warmup: match &c.warmup {
                            breakwater_config::Warmup::Auto => Warmup::Auto,
                            breakwater_config::Warmup::Off => Warmup::Off,
                            breakwater_config::Warmup::Request { method, path } => {
                                Warmup::Request(WarmupRequest {
                                    method: method.clone(),
                                    path: path.clone(),
                                })
                            }
                        },
                        key_value,
                        reset_in_place: c.reset_in_place,
                    },
                )
                .map(LoadedComponent::Handler),
        }
        .map_err(|source| LoadError::Component {
            at: c.at.clone(),
            name: c.name.clone(),
            source: Box::new(source),
        })
    }

    pub fn in_use(&self) -> usize {
        match self {
            LoadedComponent::Filter(f) => f.in_use(),
            LoadedComponent::Handler(h) => h.in_use(),
        }
    }

    /// Instances reset in place and kept for another request since load.
    pub fn resets(&self) -> u64 {
        match self {
            LoadedComponent::Filter(f) => f.resets(),
            LoadedComponent::Handler(h) => h.resets(),
        }
    }

    /// Instances made ahead and ready (none when scaled to zero).
    pub fn ready_now(&self) -> usize {
        match self {
            LoadedComponent::Filter(f) => f.ready_now(),
            LoadedComponent::Handler(h) => h.ready_now(),
        }
    }
}

/// Why a config could not be loaded or applied.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("{file}: {source}")]
    Pool {
        file: String,
        #[source]
        source: PoolError,
    },
    #[error("{0}: resolver: {1}")]
    Resolver(String, String),
    #[error("{at}: components.{name}: {source}")]
    Component {
        at: breakwater_config::Location,
        name: String,
        #[source]
        source: Box<IsolateError>,
    },
    #[error("wasm runtime: {0}")]
    Wasm(Box<IsolateError>),
    #[error(transparent)]
    Plan(#[from] KindMismatch),
}

/// Where the config comes from: a file (reloadable) or the embedded demo.
#[derive(Clone, Debug)]
pub enum Source {
    File(PathBuf),
    Embedded(String),
}

impl Source {
    pub fn parse(&self) -> Result<Config, ConfigError> {
        match self {
            Source::File(p) => breakwater_config::load(p),
            Source::Embedded(text) => {
                breakwater_config::parse(text, std::path::Path::new("<embedded demo config>"))
            }
        }
    }

    pub fn name(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Embedded(_) => "<embedded demo config>".into(),
        }
    }
}

impl Generation {
    /// Compile `config`: components loaded, certificates read and checked, pools built and
    /// resolved, every route compiled into its plan. Pools whose config did not change are
    /// carried over from `previous` with their health, and components whose config and file
    /// did not change with their instances (a reload that changes one component of many
    /// loads only that one).
    pub async fn build(
        config: Config,
        source: &Source,
        resolver: &Resolver,
        wasm: &Arc<Runtime>,
        metrics: &Arc<Metrics>,
        previous: Option<&Generation>,
    ) -> Result<Self, LoadError> {
        let mut components = Vec::with_capacity(config.components.len());
        let mut stamps = Vec::with_capacity(config.components.len());
        let before: HashMap<&str, usize> = previous
            .map(|g| {
                let names = g.config.components.iter().enumerate();
                names.map(|(i, c)| (c.name.as_str(), i)).collect()
            })
            .unwrap_or_default();
        for c in &config.components {
            // One read: the bytes are both the reload check's and the load's.
            let bytes = LoadedComponent::read(c)?;
            let stamp = FileStamp::of(&bytes);
            let kept = previous
                .zip(before.get(c.name.as_str()))
                .and_then(|(g, &i)| {
                    let unchanged =
                        g.stamps[i] == stamp && same_component(&g.config.components[i], c);
                    unchanged.then(|| g.components[i].clone())
                });
            components.push(match kept {
                Some(kept) => kept,
                None => {
                    let loaded =
                        LoadedComponent::load(wasm, c, &bytes, c.prewarm, config.fleet.as_ref())?;
                    metrics.components_loaded.inc();
                    let name: Arc<str> = c.name.as_str().into();
                    (loaded, Arc::new(ComponentMetrics::new(metrics, &name)))
                }
            });
            stamps.push(stamp);
        }
        let mut certs = HashMap::new();
        for l in &config.listeners {
            if let ListenerKind::Https { certificates, .. } = &l.kind {
                certs.insert(l.name.clone(), Arc::new(CertStore::load(certificates)?));
            }
        }
        let mut pools = Vec::with_capacity(config.pools.len());
        for p in &config.pools {
            let kept = previous.and_then(|g| g.pools.iter().find(|old| old.config == *p));
            let pool = match kept {
                Some(old) => old.clone(),
                None => Pool::new(p.clone(), resolver)
                    .await
                    .map_err(|e| LoadError::Pool {
                        file: source.name(),
                        source: e,
                    })?,
            };
            pools.push(pool);
        }
        let inputs = PlanInputs {
            config: &config,
            pools: &pools,
            components: &components,
            metrics,
        };
        let mut plans = Vec::with_capacity(config.routes.len());
        for route in &config.routes {
            plans.push(Arc::new(RoutePlan::build(route, &inputs)?));
        }
        Ok(Self {
            router: Router::new(config.routes.iter().zip(plans)),
            unrouted: Arc::new(RoutePlan::unrouted(metrics)),
            config,
            pools,
            components,
            stamps,
            certs,
        })
    }

    pub fn certs(&self, listener: &str) -> Option<Arc<CertStore>> {
        self.certs.get(listener).cloned()
    }
}

/// The process-wide state shared by every listener.
pub struct Shared {
    current: ArcSwap<Generation>,
    pub source: Source,
    pub resolver: Resolver,
    /// The Wasm runtime; its process-wide settings (`wasm:`) take a restart to change.
    pub wasm: Arc<Runtime>,
    pub metrics: Arc<crate::ops::metrics::Metrics>,
    pub access_log: crate::ops::access_log::AccessLogger,
    /// The runtime that runs background work (DNS refresh, health checks, reload).
    pub control: tokio::runtime::Handle,
    /// The SNI resolver of each HTTPS listener, updated on reload.
    sni: HashMap<String, Arc<SniResolver>>,
    /// The HTTP cache; its size (`cache:`) takes a restart to change, its contents survive
    /// reloads.
    pub cache: crate::pipeline::cache::EdgeCache,
    /// The fleet this node publishes purges to and reads them from (`fleet:`).
    pub fleet: Option<Arc<crate::ops::fleet::Fleet>>,
    /// This node's `CDN-Loop` entry, added to every forwarded request.
    pub cdn_loop: http::HeaderValue,
}

impl Shared {
    pub fn new(
        first: Generation,
        source: Source,
        resolver: Resolver,
        wasm: Arc<Runtime>,
        metrics: Arc<crate::ops::metrics::Metrics>,
        access_log: crate::ops::access_log::AccessLogger,
        control: tokio::runtime::Handle,
    ) -> Self {
        let sni = first
            .certs
            .iter()
            .map(|(name, store)| (name.clone(), Arc::new(SniResolver::new(store.clone()))))
            .collect();
        for p in &first.pools {
            p.start(&control, resolver.clone());
        }
        let cache = crate::pipeline::cache::EdgeCache::new(&first.config.cache);
        let fleet = first.config.fleet.as_ref().and_then(|settings| {
            crate::ops::fleet::Fleet::start(settings, &control, cache.storage, metrics.clone())
                .inspect_err(|e| tracing::error!(error = %e, "fleet: not started"))
                .ok()
        });
        sign_pingoras_errors(&first);
        Self {
            cache,
            fleet,
            cdn_loop: crate::pipeline::headers::cdn_loop_token(),
            current: ArcSwap::from_pointee(first),
            source,
            resolver,
            wasm,
            metrics,
            access_log,
            control,
            sni,
        }
    }

    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    pub fn sni_resolver(&self, listener: &str) -> Option<Arc<SniResolver>> {
        self.sni.get(listener).cloned()
    }

    /// Load the config again and swap it in; on error the running config stays.
    /// Reload, count it in the metrics and log the outcome (SIGHUP and `POST /reload`).
    pub async fn reload_reported(&self) -> Result<(), String> {
        let result = self.reload().await;
        let outcome = if result.is_ok() { "success" } else { "failure" };
        self.metrics
            .config_reloads
            .with_label_values(&[outcome])
            .inc();
        match result {
            Ok(()) => {
                self.metrics.config_loaded_at.set(crate::server::unix_now());
                tracing::info!(config = %self.source.name(), "config reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::error!("config reload refused, the running config stays: {e}");
                Err(e.to_string())
            }
        }
    }

    pub async fn reload(&self) -> Result<(), LoadError> {
        let config = self.source.parse()?;
        let old = self.current();
        if config.listeners != old.config.listeners {
            let changed: Vec<&str> = config
                .listeners
                .iter()
                .filter(|l| {
                    !old.config
                        .listeners
                        .iter()
                        .any(|o| o.name == l.name && o.address == l.address)
                })
                .map(|l| l.name.as_str())
                .collect();
            if !changed.is_empty() {
                tracing::warn!(listeners = ?changed, "listener addresses changed: they take effect after a restart or graceful upgrade");
            }
        }
        let next = Generation::build(
            config,
            &self.source,
            &self.resolver,
            &self.wasm,
            &self.metrics,
            Some(&old),
        )
        .await?;
        for p in &next.pools {
            if !old.pools.iter().any(|o| Arc::ptr_eq(o, p)) {
                p.start(&self.control, self.resolver.clone());
            }
        }
        for (name, resolver) in &self.sni {
            if let Some(store) = next.certs(name) {
                resolver.replace(store);
            }
        }
        sign_pingoras_errors(&next);
        self.current.store(Arc::new(next));
        Ok(())
    }
}

/// The errors pingora answers itself, before a request reaches Breakwater (one it cannot
/// parse, say), name the server as Breakwater's own answers do (`server.server_header`),
/// not as pingora.
fn sign_pingoras_errors(generation: &Generation) {
    let server_header = generation.config.server.server_header;
    let name = server_header.then_some(crate::pipeline::errors::SERVER_NAME);
    pingora::protocols::http::error_resp::set_error_server_name(name);
}
