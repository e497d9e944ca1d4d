//! The validated config: typed values only, built once at load and never re-parsed.

use crate::Location;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A whole, valid Breakwater config.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub server: ServerSettings,
    pub resolver: ResolverSettings,
    pub forwarding: Forwarding,
    pub listeners: Vec<Listener>,
    pub admin: Admin,
    /// Pools in file order; routes refer to them by [`PoolId`].
    pub pools: Vec<Pool>,
    pub access_log: AccessLog,
    pub wasm: WasmSettings,
    /// Wasm components in file order; routes refer to them by [`ComponentId`].
    pub components: Vec<Component>,
    pub cache: CacheSettings,
    /// The fleet this node belongs to (`fleet:`); `None`: a node on its own. Takes a
    /// restart to change.
    pub fleet: Option<Fleet>,
    /// Routes in file order; see the README for how they are matched.
    pub routes: Vec<Route>,
}

/// One line per request. Takes a restart to change.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessLog {
    pub format: AccessLogFormat,
    /// A file to append to; default: standard output.
    pub path: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// JSON lines (default).
    Json,
    /// nginx's "combined" format.
    Combined,
    Off,
}

/// The HTTP cache shared by all routes that enable it. Takes a restart to change.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheSettings {
    /// Memory for cached objects (bodies and headers). Default 256 MiB.
    pub memory_bytes: u64,
    /// Largest object stored; larger responses are served but not stored. Default 8 MiB.
    pub max_object_bytes: usize,
    /// The disk tier under the memory tier, if any.
    pub disk: Option<CacheDisk>,
}

/// A disk tier: objects written through to files in `path`, at most `bytes` of them, kept
/// across restarts and upgrades.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheDisk {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Where a handler's Spin key-value store (`default`) lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyValue {
    /// In the node's memory, one store per component (Spin's default).
    #[default]
    Memory,
    /// In the fleet's Redis, under a prefix per component: every node sees one store.
    Redis,
}

/// What the nodes of a fleet share, in Redis: purges (a stream every node reads).
#[derive(Clone, Debug, PartialEq)]
pub struct Fleet {
    pub redis: RedisTarget,
    /// How long one Redis command (connect included) may take; a slower Redis counts as
    /// unreachable. Default 1 s.
    pub timeout: Duration,
    /// Purges kept in the stream for nodes that were disconnected (approximate, as Redis
    /// trims). Default 10 000.
    pub purge_history: u64,
}

/// A Redis server, parsed from `fleet.redis` and the credential fields.
#[derive(Clone, PartialEq)]
pub struct RedisTarget {
    /// `rediss://`: TLS, and whom to trust for the server's certificate.
    pub tls: Option<RedisTrust>,
    pub host: String,
    pub port: u16,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

/// Shown without credentials, for logs and errors.
impl std::fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        write!(f, "{scheme}://{}:{}/{}", self.host, self.port, self.db)
    }
}

/// Whom a `rediss://` connection trusts for the server's certificate.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTrust {
    /// The system's trust store.
    System,
    /// `fleet.ca_file`: the PEM certificates of a private CA, and only those.
    Ca(Vec<u8>),
}

/// A credential: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A route's caching.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteCache {
    /// Freshness for responses that give none (no `max-age`, `s-maxage` or `Expires`, and no
    /// heuristic freshness). Default: none (such responses are not stored).
    pub default_ttl: Option<Duration>,
    /// Heuristic freshness (RFC 9111 4.2.2) for responses with `Last-Modified` and no
    /// explicit freshness: a tenth of the time since they were last modified, at most this.
    /// Default 24 hours; `None` when the route turns it off.
    pub heuristic_max: Option<Duration>,
    pub query: QueryKey,
    /// Request headers that are part of the key (beyond what `Vary` asks for).
    pub key_headers: Vec<HeaderName>,
    /// The request's `Cache-Control` is honoured: `no-cache` (or `Pragma: no-cache`)
    /// revalidates, `max-age` and `min-fresh` ask for a fresher copy, `max-stale` accepts a
    /// staler one, `no-store` bypasses the cache, `only-if-cached` gets 504 on a miss. Default
    /// off, as most CDNs do: a client should not be able to push load onto the origin at will.
    pub honor_client_cache_control: bool,
    /// For `Vary: Accept-Encoding`, key on the best coding the client accepts (`br`,
    /// `gzip` or none) rather than on the raw header, so variants do not multiply. Default on.
    pub normalize_accept_encoding: bool,
    /// What a response with `Set-Cookie` does to the cache.
    pub set_cookie: SetCookie,
    /// The control fields this cache reads, most specific first (from `cache:`).
    pub control: ControlFields,
}

