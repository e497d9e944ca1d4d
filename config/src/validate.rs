//! Raw YAML structs -> validated [`Config`]. The only place that interprets config strings.

use crate::raw::*;
use crate::types::*;
use crate::{ConfigError, Location};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde_saphyr::Spanned;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// Most pool slots (`wasm.max_instances`) whose address space reservations fit a 47-bit
/// address space with room to spare (see the error message).
const MAX_INSTANCES: u32 = 5000;
use std::time::Duration;

type Result<T> = std::result::Result<T, ConfigError>;

pub(crate) struct Validator<'a> {
    file: &'a Path,
    /// Relative paths in the config (certificates, CA files) are relative to its directory.
    base_dir: PathBuf,
}

impl<'a> Validator<'a> {
    pub(crate) fn new(file: &'a Path) -> Self {
        let base_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        Self { file, base_dir }
    }

    fn at<T>(&self, s: &Spanned<T>) -> Location {
        Location::new(self.file, s.referenced)
    }

    fn err<T>(
        &self,
        s: &Spanned<T>,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) -> ConfigError {
        ConfigError::invalid(self.at(s), field, msg)
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// `cache.disk`: a directory and a size (`size_gb`, or `size_mb` for small tiers).
    fn cache_disk(&self, d: &Spanned<RawCacheDisk>) -> Result<CacheDisk> {
        let Some(path) = &d.value.path else {
            return Err(self.err(
                d,
                "cache.disk.path",
                "a directory for the disk tier is required",
            ));
        };
        if path.value.trim().is_empty() {
            return Err(self.err(path, "cache.disk.path", "expected a directory"));
        }
        let bytes = match (&d.value.size_gb, &d.value.size_mb) {
            (Some(_), Some(mb)) => {
                return Err(self.err(
                    mb,
                    "cache.disk.size_mb",
                    "give size_gb or size_mb, not both",
                ))
            }
            (Some(gb), None) if (1..=1 << 20).contains(&gb.value) => gb.value << 30,
            (Some(gb), None) => {
                return Err(self.err(gb, "cache.disk.size_gb", "expected 1 to 1048576 (GiB)"))
            }
            (None, Some(mb)) if (64..=1 << 30).contains(&mb.value) => mb.value << 20,
            (None, Some(mb)) => {
                return Err(self.err(mb, "cache.disk.size_mb", "expected 64 to 1073741824 (MiB)"))
            }
            (None, None) => {
                return Err(self.err(d, "cache.disk.size_gb", "the disk tier's size is required"))
            }
        };
        Ok(CacheDisk {
            path: self.path(&path.value),
            bytes,
        })
    }

    pub(crate) fn config(&self, raw: RawConfig) -> Result<Config> {
        let server = self.server(&raw.server)?;
        let resolver = self.resolver(&raw.resolver)?;
        let forwarding = self.forwarding(&raw.forwarding)?;
        let listeners = self.listeners(&raw.listeners)?;
        let admin = match &raw.admin {
            Some(a) => Admin {
                address: self.socket_addr(&a.address, "admin.address")?,
                token: match &a.token {
                    Some(t) if t.value.is_empty() => {
                        return Err(self.err(t, "admin.token", "must not be empty"))
                    }
                    t => t.as_ref().map(|t| t.value.clone()),
                },
            },
            None => Admin {
                address: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9901),
                token: None,
            },
        };
        let mut pools = Vec::with_capacity(raw.pools.0.len());
        let mut pool_ids = HashMap::new();
        for (name, pool) in &raw.pools.0 {
            let field = format!("pools.{}", name.value);
            check_name(self, name, &field)?;
            if pool_ids
                .insert(name.value.clone(), PoolId(pools.len()))
                .is_some()
            {
                return Err(self.err(name, field, "pool defined twice"));
            }
            pools.push(self.pool(&name.value, pool, &field)?);
        }
        let mut components = Vec::with_capacity(raw.components.0.len());
        let mut component_ids = HashMap::new();
        for (name, c) in &raw.components.0 {
            let field = format!("components.{}", name.value);
            check_name(self, name, &field)?;
            if component_ids
                .insert(name.value.clone(), ComponentId(components.len()))
                .is_some()
            {
                return Err(self.err(name, field, "component defined twice"));
            }
            components.push(self.component(&name.value, c, &field, raw.fleet.is_some())?);
        }
        let wasm = WasmSettings {
            max_instances: match &raw.wasm.max_instances {
                Some(m) if m.value == 0 || m.value > MAX_INSTANCES => {
                    return Err(self.err(
                        m,
                        "wasm.max_instances",
                        format!(
                            "expected 1 to {MAX_INSTANCES}: each instance slot reserves about \
                             16 GiB of virtual address space (a 4 GiB reservation for each of \
                             two linear memories, in each of the filter and handler engines), \
                             and a 47-bit address space holds 128 TiB"
                        ),
                    ))
                }
                Some(m) => m.value,
                None => 1000,
            },
            cache_dir: raw.wasm.cache_dir.as_deref().map(|d| self.path(d)),
            offload_above: match &raw.wasm.offload_above {
                None => Some(Duration::from_micros(100)),
                Some(s) if s.value.trim() == "off" => None,
                Some(s) => Some(self.duration(s, "wasm.offload_above")?),
            },
            guest_threads: match &raw.wasm.guest_threads {
                Some(n) if n.value == 0 || n.value > 1024 => {
                    return Err(self.err(n, "wasm.guest_threads", "expected 1 to 1024"))
                }
                n => n.as_ref().map(|n| n.value),
            },
            guest_priority: match raw
                .wasm
                .guest_priority
                .as_ref()
                .map(|p| (p, p.value.trim()))
            {
                Some((_, "idle")) => GuestPriority::Idle,
                None | Some((_, "low")) => GuestPriority::Low,
                Some((p, other)) => {
                    return Err(self.err(
                        p,
                        "wasm.guest_priority",
                        format!("unknown priority \"{other}\"; expected idle or low"),
                    ))
                }
            },
            keep_resident_bytes: match &raw.wasm.keep_resident_mb {
                Some(m) if m.value > 1024 => {
                    return Err(self.err(m, "wasm.keep_resident_mb", "expected 0 to 1024 (MiB)"))
                }
                Some(m) => (m.value as usize) << 20,
                None => 16 << 20,
            },
            idle_unload: match &raw.wasm.idle_unload {
                None => Some(Duration::from_secs(300)),
                Some(s) if s.value.trim() == "off" => None,
                Some(s) => Some(self.duration(s, "wasm.idle_unload")?).filter(|d| !d.is_zero()),
            },
        };
        let mb = |v: &Option<Spanned<u64>>, field: &str, default: u64| match v {
            Some(m) if m.value == 0 || m.value > 1 << 20 => {
                Err(self.err(m, field, "expected 1 to 1048576 (MiB)"))
            }
            Some(m) => Ok(m.value << 20),
            None => Ok(default << 20),
        };
        let cache = CacheSettings {
            memory_bytes: mb(&raw.cache.memory_mb, "cache.memory_mb", 256)?,
            max_object_bytes: mb(&raw.cache.max_object_mb, "cache.max_object_mb", 8)? as usize,
            disk: match &raw.cache.disk {
                Some(d) => Some(self.cache_disk(d)?),
                None => None,
            },
        };
        let access_log = AccessLog {
            format: match raw
                .access_log
                .format
                .as_ref()
                .map(|f| (f, f.value.as_str()))
            {
                None | Some((_, "json")) => AccessLogFormat::Json,
                Some((_, "combined")) => AccessLogFormat::Combined,
                Some((_, "off")) => AccessLogFormat::Off,
                Some((f, other)) => {
                    return Err(self.err(
                        f,
                        "access_log.format",
                        format!("unknown format \"{other}\"; expected json, combined or off"),
                    ))
                }
            },
            path: raw.access_log.path.as_deref().map(|p| self.path(p)),
        };
        let control = ControlFields {
            targeted: match &raw.cache.targeted_field {
                Some(f) => Some(self.targeted_field(f)?),
                None => None,
            },
            forward_targeted: raw.cache.forward_targeted.unwrap_or(false),
        };
        let names = Names {
            pools: &pool_ids,
            components: &component_ids,
            control: &control,
        };
        let routes = self.routes(&raw.routes, &names, &pools, &components)?;
        let fleet = match &raw.fleet {
            Some(f) => Some(self.fleet(f)?),
            None => None,
        };
        Ok(Config {
            server,
            resolver,
            forwarding,
            listeners,
            admin,
            pools,
            access_log,
            wasm,
            components,
            cache,
            fleet,
            routes,
        })
    }

