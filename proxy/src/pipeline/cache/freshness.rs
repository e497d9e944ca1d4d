//! How long a stored response stays fresh and what may be done with it once stale (RFC 9111
//! section 4.2, RFC 9213), and what a request's own `Cache-Control` asks for (RFC 9111
//! 5.2.1). pingora-cache parses `Cache-Control`; this module decides which field is read and
//! does the arithmetic pingora leaves out: the `Age` a response arrives with, `Expires`
//! against the response's own `Date`, and heuristic freshness.

use breakwater_config::{ControlFields, RouteCache};
use http::header::{AGE, CACHE_CONTROL, DATE, EXPIRES, LAST_MODIFIED, PRAGMA};
use http::HeaderMap;
use pingora::cache::cache_control::{CacheControl, Cacheable, DirectiveKey, InterpretCacheControl};
use std::time::{Duration, SystemTime};

/// RFC 9213's field for every CDN on the path.
const CDN_CACHE_CONTROL: &str = "cdn-cache-control";

/// Heuristic freshness is this fraction of the time since `Last-Modified` (RFC 9111 4.2.2's
/// "typical setting", as Squid and the browsers use).
const HEURISTIC_FRACTION: u32 = 10;

/// The largest `Age` believed (RFC 9111 1.2.2: 2^31 seconds stands for "infinity").
const MAX_AGE_SECONDS: u64 = 1 << 31;

/// The control field a response is read by: the configured targeted field, else
/// `CDN-Cache-Control`, else `Cache-Control` (RFC 9213 2.1: the most specific one present and
/// valid is used alone; an invalid targeted field is ignored as a whole).
pub fn controls(fields: &ControlFields, headers: &HeaderMap) -> Option<CacheControl> {
    let targeted = fields.targeted.as_ref().map(|n| n.as_str());
    for name in targeted.into_iter().chain([CDN_CACHE_CONTROL]) {
        if headers.contains_key(name) && targeted_valid(headers, name) {
            return CacheControl::from_headers_named(name, headers);
        }
    }
    CacheControl::from_headers_named(CACHE_CONTROL.as_str(), headers)
}

/// A targeted field is a Structured Fields dictionary (RFC 9213 2.1, RFC 8941 3.2): members
/// `key` or `key=value`, keys lower-case, values integers, tokens or strings. Anything else
/// makes the whole field invalid.
fn targeted_valid(headers: &HeaderMap, name: &str) -> bool {
    let key_ok = |k: &str| {
        let mut chars = k.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '*')
            && chars.all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.' | '*')
            })
    };
    let value_ok = |v: &str| {
        let integer = v.strip_prefix('-').unwrap_or(v);
        let is_integer = !integer.is_empty()
            && integer.len() <= 15
            && integer.bytes().all(|b| b.is_ascii_digit());
        let is_string = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
        let is_token = v
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '*')
            && v.bytes()
                .all(|b| b.is_ascii_graphic() && !b"\",;()<>@[]{}=\\".contains(&b));
        is_integer || is_string || is_token || v == "?0" || v == "?1"
    };
    headers.get_all(name).iter().all(|line| {
        let Ok(line) = line.to_str() else {
            return false;
        };
        line.split(',').all(|member| {
            // Parameters (`;a=b`) are allowed and carry no meaning here.
            let item = member.split(';').next().unwrap_or("").trim();
            match item.split_once('=') {
                None => key_ok(item),
                Some((k, v)) => key_ok(k) && value_ok(v),
            }
        })
    })
}

/// An HTTP date in any of RFC 9110 5.6.7's three formats (IMF-fixdate, RFC 850, asctime),
/// its names in any case.
pub fn http_date(value: &http::HeaderValue) -> Option<SystemTime> {
    let text = value.to_str().ok()?.trim();
    if let Ok(t) = httpdate::parse_http_date(text) {
        return Some(t);
    }
    // Names in another case (`THU`, `aug`, `gmt`): day and month names capitalised, GMT upper.
    let mut fixed = String::with_capacity(text.len());
    let mut word_start = true;
    for c in text.chars() {
        if c.is_ascii_alphabetic() {
            fixed.push(if word_start {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            });
            word_start = false;
        } else {
            fixed.push(c);
            word_start = true;
        }
    }
    let fixed = fixed.replace("Gmt", "GMT");
    httpdate::parse_http_date(&fixed).ok()
}

