//! The CDN cache: RFC 9111 shared-cache semantics from pingora-cache (freshness, validation
//! with 304, Vary, ranges, HEAD from GET, stale-while-revalidate, stale-if-error, request
//! collapsing through its cache lock), stored in moka (`storage`). This module decides what
//! is cached under which key, and says what happened in a `Cache-Status` header (RFC 9211).

mod storage;

pub use storage::{MokaStorage, Selector};

use crate::ops::metrics::CacheOutcome;
use crate::pipeline::Scheme;
use breakwater_config::{CacheSettings, QueryKey, RouteCache, SetCookie};
use http::header::{AUTHORIZATION, SET_COOKIE, VARY};
use pingora::cache::cache_control::CacheControl;
use pingora::cache::filters::resp_cacheable;
use pingora::cache::key::{CacheKey, HashBinary};
use pingora::cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora::cache::{
    CacheMeta, CacheMetaDefaults, CachePhase, NoCacheReason, RespCacheable, VarianceBuilder,
};
use pingora::http::{RequestHeader, ResponseHeader};
use std::time::{Duration, SystemTime};

/// No heuristic freshness: a response without explicit freshness is stored only when its
/// route sets `default_ttl`. Staleness allowances come from the response only.
const DEFAULTS: CacheMetaDefaults = CacheMetaDefaults::new(|_| None, 0, 0);

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
            storage: Box::leak(Box::new(MokaStorage::new(settings.memory_bytes))),
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

/// Whether the response may be stored, and for how long (RFC 9111 section 3).
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
    let cc = CacheControl::from_resp_headers(resp);
    let authorization = req.headers.contains_key(AUTHORIZATION);
    let decided = resp_cacheable(cc.as_ref(), resp.clone(), authorization, &DEFAULTS);
    match (&decided, route.default_ttl) {
        (RespCacheable::Uncacheable(_), Some(ttl))
            if no_freshness_given(cc.as_ref(), resp) && !authorization && storable(resp) =>
        {
            let now = SystemTime::now();
            RespCacheable::Cacheable(CacheMeta::new(now + ttl, now, 0, 0, resp.clone()))
        }
        _ => decided,
    }
}

/// The response says nothing about freshness, and nothing against storing it.
fn no_freshness_given(cc: Option<&CacheControl>, resp: &ResponseHeader) -> bool {
    let cc_silent = cc.is_none_or(|cc| {
        !cc.has_key("max-age")
            && !cc.has_key("s-maxage")
            && !cc.has_key("no-store")
            && !cc.has_key("no-cache")
            && !cc.has_key("private")
    });
    cc_silent && !resp.headers.contains_key(http::header::EXPIRES)
}

/// Status codes a cache may store without explicit freshness (RFC 9110 15.1).
fn storable(resp: &ResponseHeader) -> bool {
    matches!(
        resp.status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Whether the client asks for an end-to-end revalidation (`Cache-Control: no-cache`,
/// or `Pragma: no-cache` without `Cache-Control`).
pub fn client_no_cache(req: &RequestHeader) -> bool {
    let cc = req.headers.get_all(http::header::CACHE_CONTROL);
    let mut any_cc = false;
    for v in cc {
        any_cc = true;
        let no_cache = v
            .to_str()
            .unwrap_or("")
            .split(',')
            .any(|d| d.trim().eq_ignore_ascii_case("no-cache"));
        if no_cache {
            return true;
        }
    }
    !any_cc
        && req
            .headers
            .get(http::header::PRAGMA)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache"))
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

    #[test]
    fn client_no_cache_from_cache_control_or_pragma() {
        let req = |h: &[(&str, &str)]| {
            let mut r = RequestHeader::build("GET", b"/", None).unwrap();
            for (n, v) in h {
                r.append_header(n.to_string(), *v).unwrap();
            }
            r
        };
        assert!(client_no_cache(&req(&[(
            "cache-control",
            "max-age=0, no-cache"
        )])));
        assert!(client_no_cache(&req(&[("pragma", "no-cache")])));
        assert!(!client_no_cache(&req(&[
            ("cache-control", "max-age=0"),
            ("pragma", "no-cache")
        ])));
        assert!(!client_no_cache(&req(&[])));
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
                honor_client_no_cache: true,
                normalize_accept_encoding: true,
                set_cookie: SetCookie::Strip,
            },
            RouteCache {
                default_ttl: None,
                query: QueryKey::All,
                key_headers: vec![],
                honor_client_no_cache: false,
                normalize_accept_encoding: false,
                set_cookie: SetCookie::Pass,
            },
        ];
        let names = [
            "cache-control",
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
            let _ = client_no_cache(&req);
            let _ = key(route, &req, "example.com", Scheme::Http);
            if let RespCacheable::Cacheable(meta) = cacheable(route, &req, &resp) {
                let _ = variance(&meta, &req, route);
                let _ = status_line(&meta);
            }
        }
    }

    fn status_line(meta: &CacheMeta) -> String {
        status(&CachePhase::Hit, Some(meta))
    }
}