    /// `fleet:`: the Redis address (credentials from a file or the environment, never in the
    /// address, so they stay out of configs and logs), its timeout and the purge history.
    fn fleet(&self, f: &Spanned<RawFleet>) -> Result<Fleet> {
        let raw = &f.value;
        let url = &raw.redis;
        let bad = |why: &str| {
            self.err(
                url,
                "fleet.redis",
                format!("{why}; expected redis://HOST[:PORT][/DB] or rediss://..."),
            )
        };
        let (tls, rest) = match url.value.split_once("://") {
            Some(("redis", rest)) => (false, rest),
            Some(("rediss", rest)) => (true, rest),
            _ => return Err(bad("unknown scheme")),
        };
        let (authority, db) = match rest.split_once('/') {
            Some((a, "")) => (a, 0),
            Some((a, db)) => (
                a,
                db.parse::<i64>()
                    .map_err(|_| bad("invalid database number"))?,
            ),
            None => (rest, 0),
        };
        if authority.contains('@') {
            return Err(self.err(
                url,
                "fleet.redis",
                "credentials do not belong in the address (it is logged): use fleet.username \
                 and fleet.password_file or fleet.password_env",
            ));
        }
        // `host[:port]`, as `allowed_outbound_hosts` entries are read (IPv6 in brackets).
        let parsed = authority
            .parse::<http::uri::Authority>()
            .map_err(|_| bad("invalid host or port"))?;
        let host = parsed.host().trim_start_matches('[').trim_end_matches(']');
        let port = parsed.port_u16().unwrap_or(6379);
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let password = match (&raw.password_file, &raw.password_env) {
            (Some(_), Some(e)) => {
                return Err(self.err(
                    e,
                    "fleet.password_env",
                    "give password_file or password_env, not both",
                ))
            }
            (Some(file), None) => {
                let (_, bytes) = self.read(file, "fleet.password_file")?;
                let text = String::from_utf8_lossy(&bytes);
                Some(Secret(text.lines().next().unwrap_or("").to_string()))
            }
            (None, Some(var)) => Some(Secret(std::env::var(&var.value).map_err(|_| {
                self.err(
                    var,
                    "fleet.password_env",
                    format!("environment variable {} is not set", var.value),
                )
            })?)),
            (None, None) => None,
        };
        let tls = match (tls, &raw.ca_file) {
            (false, None) => None,
            (true, None) => Some(RedisTrust::System),
            (false, Some(file)) => {
                return Err(self.err(
                    file,
                    "fleet.ca_file",
                    "a CA applies to TLS only: the address is redis://, use rediss://",
                ))
            }
            (true, Some(file)) => {
                let (path, pem) = self.read(file, "fleet.ca_file")?;
                let marker = b"-----BEGIN CERTIFICATE-----";
                if !pem.windows(marker.len()).any(|w| w == marker) {
                    return Err(self.err(
                        file,
                        "fleet.ca_file",
                        format!("no PEM certificate in {}", path.display()),
                    ));
                }
                Some(RedisTrust::Ca(pem))
            }
        };
        let timeout = match &raw.timeout {
            Some(t) => self.duration(t, "fleet.timeout")?,
            None => Duration::from_secs(1),
        };
        let purge_history = match &raw.purge_history {
            Some(h) if h.value == 0 => {
                return Err(self.err(h, "fleet.purge_history", "expected at least 1"))
            }
            Some(h) => h.value,
            None => 10_000,
        };
        Ok(Fleet {
            redis: RedisTarget {
                tls,
                host: host.to_string(),
                port,
                db,
                username: raw.username.clone(),
                password,
            },
            timeout,
            purge_history,
        })
    }

    /// The file `field` names (relative to the config's directory): its path and contents.
    fn read(&self, file: &Spanned<String>, field: &str) -> Result<(PathBuf, Vec<u8>)> {
        let path = self.path(&file.value);
        match std::fs::read(&path) {
            Ok(bytes) => Ok((path, bytes)),
            Err(e) => Err(self.err(file, field, format!("cannot read {}: {e}", path.display()))),
        }
    }