/// The `Age` a response arrived with: the largest valid value among its field lines and
/// list members (never believing a copy younger than one of its hops says), 0 when none is
/// valid. A `Date`-based apparent age is not added: an origin's clock that is off would then
/// shorten or void every object's life, which is what `Expires - Date` avoids too.
pub fn initial_age(headers: &HeaderMap) -> Duration {
    let secs = headers
        .get_all(AGE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|v| {
            let v = v.trim();
            // delta-seconds: digits only (no sign, no fraction).
            (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .then(|| v.parse::<u64>().unwrap_or(MAX_AGE_SECONDS))
        })
        .max()
        .unwrap_or(0);
    Duration::from_secs(secs.min(MAX_AGE_SECONDS))
}

/// What a response's fields say about storing and reusing it.
pub struct Verdict {
    /// How long it is fresh from when it was generated (its age counts against it).
    pub lifetime: Duration,
    /// The age it arrived with.
    pub age: Duration,
    pub stale_while_revalidate: u32,
    pub stale_if_error: u32,
}

/// Why a response is not stored.
#[derive(Debug, PartialEq, Eq)]
pub enum NotStored {
    /// `no-store` or `private` in the field this cache reads.
    Forbidden,
    /// A request with `Authorization`, and nothing in the response allowing a shared copy.
    Authorized,
    /// No explicit freshness, no heuristic, no default.
    NoFreshness,
}

/// Status codes a cache may store without explicit freshness (RFC 9110 15.1).
pub fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Decide on a response (RFC 9111 3 and 4.2.1): whether it may be stored, for how long, and
/// its serve-stale windows. `now` is when it arrived.
pub fn verdict(
    route: &RouteCache,
    cc: Option<&CacheControl>,
    status: u16,
    headers: &HeaderMap,
    authorization: bool,
    now: SystemTime,
) -> Result<Verdict, NotStored> {
    if cc.is_some_and(|cc| cc.is_cacheable() == Cacheable::No) {
        return Err(NotStored::Forbidden);
    }
    if authorization && !cc.is_some_and(|cc| cc.allow_caching_authorized_req()) {
        return Err(NotStored::Authorized);
    }
    let lifetime = explicit_lifetime(cc, headers, now)
        .or_else(|| {
            let cap = route.heuristic_max?;
            heuristically_cacheable(status)
                .then(|| heuristic_lifetime(headers, now, cap))
                .flatten()
        })
        .or_else(|| {
            route
                .default_ttl
                .filter(|_| heuristically_cacheable(status))
        })
        .ok_or(NotStored::NoFreshness)?;
    // `no-cache` (unqualified), `must-revalidate`, `proxy-revalidate` and `s-maxage` forbid
    // serving it stale without a successful revalidation (RFC 9111 4.2.4, 5.2.2).
    let window = |d: Option<Duration>| match cc {
        Some(cc) if cc.no_cache() => 0,
        _ => d.map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)),
    };
    Ok(Verdict {
        lifetime,
        age: initial_age(headers),
        stale_while_revalidate: window(cc.and_then(|c| c.serve_stale_while_revalidate_duration())),
        stale_if_error: window(cc.and_then(|c| c.serve_stale_if_error_duration())),
    })
}

