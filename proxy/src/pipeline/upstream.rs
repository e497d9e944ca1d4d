//! Origin pools: endpoints (resolved by DNS when named), their health, and endpoint choice.
//!
//! An endpoint is *available* when the active health check has not marked it down and
//! passive ejection has not taken it out. Choice is among available endpoints not yet tried
//! by this request; when none is available the pool fails open to every untried endpoint
//! (as Envoy's panic threshold does), so a broken health check cannot black-hole a pool.

mod health;
mod resolve;

pub use resolve::Resolver;

use breakwater_config as config;
use config::{Balance, HashKey};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use pingora::protocols::tls::CaType;
use pingora::upstreams::peer::HttpPeer;
use std::path::Path;

/// A pool that cannot be built from its config.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("pools.{pool}.tls.ca_file: {}: {reason}", path.display())]
    CaFile {
        pool: String,
        path: std::path::PathBuf,
        reason: String,
    },
}

fn load_ca(pool: &str, path: &Path) -> Result<Arc<CaType>, PoolError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let err = |reason: String| PoolError::CaFile {
        pool: pool.to_string(),
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| err(format!("not a PEM file ({e})")))?;
    if certs.is_empty() {
        return Err(err("no certificate found in the file".into()));
    }
    // Check each certificate parses before pingora's parser (which panics on bad DER) sees it.
    let mut roots = rustls::RootCertStore::empty();
    let mut wrapped = Vec::new();
    for c in certs {
        roots
            .add(c.clone())
            .map_err(|e| err(format!("invalid CA certificate: {e}")))?;
        wrapped.push(pingora::utils::tls::WrappedX509::new(
            c.to_vec(),
            pingora::utils::tls::parse_x509,
        ));
    }
    Ok(Arc::from(wrapped.into_boxed_slice()))
}

/// One origin address and what is known of its health.
#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// Host name for TLS SNI and the default health-check `Host`, when given by name.
    pub host: Option<String>,
    healthy: AtomicBool,
    check_successes: AtomicU32,
    check_failures: AtomicU32,
    passive_failures: AtomicU32,
    /// Milliseconds since the pool's epoch until which the endpoint is ejected.
    ejected_until_ms: AtomicU64,
}

