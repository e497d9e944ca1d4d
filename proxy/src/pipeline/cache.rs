//! The CDN cache: RFC 9111 shared-cache semantics from pingora-cache (freshness, validation
//! with 304, Vary, ranges, HEAD from GET, stale-while-revalidate, stale-if-error, request
//! collapsing through its cache lock), stored in moka (`storage`). This module decides what
//! is cached under which key, and says what happened in a `Cache-Status` header (RFC 9211).

mod disk;
mod freshness;
mod storage;

pub use disk::DiskTier;
pub use freshness::RequestDirectives;
pub use storage::{MokaStorage, Selector};

use crate::ops::metrics::CacheOutcome;
use crate::pipeline::{headers, Scheme};
use breakwater_config::{CacheSettings, QueryKey, RouteCache, SetCookie};
use http::header::{AUTHORIZATION, SET_COOKIE, VARY};
use pingora::cache::cache_control::InterpretCacheControl;
use pingora::cache::key::{CacheKey, HashBinary};
use pingora::cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora::cache::{
    CacheMeta, CachePhase, ForcedFreshness, NoCacheReason, RespCacheable, VarianceBuilder,
};
use pingora::http::{RequestHeader, ResponseHeader};
use std::time::{Duration, SystemTime};

/// How long a request waits for another one fetching the same object before it goes to the
/// origin itself.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// The process-wide cache: storage and lock live as long as the process (pingora wants
/// `'static` references), across config reloads.
pub struct EdgeCache {
    pub storage: &'static MokaStorage,
    pub lock: &'static CacheKeyLockImpl,
    pub max_object_bytes: usize,
}

impl EdgeCache {
    pub fn new(settings: &CacheSettings) -> Self {
        Self {
            storage: Box::leak(Box::new(MokaStorage::new(
                settings.memory_bytes,
                settings.disk.as_ref().map(|d| {
                    DiskTier::start(disk::DiskSettings {
                        path: &d.path,
                        bytes: d.bytes,
                        max_object_bytes: settings.max_object_bytes,
                    })
                }),
            ))),
            lock: Box::leak(CacheLock::new_boxed(LOCK_WAIT)),
            max_object_bytes: settings.max_object_bytes,
        }
    }
}

/// Only `GET` and `HEAD` are served from the cache (`HEAD` from a stored `GET`).
pub fn method_cacheable(req: &RequestHeader) -> bool {
    matches!(req.method, http::Method::GET | http::Method::HEAD)
}

/// The key: scheme, host, path, the query as the route says, and the route's key headers.
/// The URL part comes first and alone on its line, so purges can match it.
pub fn key(route: &RouteCache, req: &RequestHeader, host: &str, scheme: Scheme) -> CacheKey {
    let mut primary = format!("{host}{}", req.uri.path());
    match &route.query {
        QueryKey::All => {
            if let Some(q) = req.uri.query() {
                primary.push('?');
                primary.push_str(q);
            }
        }
        QueryKey::Ignore => {}
        QueryKey::Only(names) => {
            let pairs: Vec<&str> = req
                .uri
                .query()
                .unwrap_or("")
                .split('&')
                .filter(|p| {
                    let name = p.split('=').next().unwrap_or("");
                    names.iter().any(|n| n == name)
                })
                .collect();
            if !pairs.is_empty() {
                primary.push('?');
                primary.push_str(&pairs.join("&"));
            }
        }
    }
    primary.push('\n');
    primary.push_str(scheme.as_str());
    for h in &route.key_headers {
        primary.push('\n');
        for v in req.headers.get_all(h) {
            primary.push_str(&String::from_utf8_lossy(v.as_bytes()));
        }
    }
    CacheKey::new(primary, "")
}

/// After a successful unsafe request (`POST`, `PUT`, `DELETE`, ...), drop what is stored
/// for its URL and for the same-host URLs in `Location` and `Content-Location` (RFC 9111
/// section 4.4). `host` is the request's routed host (lower-case, without port). Returns how
/// many objects went.
pub fn invalidate(
    storage: &MokaStorage,
    route: &RouteCache,
    req: &RequestHeader,
    host: &str,
    resp: Option<&http::HeaderMap>,
) -> usize {
    let url = |path_and_query: &str| -> Option<String> {
        let uri: http::Uri = path_and_query.parse().ok()?;
        // Same host only, compared whole (`host` is the routed host: lower-case, no port).
        if uri.host().is_some_and(|h| !h.eq_ignore_ascii_case(host)) {
            return None;
        }
        let mut req = RequestHeader::build(http::Method::GET, uri.path().as_bytes(), None).ok()?;
        req.set_uri(uri);
        let key = key(route, &req, host, Scheme::Http);
        let primary = String::from_utf8_lossy(key.primary_key()).into_owned();
        primary.split('\n').next().map(str::to_string)
    };
    let mut targets: Vec<String> = url(&req.uri.to_string()).into_iter().collect();
    if let Some(headers) = resp {
        for name in [http::header::LOCATION, http::header::CONTENT_LOCATION] {
            if let Some(u) = headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(url)
            {
                targets.push(u);
            }
        }
    }
    targets
        .iter()
        .map(|t| storage.purge_matching(&Selector::Url(t)))
        .sum()
}