/// `s-maxage`, else `max-age`, else `Expires - Date` (RFC 9111 4.2.1); `no-cache` is a
/// lifetime of zero (stored, revalidated before every use). An invalid value of any of them
/// is a lifetime of zero: stale at once.
fn explicit_lifetime(
    cc: Option<&CacheControl>,
    headers: &HeaderMap,
    now: SystemTime,
) -> Option<Duration> {
    if let Some(cc) = cc {
        if cc.no_cache() {
            return Some(Duration::ZERO);
        }
        for seconds in [cc.s_maxage(), cc.max_age()] {
            match seconds {
                Ok(Some(s)) => return Some(Duration::from_secs(u64::from(s))),
                Ok(None) => {}
                Err(_) => return Some(Duration::ZERO),
            }
        }
    }
    let mut expires = headers.get_all(EXPIRES).iter();
    let first = expires.next()?;
    if expires.next().is_some() {
        // Several Expires fields: invalid, so in the past.
        return Some(Duration::ZERO);
    }
    let Some(expires) = http_date(first) else {
        return Some(Duration::ZERO);
    };
    // Against the response's own clock, so an origin's skew does not matter; the time it
    // arrived when its Date is missing or invalid.
    let date = headers.get(DATE).and_then(http_date).unwrap_or(now);
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

/// A tenth of the time between `Last-Modified` and `Date` (or arrival), at most `cap`.
fn heuristic_lifetime(headers: &HeaderMap, now: SystemTime, cap: Duration) -> Option<Duration> {
    let modified = headers.get(LAST_MODIFIED).and_then(http_date)?;
    let date = headers.get(DATE).and_then(http_date).unwrap_or(now);
    let since = date.duration_since(modified).ok()?;
    Some((since / HEURISTIC_FRACTION).min(cap))
}

/// Whether the stored response's fields forbid serving it stale at all (`must-revalidate`,
/// `proxy-revalidate`, `s-maxage`, `no-cache`), even to a client that accepts stale copies.
pub fn forbids_stale(cc: Option<&CacheControl>) -> bool {
    cc.is_some_and(|cc| {
        cc.must_revalidate()
            || cc.proxy_revalidate()
            || cc.no_cache()
            || cc.has_directive(&DirectiveKey::SMaxAge)
    })
}

/// What a request's `Cache-Control` (or `Pragma: no-cache` without it) asks of the cache
/// (RFC 9111 5.2.1), on routes that honour it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    pub no_cache: bool,
    pub no_store: bool,
    pub only_if_cached: bool,
    /// A stored copy at most this old.
    pub max_age: Option<Duration>,
    /// A stored copy fresh for at least this long still.
    pub min_fresh: Option<Duration>,
    /// A stale copy is acceptable: `Some(None)` however stale, `Some(Some(d))` up to `d`.
    pub max_stale: Option<Option<Duration>>,
}

