//! Handler components, served with wasmtime-wasi and wasmtime-wasi-http:
//!
//! * WASI 0.2: `wasi:http/incoming-handler@0.2.x` (the `wasi:http/proxy` world, as
//!   `wasmtime serve`, componentize-py, componentize-js and wit-bindgen produce);
//! * WASI 0.3: `wasi:http/handler@0.3.x` (the `wasi:http/service` world, as the Spin SDK 5
//!   produces, with the Spin interfaces of [`crate::spin`]; release candidates of WASI 0.3
//!   and imports the host does not have are handled by [`crate::imports`]).
//!
//! One fresh instance per request, taken from a pool of instances made ahead of need; its
//! slot is reset to the copy-on-write image when the request ends.
//!
//! A handler gets no filesystem, no sockets and no outgoing HTTP, except to the hosts its
//! settings allow. Its config map becomes its environment, as `wasmtime serve --env` does,
//! and its Spin variables.

use crate::error::IsolateError;
use crate::limits::{classify, deadline_error, Gate, MemoryLimit, Permit};
use crate::pool::ReadyPool;
use crate::runtime::Runtime;
use crate::spin::{SpinCtx, SpinView};
use bytes::Bytes;
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::Store;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p3::bindings::{Service, ServicePre};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

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
        }
    }
}

/// Store data of one handler instance.
struct HandlerState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: OutboundPolicy,
    limit: MemoryLimit,
    spin: SpinCtx,
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

/// Outgoing HTTP: only to the allowed hosts, through wasmtime-wasi-http's client.
struct OutboundPolicy {
    allowed: Arc<[String]>,
}

impl OutboundPolicy {
    fn allows(&self, authority: Option<&http::uri::Authority>) -> bool {
        let Some(authority) = authority else {
            return false;
        };
        self.allowed
            .iter()
            .any(|a| a.eq_ignore_ascii_case(authority.as_str()) || a == authority.host())
    }
}

type SendFuture = Box<
    dyn std::future::Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<wasmtime_wasi_http::WasiBody>,
                Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        if !self.allows(request.uri().authority()) {
            tracing::debug!(uri = %request.uri(), "outgoing HTTP request denied");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn std::future::Future<Output = _> + Send>,
            ))
        })
    }
}

/// The two generations of `wasi:http` a handler may export.
enum Pre {
    P2(ProxyPre<HandlerState>),
    P3(ServicePre<HandlerState>),
}

enum Exports {
    P2(Proxy),
    P3(Service),
}

struct Ready {
    store: Store<HandlerState>,
    exports: Exports,
}

struct Inner {
    _runtime: Arc<Runtime>,
    name: Arc<str>,
    path: PathBuf,
    pre: Pre,
    spin: SpinCtx,
    settings: HandlerSettings,
    env: Vec<(String, String)>,
    allowed: Arc<[String]>,
    deadline_ticks: u64,
    gate: Gate,
    ready: ReadyPool<Ready>,
}

/// A loaded handler component. Cheap to clone; shared by all requests of its routes.
#[derive(Clone)]
pub struct Handler {
    inner: Arc<Inner>,
}