/// Whether the response may be stored, for how long and how stale it may be served (RFC 9111
/// sections 3 and 4.2, RFC 9213; see `freshness`).
pub fn cacheable(route: &RouteCache, req: &RequestHeader, resp: &ResponseHeader) -> RespCacheable {
    // Set-Cookie responses are personal unless the operator says otherwise.
    let stripped;
    let resp = match (resp.headers.contains_key(SET_COOKIE), route.set_cookie) {
        (false, _) | (true, SetCookie::Store) => resp,
        (true, SetCookie::Pass) => {
            return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache)
        }
        (true, SetCookie::Strip) => {
            // The stored copy has no cookie; this response (the one filling the cache) keeps it.
            let mut copy = resp.clone();
            copy.remove_header(&SET_COOKIE);
            stripped = copy;
            &stripped
        }
    };
    // Vary: * never matches a later request.
    if resp.headers.get_all(VARY).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii() == b"*")
    }) {
        return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    }
    let cc = freshness::controls(&route.control, &resp.headers);
    let authorization = req.headers.contains_key(AUTHORIZATION);
    let now = SystemTime::now();
    let status = resp.status.as_u16();
    let verdict = match freshness::verdict(
        route,
        cc.as_ref(),
        status,
        &resp.headers,
        authorization,
        now,
    ) {
        Ok(v) => v,
        Err(_) => return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache),
    };
    let mut header = resp.clone();
    if let Some(cc) = &cc {
        // Fields named by `private="..."` or `no-cache="..."` are not stored.
        cc.strip_private_headers(&mut header);
    }
    // The response was generated `age` ago: its life started then, and `Age` on a hit counts
    // from there (pingora's epoch).
    let epoch = now.checked_sub(verdict.age).unwrap_or(now);
    let mut fresh_until = epoch + verdict.lifetime;
    if verdict.lifetime.is_zero() || fresh_until <= now {
        // Stale on arrival: stored for revalidation only (pingora counts `fresh_until == now`
        // as fresh).
        fresh_until = fresh_until.min(now - Duration::from_secs(1));
    }
    let mut meta = CacheMeta::new(
        fresh_until,
        now,
        verdict.stale_while_revalidate,
        verdict.stale_if_error,
        header,
    );
    if !verdict.age.is_zero() {
        meta.set_epoch_override(epoch);
    }
    RespCacheable::Cacheable(meta)
}

/// Header fields a 304 does not update in the stored response (RFC 9111 3.2), besides the
/// hop-by-hop ones: framing fields, and `Vary`, which the stored variants are keyed on.
const NOT_UPDATED_BY_304: &[&str] = &[
    "content-length",
    "content-encoding",
    "content-range",
    "vary",
];

/// The stored response updated by a 304 (RFC 9111 4.3.4): every field the 304 carries
/// replaces the stored one, except framing fields. `merged` is pingora's merge of the stored
/// header with a few of the 304's fields; `not_modified` is the 304's header as received. The
/// stored `Age` goes: the revalidated copy is as old as the 304 says.
pub fn update_from_304(merged: &ResponseHeader, not_modified: &http::HeaderMap) -> ResponseHeader {
    let mut updated = merged.clone();
    updated.remove_header(&http::header::AGE);
    let mut replaced: Vec<&http::HeaderName> = Vec::new();
    for (name, value) in not_modified {
        if NOT_UPDATED_BY_304.contains(&name.as_str()) || headers::is_hop_by_hop(name) {
            continue;
        }
        if !replaced.contains(&name) {
            updated.remove_header(name);
            replaced.push(name);
        }
        let _ = updated.append_header(name.clone(), value.clone());
    }
    updated
}

