//! The YAML schema as written by an operator: unvalidated, with source spans.
//!
//! Every struct denies unknown fields so a typo is an error, not a silent default.
//! Values that validation may refuse are `Spanned` so the error can point at them.

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::fmt;
use std::marker::PhantomData;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub resolver: RawResolver,
    #[serde(default)]
    pub forwarding: RawForwarding,
    pub listeners: Spanned<Vec<RawListener>>,
    #[serde(default)]
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub pools: Entries<Spanned<String>, RawPool>,
    #[serde(default)]
    pub access_log: RawAccessLog,
    #[serde(default)]
    pub wasm: RawWasm,
    #[serde(default)]
    pub components: Entries<Spanned<String>, RawComponent>,
    #[serde(default)]
    pub cache: RawCache,
    pub fleet: Option<Spanned<RawFleet>>,
    pub routes: Spanned<Vec<Spanned<RawRoute>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    /// `redis://HOST[:PORT][/DB]` or `rediss://...` (TLS); credentials never in it.
    pub redis: Spanned<String>,
    pub username: Option<String>,
    /// A file holding the password (its first line), or an environment variable.
    pub password_file: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    /// PEM certificates of the CA that signed a `rediss://` server's certificate.
    pub ca_file: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub purge_history: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub memory_mb: Option<Spanned<u64>>,
    pub max_object_mb: Option<Spanned<u64>>,
    /// The disk tier under the memory tier.
    pub disk: Option<Spanned<RawCacheDisk>>,
    /// This cache's own targeted field (RFC 9213), e.g. `Breakwater-Cache-Control`.
    pub targeted_field: Option<Spanned<String>>,
    pub forward_targeted: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCacheDisk {
    pub path: Option<Spanned<String>>,
    pub size_gb: Option<Spanned<u64>>,
    /// The size in MiB instead (small tiers, tests).
    pub size_mb: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteCache {
    pub default_ttl: Option<Spanned<String>>,
    /// `all` (default), `none`, or a list of parameter names.
    pub query: Option<Spanned<RawQueryKey>>,
    #[serde(default)]
    pub key_headers: Vec<Spanned<String>>,
    /// Honour the request's `Cache-Control` (`max-age`, `max-stale`, `min-fresh`,
    /// `no-cache`, `no-store`, `only-if-cached`); `honor_client_no_cache` is its old name.
    #[serde(alias = "honor_client_no_cache")]
    pub honor_client_cache_control: Option<bool>,
    pub heuristic: Option<bool>,
    pub heuristic_max: Option<Spanned<String>>,
    pub normalize_accept_encoding: Option<bool>,
    /// `pass` (default), `strip` or `store`.
    pub set_cookie: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawQueryKey {
    Mode(String),
    Only(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLog {
    pub format: Option<Spanned<String>>,
    pub path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWasm {
    pub max_instances: Option<Spanned<u32>>,
    pub cache_dir: Option<String>,
    pub offload_above: Option<Spanned<String>>,
    pub guest_threads: Option<Spanned<usize>>,
    pub guest_priority: Option<Spanned<String>>,
    pub keep_resident_mb: Option<Spanned<u64>>,
    pub idle_unload: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawComponent {
    pub path: Spanned<String>,
    pub kind: Option<Spanned<String>>,
    #[serde(default)]
    pub config: Entries<Spanned<String>, Spanned<String>>,
    pub deadline: Option<Spanned<String>>,
    pub max_memory_mb: Option<Spanned<u32>>,
    pub max_concurrency: Option<Spanned<usize>>,
    pub prewarm: Option<Spanned<usize>>,
    pub warmup: Option<Spanned<String>>,
    pub reset_in_place: Option<Spanned<bool>>,
    pub on_error: Option<Spanned<String>>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<Spanned<String>>,
    pub max_body_bytes: Option<Spanned<usize>>,
    /// `memory` (default) or `redis` (the fleet's): where Spin's key-value store lives.
    pub key_value: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub threads: Option<Spanned<usize>>,
    pub work_stealing: Option<bool>,
    pub grace_period: Option<Spanned<String>>,
    pub shutdown_timeout: Option<Spanned<String>>,
    pub pid_file: Option<String>,
    pub upgrade_sock: Option<String>,
    pub max_header_bytes: Option<Spanned<usize>>,
    pub server_header: Option<bool>,
    pub upstream_keepalive: Option<Spanned<usize>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResolver {
    #[serde(default)]
    pub nameservers: Vec<Spanned<String>>,
    pub min_ttl: Option<Spanned<String>>,
    pub max_ttl: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForwarding {
    pub via: Option<bool>,
    pub x_forwarded_for: Option<Spanned<String>>,
    pub x_forwarded_proto: Option<bool>,
    pub forwarded: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub name: Spanned<String>,
    pub address: Spanned<String>,
    #[serde(default)]
    pub protocol: Option<Spanned<String>>,
    #[serde(default)]
    pub h2c: Option<bool>,
    #[serde(default)]
    pub http2: Option<bool>,
    #[serde(default)]
    pub certificates: Vec<RawCertificate>,
    pub http3: Option<Spanned<RawHttp3>>,
    #[serde(default)]
    pub clients: Option<Spanned<RawClientLimits>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientLimits {
    pub header_timeout: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    pub send_timeout: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<usize>>,
}

/// `http3: true`, or its settings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawHttp3 {
    On(bool),
    Settings(Box<RawHttp3Settings>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp3Settings {
    pub idle_timeout: Option<Spanned<String>>,
    pub max_streams: Option<Spanned<u32>>,
    pub max_connections: Option<Spanned<usize>>,
    pub zero_rtt: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub names: Spanned<Vec<Spanned<String>>>,
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub address: Spanned<String>,
    pub token: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub endpoints: Spanned<Vec<Spanned<String>>>,
    pub protocol: Option<Spanned<String>>,
    pub tls: Option<RawUpstreamTls>,
    pub balance: Option<Spanned<String>>,
    pub hash_key: Option<Spanned<String>>,
    pub health_check: Option<RawHealthCheck>,
    pub passive: Option<RawPassive>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    pub retries: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub sni: Option<Spanned<String>>,
    pub verify: Option<bool>,
    pub ca_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    pub path: Spanned<String>,
    pub host: Option<Spanned<String>>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub healthy_threshold: Option<Spanned<u32>>,
    pub unhealthy_threshold: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPassive {
    pub failures: Option<Spanned<u32>>,
    pub ejection: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<Spanned<String>>,
    pub read: Option<Spanned<String>>,
    pub total: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<Spanned<String>>,
    #[serde(rename = "match", default)]
    pub matcher: RawMatch,
    pub pool: Option<Spanned<String>>,
    pub redirect: Option<Spanned<RawRedirect>>,
    pub respond: Option<Spanned<RawRespond>>,
    pub handler: Option<Spanned<String>>,
    pub cache: Option<RawRouteCache>,
    #[serde(default)]
    pub request_headers: RawHeaderEdits,
    #[serde(default)]
    pub response_headers: RawHeaderEdits,
    #[serde(default)]
    pub filters: Vec<Spanned<String>>,
    pub on_filter_error: Option<Spanned<String>>,
    #[serde(default)]
    pub allowed_pools: Vec<Spanned<String>>,
    #[serde(default)]
    pub body_access: bool,
    /// A pool of parent Breakwater nodes the route's cache misses go to first.
    pub shield: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    #[serde(default)]
    pub hosts: Vec<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub path_prefix: Option<Spanned<String>>,
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedirect {
    pub location: Spanned<String>,
    pub status: Option<Spanned<u16>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRespond {
    pub status: Option<Spanned<u16>>,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub headers: Entries<Spanned<String>, Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderEdits {
    #[serde(default)]
    pub set: Entries<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub add: Entries<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub remove: Vec<Spanned<String>>,
}

/// A YAML mapping kept in file order (pools, header maps), keys spanned for errors.
#[derive(Debug)]
pub struct Entries<K, V>(pub Vec<(K, V)>);

impl<K, V> Default for Entries<K, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for Entries<K, V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<K, V>(PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<K, V> {
            type Value = Entries<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(Visit(PhantomData))
    }
}