    fn duration(&self, s: &Spanned<String>, field: &str) -> Result<Duration> {
        humantime::parse_duration(s.value.trim()).map_err(|e| {
            self.err(
                s,
                field,
                format!(
                    "invalid duration \"{}\" ({e}); expected e.g. 500ms, 5s, 1m",
                    s.value
                ),
            )
        })
    }

    fn opt_duration(
        &self,
        s: &Option<Spanned<String>>,
        field: &str,
        default: Duration,
    ) -> Result<Duration> {
        s.as_ref().map_or(Ok(default), |s| self.duration(s, field))
    }

    fn positive_duration(
        &self,
        s: &Option<Spanned<String>>,
        field: &str,
        default: Duration,
    ) -> Result<Duration> {
        let d = self.opt_duration(s, field, default)?;
        match s {
            Some(s) if d.is_zero() => Err(self.err(s, field, "must be greater than zero")),
            _ => Ok(d),
        }
    }

    fn socket_addr(&self, s: &Spanned<String>, field: &str) -> Result<SocketAddr> {
        s.value.parse().map_err(|_| {
            self.err(
                s,
                field,
                format!(
                    "invalid address \"{}\"; expected IP:PORT, e.g. 127.0.0.1:8080 or [::1]:8443",
                    s.value
                ),
            )
        })
    }