impl Handler {
    pub(crate) fn new(
        runtime: Arc<Runtime>,
        name: &str,
        path: &Path,
        component: Component,
        mut settings: HandlerSettings,
    ) -> Result<Self, IsolateError> {
        let link_err = |e: wasmtime::Error| IsolateError::Link {
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        };
        let mut linker: Linker<HandlerState> = Linker::new(component.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link_err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(link_err)?;
        let concurrent = wasmtime::Engine::same(component.engine(), &runtime.handler_engine);
        if concurrent {
            wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(link_err)?;
            wasmtime_wasi_http::p3::add_to_linker(&mut linker).map_err(link_err)?;
        }
        crate::spin::add_to_linker(&mut linker, concurrent).map_err(link_err)?;
        let (pre, stubbed) =
            crate::imports::instantiate_pre_with_stubs(&linker, &component).map_err(link_err)?;
        if !stubbed.is_empty() {
            tracing::info!(
                handler = name,
                imports = %stubbed.join(", "),
                "imports not provided by this host: they trap when called"
            );
        }
        let pre = match ProxyPre::new(pre.clone()) {
            Ok(p2) => Pre::P2(p2),
            Err(e2) => Pre::P3(ServicePre::new(pre).map_err(|e3| IsolateError::Load {
                path: path.to_path_buf(),
                reason: format!(
                    "not a wasi:http handler (export wasi:http/incoming-handler@0.2.x or \
                     wasi:http/handler@0.3.x): {e2:#}; {e3:#}"
                ),
            })?),
        };
        let spin = SpinCtx::new(settings.env.clone());
        let tick = runtime.settings.epoch_tick.as_nanos().max(1);
        let deadline_ticks = settings.deadline.as_nanos().div_ceil(tick) as u64 + 1;
        settings.max_memory_bytes = settings
            .max_memory_bytes
            .min(runtime.settings.max_memory_bytes);
        let mut env: Vec<(String, String)> =
            std::mem::take(&mut settings.env).into_iter().collect();
        env.sort();
        let allowed: Arc<[String]> = std::mem::take(&mut settings.allowed_outbound_hosts).into();
        let inner = Arc::new(Inner {
            _runtime: runtime,
            name: name.into(),
            path: path.to_path_buf(),
            pre,
            spin,
            gate: Gate::new(settings.max_concurrency),
            settings,
            env,
            allowed,
            deadline_ticks,
            ready: ReadyPool::default(),
        });
        // Prove it instantiates now (a trapping initialiser is a load error); the second
        // instantiation, warm, tells what one costs.
        let (first, second, cost) = block_on(async {
            let first = inner.instantiate().await?;
            let started = std::time::Instant::now();
            let second = inner.instantiate().await?;
            Ok::<_, IsolateError>((first, second, started.elapsed()))
        })?;
        if inner
            .ready
            .start([first, second], inner.settings.prewarm, cost)
            > 0
        {
            ReadyPool::spawn_filler(
                &inner,
                format!("wasm-fill-{}", inner.name),
                |i: &Inner| &i.ready,
                || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("build a current-thread runtime");
                    move |i: &Inner| rt.block_on(i.instantiate())
                },
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

    /// Requests this handler is serving right now.
    pub fn in_use(&self) -> usize {
        self.inner.gate.in_use()
    }

    /// Serve one request. Resolves when the handler has set its response head; the body then
    /// streams from the guest, which keeps running until the body ends or the deadline.
    /// Must be called within a tokio runtime.
    pub async fn handle(
        &self,
        request: http::Request<RequestBody>,
        https: bool,
    ) -> Result<http::Response<ResponseBody>, IsolateError> {
        let inner = &self.inner;
        // Held by the request's task: the slot is given back when the guest is done.
        let guard = inner.gate.enter(&inner.name)?;
        let Ready { store, exports } = match inner.ready.take() {
            Some(r) => r,
            None => inner.instantiate().await?,
        };
        match exports {
            Exports::P2(proxy) => inner.handle_p2(store, proxy, guard, request, https).await,
            Exports::P3(service) => inner.handle_p3(store, service, guard, request).await,
        }
    }
}

impl Inner {
    async fn handle_p2(
        self: &Arc<Self>,
        mut store: Store<HandlerState>,
        proxy: Proxy,
        guard: Permit,
        request: http::Request<RequestBody>,
        https: bool,
    ) -> Result<http::Response<ResponseBody>, IsolateError> {
        let scheme = if https { Scheme::Https } else { Scheme::Http };
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (req, out) = {
            let mut http = store.data_mut().http();
            let req = http
                .new_incoming_request(scheme, request.map(|b| b.0))
                .map_err(|e| self.invalid(format!("request: {e:#}")))?;
            let out = http
                .new_response_outparam(sender)
                .map_err(|e| self.invalid(format!("response: {e:#}")))?;
            (req, out)
        };
        store.set_epoch_deadline(self.deadline_ticks);
        store.epoch_deadline_trap();
        let deadline = self.settings.deadline;
        let task_inner = self.clone();
        let task = tokio::spawn(async move {
            let _guard = guard;
            let call = proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out);
            let result = match tokio::time::timeout(deadline, call).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(task_inner.classify(store.data(), e)),
                Err(_) => Err(task_inner.deadline()),
            };
            if let Err(e) = &result {
                tracing::warn!(handler = %task_inner.name, error = %e, "handler failed")
            }
            result
        });
        match tokio::time::timeout(deadline, receiver).await {
            Ok(Ok(Ok(response))) => Ok(response.map(|body| ResponseBody {
                body: Frames::P2(body),
                handler: self.name.clone(),
            })),
            Ok(Ok(Err(code))) => Err(self.invalid(format!("handler answered an error: {code:?}"))),
            // The outparam was dropped unset: the task's result says why.
            Ok(Err(_)) => Err(self.without_response(task).await),
            Err(_) => {
                task.abort();
                Err(self.deadline())
            }
        }
    }

    /// WASI 0.3: the guest runs in the store's event loop (`run_concurrent`) on a task of its
    /// own, which also pumps the response body to the caller: the guest keeps producing it
    /// only while that loop runs.
    async fn handle_p3(
        self: &Arc<Self>,
        mut store: Store<HandlerState>,
        service: Service,
        guard: Permit,
        request: http::Request<RequestBody>,
    ) -> Result<http::Response<ResponseBody>, IsolateError> {
        let (req, request_io) = wasmtime_wasi_http::p3::Request::from_http(
            &mut store.data_mut().hooks,
            request.map(|b| b.0),
        );
        store.set_epoch_deadline(self.deadline_ticks);
        store.epoch_deadline_trap();
        let (head_tx, head_rx) = tokio::sync::oneshot::channel::<http::response::Parts>();
        let (body_tx, body_rx) = tokio::sync::mpsc::channel::<Result<Bytes, String>>(4);
        let deadline = self.settings.deadline;
        let task_inner = self.clone();
        let task = tokio::spawn(async move {
            let _guard = guard;
            // Reports a failure to read the request body; the guest sees it too.
            let _request_io = tokio::spawn(request_io);
            let run = store.run_concurrent(async |acc| {
                let response = match service.handle(acc, req).await? {
                    Ok(response) => response,
                    Err(code) => return Ok(Err(format!("handler answered an error: {code:?}"))),
                };
                let response = acc.with(|s| response.into_http(s, async { Ok(()) }))?;
                let (parts, mut body) = response.into_parts();
                if head_tx.send(parts).is_err() {
                    return Ok(Ok(()));
                }
                while let Some(frame) = body.frame().await {
                    let chunk = match frame {
                        Ok(frame) => match frame.into_data() {
                            Ok(data) => Ok(data),
                            Err(_trailers) => continue,
                        },
                        Err(e) => Err(format!("response body: {e:?}")),
                    };
                    let failed = chunk.is_err();
                    if body_tx.send(chunk).await.is_err() || failed {
                        break;
                    }
                }
                wasmtime::Result::Ok(Ok(()))
            });
            let result = match tokio::time::timeout(deadline, run).await {
                Ok(Ok(Ok(Ok(())))) => Ok(()),
                Ok(Ok(Ok(Err(reason)))) => Err(task_inner.invalid(reason)),
                Ok(Ok(Err(e)) | Err(e)) => Err(task_inner.classify(store.data(), e)),
                Err(_) => Err(task_inner.deadline()),
            };
            if let Err(e) = &result {
                tracing::warn!(handler = %task_inner.name, error = %e, "handler failed")
            }
            result
        });
        match tokio::time::timeout(deadline, head_rx).await {
            Ok(Ok(parts)) => Ok(http::Response::from_parts(
                parts,
                ResponseBody {
                    body: Frames::P3(body_rx),
                    handler: self.name.clone(),
                },
            )),
            // No response head: the task's result says why.
            Ok(Err(_)) => Err(self.without_response(task).await),
            Err(_) => {
                task.abort();
                Err(self.deadline())
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

    async fn instantiate(&self) -> Result<Ready, IsolateError> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stderr()
            .envs(&self.env)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let state = HandlerState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundPolicy {
                allowed: self.allowed.clone(),
            },
            limit: MemoryLimit::new(self.settings.max_memory_bytes),
            spin: self.spin.clone(),
        };
        let engine = match &self.pre {
            Pre::P2(pre) => pre.engine(),
            Pre::P3(pre) => pre.engine(),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limit);
        store.set_epoch_deadline(self.deadline_ticks);
        store.epoch_deadline_trap();
        let exports = match &self.pre {
            Pre::P2(pre) => pre.instantiate_async(&mut store).await.map(Exports::P2),
            Pre::P3(pre) => pre.instantiate_async(&mut store).await.map(Exports::P3),
        }
        .map_err(|e| IsolateError::Instantiate {
            filter: self.name.to_string(),
            reason: format!("{e:#}"),
        })?;
        Ok(Ready { store, exports })
    }

    fn classify(&self, state: &HandlerState, e: wasmtime::Error) -> IsolateError {
        classify(&self.name, &state.limit, self.settings.deadline, e)
    }

    fn deadline(&self) -> IsolateError {
        deadline_error(&self.name, self.settings.deadline)
    }

    fn invalid(&self, reason: String) -> IsolateError {
        IsolateError::InvalidOutput {
            filter: self.name.to_string(),
            reason,
        }
    }
}

/// Instantiation is async (WASI's host functions are). At load, which may itself run on a
/// tokio runtime, it runs on a scoped thread with a small current-thread runtime.
fn block_on<F: std::future::Future + Send>(f: F) -> F::Output
where
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a current-thread runtime")
                .block_on(f)
        })
        .join()
        .expect("instantiation thread")
    })
}

