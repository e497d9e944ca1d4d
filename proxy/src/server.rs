//! Process assembly: config -> pingora server with one proxy service per listener, the admin
//! service, background work, readiness output and reload on SIGHUP.

use crate::demo;
use crate::frontend::clients::Limited;
use crate::frontend::h3::{H3Error, H3Listener};
use crate::ops::admin::Admin;
use crate::pipeline::edge::Edge;
use crate::pipeline::upstream::Resolver;
use crate::pipeline::Scheme;
use crate::state::{Generation, LoadError, Shared, Source};
use breakwater_config::{Config, ListenerKind};
use breakwater_isolate::{Runtime, RuntimeSettings};
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig, TcpSocketOptions};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::listening::Service;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to start.
pub struct RunOptions {
    /// `None`: the embedded demo.
    pub config: Option<std::path::PathBuf>,
    /// Demo only: where its HTTP listener binds.
    pub listen: SocketAddr,
    /// Demo only: where its admin listener binds.
    pub admin: SocketAddr,
    /// Demo only: where its HTTPS + HTTP/3 listener binds (self-signed certificate).
    pub tls_listen: SocketAddr,
    /// Take the listening sockets over from a running process (pingora graceful upgrade).
    pub upgrade: bool,
}

/// Why the process could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("listener {name}: cannot bind {addr}: {source}")]
    Bind {
        name: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the control runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot write the demo's filter component: {0}")]
    Demo(std::io::Error),
    #[error(transparent)]
    Http3(#[from] H3Error),
    #[error("access_log.path: {}: {source}", path.display())]
    AccessLog {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Validate a config file as `run` would load it, without binding anything (`breakwater check`).
pub fn check(path: &std::path::Path) -> Result<Config, LoadError> {
    let config = breakwater_config::load(path)?;
    for l in &config.listeners {
        if let ListenerKind::Https { certificates, .. } = &l.kind {
            crate::frontend::tls::CertStore::load(certificates)?;
        }
    }
    if !config.components.is_empty() {
        // Compile and link each component as `run` would (this catches a wrong world or an
        // import that is not granted, not only a missing file). With `wasm.cache_dir` the
        // compilations are stored, so a `run` started after `check` (systemd's ExecStartPre)
        // loads them instead of compiling: compiling a large component leaves hundreds of MiB
        // resident in the process that did it.
        let wasm = wasm_runtime(&config)?;
        for c in &config.components {
            let bytes = crate::state::LoadedComponent::read(c)?;
            crate::state::LoadedComponent::load(&wasm, c, &bytes, Some(0), config.fleet.as_ref())?;
        }
    }
    Ok(config)
}

/// The WebAssembly runtime `config` asks for. `check` and `run` build it the same way, so
/// what `check` compiles into `wasm.cache_dir` is what `run` finds there (the cache is keyed
/// by the engine's settings).
fn wasm_runtime(config: &Config) -> Result<Arc<Runtime>, LoadError> {
    Runtime::new(RuntimeSettings {
        max_instances: config.wasm.max_instances,
        cache_dir: config.wasm.cache_dir.clone(),
        offload_above: config.wasm.offload_above,
        guest_threads: config.wasm.guest_threads,
        guest_priority: match config.wasm.guest_priority {
            breakwater_config::GuestPriority::Idle => breakwater_isolate::GuestPriority::Idle,
            breakwater_config::GuestPriority::Low => breakwater_isolate::GuestPriority::Low,
        },
        keep_resident_bytes: config.wasm.keep_resident_bytes,
        idle_unload: config.wasm.idle_unload,
        ..RuntimeSettings::default()
    })
    .map_err(|e| LoadError::Wasm(Box::new(e)))
}

/// Start Breakwater and serve until a signal ends the process. Does not return on success.
pub fn run(opts: RunOptions) -> Result<(), StartError> {
    // Background work (DNS, health checks, reload) runs on its own small runtime so that a
    // busy listener never delays it. One worker is plenty: it only waits on timers and I/O.
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("breakwater-control")
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;

    // Held until the process exits: see `Claims`.
    let mut claims = Claims::default();
    let (source, demo_origin) = match &opts.config {
        Some(path) => (Source::File(path.clone()), None),
        None => {
            let any = SocketAddr::new(opts.listen.ip(), 0);
            let origin = claims.ephemeral("demo origin", any)?;
            let dir = std::env::temp_dir().join(format!("breakwater-demo-{}", std::process::id()));
            let text = demo::config(opts.listen, opts.admin, opts.tls_listen, origin, &dir)
                .map_err(StartError::Demo)?;
            (Source::Embedded(text), Some(origin))
        }
    };
    let mut config = source.parse().map_err(LoadError::from)?;
    if !opts.upgrade {
        claims.check(&mut config)?;
    }
    let metrics = Arc::new(crate::ops::metrics::Metrics::new());
    let resolver = Resolver::new(&config.resolver)
        .map_err(|e| LoadError::Resolver(source.name(), e))?
        .counted(metrics.dns_lookups.clone());
    let wasm = wasm_runtime(&config)?;
    wasm.observe(metrics.clone());
    let first = control.block_on(Generation::build(
        config.clone(),
        &source,
        &resolver,
        &wasm,
        &metrics,
        None,
    ))?;
    metrics.config_loaded_at.set(unix_now());
    let access_log = crate::ops::access_log::AccessLogger::start(
        &config.access_log,
        metrics.access_log_dropped.clone(),
    )
    .map_err(|source| StartError::AccessLog {
        path: config.access_log.path.clone().unwrap_or_default(),
        source,
    })?;
    let shared = Arc::new(Shared::new(
        first,
        source,
        resolver,
        wasm,
        metrics,
        access_log,
        control.handle().clone(),
    ));

    let mut conf = ServerConf {
        threads: config.server.threads,
        work_stealing: config.server.work_stealing,
        pid_file: config.server.pid_file.display().to_string(),
        upgrade_sock: config.server.upgrade_sock.display().to_string(),
        grace_period_seconds: Some(config.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.server.shutdown_timeout.as_secs()),
        upstream_keepalive_pool_size: config.server.upstream_keepalive,
        ..ServerConf::default()
    };
    conf.upgrade_sock_connect_accept_max_retries = Some(20);
    let opt = Opt {
        upgrade: opts.upgrade,
        daemon: false,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let mut urls = Vec::new();
    let mut h3_listeners = Vec::new();
    for l in &config.listeners {
        let addr = l.address.to_string();
        let name = format!("listener {}", l.name);
        match &l.kind {
            ListenerKind::Http { h2c } => {
                let svc = client_facing(
                    &server.configuration,
                    Edge::new(shared.clone(), Scheme::Http),
                    l,
                    *h2c,
                    &shared.metrics,
                );
                let mut svc = Service::new(name.clone(), svc);
                svc.add_listener(
                    ListenerConfig::tcp(&addr)
                        .tcp_socket_options(claims.socket_options(l.address))
                        .l4_buffer(client_buffers(false)),
                );
                server.add_service(svc);
                urls.push((format!("http://{addr}"), l.name.clone(), l.address));
            }
            ListenerKind::Https { http2, http3, .. } => {
                let mut edge = Edge::new(shared.clone(), Scheme::Https);
                if http3.is_some() {
                    edge = edge.with_alt_svc(l.address.port());
                }
                let svc = client_facing(&server.configuration, edge, l, false, &shared.metrics);
                let mut svc = Service::new(name.clone(), svc);
                let mut tls = TlsSettings::intermediate("", "").expect("no files are read here");
                if let Some(resolver) = shared.sni_resolver(&l.name) {
                    tls.set_cert_resolver(resolver);
                }
                if *http2 {
                    tls.enable_h2();
                }
                svc.add_listener(
                    ListenerConfig::tcp(&addr)
                        .tcp_socket_options(claims.socket_options(l.address))
                        .tls(tls)
                        .l4_buffer(client_buffers(true)),
                );
                server.add_service(svc);
                urls.push((format!("https://{addr}"), l.name.clone(), l.address));
                if let Some(settings) = http3 {
                    // HTTP/3 requests run the same pipeline, driven by the QUIC front end.
                    let pipeline = Arc::new(pingora::proxy::http_proxy(
                        &server.configuration,
                        Edge::new(shared.clone(), Scheme::Https),
                    ));
                    let resolver = shared.sni_resolver(&l.name).expect("an https listener");
                    let h3 = H3Listener::bind(&l.name, l.address, resolver, settings, pipeline)?;
                    urls.push((
                        format!("https://{addr}"),
                        format!("{}, HTTP/3", l.name),
                        l.address,
                    ));
                    h3_listeners.push(h3);
                }
            }
        }
    }
    if !h3_listeners.is_empty() {
        // QUIC and HTTP/3 run on their own runtime, sized like a pingora service.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.server.threads.max(1))
            .thread_name("breakwater-h3")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        for h3 in h3_listeners {
            h3.serve(runtime.handle(), shared.metrics.clone());
        }
        std::mem::forget(runtime);
    }
    let admin_addr = config.admin.address;
    let mut admin = Service::new("admin".to_string(), Admin::new(shared.clone()));
    admin.add_tcp_with_settings(&admin_addr.to_string(), claims.socket_options(admin_addr));
    server.add_service(admin);
    urls.push((format!("http://{admin_addr}"), "admin".into(), admin_addr));

    if let Some(origin) = demo_origin {
        let mut svc = Service::new("demo origin".to_string(), demo::DemoOrigin);
        svc.add_tcp_with_settings(&origin.to_string(), claims.socket_options(origin));
        server.add_service(svc);
    }

    server.add_service(KeepInheritedListeners);

    spawn_reload_on_sighup(shared.clone());
    spawn_readiness_report(urls);
    // Keep the control runtime alive for the life of the process.
    std::mem::forget(control);
    // `claims` lives on: `run_forever` does not return.
    server.run_forever()
}

/// The listening addresses this process has taken before pingora binds them.
///
/// Every listener is bind-checked here, because pingora panics inside the service on a taken
/// port while the process keeps running. A listener configured on port 0 gets its real port
/// here, and that port must stay ours until pingora listens on it: were the checking socket
/// closed first, any other process binding port 0 in between could be handed the same port,
/// and the readiness probe would then greet that process instead (seen in CI: a test talked
/// to another test's origin). So for those the checking socket stays bound, not listening,
/// with `SO_REUSEPORT`, for the life of the process, and pingora binds the port with
/// `SO_REUSEPORT` too. The kernel never hands a bound port to a port-0 bind, even with
/// `SO_REUSEPORT`, and a socket that does not listen takes no connections, so the port is
/// exactly pingora's. Fixed ports are only checked: sharing one silently with another
/// process would hide a misconfiguration.
#[derive(Default)]
struct Claims {
    held: Vec<(SocketAddr, socket2::Socket)>,
}

impl Claims {
    /// Check every listener's address; give each port-0 listener its port, held.
    fn check(&mut self, config: &mut Config) -> Result<(), StartError> {
        let admin = ("admin", &mut config.admin.address);
        let listeners = config
            .listeners
            .iter_mut()
            .map(|l| (l.name.as_str(), &mut l.address));
        for (name, addr) in listeners.chain(std::iter::once(admin)) {
            if addr.port() == 0 {
                *addr = self.ephemeral(name, *addr)?;
            } else {
                TcpListener::bind(*addr).map_err(|source| StartError::Bind {
                    name: name.to_string(),
                    addr: *addr,
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// A fresh port on `any`'s address, held for this process.
    fn ephemeral(&mut self, name: &str, any: SocketAddr) -> Result<SocketAddr, StartError> {
        let bind_error = |source| StartError::Bind {
            name: name.to_string(),
            addr: any,
            source,
        };
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(any),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .map_err(bind_error)?;
        socket.set_reuse_port(true).map_err(bind_error)?;
        socket.bind(&any.into()).map_err(bind_error)?;
        let bound = socket
            .local_addr()
            .map_err(bind_error)?
            .as_socket()
            .ok_or_else(|| bind_error(std::io::ErrorKind::AddrNotAvailable.into()))?;
        self.held.push((bound, socket));
        Ok(bound)
    }

    /// The socket options pingora binds `addr` with: `SO_REUSEPORT` where a claim holds it,
    /// else none set (pingora's defaults, as `add_tcp` gives).
    fn socket_options(&self, addr: SocketAddr) -> TcpSocketOptions {
        let mut options = TcpSocketOptions::default();
        if self.held.iter().any(|(a, _)| *a == addr) {
            options.so_reuseport = Some(true);
        }
        options
    }
}

fn spawn_reload_on_sighup(shared: Arc<Shared>) {
    let rt = shared.control.clone();
    rt.spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::error!("cannot install the SIGHUP handler: reload by signal is off");
            return;
        };
        while hup.recv().await.is_some() {
            let _ = shared.reload_reported().await;
        }
    });
}

/// Print each listener's URL once it accepts connections, then `ready`.
fn spawn_readiness_report(urls: Vec<(String, String, SocketAddr)>) {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        for (_, name, addr) in &urls {
            let target = match addr.ip() {
                ip if ip.is_unspecified() && addr.is_ipv4() => {
                    SocketAddr::from(([127, 0, 0, 1], addr.port()))
                }
                ip if ip.is_unspecified() => {
                    SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
                }
                _ => *addr,
            };
            while TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_err() {
                if Instant::now() > deadline {
                    tracing::error!(listener = %name, %addr, "listener did not come up");
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let mut out = String::new();
        for (url, name, _) in &urls {
            out.push_str(&format!("{url} ({name})\n"));
        }
        out.push_str("breakwater ready\n");
        print!("{out}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        notify_systemd(b"READY=1\nSTATUS=serving");
    });
}

/// Tell systemd (`Type=notify`) that the node is ready, when started with `NOTIFY_SOCKET`.
fn notify_systemd(message: &[u8]) {
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            UnixAddr::from_abstract_name(name.as_bytes())
        }
        None => UnixAddr::from_pathname(&path),
    };
    let sent = addr.and_then(|addr| UnixDatagram::unbound()?.send_to_addr(message, &addr));
    if let Err(e) = sent {
        tracing::warn!(socket = %path, error = %e, "cannot notify systemd");
    }
}

/// The socket buffers of a client connection, held for its whole life, idle or not.
/// pingora's default reads through a 64 KiB buffer, allocated and zeroed per connection: that
/// was two thirds of what an idle keep-alive connection cost (bench/connections.sh). Plain
/// HTTP needs none (HTTP/1.1 reads the head into its own buffer, HTTP/2 frames into h2's);
/// TLS reads through one record's worth, 16 KiB (RFC 8446 5.1), so rustls still gets a
/// record per read. Writes keep pingora's one-segment buffer.
fn client_buffers(tls: bool) -> L4BufferSettings {
    L4BufferSettings::default().read(if tls { 16 * 1024 } else { 0 })
}

/// The pingora app of a client-facing listener, behind its client limits.
fn client_facing(
    conf: &Arc<pingora::server::configuration::ServerConf>,
    edge: Edge,
    listener: &breakwater_config::Listener,
    h2c: bool,
    metrics: &Arc<crate::ops::metrics::Metrics>,
) -> Limited<pingora::proxy::HttpProxy<Edge>> {
    let mut proxy = pingora::proxy::http_proxy(conf, edge);
    let mut options = HttpServerOptions::default();
    options.h2c = h2c;
    // HTTP/2 connections with no open stream for this long are closed (HTTP/1.1 idle
    // connections are closed by the client guard).
    options.h2_idle_timeout = Some(listener.clients.idle_timeout);
    proxy.server_options = Some(options);
    Limited::new(
        proxy,
        listener.clients.clone(),
        metrics.clone(),
        &listener.name,
    )
}

/// A service that does nothing but declare that not every inherited listening socket has a
/// declared owner (`listen_addresses() == None`, pingora's documented opt-out), which turns off
/// pingora 0.9.1's pruning of "unclaimed" inherited sockets. On a graceful upgrade that
/// pruning closed the very listener being handed over (every run, see
/// tests/tests/all/lifecycle.rs), so the new process bound a fresh socket and the connections
/// queued on the old one were lost. With it off, the listeners find their inherited sockets by
/// address, as before 0.9.1.
struct KeepInheritedListeners;

#[async_trait::async_trait]
impl pingora::services::Service for KeepInheritedListeners {
    fn name(&self) -> &str {
        "keep inherited listeners"
    }

    fn threads(&self) -> Option<usize> {
        Some(1)
    }
}