impl Endpoint {
    fn new(addr: SocketAddr, host: Option<String>) -> Self {
        Self {
            addr,
            host,
            healthy: AtomicBool::new(true),
            check_successes: AtomicU32::new(0),
            check_failures: AtomicU32::new(0),
            passive_failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// A pool of origin endpoints, built from one config generation.
#[derive(Debug)]
pub struct Pool {
    pub config: config::Pool,
    /// CA certificates from `tls.ca_file`, parsed once.
    ca: Option<Arc<CaType>>,
    endpoints: ArcSwap<Vec<Arc<Endpoint>>>,
    next: AtomicUsize,
    epoch: Instant,
}

impl Pool {
    /// Build a pool; named endpoints are resolved (asynchronously) before it is used.
    pub async fn new(config: config::Pool, resolver: &Resolver) -> Result<Arc<Self>, PoolError> {
        let ca = match config.tls.as_ref().and_then(|t| t.ca_file.as_ref()) {
            Some(path) => Some(load_ca(&config.name, path)?),
            None => None,
        };
        let pool = Arc::new(Self {
            config,
            ca,
            endpoints: ArcSwap::from_pointee(Vec::new()),
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
        });
        pool.resolve(resolver).await;
        Ok(pool)
    }

    /// The pingora peer for `ep`, with this pool's protocol, TLS and timeouts.
    pub fn peer(&self, ep: &Endpoint) -> HttpPeer {
        let tls = self.config.tls.as_ref();
        let sni = tls
            .and_then(|t| t.sni.clone())
            .or_else(|| ep.host.clone())
            .unwrap_or_default();
        let mut peer = HttpPeer::new(ep.addr, tls.is_some(), sni);
        let o = &mut peer.options;
        let t = &self.config.timeouts;
        o.connection_timeout = Some(t.connect);
        o.total_connection_timeout = Some(t.total);
        o.read_timeout = Some(t.read);
        o.write_timeout = Some(t.read);
        o.idle_timeout = Some(Duration::from_secs(60));
        if let Some(tls) = tls {
            o.verify_cert = tls.verify;
            o.verify_hostname = tls.verify;
            o.ca = self.ca.clone();
            // pingora's connection pool does not key on the CA: keep connections verified
            // against one CA file away from pools that trust another.
            if let Some(ca_file) = &tls.ca_file {
                let mut h = std::hash::DefaultHasher::new();
                ca_file.hash(&mut h);
                peer.group_key = h.finish();
            }
        }
        match self.config.protocol {
            config::UpstreamProtocol::Http1 => o.set_http_version(1, 1),
            config::UpstreamProtocol::Http2 => o.set_http_version(2, 2),
        }
        peer
    }

    /// Start the pool's background work (DNS refresh, active health checks) on `rt`.
    /// The tasks hold a weak reference and end when the pool is dropped.
    pub fn start(self: &Arc<Self>, rt: &tokio::runtime::Handle, resolver: Resolver) {
        let has_names = self
            .config
            .endpoints
            .iter()
            .any(|e| matches!(e, config::Endpoint::Name { .. }));
        if has_names {
            rt.spawn(resolve::refresh_loop(Arc::downgrade(self), resolver));
        }
        if let Some(hc) = self.config.health_check.clone() {
            rt.spawn(health::check_loop(Arc::downgrade(self), hc));
        }
    }

    /// Re-resolve named endpoints, keeping the health state of addresses that remain.
    /// Returns when the answers expire (None when nothing is named or resolution failed).
    async fn resolve(&self, resolver: &Resolver) -> Option<Instant> {
        let old = self.endpoints.load_full();
        let mut next = Vec::new();
        let mut expires: Option<Instant> = None;
        for ep in &self.config.endpoints {
            match ep {
                config::Endpoint::Addr(a) => next.push((*a, None)),
                config::Endpoint::Name { host, port } => match resolver.lookup(host).await {
                    Ok((ips, valid_until)) => {
                        expires = Some(expires.map_or(valid_until, |e| e.min(valid_until)));
                        next.extend(
                            ips.into_iter()
                                .map(|ip| (SocketAddr::new(ip, *port), Some(host.clone()))),
                        );
                    }
                    Err(e) => {
                        tracing::warn!(pool = %self.config.name, %host, error = %e, "DNS resolution failed");
                        // Keep the previous addresses of this name rather than dropping them.
                        next.extend(
                            old.iter()
                                .filter(|o| {
                                    o.host.as_deref() == Some(host.as_str())
                                        && o.addr.port() == *port
                                })
                                .map(|o| (o.addr, o.host.clone())),
                        );
                        expires = Some(Instant::now() + resolver.retry_after());
                    }
                },
            }
        }
        let endpoints = next
            .into_iter()
            .map(|(addr, host)| {
                old.iter()
                    .find(|o| o.addr == addr && o.host == host)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Endpoint::new(addr, host)))
            })
            .collect();
        self.endpoints.store(Arc::new(endpoints));
        expires
    }

    pub fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.endpoints.load_full()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn available(&self, ep: &Endpoint, now_ms: u64) -> bool {
        ep.is_healthy() && ep.ejected_until_ms.load(Ordering::Relaxed) <= now_ms
    }

    /// Whether `ep` can take traffic now.
    pub fn is_available(&self, ep: &Endpoint) -> bool {
        self.available(ep, self.now_ms())
    }

    /// Whether at least one endpoint can take traffic (for readiness).
    pub fn has_available(&self) -> bool {
        let now = self.now_ms();
        self.endpoints.load().iter().any(|e| self.available(e, now))
    }

    /// The endpoints of `all` not in `tried` that can take traffic now.
    fn candidates<'a>(
        &self,
        all: &'a [Arc<Endpoint>],
        tried: &[SocketAddr],
    ) -> Vec<&'a Arc<Endpoint>> {
        let now = self.now_ms();
        all.iter()
            .filter(|e| !tried.contains(&e.addr) && self.available(e, now))
            .collect()
    }

    /// Choose an endpoint for a request, skipping those in `tried`.
    pub fn select(&self, key: &SelectKey<'_>, tried: &[SocketAddr]) -> Option<Arc<Endpoint>> {
        let all = self.endpoints.load();
        let mut candidates = self.candidates(&all, tried);
        if candidates.is_empty() {
            candidates = all.iter().filter(|e| !tried.contains(&e.addr)).collect();
        }
        if candidates.is_empty() {
            return None;
        }
        let i = match &self.config.balance {
            Balance::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % candidates.len(),
            Balance::Random => rand::random_range(0..candidates.len()),
            Balance::ConsistentHash(k) => rendezvous(&candidates, key.for_hash(k)),
        };
        Some(candidates[i].clone())
    }

    /// The available endpoint that rendezvous hashing gives `key` (a shield tier's parent
    /// for one URL); `None` when no endpoint can take traffic.
    pub fn select_hashed(&self, key: impl Hash) -> Option<Arc<Endpoint>> {
        let all = self.endpoints.load();
        let candidates = self.candidates(&all, &[]);
        if candidates.is_empty() {
            return None;
        }
        let mut h = std::hash::DefaultHasher::new();
        key.hash(&mut h);
        Some(candidates[rendezvous(&candidates, h.finish())].clone())
    }

    /// Whether an endpoint not in `tried` exists (a retry has somewhere to go).
    pub fn has_untried(&self, tried: &[SocketAddr]) -> bool {
        self.endpoints
            .load()
            .iter()
            .any(|e| !tried.contains(&e.addr))
    }

    /// A connection to `ep` failed: count it, and eject it after enough in a row.
    pub fn report_failure(&self, ep: &Endpoint) {
        let p = &self.config.passive;
        if p.failures == 0 {
            return;
        }
        let n = ep.passive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= p.failures {
            ep.passive_failures.store(0, Ordering::Relaxed);
            let until = self.now_ms() + p.ejection.as_millis() as u64;
            ep.ejected_until_ms.store(until, Ordering::Relaxed);
            tracing::warn!(pool = %self.config.name, endpoint = %ep.addr, ejection = ?p.ejection, "endpoint ejected after consecutive failures");
        }
    }

    /// A connection to `ep` succeeded: reset its failure count.
    pub fn report_success(&self, ep: &Endpoint) {
        if ep.passive_failures.load(Ordering::Relaxed) != 0 {
            ep.passive_failures.store(0, Ordering::Relaxed);
        }
    }
}