    fn server(&self, raw: &RawServer) -> Result<ServerSettings> {
        let threads = match &raw.threads {
            Some(t) if t.value == 0 => {
                return Err(self.err(t, "server.threads", "must be at least 1"))
            }
            Some(t) => t.value,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let max_header_bytes = match &raw.max_header_bytes {
            Some(m) if m.value < 1024 => {
                return Err(self.err(m, "server.max_header_bytes", "must be at least 1024"))
            }
            Some(m) => m.value,
            None => 32 * 1024,
        };
        Ok(ServerSettings {
            threads,
            work_stealing: raw.work_stealing.unwrap_or(false),
            grace_period: self.opt_duration(
                &raw.grace_period,
                "server.grace_period",
                Duration::from_secs(5),
            )?,
            shutdown_timeout: self.opt_duration(
                &raw.shutdown_timeout,
                "server.shutdown_timeout",
                Duration::from_secs(2),
            )?,
            pid_file: self.path(raw.pid_file.as_deref().unwrap_or("/tmp/breakwater.pid")),
            upgrade_sock: self.path(
                raw.upgrade_sock
                    .as_deref()
                    .unwrap_or("/tmp/breakwater_upgrade.sock"),
            ),
            max_header_bytes,
            server_header: raw.server_header.unwrap_or(true),
            upstream_keepalive: raw.upstream_keepalive.as_ref().map_or(8192, |k| k.value),
        })
    }

    fn resolver(&self, raw: &RawResolver) -> Result<ResolverSettings> {
        let mut nameservers = Vec::new();
        for (i, ns) in raw.nameservers.iter().enumerate() {
            let field = format!("resolver.nameservers[{i}]");
            let addr = match ns.value.parse::<IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, 53),
                Err(_) => self.socket_addr(ns, &field)?,
            };
            nameservers.push(addr);
        }
        Ok(ResolverSettings {
            nameservers,
            min_ttl: self.opt_duration(&raw.min_ttl, "resolver.min_ttl", Duration::from_secs(1))?,
            max_ttl: self.positive_duration(
                &raw.max_ttl,
                "resolver.max_ttl",
                Duration::from_secs(300),
            )?,
            timeout: self.positive_duration(
                &raw.timeout,
                "resolver.timeout",
                Duration::from_secs(2),
            )?,
        })
    }

    fn forwarding(&self, raw: &RawForwarding) -> Result<Forwarding> {
        let x_forwarded_for = match &raw.x_forwarded_for {
            None => XffMode::Append,
            Some(s) => match s.value.as_str() {
                "append" => XffMode::Append,
                "replace" => XffMode::Replace,
                "off" => XffMode::Off,
                other => {
                    return Err(self.err(
                        s,
                        "forwarding.x_forwarded_for",
                        format!("unknown mode \"{other}\"; expected append, replace or off"),
                    ))
                }
            },
        };
        Ok(Forwarding {
            via: raw.via.unwrap_or(true),
            x_forwarded_for,
            x_forwarded_proto: raw.x_forwarded_proto.unwrap_or(true),
            forwarded: raw.forwarded.unwrap_or(false),
        })
    }

    fn listeners(&self, raw: &Spanned<Vec<RawListener>>) -> Result<Vec<Listener>> {
        if raw.value.is_empty() {
            return Err(self.err(raw, "listeners", "at least one listener is required"));
        }
        let mut out: Vec<Listener> = Vec::new();
        for (i, l) in raw.value.iter().enumerate() {
            let field = format!("listeners[{i}]");
            check_name(self, &l.name, &format!("{field}.name"))?;
            if out.iter().any(|o| o.name == l.name.value) {
                return Err(self.err(&l.name, format!("{field}.name"), "listener name used twice"));
            }
            let address = self.socket_addr(&l.address, &format!("{field}.address"))?;
            if address.port() != 0 && out.iter().any(|o| o.address == address) {
                return Err(self.err(
                    &l.address,
                    format!("{field}.address"),
                    "address used by another listener",
                ));
            }
            let protocol = l.protocol.as_ref().map_or("http", |p| p.value.as_str());
            let kind = match protocol {
                "http" => {
                    if let Some(h) = &l.http3 {
                        return Err(self.err(
                            h,
                            format!("{field}.http3"),
                            "HTTP/3 needs protocol: https (QUIC is always encrypted)",
                        ));
                    }
                    if let Some(c) = l.certificates.first() {
                        return Err(self.err(
                            &c.cert,
                            format!("{field}.certificates"),
                            "certificates need protocol: https",
                        ));
                    }
                    ListenerKind::Http {
                        h2c: l.h2c.unwrap_or(false),
                    }
                }
                "https" => {
                    if l.certificates.is_empty() {
                        return Err(self.err(
                            &l.name,
                            format!("{field}.certificates"),
                            "an https listener needs at least one certificate",
                        ));
                    }
                    let mut certificates = Vec::new();
                    for (j, c) in l.certificates.iter().enumerate() {
                        certificates
                            .push(self.certificate(c, &format!("{field}.certificates[{j}]"))?);
                    }
                    let http3 = match &l.http3 {
                        None => None,
                        Some(h) => self.http3(h, &format!("{field}.http3"))?,
                    };
                    ListenerKind::Https {
                        certificates,
                        http2: l.http2.unwrap_or(true),
                        http3,
                    }
                }
                other => {
                    let p = l.protocol.as_ref().expect("protocol given");
                    return Err(self.err(
                        p,
                        format!("{field}.protocol"),
                        format!("unknown protocol \"{other}\"; expected http or https"),
                    ));
                }
            };
            let clients = match &l.clients {
                None => ClientLimits::default(),
                Some(c) => self.client_limits(&c.value, &format!("{field}.clients"))?,
            };
            out.push(Listener {
                name: l.name.value.clone(),
                address,
                kind,
                clients,
            });
        }
        Ok(out)
    }

    fn certificate(&self, raw: &RawCertificate, field: &str) -> Result<Certificate> {
        if raw.names.value.is_empty() {
            return Err(self.err(
                &raw.names,
                format!("{field}.names"),
                "at least one name is required",
            ));
        }
        let mut names = Vec::new();
        for (k, n) in raw.names.value.iter().enumerate() {
            names.push(self.host_pattern(n, &format!("{field}.names[{k}]"))?);
        }
        Ok(Certificate {
            names,
            cert: self.path(&raw.cert.value),
            key: self.path(&raw.key.value),
            at: self.at(&raw.cert),
        })
    }

    fn host_pattern(&self, s: &Spanned<String>, field: &str) -> Result<HostPattern> {
        let h = s.value.trim().to_ascii_lowercase();
        let bad = |why: &str| {
            self.err(
                s,
                field,
                format!(
                    "invalid host \"{}\": {why}; expected e.g. www.example.com or *.example.com",
                    s.value
                ),
            )
        };
        let (suffix, name) = match h.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, h.as_str()),
        };
        if name.is_empty() {
            return Err(bad("empty name"));
        }
        if name.contains('*') {
            return Err(bad("a wildcard is only allowed as the whole first label"));
        }
        let valid = name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        if !valid {
            return Err(bad("not a valid DNS name"));
        }
        Ok(if suffix {
            HostPattern::Suffix(format!(".{name}"))
        } else {
            HostPattern::Exact(name.to_string())
        })
    }

    fn pool(&self, name: &str, raw: &RawPool, field: &str) -> Result<Pool> {
        if raw.endpoints.value.is_empty() {
            return Err(self.err(
                &raw.endpoints,
                format!("{field}.endpoints"),
                "at least one endpoint is required",
            ));
        }
        let mut endpoints = Vec::new();
        for (i, e) in raw.endpoints.value.iter().enumerate() {
            let ef = format!("{field}.endpoints[{i}]");
            let ep = self.endpoint(e, &ef)?;
            if endpoints.contains(&ep) {
                return Err(self.err(e, ef, "endpoint listed twice"));
            }
            endpoints.push(ep);
        }
        let protocol = match raw.protocol.as_ref().map(|p| (p, p.value.as_str())) {
            None | Some((_, "http1")) => UpstreamProtocol::Http1,
            Some((_, "http2")) => UpstreamProtocol::Http2,
            Some((p, other)) => {
                return Err(self.err(
                    p,
                    format!("{field}.protocol"),
                    format!("unknown protocol \"{other}\"; expected http1 or http2"),
                ))
            }
        };
        let tls = raw.tls.as_ref().map(|t| UpstreamTls {
            sni: t.sni.as_ref().map(|s| s.value.clone()),
            verify: t.verify.unwrap_or(true),
            ca_file: t.ca_file.as_ref().map(|c| self.path(&c.value)),
        });
        let balance = match raw.balance.as_ref().map(|b| (b, b.value.as_str())) {
            None | Some((_, "round_robin")) => Balance::RoundRobin,
            Some((_, "random")) => Balance::Random,
            Some((_, "consistent_hash")) => Balance::ConsistentHash(self.hash_key(raw, field)?),
            Some((b, other)) => {
                return Err(self.err(
                    b,
                    format!("{field}.balance"),
                    format!(
                    "unknown policy \"{other}\"; expected round_robin, random or consistent_hash"
                ),
                ))
            }
        };
        if let (Some(k), false) = (&raw.hash_key, matches!(balance, Balance::ConsistentHash(_))) {
            return Err(self.err(
                k,
                format!("{field}.hash_key"),
                "only used with balance: consistent_hash",
            ));
        }
        let health_check = match &raw.health_check {
            None => None,
            Some(h) => {
                let hf = format!("{field}.health_check");
                if !h.path.value.starts_with('/') {
                    return Err(self.err(&h.path, format!("{hf}.path"), "must start with /"));
                }
                let threshold = |v: &Option<Spanned<u32>>, name: &str, default: u32| match v {
                    Some(t) if t.value == 0 => {
                        Err(self.err(t, format!("{hf}.{name}"), "must be at least 1"))
                    }
                    Some(t) => Ok(t.value),
                    None => Ok(default),
                };
                Some(HealthCheck {
                    path: h.path.value.clone(),
                    host: h.host.as_ref().map(|s| s.value.clone()),
                    interval: self.positive_duration(
                        &h.interval,
                        &format!("{hf}.interval"),
                        Duration::from_secs(5),
                    )?,
                    timeout: self.positive_duration(
                        &h.timeout,
                        &format!("{hf}.timeout"),
                        Duration::from_secs(2),
                    )?,
                    healthy_threshold: threshold(&h.healthy_threshold, "healthy_threshold", 1)?,
                    unhealthy_threshold: threshold(
                        &h.unhealthy_threshold,
                        "unhealthy_threshold",
                        2,
                    )?,
                })
            }
        };
        let passive = match &raw.passive {
            None => PassiveHealth {
                failures: 3,
                ejection: Duration::from_secs(10),
            },
            Some(p) => PassiveHealth {
                failures: p.failures.as_ref().map_or(3, |f| f.value),
                ejection: self.positive_duration(
                    &p.ejection,
                    &format!("{field}.passive.ejection"),
                    Duration::from_secs(10),
                )?,
            },
        };
        let t = &raw.timeouts;
        let timeouts = Timeouts {
            connect: self.positive_duration(
                &t.connect,
                &format!("{field}.timeouts.connect"),
                Duration::from_secs(2),
            )?,
            read: self.positive_duration(
                &t.read,
                &format!("{field}.timeouts.read"),
                Duration::from_secs(30),
            )?,
            total: self.positive_duration(
                &t.total,
                &format!("{field}.timeouts.total"),
                Duration::from_secs(5),
            )?,
        };
        let retries = match &raw.retries {
            Some(r) if r.value > 10 => {
                return Err(self.err(r, format!("{field}.retries"), "at most 10"))
            }
            Some(r) => r.value,
            None => 1,
        };
        Ok(Pool {
            name: name.to_string(),
            endpoints,
            protocol,
            tls,
            balance,
            health_check,
            passive,
            timeouts,
            retries,
        })
    }

    fn hash_key(&self, raw: &RawPool, field: &str) -> Result<HashKey> {
        let Some(k) = &raw.hash_key else {
            return Ok(HashKey::Path);
        };
        match k.value.as_str() {
            "path" => Ok(HashKey::Path),
            "client_ip" => Ok(HashKey::ClientIp),
            other => match other.strip_prefix("header:") {
                Some(h) => Ok(HashKey::Header(self.header_name(
                    k,
                    h,
                    &format!("{field}.hash_key"),
                )?)),
                None => Err(self.err(
                    k,
                    format!("{field}.hash_key"),
                    format!("unknown key \"{other}\"; expected path, client_ip or header:NAME"),
                )),
            },
        }
    }

    fn endpoint(&self, s: &Spanned<String>, field: &str) -> Result<Endpoint> {
        if let Ok(addr) = s.value.parse::<SocketAddr>() {
            return Ok(Endpoint::Addr(addr));
        }
        let bad = || {
            self.err(
                s,
                field,
                format!(
                    "invalid endpoint \"{}\"; expected IP:PORT or HOST:PORT",
                    s.value
                ),
            )
        };
        let (host, port) = s.value.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if port == 0 {
            return Err(bad());
        }
        let pattern = self.host_pattern(
            &Spanned::new(host.to_string(), s.referenced, s.defined),
            field,
        )?;
        match pattern {
            HostPattern::Exact(host) => Ok(Endpoint::Name { host, port }),
            HostPattern::Suffix(_) => Err(bad()),
        }
    }

    fn header_name(&self, s: &Spanned<String>, name: &str, field: &str) -> Result<HeaderName> {
        HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| self.err(s, field, format!("invalid header name \"{name}\"")))
    }

    fn header_value(&self, s: &Spanned<String>, field: &str) -> Result<HeaderValue> {
        HeaderValue::from_str(&s.value).map_err(|_| {
            self.err(
                s,
                field,
                "invalid header value (control characters are not allowed)",
            )
        })
    }

    fn header_map(
        &self,
        entries: &Entries<Spanned<String>, Spanned<String>>,
        field: &str,
    ) -> Result<Vec<(HeaderName, HeaderValue)>> {
        entries
            .0
            .iter()
            .map(|(k, v)| {
                let f = format!("{field}.{}", k.value);
                Ok((
                    self.header_name(k, &k.value, &f)?,
                    self.header_value(v, &f)?,
                ))
            })
            .collect()
    }

    fn header_edits(&self, raw: &RawHeaderEdits, field: &str) -> Result<HeaderEdits> {
        let remove = raw
            .remove
            .iter()
            .enumerate()
            .map(|(i, r)| self.header_name(r, &r.value, &format!("{field}.remove[{i}]")))
            .collect::<Result<_>>()?;
        Ok(HeaderEdits {
            remove,
            set: self.header_map(&raw.set, &format!("{field}.set"))?,
            add: self.header_map(&raw.add, &format!("{field}.add"))?,
        })
    }

    fn policy(&self, s: &Spanned<String>, field: &str) -> Result<FailurePolicy> {
        match s.value.as_str() {
            "fail-closed" => Ok(FailurePolicy::FailClosed),
            "fail-open" => Ok(FailurePolicy::FailOpen),
            other => Err(self.err(
                s,
                field,
                format!("unknown policy \"{other}\"; expected fail-closed or fail-open"),
            )),
        }
    }

    fn warmup(
        &self,
        raw: Option<&Spanned<String>>,
        kind: ComponentKind,
        field: &str,
    ) -> Result<Warmup> {
        let Some(raw) = raw else {
            return Ok(Warmup::Auto);
        };
        if kind == ComponentKind::Filter {
            return Err(self.err(
                raw,
                field,
                "only handlers are warmed with a request (a filter is snapshotted after its \
                 wizer-initialize export)",
            ));
        }
        let (method, path) = match raw.value.split_once(' ') {
            _ if raw.value == "auto" => return Ok(Warmup::Auto),
            _ if raw.value == "off" => return Ok(Warmup::Off),
            Some((method, path)) => (method, path.trim_start()),
            None => ("GET", raw.value.as_str()),
        };
        let method = http::Method::from_bytes(method.as_bytes()).ok();
        let valid_path = path.starts_with('/') && http::uri::PathAndQuery::try_from(path).is_ok();
        match method {
            Some(method) if valid_path => Ok(Warmup::Request {
                method,
                path: path.to_string(),
            }),
            _ => Err(self.err(
                raw,
                field,
                format!(
                    "expected auto, off, or a request (\"/path\" or \"METHOD /path\"), not \"{}\"",
                    raw.value
                ),
            )),
        }
    }

    fn component(
        &self,
        name: &str,
        raw: &RawComponent,
        field: &str,
        fleet: bool,
    ) -> Result<Component> {
        let kind = match raw.kind.as_ref().map(|k| (k, k.value.as_str())) {
            None | Some((_, "filter")) => ComponentKind::Filter,
            Some((_, "handler")) => ComponentKind::Handler,
            Some((k, other)) => {
                return Err(self.err(
                    k,
                    format!("{field}.kind"),
                    format!("unknown kind \"{other}\"; expected filter or handler"),
                ))
            }
        };
        if let (ComponentKind::Filter, Some(h)) = (kind, raw.allowed_outbound_hosts.first()) {
            return Err(self.err(
                h,
                format!("{field}.allowed_outbound_hosts"),
                "only handler components may make outgoing requests",
            ));
        }
        let mut allowed_outbound_hosts = Vec::new();
        for (j, h) in raw.allowed_outbound_hosts.iter().enumerate() {
            // `host` or `host:port` for HTTP; `redis://host[:port]` for Spin's outbound Redis
            // (kept as `redis://host:port`, the port defaulting to 6379).
            let (redis, authority) = match h.value.strip_prefix("redis://") {
                Some(rest) => (true, rest),
                None => (false, h.value.as_str()),
            };
            let parsed = authority.parse::<http::uri::Authority>();
            let Some(parsed) = parsed.ok().filter(|_| !authority.contains('@')) else {
                return Err(self.err(
                    h,
                    format!("{field}.allowed_outbound_hosts[{j}]"),
                    format!(
                        "invalid host \"{}\"; expected host, host:port or redis://host:port",
                        h.value
                    ),
                ));
            };
            allowed_outbound_hosts.push(match redis {
                true => format!(
                    "redis://{}:{}",
                    parsed.host().to_ascii_lowercase(),
                    parsed.port_u16().unwrap_or(6379)
                ),
                false => h.value.to_ascii_lowercase(),
            });
        }
        let handler = kind == ComponentKind::Handler;
        let path = self.path(&raw.path.value);
        if !path.is_file() {
            return Err(self.err(
                &raw.path,
                format!("{field}.path"),
                format!("no such file: {}", path.display()),
            ));
        }
        let max_memory_bytes = match &raw.max_memory_mb {
            Some(m) if m.value == 0 || m.value > 4096 => {
                return Err(self.err(m, format!("{field}.max_memory_mb"), "expected 1 to 4096"))
            }
            Some(m) => m.value as usize * (1 << 20),
            None if handler => 64 << 20,
            None => 16 << 20,
        };
        let positive = |v: &Option<Spanned<usize>>, f: &str, default: usize| match v {
            Some(x) if x.value == 0 => {
                Err(self.err(x, format!("{field}.{f}"), "must be at least 1"))
            }
            Some(x) => Ok(x.value),
            None => Ok(default),
        };
        Ok(Component {
            name: name.to_string(),
            kind,
            allowed_outbound_hosts,
            max_body_bytes: positive(&raw.max_body_bytes, "max_body_bytes", 16 << 20)?,
            path,
            config: raw
                .config
                .0
                .iter()
                .map(|(k, v)| (k.value.clone(), v.value.clone()))
                .collect(),
            deadline: self.positive_duration(
                &raw.deadline,
                &format!("{field}.deadline"),
                if handler {
                    Duration::from_secs(30)
                } else {
                    Duration::from_millis(50)
                },
            )?,
            max_memory_bytes,
            max_concurrency: positive(&raw.max_concurrency, "max_concurrency", 256)?,
            prewarm: raw.prewarm.as_ref().map(|p| p.value),
            warmup: self.warmup(raw.warmup.as_ref(), kind, &format!("{field}.warmup"))?,
            reset_in_place: match &raw.reset_in_place {
                Some(v) if kind != ComponentKind::Handler => {
                    return Err(self.err(
                        v,
                        format!("{field}.reset_in_place"),
                        "only a handler can turn reset in place off (a filter's instances are \
                         always reset in place when they can be)",
                    ))
                }
                Some(v) => v.value,
                None => true,
            },
            key_value: self.key_value(raw.key_value.as_ref(), kind, fleet, field)?,
            on_error: match &raw.on_error {
                Some(p) => self.policy(p, &format!("{field}.on_error"))?,
                None => FailurePolicy::FailClosed,
            },
            at: self.at(&raw.path),
        })
    }

    /// `key_value:` of a handler: `memory`, or `redis` when the config has a `fleet:`.
    fn key_value(
        &self,
        raw: Option<&Spanned<String>>,
        kind: ComponentKind,
        fleet: bool,
        field: &str,
    ) -> Result<KeyValue> {
        let field = format!("{field}.key_value");
        let Some(v) = raw else {
            return Ok(KeyValue::Memory);
        };
        if kind != ComponentKind::Handler {
            return Err(self.err(v, field, "only handlers have a key-value store"));
        }
        match v.value.as_str() {
            "memory" => Ok(KeyValue::Memory),
            "redis" if fleet => Ok(KeyValue::Redis),
            "redis" => Err(self.err(v, field, "redis needs a fleet: { redis: ... } to use")),
            other => Err(self.err(
                v,
                field,
                format!("unknown store \"{other}\"; expected memory or redis"),
            )),
        }
    }

    fn routes(
        &self,
        raw: &Spanned<Vec<Spanned<RawRoute>>>,
        names: &Names<'_>,
        pools: &[Pool],
        components: &[Component],
    ) -> Result<Vec<Route>> {
        let pool_ids = names.pools;
        let mut out: Vec<Route> = Vec::new();
        for (i, spanned) in raw.value.iter().enumerate() {
            let r = &spanned.value;
            let field = format!("routes[{i}]");
            let name = match &r.name {
                Some(n) => {
                    check_name(self, n, &format!("{field}.name"))?;
                    if out.iter().any(|o| o.name == n.value) {
                        return Err(self.err(n, format!("{field}.name"), "route name used twice"));
                    }
                    n.value.clone()
                }
                None => format!("route-{i}"),
            };
            let m = &r.matcher;
            let hosts = m
                .hosts
                .iter()
                .enumerate()
                .map(|(j, h)| self.host_pattern(h, &format!("{field}.match.hosts[{j}]")))
                .collect::<Result<Vec<_>>>()?;
            let path = match (&m.path, &m.path_prefix) {
                (Some(p), Some(_)) => {
                    return Err(self.err(
                        p,
                        format!("{field}.match"),
                        "give path or path_prefix, not both",
                    ))
                }
                (Some(p), None) => {
                    PathMatch::Exact(self.route_path(p, &format!("{field}.match.path"))?)
                }
                (None, Some(p)) => {
                    PathMatch::Prefix(self.route_path(p, &format!("{field}.match.path_prefix"))?)
                }
                (None, None) => PathMatch::Prefix("/".into()),
            };
            let methods = m
                .methods
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    let up = s.value.to_ascii_uppercase();
                    Method::from_bytes(up.as_bytes()).map_err(|_| {
                        self.err(
                            s,
                            format!("{field}.match.methods[{j}]"),
                            format!("invalid method \"{}\"", s.value),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let action = self.route_action(spanned, &field, names, pools, components)?;
            let mut filters = Vec::new();
            for (j, f) in r.filters.iter().enumerate() {
                match names.components.get(&f.value) {
                    Some(id) if components[id.0].kind == ComponentKind::Handler => {
                        return Err(self.err(
                            f,
                            format!("{field}.filters[{j}]"),
                            format!(
                                "component \"{}\" is a handler, not a filter; serve it with `handler: {}`",
                                f.value, f.value
                            ),
                        ));
                    }
                    Some(id) => filters.push(*id),
                    None => {
                        let defined: Vec<&str> =
                            components.iter().map(|c| c.name.as_str()).collect();
                        return Err(self.err(
                            f,
                            format!("{field}.filters[{j}]"),
                            format!(
                                "unknown component \"{}\"; defined components: {}",
                                f.value,
                                if defined.is_empty() {
                                    "none".to_string()
                                } else {
                                    defined.join(", ")
                                }
                            ),
                        ));
                    }
                }
            }
            let mut allowed_pools = Vec::new();
            for (j, p) in r.allowed_pools.iter().enumerate() {
                match pool_ids.get(&p.value) {
                    Some(id) => allowed_pools.push(*id),
                    None => {
                        return Err(self.err(
                            p,
                            format!("{field}.allowed_pools[{j}]"),
                            format!("unknown pool \"{}\"", p.value),
                        ))
                    }
                }
            }
            let on_filter_error = match &r.on_filter_error {
                Some(p) => Some(self.policy(p, &format!("{field}.on_filter_error"))?),
                None => None,
            };
            let cache = match &r.cache {
                Some(c) => Some(self.route_cache(c, names.control, &format!("{field}.cache"))?),
                None => None,
            };
            let shield = match &r.shield {
                None => None,
                Some(p) => {
                    let field = format!("{field}.shield");
                    let Some(id) = pool_ids.get(&p.value) else {
                        return Err(self.err(p, field, format!("unknown pool \"{}\"", p.value)));
                    };
                    if cache.is_none() || !matches!(action, RouteAction::Forward(_)) {
                        return Err(self.err(
                            p,
                            field,
                            "a shield takes the cache misses of a route that forwards to a \
                             pool and has a cache:",
                        ));
                    }
                    Some(*id)
                }
            };
            out.push(Route {
                cache,
                shield,
                filters,
                on_filter_error,
                allowed_pools,
                body_access: r.body_access,
                name,
                hosts,
                path,
                methods,
                action,
                request_headers: self
                    .header_edits(&r.request_headers, &format!("{field}.request_headers"))?,
                response_headers: self
                    .header_edits(&r.response_headers, &format!("{field}.response_headers"))?,
            });
        }
        Ok(out)
    }

    fn client_limits(&self, c: &RawClientLimits, field: &str) -> Result<ClientLimits> {
        let d = ClientLimits::default();
        Ok(ClientLimits {
            header_timeout: self.positive_duration(
                &c.header_timeout,
                &format!("{field}.header_timeout"),
                d.header_timeout,
            )?,
            idle_timeout: self.positive_duration(
                &c.idle_timeout,
                &format!("{field}.idle_timeout"),
                d.idle_timeout,
            )?,
            send_timeout: self.positive_duration(
                &c.send_timeout,
                &format!("{field}.send_timeout"),
                d.send_timeout,
            )?,
            max_connections: match &c.max_connections {
                Some(m) if m.value == 0 => {
                    return Err(self.err(
                        m,
                        format!("{field}.max_connections"),
                        "must be at least 1",
                    ))
                }
                Some(m) => m.value,
                None => d.max_connections,
            },
        })
    }

    fn http3(&self, h: &Spanned<RawHttp3>, field: &str) -> Result<Option<Http3Settings>> {
        let settings = match &h.value {
            RawHttp3::On(false) => return Ok(None),
            RawHttp3::On(true) => RawHttp3Settings::default(),
            RawHttp3::Settings(s) => RawHttp3Settings {
                idle_timeout: s.idle_timeout.clone(),
                max_streams: s.max_streams.clone(),
                max_connections: s.max_connections.clone(),
                zero_rtt: s.zero_rtt,
            },
        };
        let idle_timeout = self.positive_duration(
            &settings.idle_timeout,
            &format!("{field}.idle_timeout"),
            Duration::from_secs(30),
        )?;
        let max_streams = match &settings.max_streams {
            Some(m) if m.value == 0 => {
                return Err(self.err(m, format!("{field}.max_streams"), "must be at least 1"))
            }
            Some(m) => m.value,
            None => 100,
        };
        let max_connections = match &settings.max_connections {
            Some(m) if m.value == 0 => {
                return Err(self.err(m, format!("{field}.max_connections"), "must be at least 1"))
            }
            Some(m) => m.value,
            None => 10_000,
        };
        Ok(Some(Http3Settings {
            idle_timeout,
            max_streams,
            max_connections,
            zero_rtt: settings.zero_rtt.unwrap_or(false),
        }))
    }

    /// `cache.targeted_field`: a header name this cache reads before `CDN-Cache-Control`
    /// (RFC 9213 2.1); not one of the fields it would shadow.
    fn targeted_field(&self, f: &Spanned<String>) -> Result<HeaderName> {
        let field = "cache.targeted_field";
        let name = HeaderName::from_bytes(f.value.trim().as_bytes())
            .map_err(|_| self.err(f, field, format!("invalid header name \"{}\"", f.value)))?;
        if matches!(name.as_str(), "cache-control" | "cdn-cache-control") {
            return Err(self.err(
                f,
                field,
                "Cache-Control and CDN-Cache-Control are always read; name this cache's own \
                 field, e.g. Breakwater-Cache-Control",
            ));
        }
        Ok(name)
    }

    fn route_cache(
        &self,
        c: &RawRouteCache,
        control: &ControlFields,
        field: &str,
    ) -> Result<RouteCache> {
        let default_ttl = match &c.default_ttl {
            Some(d) => Some(self.duration(d, &format!("{field}.default_ttl"))?),
            None => None,
        };
        let heuristic_max = match (c.heuristic, &c.heuristic_max) {
            (Some(false), _) => None,
            (_, Some(d)) => Some(self.duration(d, &format!("{field}.heuristic_max"))?),
            (_, None) => Some(Duration::from_secs(24 * 3600)),
        };
        let query = match c.query.as_ref().map(|q| (q, &q.value)) {
            None => QueryKey::All,
            Some((_, RawQueryKey::Mode(m))) if m == "all" => QueryKey::All,
            Some((_, RawQueryKey::Mode(m))) if m == "none" => QueryKey::Ignore,
            Some((q, RawQueryKey::Mode(m))) => {
                return Err(self.err(
                    q,
                    format!("{field}.query"),
                    format!("unknown mode \"{m}\"; expected all, none or a list of names"),
                ))
            }
            Some((_, RawQueryKey::Only(names))) => QueryKey::Only(names.clone()),
        };
        let mut key_headers = Vec::new();
        for (j, h) in c.key_headers.iter().enumerate() {
            key_headers.push(HeaderName::from_bytes(h.value.as_bytes()).map_err(|_| {
                self.err(
                    h,
                    format!("{field}.key_headers[{j}]"),
                    format!("invalid header name \"{}\"", h.value),
                )
            })?);
        }
        let set_cookie = match c.set_cookie.as_ref().map(|v| (v, v.value.as_str())) {
            None | Some((_, "pass")) => SetCookie::Pass,
            Some((_, "strip")) => SetCookie::Strip,
            Some((_, "store")) => SetCookie::Store,
            Some((v, other)) => {
                return Err(self.err(
                    v,
                    format!("{field}.set_cookie"),
                    format!("unknown mode \"{other}\"; expected pass, strip or store"),
                ))
            }
        };
        Ok(RouteCache {
            set_cookie,
            default_ttl,
            query,
            key_headers,
            heuristic_max,
            honor_client_cache_control: c.honor_client_cache_control.unwrap_or(false),
            normalize_accept_encoding: c.normalize_accept_encoding.unwrap_or(true),
            control: control.clone(),
        })
    }

    fn route_path(&self, s: &Spanned<String>, field: &str) -> Result<String> {
        if !s.value.starts_with('/') {
            return Err(self.err(
                s,
                field,
                format!("invalid path \"{}\": must start with /", s.value),
            ));
        }
        Ok(s.value.clone())
    }

    fn route_action(
        &self,
        spanned: &Spanned<RawRoute>,
        field: &str,
        names: &Names<'_>,
        pools: &[Pool],
        components: &[Component],
    ) -> Result<RouteAction> {
        let r = &spanned.value;
        let pool_ids = names.pools;
        match (&r.pool, &r.redirect, &r.respond, &r.handler) {
            (None, None, None, Some(h)) => match names.components.get(&h.value) {
                Some(id) if components[id.0].kind == ComponentKind::Handler => {
                    Ok(RouteAction::Handler(*id))
                }
                Some(_) => Err(self.err(
                    h,
                    format!("{field}.handler"),
                    format!(
                        "component \"{}\" is a filter, not a handler (set `kind: handler` on a wasi:http component)",
                        h.value
                    ),
                )),
                None => {
                    let defined: Vec<&str> = components
                        .iter()
                        .filter(|c| c.kind == ComponentKind::Handler)
                        .map(|c| c.name.as_str())
                        .collect();
                    Err(self.err(
                        h,
                        format!("{field}.handler"),
                        format!(
                            "unknown handler \"{}\"; defined handlers: {}",
                            h.value,
                            if defined.is_empty() { "none".to_string() } else { defined.join(", ") }
                        ),
                    ))
                }
            },
            (Some(p), None, None, None) => match pool_ids.get(&p.value) {
                Some(id) => Ok(RouteAction::Forward(*id)),
                None => {
                    let defined: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
                    let defined = if defined.is_empty() {
                        "no pools are defined".to_string()
                    } else {
                        format!("defined pools: {}", defined.join(", "))
                    };
                    Err(self.err(
                        p,
                        format!("{field}.pool"),
                        format!("unknown pool \"{}\"; {defined}", p.value),
                    ))
                }
            },
            (None, Some(rd), None, None) => {
                let status = match &rd.value.status {
                    None => StatusCode::FOUND,
                    Some(s) if matches!(s.value, 301 | 302 | 303 | 307 | 308) => {
                        StatusCode::from_u16(s.value).expect("valid status")
                    }
                    Some(s) => {
                        return Err(self.err(
                            s,
                            format!("{field}.redirect.status"),
                            "expected one of 301, 302, 303, 307, 308",
                        ))
                    }
                };
                Ok(RouteAction::Redirect {
                    location: self
                        .header_value(&rd.value.location, &format!("{field}.redirect.location"))?,
                    status,
                })
            }
            (None, None, Some(rs), None) => {
                let status = match &rs.value.status {
                    None => StatusCode::OK,
                    Some(s) => StatusCode::from_u16(s.value)
                        .ok()
                        .filter(|c| c.as_u16() >= 200)
                        .ok_or_else(|| {
                            self.err(
                                s,
                                format!("{field}.respond.status"),
                                "expected a status from 200 to 999",
                            )
                        })?,
                };
                Ok(RouteAction::Respond {
                    status,
                    headers: self
                        .header_map(&rs.value.headers, &format!("{field}.respond.headers"))?,
                    body: bytes::Bytes::from(rs.value.body.clone()),
                })
            }
            _ => {
                let at = self.at(spanned);
                Err(ConfigError::invalid(
                    at,
                    field,
                    "a route needs exactly one of pool, handler, redirect or respond",
                ))
            }
        }
    }
}

/// Names (routes, pools, listeners) end up in logs and metric labels: keep them simple.
fn check_name(v: &Validator<'_>, s: &Spanned<String>, field: &str) -> Result<()> {
    let ok = !s.value.is_empty()
        && s.value.len() <= 64
        && s.value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(v.err(
            s,
            field,
            format!(
                "invalid name \"{}\"; expected 1-64 letters, digits, '-', '_' or '.'",
                s.value
            ),
        ))
    }
}

/// Name -> id tables, built once and used to resolve references.
struct Names<'a> {
    pools: &'a HashMap<String, PoolId>,
    components: &'a HashMap<String, ComponentId>,
    /// The cache's control fields, for every route's cache policy.
    control: &'a ControlFields,
}