/// What the request's own `Cache-Control` makes of a stored copy (RFC 9111 5.2.1), on routes
/// that honour it; `None` leaves pingora's decision.
pub fn client_freshness(
    asks: &RequestDirectives,
    route: &RouteCache,
    meta: &CacheMeta,
    is_fresh: bool,
) -> Option<ForcedFreshness> {
    let now = SystemTime::now();
    if is_fresh {
        let too_old = asks.max_age.is_some_and(|max| meta.age() > max);
        let left = meta.fresh_until().duration_since(now).unwrap_or_default();
        let not_fresh_enough = asks.min_fresh.is_some_and(|min| left < min);
        return (asks.no_cache || too_old || not_fresh_enough)
            .then_some(ForcedFreshness::ForceExpired);
    }
    // Stale: a client's `max-stale` may accept it, unless the response forbids stale use.
    let accepted = asks.max_stale.is_some_and(|limit| {
        let stale_for = now.duration_since(meta.fresh_until()).unwrap_or_default();
        limit.is_none_or(|l| stale_for <= l)
    });
    let forbidden = || {
        let cc = freshness::controls(&route.control, meta.headers());
        freshness::forbids_stale(cc.as_ref())
    };
    let young_enough = asks.max_age.is_none_or(|max| meta.age() <= max);
    (accepted && young_enough && !asks.no_cache && !forbidden())
        .then_some(ForcedFreshness::ForceFresh)
}

/// The targeted field of this cache goes no further than this cache, unless configured.
pub fn strip_targeted(route: &RouteCache, resp: &mut ResponseHeader) {
    if let (Some(name), false) = (&route.control.targeted, route.control.forward_targeted) {
        resp.remove_header(name);
    }
}

/// The coding a variant is keyed on for `Accept-Encoding`: `br`, `gzip` or nothing.
fn accept_encoding_key(value: &[u8]) -> &'static [u8] {
    let accepts = |coding: &str| {
        std::str::from_utf8(value)
            .unwrap_or("")
            .split(',')
            .any(|item| {
                let mut parts = item.split(';');
                let name = parts.next().unwrap_or("").trim();
                let refused = parts.any(|p| {
                    let p = p.trim();
                    p.strip_prefix("q=")
                        .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
                });
                name.eq_ignore_ascii_case(coding) && !refused
            })
    };
    if accepts("br") {
        b"br"
    } else if accepts("gzip") {
        b"gzip"
    } else {
        b""
    }
}

/// The variance key from the stored response's `Vary` and this request's values.
pub fn variance(meta: &CacheMeta, req: &RequestHeader, route: &RouteCache) -> Option<HashBinary> {
    let mut names: Vec<String> = meta
        .headers()
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        return None;
    }
    names.sort();
    names.dedup();
    let mut key = VarianceBuilder::new();
    for name in &names {
        let value = req
            .headers
            .get(name.as_str())
            .map_or(&b""[..], |v| v.as_bytes());
        if name == "accept-encoding" && route.normalize_accept_encoding {
            key.add_value(name, accept_encoding_key(value));
        } else {
            key.add_value(name, value);
        }
    }
    key.finalize()
}

/// What the cache did, for the metrics.
pub fn outcome(phase: &CachePhase) -> CacheOutcome {
    match phase {
        CachePhase::Hit => CacheOutcome::Hit,
        CachePhase::Stale | CachePhase::StaleUpdating => CacheOutcome::Stale,
        CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => CacheOutcome::Revalidated,
        CachePhase::Miss | CachePhase::Expired => CacheOutcome::Miss,
        CachePhase::Disabled(NoCacheReason::OriginNotCache) => CacheOutcome::Uncacheable,
        _ => CacheOutcome::Bypass,
    }
}

