//! The YAML schema as written by an operator: unvalidated, with source spans.
//!
//! Every struct denies unknown fields so a typo is an error, not a silent default.
//! Values that validation may refuse are `Spanned` so the error can point at them.

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::fmt;
use std::marker::PhantomData;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub resolver: RawResolver,
    #[serde(default)]
    pub forwarding: RawForwarding,
    pub listeners: S<Vec<RawListener>>,
    #[serde(default)]
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub pools: Entries<S<String>, RawPool>,
    #[serde(default)]
    pub access_log: RawAccessLog,
    #[serde(default)]
    pub wasm: RawWasm,
    #[serde(default)]
    pub components: Entries<S<String>, RawComponent>,
    #[serde(default)]
    pub cache: RawCache,
    pub routes: S<Vec<S<RawRoute>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub memory_mb: Option<S<u64>>,
    pub max_object_mb: Option<S<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteCache {
    pub default_ttl: Option<S<String>>,
    /// `all` (default), `none`, or a list of parameter names.
    pub query: Option<S<RawQueryKey>>,
    #[serde(default)]
    pub key_headers: Vec<S<String>>,
    pub honor_client_no_cache: Option<bool>,
    pub normalize_accept_encoding: Option<bool>,
    /// `pass` (default), `strip` or `store`.
    pub set_cookie: Option<S<String>>,
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
    pub format: Option<S<String>>,
    pub path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWasm {
    pub max_instances: Option<S<u32>>,
    pub cache_dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawComponent {
    pub path: S<String>,
    pub kind: Option<S<String>>,
    #[serde(default)]
    pub config: Entries<S<String>, S<String>>,
    pub deadline: Option<S<String>>,
    pub max_memory_mb: Option<S<u32>>,
    pub max_concurrency: Option<S<usize>>,
    pub prewarm: Option<S<usize>>,
    pub on_error: Option<S<String>>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<S<String>>,
    pub max_body_bytes: Option<S<usize>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub threads: Option<S<usize>>,
    pub grace_period: Option<S<String>>,
    pub shutdown_timeout: Option<S<String>>,
    pub pid_file: Option<String>,
    pub upgrade_sock: Option<String>,
    pub max_header_bytes: Option<S<usize>>,
    pub server_header: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResolver {
    #[serde(default)]
    pub nameservers: Vec<S<String>>,
    pub min_ttl: Option<S<String>>,
    pub max_ttl: Option<S<String>>,
    pub timeout: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForwarding {
    pub via: Option<bool>,
    pub x_forwarded_for: Option<S<String>>,
    pub x_forwarded_proto: Option<bool>,
    pub forwarded: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub name: S<String>,
    pub address: S<String>,
    #[serde(default)]
    pub protocol: Option<S<String>>,
    #[serde(default)]
    pub h2c: Option<bool>,
    #[serde(default)]
    pub http2: Option<bool>,
    #[serde(default)]
    pub certificates: Vec<RawCertificate>,
    pub http3: Option<S<RawHttp3>>,
    #[serde(default)]
    pub clients: Option<S<RawClientLimits>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientLimits {
    pub header_timeout: Option<S<String>>,
    pub idle_timeout: Option<S<String>>,
    pub send_timeout: Option<S<String>>,
    pub max_connections: Option<S<usize>>,
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
    pub idle_timeout: Option<S<String>>,
    pub max_streams: Option<S<u32>>,
    pub max_connections: Option<S<usize>>,
    pub zero_rtt: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub names: S<Vec<S<String>>>,
    pub cert: S<String>,
    pub key: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub address: S<String>,
    pub token: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub endpoints: S<Vec<S<String>>>,
    pub protocol: Option<S<String>>,
    pub tls: Option<RawUpstreamTls>,
    pub balance: Option<S<String>>,
    pub hash_key: Option<S<String>>,
    pub health_check: Option<RawHealthCheck>,
    pub passive: Option<RawPassive>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    pub retries: Option<S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub sni: Option<S<String>>,
    pub verify: Option<bool>,
    pub ca_file: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    pub path: S<String>,
    pub host: Option<S<String>>,
    pub interval: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub healthy_threshold: Option<S<u32>>,
    pub unhealthy_threshold: Option<S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPassive {
    pub failures: Option<S<u32>>,
    pub ejection: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<S<String>>,
    pub read: Option<S<String>>,
    pub total: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<S<String>>,
    #[serde(rename = "match", default)]
    pub matcher: RawMatch,
    pub pool: Option<S<String>>,
    pub redirect: Option<S<RawRedirect>>,
    pub respond: Option<S<RawRespond>>,
    pub handler: Option<S<String>>,
    pub cache: Option<RawRouteCache>,
    #[serde(default)]
    pub request_headers: RawHeaderEdits,
    #[serde(default)]
    pub response_headers: RawHeaderEdits,
    #[serde(default)]
    pub filters: Vec<S<String>>,
    pub on_filter_error: Option<S<String>>,
    #[serde(default)]
    pub allowed_pools: Vec<S<String>>,
    #[serde(default)]
    pub body_access: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    #[serde(default)]
    pub hosts: Vec<S<String>>,
    pub path: Option<S<String>>,
    pub path_prefix: Option<S<String>>,
    #[serde(default)]
    pub methods: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedirect {
    pub location: S<String>,
    pub status: Option<S<u16>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRespond {
    pub status: Option<S<u16>>,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub headers: Entries<S<String>, S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderEdits {
    #[serde(default)]
    pub set: Entries<S<String>, S<String>>,
    #[serde(default)]
    pub add: Entries<S<String>, S<String>>,
    #[serde(default)]
    pub remove: Vec<S<String>>,
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