/// Which response fields control this cache (RFC 9213): the configured targeted field, then
/// `CDN-Cache-Control`, then `Cache-Control`; the first one present and valid is used alone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ControlFields {
    /// This cache's own targeted field (`cache.targeted_field`), e.g.
    /// `breakwater-cache-control`.
    pub targeted: Option<HeaderName>,
    /// Whether the own targeted field is passed on to clients (`cache.forward_targeted`,
    /// default off). `CDN-Cache-Control` always is, for CDNs further down.
    pub forward_targeted: bool,
}

/// How the cache treats responses that set cookies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SetCookie {
    /// Not stored: the cookie is likely personal (default, as Varnish and Fastly do).
    #[default]
    Pass,
    /// Stored without its `Set-Cookie` headers: the client whose request filled the cache
    /// gets the cookie, hits never do.
    Strip,
    /// Stored with them: every hit sets the same cookie (only for cookies that are not
    /// personal, e.g. a load-balancer or consent cookie).
    Store,
}

/// Which query parameters are part of the cache key.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryKey {
    /// The whole query string as sent (default).
    All,
    /// None: `/a?x=1` and `/a?y=2` are the same object.
    Ignore,
    /// Only these parameters, in this order.
    Only(Vec<String>),
}

/// The Wasm runtime's process-wide settings.
#[derive(Clone, Debug, PartialEq)]
pub struct WasmSettings {
    /// Instances alive at once across all components. Default 1000.
    pub max_instances: u32,
    /// Where compiled components are cached. Default: none.
    pub cache_dir: Option<PathBuf>,
    /// A component whose calls cost more than this on average runs off the listeners' event
    /// loops. Default 100 µs; `None` (`off`): every guest runs on them.
    pub offload_above: Option<Duration>,
    /// Threads for handlers run off the event loops. `None`: one per core.
    pub guest_threads: Option<usize>,
    /// How those threads give way to the event loops. Default [`GuestPriority::Low`].
    pub guest_priority: GuestPriority,
    /// Linear memory a freed instance slot keeps resident, reset in place. Default 16 MiB.
    pub keep_resident_bytes: usize,
    /// A component with no request for this long drops its ready instances (scale to zero).
    /// Default 5 minutes; `None` (`0s` or `off`): never.
    pub idle_unload: Option<Duration>,
}

/// How the guest threads (handlers run off the event loops) share a core with the listeners'
/// event loops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GuestPriority {
    /// `idle` (Linux's `SCHED_IDLE`): they run on the CPU time every other thread leaves, so
    /// a saturated interpreter route never delays cheap requests; on a core busy with
    /// anything else they (and the host calls they wait on) get almost nothing, and meet
    /// their deadlines and timeouts.
    Idle,
    /// `low` (default): 10 nice levels down, about a tenth of a contended core.
    #[default]
    Low,
}

/// Index of a component in [`Config::components`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ComponentId(pub usize);

/// What happens to a request when one of its filters fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailurePolicy {
    /// The request gets the error's status: 500 trap or bad output, 504 deadline, 503 busy.
    FailClosed,
    /// The filter is skipped (and the failure logged).
    FailOpen,
}

/// What a component is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComponentKind {
    /// Our `breakwater:filter` world: runs on the request and response of routes.
    Filter,
    /// A `wasi:http` handler (`incoming-handler` of WASI 0.2, or `handler` of WASI 0.3 as the
    /// Spin SDK builds): serves a route instead of an origin pool.
    Handler,
}

/// The request a handler serves once at load, before the snapshot its instances start from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warmup {
    /// `auto`: `GET /` for a component over 1 MiB (an interpreter), none for the others.
    Auto,
    /// `off`: instances start as the component was built.
    Off,
    /// `METHOD /path` (or `/path`, a GET).
    Request { method: http::Method, path: String },
}

/// A Wasm component: a filter or a handler.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    pub name: String,
    pub kind: ComponentKind,
    pub path: PathBuf,
    /// Its `config:` map: read by a filter through `config.get`, the environment of a handler.
    pub config: Vec<(String, String)>,
    /// Wall-clock limit: per call for a filter (default 50ms), for the whole request for a
    /// handler (default 30s).
    pub deadline: Duration,
    /// Linear memory limit per instance. Default 16 MiB for a filter, 64 MiB for a handler.
    pub max_memory_bytes: usize,
    /// Largest request body a handler is given; more gets 413. Default 16 MiB.
    pub max_body_bytes: usize,
    /// Hosts (`host` or `host:port`) a handler may send HTTP requests to. Default: none.
    pub allowed_outbound_hosts: Vec<String>,
    /// Requests using it at once; more get 503 at once. Default 256.
    pub max_concurrency: usize,
    /// Instances kept ready. Default (`None`): chosen at load from what an instantiation
    /// costs (4 above 50 µs, else none).
    pub prewarm: Option<usize>,
    /// How a handler's instances start (`warmup:`). Default `Auto`.
    pub warmup: Warmup,
    /// Whether a handler's instance is reset in place after a request and serves the next
    /// one (`reset_in_place:`), instead of a new instance per request. Default true.
    pub reset_in_place: bool,
    /// Where a handler's Spin key-value store lives (`key_value:`). Default in memory.
    pub key_value: KeyValue,
    /// Default for routes that do not say. Default fail-closed.
    pub on_error: FailurePolicy,
    pub at: Location,
}