impl RequestDirectives {
    pub fn of(headers: &HeaderMap) -> Self {
        let Some(cc) = CacheControl::from_headers_named(CACHE_CONTROL.as_str(), headers) else {
            let pragma = headers
                .get_all(PRAGMA)
                .iter()
                .any(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache"));
            return Self {
                no_cache: pragma,
                ..Self::default()
            };
        };
        let seconds = |name: &str| -> Option<Option<Duration>> {
            let value = cc.directives.get(&DirectiveKey::from_lowercase(name))?;
            Some(
                value
                    .as_ref()
                    .and_then(|v| v.parse_as_delta_seconds().ok())
                    .map(|s| Duration::from_secs(u64::from(s))),
            )
        };
        Self {
            // A `no-cache` with field names is a response directive; any form counts here.
            no_cache: cc.has_directive(&DirectiveKey::NoCache),
            no_store: cc.no_store(),
            only_if_cached: cc.only_if_cached(),
            // An invalid max-age asks for a revalidation (RFC 9111 5.2.1.1 treats it as 0).
            max_age: seconds("max-age").map(|s| s.unwrap_or(Duration::ZERO)),
            min_fresh: seconds("min-fresh").flatten(),
            max_stale: seconds("max-stale"),
        }
    }

    /// Whether anything here changes what the cache does.
    pub fn any(&self) -> bool {
        *self != Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn dates_in_all_three_formats_and_any_case() {
        let want = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        for v in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "SUN, 06 NOV 1994 08:49:37 gmt",
        ] {
            assert_eq!(http_date(&HeaderValue::from_static(v)), Some(want), "{v}");
        }
        // Past 2038 (a 32-bit time_t would wrap).
        let far = http_date(&HeaderValue::from_static("Thu, 18 Aug 2050 02:01:18 GMT")).unwrap();
        assert!(far > SystemTime::UNIX_EPOCH + Duration::from_secs(i32::MAX as u64));
        for bad in ["0", "Thu, 18 Aug 2050 02:01:18 UTC", "yesterday", ""] {
            assert_eq!(http_date(&HeaderValue::from_static(bad)), None, "{bad}");
        }
    }

    #[test]
    fn the_largest_valid_age_counts() {
        let age = |v: &[&str]| {
            let pairs: Vec<(&str, &str)> = v.iter().map(|v| ("age", *v)).collect();
            initial_age(&headers(&pairs)).as_secs()
        };
        assert_eq!(age(&["15"]), 15);
        assert_eq!(age(&["0, 7200"]), 7200);
        assert_eq!(age(&["7200", "0"]), 7200);
        assert_eq!(age(&["abc"]), 0);
        assert_eq!(age(&["-7200"]), 0);
        assert_eq!(age(&["7200.0"]), 0);
        assert_eq!(age(&["99999999999999999999999"]), MAX_AGE_SECONDS);
        assert_eq!(age(&[]), 0);
    }

    #[test]
    fn the_most_specific_valid_field_is_read_alone() {
        let fields = ControlFields {
            targeted: Some(http::HeaderName::from_static("breakwater-cache-control")),
            forward_targeted: false,
        };
        let max_age = |h: &HeaderMap| controls(&fields, h).and_then(|c| c.max_age().ok()?);
        let all = headers(&[
            ("cache-control", "max-age=1"),
            ("cdn-cache-control", "max-age=2"),
            ("breakwater-cache-control", "max-age=3"),
        ]);
        assert_eq!(max_age(&all), Some(3));
        let cdn = headers(&[
            ("cache-control", "max-age=1"),
            ("cdn-cache-control", "max-age=2"),
        ]);
        assert_eq!(max_age(&cdn), Some(2));
        // An invalid targeted field (upper-case key, a list value) is ignored as a whole.
        for bad in ["Max-Age=3", "max-age=3, private=(a b", "max-age=3,, x=a b"] {
            let h = headers(&[("cache-control", "max-age=1"), ("cdn-cache-control", bad)]);
            assert_eq!(max_age(&h), Some(1), "{bad}");
        }
        // A targeted `no-store` wins over a permissive Cache-Control, and the reverse.
        let h = headers(&[
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "no-store"),
        ]);
        assert!(controls(&fields, &h).unwrap().no_store());
        let h = headers(&[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
        ]);
        assert!(!controls(&fields, &h).unwrap().no_store());
    }

    #[test]
    fn request_directives() {
        let d = RequestDirectives::of(&headers(&[(
            "cache-control",
            "max-age=5, min-fresh=7, max-stale",
        )]));
        assert_eq!(d.max_age, Some(Duration::from_secs(5)));
        assert_eq!(d.min_fresh, Some(Duration::from_secs(7)));
        assert_eq!(d.max_stale, Some(None));
        let d = RequestDirectives::of(&headers(&[(
            "cache-control",
            "max-stale=30, only-if-cached",
        )]));
        assert_eq!(d.max_stale, Some(Some(Duration::from_secs(30))));
        assert!(d.only_if_cached);
        assert!(RequestDirectives::of(&headers(&[("pragma", "no-cache")])).no_cache);
        let both = headers(&[("cache-control", "max-age=9"), ("pragma", "no-cache")]);
        assert!(!RequestDirectives::of(&both).no_cache);
        assert!(!RequestDirectives::of(&headers(&[])).any());
    }
}