/// `Cache-Status` (RFC 9211) for a response of a cache-enabled route.
pub fn status(phase: &CachePhase, meta: Option<&CacheMeta>) -> String {
    let ttl = |m: &CacheMeta| {
        let left = m
            .fresh_until()
            .duration_since(SystemTime::now())
            .map_or_else(|e| -(e.duration().as_secs() as i64), |d| d.as_secs() as i64);
        format!("; ttl={left}")
    };
    match phase {
        CachePhase::Hit => format!("breakwater; hit{}", meta.map(ttl).unwrap_or_default()),
        CachePhase::Stale | CachePhase::StaleUpdating => {
            format!(
                "breakwater; hit; fwd=stale{}",
                meta.map(ttl).unwrap_or_default()
            )
        }
        CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => {
            "breakwater; fwd=stale; fwd-status=304".to_string()
        }
        CachePhase::Expired => "breakwater; fwd=stale".to_string(),
        CachePhase::Miss => "breakwater; fwd=miss; stored".to_string(),
        CachePhase::Disabled(NoCacheReason::OriginNotCache) => {
            "breakwater; fwd=miss; detail=uncacheable".to_string()
        }
        CachePhase::Disabled(_) | CachePhase::Bypass => "breakwater; fwd=uri-miss".to_string(),
        _ => "breakwater; fwd=miss".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_is_keyed_on_the_best_coding() {
        assert_eq!(accept_encoding_key(b"gzip, deflate, br"), b"br");
        assert_eq!(accept_encoding_key(b"gzip;q=0.8, br;q=0"), b"gzip");
        assert_eq!(accept_encoding_key(b"deflate"), b"");
        assert_eq!(accept_encoding_key(b"GZIP"), b"gzip");
    }

    /// Fuzz (stable harness): arbitrary `Cache-Control`, `Vary`, `Expires`, `Date`, `Age`,
    /// `Pragma`, `Accept-Encoding` and `Set-Cookie` values, on arbitrary statuses and methods,
    /// through the storability decision, the key and the variance: never a panic.
    /// `FUZZ_ITERATIONS` raises the count.
    #[test]
    fn arbitrary_caching_headers_never_panic() {
        use rand::{Rng as _, SeedableRng};
        /// Seeded, so a failure reproduces.
        struct Rng(rand::rngs::StdRng);
        impl Rng {
            fn next(&mut self) -> u64 {
                self.0.random()
            }
            fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
                &from[self.0.random_range(0..from.len())]
            }
        }
        let mut rng = Rng(rand::rngs::StdRng::seed_from_u64(0x0ddb_a11c_ace5_eed5));
        const PIECES: &[&str] = &[
            "max-age=",
            "s-maxage=",
            "no-cache",
            "no-store",
            "private",
            "public",
            "must-revalidate",
            "proxy-revalidate",
            "stale-while-revalidate=",
            "stale-if-error=",
            "immutable",
            "min-fresh=",
            "max-stale",
            "only-if-cached",
            "=",
            ",",
            ";",
            "\"",
            " ",
            "0",
            "-1",
            "60",
            "99999999999999999999",
            "1e3",
            "*",
            "accept-encoding",
            "accept-language",
            "cookie",
            "gzip",
            "br;q=0",
            "q=1.5",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "garbage",
            "\t",
            "\u{7f}",
            "é",
        ];
        let iterations: usize = std::env::var("FUZZ_ITERATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5000);
        let routes = [
            RouteCache {
                default_ttl: Some(std::time::Duration::from_secs(60)),
                query: QueryKey::Only(vec!["v".into()]),
                key_headers: vec![http::HeaderName::from_static("x-device")],
                heuristic_max: Some(std::time::Duration::from_secs(3600)),
                honor_client_cache_control: true,
                normalize_accept_encoding: true,
                set_cookie: SetCookie::Strip,
                control: breakwater_config::ControlFields {
                    targeted: Some(http::HeaderName::from_static("breakwater-cache-control")),
                    forward_targeted: false,
                },
            },
            RouteCache {
                default_ttl: None,
                query: QueryKey::All,
                key_headers: vec![],
                heuristic_max: None,
                honor_client_cache_control: false,
                normalize_accept_encoding: false,
                set_cookie: SetCookie::Pass,
                control: breakwater_config::ControlFields::default(),
            },
        ];
        let names = [
            "cache-control",
            "cdn-cache-control",
            "breakwater-cache-control",
            "vary",
            "expires",
            "date",
            "age",
            "pragma",
            "set-cookie",
            "authorization",
            "last-modified",
            "etag",
        ];
        for _ in 0..iterations {
            let value = |rng: &mut Rng| {
                let n = 1 + rng.next() % 5;
                (0..n).map(|_| *rng.pick(PIECES)).collect::<String>()
            };
            let method = *rng.pick(&["GET", "HEAD", "POST"]);
            let mut req = RequestHeader::build(method, b"/p?v=1&x=2", None).unwrap();
            let status = *rng.pick(&[200u16, 203, 204, 206, 301, 304, 404, 500, 599]);
            let mut resp = ResponseHeader::build(status, None).unwrap();
            for _ in 0..rng.next() % 6 {
                let name = *rng.pick(&names);
                let v = value(&mut rng);
                let _ = resp.append_header(name, v.as_str());
                let v = value(&mut rng);
                let _ = req.append_header(name, v.as_str());
                let v = value(&mut rng);
                let _ = req.append_header("accept-encoding", v.as_str());
            }
            let route = rng.pick(&routes);
            let asks = RequestDirectives::of(&req.headers);
            let _ = key(route, &req, "example.com", Scheme::Http);
            if let RespCacheable::Cacheable(meta) = cacheable(route, &req, &resp) {
                let _ = variance(&meta, &req, route);
                let _ = client_freshness(&asks, route, &meta, rng.next().is_multiple_of(2));
                let _ = update_from_304(meta.response_header(), &req.headers);
                let _ = status_line(&meta);
            }
        }
    }

    fn status_line(meta: &CacheMeta) -> String {
        status(&CachePhase::Hit, Some(meta))
    }
}