/// Process settings. Changing them takes a restart or graceful upgrade, not a reload.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerSettings {
    /// Worker threads per listening service. Default: the number of CPUs.
    pub threads: usize,
    /// Whether the worker threads of a listener share their connections' tasks (one
    /// work-stealing runtime) or each runs its own event loop (nginx's and Envoy's model:
    /// no wake-ups across threads; a connection stays on the thread that accepted it).
    /// Default false: measured faster, and fairer under many connections (bench/README.md,
    /// Threads). With true, a dear filter's calls (an interpreter's) move off the loop.
    pub work_stealing: bool,
    /// After SIGTERM or a graceful upgrade, how long in-flight requests get to finish before
    /// the process exits (pingora waits this long in full). Default 5s.
    pub grace_period: Duration,
    /// Then how long the worker runtimes get to stop. Default 2s.
    pub shutdown_timeout: Duration,
    pub pid_file: PathBuf,
    pub upgrade_sock: PathBuf,
    /// Largest request head (request line + headers) accepted; larger gets 431. Default 32 KiB.
    pub max_header_bytes: usize,
    /// Send `Server: breakwater` on responses Breakwater generates. Default true.
    pub server_header: bool,
    /// Idle origin connections kept for reuse, per worker thread, across all pools (the
    /// least recently used beyond it are closed; each idle one is closed after 60 s anyway).
    /// Default 8192: as many as the connections a busy thread has in flight, so that a burst
    /// of clients does not close, then reopen, an origin connection per request (measured
    /// in bench/connections.sh: 1 024 left 5 000 clients at half nginx's throughput).
    pub upstream_keepalive: usize,
}

/// DNS resolution of pool endpoints given by name.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolverSettings {
    /// Name servers to ask; empty means the system's (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// Re-resolve no sooner than this, whatever the record's TTL. Default 1s.
    pub min_ttl: Duration,
    /// Re-resolve at least this often. Default 300s.
    pub max_ttl: Duration,
    /// Per-query timeout. Default 2s.
    pub timeout: Duration,
}

/// What the proxy tells the origin about the client.
#[derive(Clone, Debug, PartialEq)]
pub struct Forwarding {
    /// Add `Via: 1.1 breakwater` (RFC 9110 7.6.3). Default true.
    pub via: bool,
    pub x_forwarded_for: XffMode,
    /// Set `X-Forwarded-Proto` to the client's scheme. Default true.
    pub x_forwarded_proto: bool,
    /// Append an RFC 7239 `Forwarded` element. Default false.
    pub forwarded: bool,
}

/// How `X-Forwarded-For` is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XffMode {
    /// Append the client address to what the client sent (default).
    Append,
    /// Replace what the client sent with the client address (for edge nodes facing the internet).
    Replace,
    /// Leave the header alone.
    Off,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    pub kind: ListenerKind,
    /// Timeouts and limits for the TCP clients (HTTP/1.1 and HTTP/2) of this listener.
    pub clients: ClientLimits,
}

/// What a TCP client of a listener may take: the defences against slow and many clients.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientLimits {
    /// The whole HTTP/1.1 request head must arrive within this time of its first byte
    /// (HAProxy's `timeout http-request`). Default 10s.
    pub header_timeout: Duration,
    /// A connection with nothing to read or write for this long is closed: before its first
    /// request, between keep-alive requests, an HTTP/2 connection with no traffic. Default 60s.
    pub idle_timeout: Duration,
    /// A write that makes no progress for this long (a client that stopped reading) closes
    /// the connection (nginx's `send_timeout`). Default 60s.
    pub send_timeout: Duration,
    /// Connections open at once; past it new ones are closed at once. Default 10 000.
    pub max_connections: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ListenerKind {
    /// Plain HTTP/1.1, and HTTP/2 with prior knowledge when `h2c`.
    Http { h2c: bool },
    /// TLS 1.2+ with a certificate chosen by SNI; HTTP/2 by ALPN when `http2`.
    Https {
        certificates: Vec<Certificate>,
        http2: bool,
        /// HTTP/3 on the same port over UDP, when enabled.
        http3: Option<Http3Settings>,
    },
}

/// HTTP/3 (QUIC) on an HTTPS listener's UDP port.
#[derive(Clone, Debug, PartialEq)]
pub struct Http3Settings {
    /// A connection with no traffic for this long is closed. Default 30s.
    pub idle_timeout: Duration,
    /// Concurrent request streams per connection. Default 100.
    pub max_streams: u32,
    /// Connections at once; more are refused. Default 10 000.
    pub max_connections: usize,
    /// Accept 0-RTT early data (replayable). Default off.
    pub zero_rtt: bool,
}