/// The body of a request to a handler: empty, whole, or fed chunk by chunk by the caller.
pub struct RequestBody(ChannelBody);

impl RequestBody {
    pub fn empty() -> Self {
        Self::from_bytes(Bytes::new())
    }

    pub fn from_bytes(bytes: Bytes) -> Self {
        let (tx, body) = Self::channel();
        if !bytes.is_empty() {
            let _ = tx.send(bytes);
        }
        body
    }

    /// A body fed through the returned sender; dropping the sender ends it. Unbounded: the
    /// caller bounds the bytes it sends (the route's body limit), so that feeding the body
    /// never waits on a guest that is busy writing its response.
    pub fn channel() -> (tokio::sync::mpsc::UnboundedSender<Bytes>, Self) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (tx, Self(ChannelBody(rx)))
    }
}

struct ChannelBody(tokio::sync::mpsc::UnboundedReceiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// The body a handler streams back.
pub struct ResponseBody {
    body: Frames,
    handler: Arc<str>,
}

enum Frames {
    /// WASI 0.2: read straight from the guest's outgoing body.
    P2(HyperOutgoingBody),
    /// WASI 0.3: pumped by the task running the guest.
    P3(tokio::sync::mpsc::Receiver<Result<Bytes, String>>),
}

impl ResponseBody {
    /// The next chunk; `None` at the end. Trailers are skipped.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, IsolateError>> {
        let body = match &mut self.body {
            Frames::P2(body) => body,
            Frames::P3(rx) => {
                return match rx.recv().await? {
                    Ok(data) => Some(Ok(data)),
                    Err(reason) => Some(Err(IsolateError::InvalidOutput {
                        filter: self.handler.to_string(),
                        reason,
                    })),
                };
            }
        };
        loop {
            match body.frame().await? {
                Ok(frame) => match frame.into_data() {
                    Ok(data) if data.is_empty() => continue,
                    Ok(data) => return Some(Ok(data)),
                    Err(_trailers) => continue,
                },
                Err(e) => {
                    return Some(Err(IsolateError::InvalidOutput {
                        filter: self.handler.to_string(),
                        reason: format!("response body: {e:?}"),
                    }))
                }
            }
        }
    }

    /// The whole body, up to `limit` bytes (more is an error).
    pub async fn collect(mut self, limit: usize) -> Result<Bytes, IsolateError> {
        let mut out = bytes::BytesMut::new();
        while let Some(chunk) = self.chunk().await {
            let chunk = chunk?;
            if out.len() + chunk.len() > limit {
                return Err(IsolateError::InvalidOutput {
                    filter: self.handler.to_string(),
                    reason: format!("response body over {limit} bytes"),
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }
}
