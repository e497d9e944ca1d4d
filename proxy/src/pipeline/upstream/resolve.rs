//! DNS for named endpoints, with hickory-resolver (never a blocking lookup on a runtime thread).

use super::{sleep_while_alive, Pool};
use breakwater_config::ResolverSettings;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// A shared asynchronous resolver with the config's TTL bounds.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<TokioResolver>,
    min_ttl: Duration,
    max_ttl: Duration,
    /// Lookups by host (config names only) and result, when metrics are wanted.
    counted: Option<prometheus::IntCounterVec>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{0}")]
    Lookup(String),
    #[error("no address records")]
    NoAddress,
}

impl Resolver {
    pub fn new(settings: &ResolverSettings) -> Result<Self, String> {
        let mut builder = if settings.nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| format!("system DNS config: {e}"))?
        } else {
            let servers = settings
                .nameservers
                .iter()
                .map(|ns| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = ns.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = ns.port();
                    NameServerConfig::new(ns.ip(), true, vec![udp, tcp])
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        };
        let opts = builder.options_mut();
        opts.timeout = settings.timeout;
        opts.attempts = 2;
        opts.positive_max_ttl = Some(settings.max_ttl);
        opts.negative_max_ttl = Some(settings.min_ttl.max(Duration::from_secs(1)));
        let inner = builder.build().map_err(|e| e.to_string())?;
        Ok(Self {
            inner: Arc::new(inner),
            min_ttl: settings.min_ttl,
            max_ttl: settings.max_ttl,
            counted: None,
        })
    }

    /// Count every lookup in `counter` (labels: host, result).
    pub fn counted(mut self, counter: prometheus::IntCounterVec) -> Self {
        self.counted = Some(counter);
        self
    }

    /// Addresses of `host` and when they expire (clamped to the configured TTL bounds).
    pub async fn lookup(&self, host: &str) -> Result<(Vec<IpAddr>, Instant), ResolveError> {
        let result = self.lookup_uncounted(host).await;
        if let Some(c) = &self.counted {
            let outcome = match &result {
                Ok(_) => "ok",
                Err(ResolveError::NoAddress) => "no_address",
                Err(_) => "error",
            };
            c.with_label_values(&[host, outcome]).inc();
        }
        result
    }

    async fn lookup_uncounted(&self, host: &str) -> Result<(Vec<IpAddr>, Instant), ResolveError> {
        let fqdn = if host.ends_with('.') {
            host.to_string()
        } else {
            format!("{host}.")
        };
        let answer = self
            .inner
            .lookup_ip(fqdn)
            .await
            .map_err(|e| ResolveError::Lookup(e.to_string()))?;
        let ips: Vec<IpAddr> = answer.iter().collect();
        if ips.is_empty() {
            return Err(ResolveError::NoAddress);
        }
        let now = Instant::now();
        let ttl = answer.valid_until().saturating_duration_since(now);
        Ok((ips, now + ttl.clamp(self.min_ttl, self.max_ttl)))
    }

    /// How soon to retry after a failed lookup.
    pub fn retry_after(&self) -> Duration {
        self.min_ttl.max(Duration::from_secs(1)).min(self.max_ttl)
    }
}

/// Re-resolve the pool's named endpoints each time their records expire.
pub(super) async fn refresh_loop(pool: Weak<Pool>, resolver: Resolver) {
    let mut wait = resolver.retry_after();
    while sleep_while_alive(&pool, wait).await {
        let Some(p) = pool.upgrade() else { return };
        let expires = p.resolve(&resolver).await;
        wait = expires
            .map(|e| e.saturating_duration_since(Instant::now()))
            .unwrap_or(resolver.max_ttl)
            .max(Duration::from_millis(100));
    }
}