/// A certificate and the server names it is served for.
#[derive(Clone, Debug, PartialEq)]
pub struct Certificate {
    pub names: Vec<HostPattern>,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Where the certificate was declared, for errors found when its files are read.
    pub at: Location,
}

/// The admin listener (health, metrics, purge). Loopback unless configured otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct Admin {
    pub address: SocketAddr,
    /// Bearer token required by mutating endpoints; without one they are disabled.
    pub token: Option<String>,
}

/// A host name pattern, lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// `www.example.com`
    Exact(String),
    /// `*.example.com`, stored as the suffix `.example.com`; matches one or more labels.
    Suffix(String),
}

impl HostPattern {
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        }
    }
}

/// Index of a pool in [`Config::pools`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolId(pub usize);

#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    pub protocol: UpstreamProtocol,
    pub tls: Option<UpstreamTls>,
    pub balance: Balance,
    pub health_check: Option<HealthCheck>,
    pub passive: PassiveHealth,
    pub timeouts: Timeouts,
    /// Further attempts on other endpoints for idempotent requests. Default 1.
    pub retries: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Addr(SocketAddr),
    /// Resolved through the resolver, re-resolved when the records' TTL expires.
    Name {
        host: String,
        port: u16,
    },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Addr(a) => write!(f, "{a}"),
            Endpoint::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamProtocol {
    Http1,
    /// HTTP/2: by ALPN over TLS, with prior knowledge (h2c) over plain TCP.
    Http2,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamTls {
    /// SNI and the name verified; default: the endpoint's host name.
    pub sni: Option<String>,
    /// Verify the origin's certificate. Default true.
    pub verify: bool,
    pub ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Balance {
    RoundRobin,
    Random,
    /// Rendezvous hashing on a request key: the same key goes to the same endpoint.
    ConsistentHash(HashKey),
}

#[derive(Clone, Debug, PartialEq)]
pub enum HashKey {
    Path,
    ClientIp,
    Header(HeaderName),
}

#[derive(Clone, Debug, PartialEq)]
pub struct HealthCheck {
    pub path: String,
    pub host: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes that bring an endpoint back. Default 1.
    pub healthy_threshold: u32,
    /// Consecutive failures that take an endpoint out. Default 2.
    pub unhealthy_threshold: u32,
}

/// Passive ejection: consecutive connection failures take an endpoint out for a while.
#[derive(Clone, Debug, PartialEq)]
pub struct PassiveHealth {
    /// Consecutive failures before ejection; 0 disables. Default 3.
    pub failures: u32,
    /// How long an ejected endpoint stays out. Default 10s.
    pub ejection: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Timeouts {
    /// TCP connect. Default 2s.
    pub connect: Duration,
    /// Each read from the origin (time to first byte, and between chunks). Default 30s.
    pub read: Duration,
    /// TCP + TLS handshake. Default 5s.
    pub total: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// Name used in logs and metrics; default `route-N`.
    pub name: String,
    /// Empty: the default host group (see the README).
    pub hosts: Vec<HostPattern>,
    pub path: PathMatch,
    /// Empty: any method.
    pub methods: Vec<Method>,
    pub action: RouteAction,
    pub request_headers: HeaderEdits,
    pub response_headers: HeaderEdits,
    /// Filters run in order on the request and in reverse order on the response.
    pub filters: Vec<ComponentId>,
    /// Overrides each filter's `on_error` for this route.
    pub on_filter_error: Option<FailurePolicy>,
    /// Pools a filter may switch this route to (the route's own pool is always allowed).
    pub allowed_pools: Vec<PoolId>,
    /// Filters that export a body phase see whole bodies (buffered up to each component's
    /// `max_body_bytes`); otherwise bodies stream past every filter. Default false.
    pub body_access: bool,
    /// `None`: responses of this route are never cached.
    pub cache: Option<RouteCache>,
    /// A shield tier (`shield:`): cache misses go to a parent node of this pool, chosen by
    /// rendezvous hashing of the URL (so one parent fetches each object from the origin),
    /// and to the route's own pool when no parent can take them.
    pub shield: Option<PoolId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
}

impl PathMatch {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => p == path,
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum RouteAction {
    Forward(PoolId),
    Redirect {
        location: HeaderValue,
        status: StatusCode,
    },
    Respond {
        status: StatusCode,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: bytes::Bytes,
    },
    /// Served by a `wasi:http` handler component.
    Handler(ComponentId),
}

/// Header edits, applied in the order remove, set, add.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeaderEdits {
    pub remove: Vec<HeaderName>,
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub add: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderEdits {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }
}