/// The parts of a request a consistent-hash key can be taken from.
pub struct SelectKey<'a> {
    pub path: &'a str,
    pub client_ip: Option<std::net::IpAddr>,
    pub header: &'a dyn Fn(&http::HeaderName) -> Option<&'a [u8]>,
}

impl SelectKey<'_> {
    fn for_hash(&self, key: &HashKey) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        match key {
            HashKey::Path => self.path.hash(&mut h),
            HashKey::ClientIp => self.client_ip.hash(&mut h),
            HashKey::Header(name) => (self.header)(name).hash(&mut h),
        }
        h.finish()
    }
}

/// Rendezvous (highest random weight) hashing: stable per key, and only the keys of a
/// removed endpoint move when the set changes.
fn rendezvous(candidates: &[&Arc<Endpoint>], key: u64) -> usize {
    let score = |ep: &Endpoint| {
        let mut h = std::hash::DefaultHasher::new();
        key.hash(&mut h);
        ep.addr.hash(&mut h);
        h.finish()
    };
    (0..candidates.len())
        .max_by_key(|&i| score(candidates[i]))
        .unwrap_or(0)
}

/// Sleep helper for background loops: returns false once the pool is gone.
async fn sleep_while_alive(pool: &Weak<Pool>, d: Duration) -> bool {
    tokio::time::sleep(d).await;
    pool.strong_count() > 0
}

/// A pool named `name` of `eps` (addresses), for tests.
#[cfg(test)]
pub(crate) fn test_pool(name: &str, balance: Balance, eps: &[&str]) -> Arc<Pool> {
    let text = format!(
        "listeners: [{{name: w, address: \"127.0.0.1:1\"}}]\npools: {{ {name}: {{ endpoints: [{}] }} }}\nroutes: [{{pool: {name}}}]\n",
        eps.iter().map(|e| format!("\"{e}\"")).collect::<Vec<_>>().join(",")
    );
    let mut cfg = breakwater_config::parse(&text, Path::new("t.yaml"))
        .unwrap()
        .pools
        .remove(0);
    cfg.balance = balance;
    let settings = breakwater_config::ResolverSettings {
        nameservers: vec!["127.0.0.1:1".parse().unwrap()],
        min_ttl: Duration::from_secs(1),
        max_ttl: Duration::from_secs(2),
        timeout: Duration::from_millis(100),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resolver = Resolver::new(&settings).unwrap();
        Pool::new(cfg, &resolver).await.unwrap()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(balance: Balance, eps: &[&str]) -> Arc<Pool> {
        test_pool("p", balance, eps)
    }
    use breakwater_config::Endpoint as Ep;

    fn key() -> SelectKey<'static> {
        SelectKey {
            path: "/",
            client_ip: None,
            header: &|_| None,
        }
    }

    #[test]
    fn consecutive_failures_eject_an_endpoint_and_success_resets_the_count() {
        let p = pool(Balance::RoundRobin, &["127.0.0.1:1001", "127.0.0.1:1002"]);
        let eps = p.endpoints();
        let (a, b) = (&eps[0], &eps[1]);
        p.report_failure(a);
        p.report_failure(a);
        p.report_success(a);
        p.report_failure(a);
        assert!(p.is_available(a), "a success in between resets the count");
        p.report_failure(a);
        p.report_failure(a);
        assert!(!p.is_available(a), "three failures in a row eject");
        for _ in 0..10 {
            assert_eq!(p.select(&key(), &[]).unwrap().addr, b.addr);
        }
        // With every endpoint out, the pool fails open rather than refusing.
        for _ in 0..3 {
            p.report_failure(b);
        }
        assert!(!p.has_available());
        assert!(p.select(&key(), &[]).is_some());
        assert!(
            p.select(&key(), &[a.addr, b.addr]).is_none(),
            "never an endpoint already tried"
        );
        assert!(matches!(p.config.endpoints[0], Ep::Addr(_)));
    }

    #[test]
    fn random_balancing_uses_every_endpoint() {
        let p = pool(
            Balance::Random,
            &["127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"],
        );
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.insert(p.select(&key(), &[]).unwrap().addr);
        }
        assert_eq!(seen.len(), 3);
    }
}
