//! The cache's reading of responses and requests, end to end against a scripted origin:
//! `Age` and `Expires - Date` (RFC 9111 4.2), 304 updates (4.3.4), what forbids serving stale
//! (4.2.4, 5.2.2), heuristic freshness (4.2.2), request directives (5.2.1) and the targeted
//! fields of RFC 9213. Staleness comes from the `Age` an origin sends, never from waiting.

use breakwater_tests as support;

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use support::origin::{Action, Seen};
use support::{Client, Node, Origin, Reply};

/// One scripted answer: status and fields (the body is `"{path} {n}"`, `n` counting requests
/// to the path from 1).
type Answer = (u16, Vec<(String, String)>);

/// An origin that answers the n-th request to a path with the n-th answer scripted for it
/// (the last one again after that).
#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<HashMap<String, Vec<Answer>>>>,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl Script {
    fn set(&self, path: &str, answers: &[(u16, &[(&str, &str)])]) {
        let owned = answers
            .iter()
            .map(|(status, fields)| {
                let fields = fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                (*status, fields)
            })
            .collect();
        self.answers.lock().unwrap().insert(path.to_string(), owned);
    }

    /// Requests the origin has answered for `path`.
    fn hits(&self, path: &str) -> usize {
        self.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn handler(&self) -> support::origin::Handler {
        let script = self.clone();
        Arc::new(move |s: &Seen| {
            let path = s.uri.split('?').next().unwrap_or("").to_string();
            let n = {
                let mut c = script.counts.lock().unwrap();
                let e = c.entry(path.clone()).or_default();
                *e += 1;
                *e
            };
            let answers = script.answers.lock().unwrap();
            let (status, headers) = answers
                .get(&path)
                .and_then(|a| a.get(n - 1).or(a.last()).cloned())
                .unwrap_or((200, vec![("cache-control".into(), "max-age=60".into())]));
            let body = match status {
                304 => Bytes::new(),
                _ => Bytes::from(format!("{path} {n}")),
            };
            Action::Respond {
                status,
                headers,
                body,
            }
        })
    }
}

/// An HTTP date `offset` seconds from now.
fn date(offset: i64) -> String {
    let now = SystemTime::now();
    let t = if offset >= 0 {
        now + Duration::from_secs(offset as u64)
    } else {
        now - Duration::from_secs(offset.unsigned_abs())
    };
    httpdate::fmt_http_date(t)
}

struct Setup {
    node: Node,
    origin: Origin,
    script: Script,
}

impl Setup {
    async fn start() -> Setup {
        let script = Script::default();
        let origin = Origin::start(script.handler()).await;
        let yaml = format!(
            r#"
listeners: [{{ name: web, address: 127.0.0.1:0 }}]
admin: {{ address: 127.0.0.1:0 }}
cache: {{ memory_mb: 2, targeted_field: Breakwater-Cache-Control }}
pools:
  o: {{ endpoints: ["{origin}"], retries: 0 }}
routes:
  - {{ match: {{ path_prefix: /honor/ }}, pool: o, cache: {{ honor_client_cache_control: true }} }}
  - {{ match: {{ path_prefix: /noheur/ }}, pool: o, cache: {{ heuristic: false }} }}
  - {{ pool: o, cache: {{}} }}
"#,
            origin = origin.addr
        );
        Setup {
            node: Node::start(&yaml),
            origin,
            script,
        }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let req = super::cache::get(self.node.addr("web"), path, headers);
        Client::h1().send(req).await.unwrap()
    }

    /// Two plain requests; whether the second was answered from the cache.
    async fn stored(&self, path: &str) -> bool {
        let first = self.get(path, &[]).await;
        assert_eq!(first.status, 200, "{path}");
        hit(&self.get(path, &[]).await)
    }
}

fn hit(r: &Reply) -> bool {
    r.header("cache-status")
        .is_some_and(|s| s.starts_with("breakwater; hit") && !s.contains("fwd="))
}

fn age(r: &Reply) -> u64 {
    r.header("age").unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_age_counts_against_freshness_and_hits_carry_their_age() {
    let s = Setup::start().await;
    let origin_date = date(-30);
    s.script.set(
        "/aged",
        &[(
            200,
            &[
                ("cache-control", "max-age=600"),
                ("age", "500"),
                ("date", &origin_date),
            ],
        )],
    );
    assert_eq!(s.get("/aged", &[]).await.text(), "/aged 1");
    let r = s.get("/aged", &[]).await;
    assert!(hit(&r), "{:?}", r.header("cache-status"));
    // Age on a hit: what it arrived with plus its time here.
    assert!((500..=510).contains(&age(&r)), "age {}", age(&r));
    let status = r.header("cache-status").unwrap();
    let ttl: i64 = status.rsplit("ttl=").next().unwrap().parse().unwrap();
    assert!((90..=100).contains(&ttl), "{status}");

    // Arrived as old as its lifetime, or older: stale at once.
    s.script.set(
        "/too-old",
        &[(200, &[("cache-control", "max-age=10"), ("age", "15")])],
    );
    s.script.set(
        "/exactly-old",
        &[(200, &[("cache-control", "max-age=10"), ("age", "10")])],
    );
    assert!(!s.stored("/too-old").await);
    assert!(!s.stored("/exactly-old").await);
    assert_eq!(
        (s.script.hits("/too-old"), s.script.hits("/exactly-old")),
        (2, 2)
    );
    // An invalid Age is no age at all.
    s.script.set(
        "/bad-age",
        &[(200, &[("cache-control", "max-age=600"), ("age", "abc")])],
    );
    assert!(s.stored("/bad-age").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn expires_counts_from_the_responses_own_date_in_every_date_format() {
    let s = Setup::start().await;
    // An origin whose clock is an hour slow: Expires 60 s after its Date is fresh here,
    // though that Expires is an hour in our past.
    let (slow_date, slow_expires) = (date(-3600), date(-3540));
    s.script.set(
        "/slow-clock",
        &[(200, &[("date", &slow_date), ("expires", &slow_expires)])],
    );
    assert!(s.stored("/slow-clock").await);
    // Both fast, Expires before Date: stale, though Expires is in our future.
    let (fast_date, fast_expires) = (date(400), date(300));
    s.script.set(
        "/expired-fast",
        &[(200, &[("date", &fast_date), ("expires", &fast_expires)])],
    );
    assert!(!s.stored("/expired-fast").await);
    // Expires - Date is 20 s; an Age of 25 makes it stale.
    let (d, e) = (date(-10), date(10));
    s.script.set(
        "/expires-aged",
        &[(200, &[("date", &d), ("expires", &e), ("age", "25")])],
    );
    assert!(!s.stored("/expires-aged").await);
    // The three formats of RFC 9110 5.6.7, names in any case, a date past 2038.
    let now = date(0);
    for (path, expires) in [
        ("/imf", "Thu, 18 Aug 2050 02:01:18 GMT"),
        ("/upper", "THU, 18 AUG 2050 02:01:18 gMT"),
        ("/rfc850", "Thursday, 18-Aug-50 02:01:18 GMT"),
        ("/asctime", "Thu Aug 18 02:01:18 2050"),
    ] {
        s.script
            .set(path, &[(200, &[("date", &now), ("expires", expires)])]);
        assert!(s.stored(path).await, "{path}: {expires}");
    }
    // Invalid, or more than one: in the past.
    let later = date(3600);
    s.script
        .set("/expires-invalid", &[(200, &[("expires", "0")])]);
    s.script.set(
        "/expires-twice",
        &[(200, &[("expires", &later), ("expires", &later)])],
    );
    assert!(!s.stored("/expires-invalid").await);
    assert!(!s.stored("/expires-twice").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_304_updates_every_stored_field_but_the_framing_ones() {
    let s = Setup::start().await;
    // Stale on arrival (Age = max-age), so the next request revalidates.
    s.script.set(
        "/reval",
        &[
            (
                200,
                &[
                    ("cache-control", "max-age=10"),
                    ("age", "10"),
                    ("etag", "\"v1\""),
                    ("x-test-header", "A"),
                    ("content-foo", "A"),
                    ("content-type", "text/plain"),
                ],
            ),
            (
                304,
                &[
                    ("cache-control", "max-age=3600"),
                    ("etag", "\"v1\""),
                    ("x-test-header", "B"),
                    ("content-foo", "B"),
                    ("content-type", "text/plain;charset=utf-8"),
                ],
            ),
        ],
    );
    assert_eq!(s.get("/reval", &[]).await.text(), "/reval 1");
    let revalidated = s.get("/reval", &[]).await;
    assert_eq!(revalidated.text(), "/reval 1");
    let seen = s.origin.seen();
    assert_eq!(
        seen[1].header("if-none-match").as_deref(),
        Some("\"v1\""),
        "a revalidation"
    );
    assert_eq!(revalidated.header("x-test-header"), Some("B"));
    // Stored: the next one is a hit with the 304's fields and its freshness.
    let r = s.get("/reval", &[]).await;
    assert!(hit(&r), "{:?}", r.header("cache-status"));
    assert_eq!(r.text(), "/reval 1");
    assert_eq!(r.header("x-test-header"), Some("B"));
    assert_eq!(r.header("content-foo"), Some("B"));
    assert_eq!(r.header("content-type"), Some("text/plain;charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("8"));
    assert!(age(&r) < 10, "the revalidated copy is young: {}", age(&r));
    assert_eq!(s.script.hits("/reval"), 2);
}

/// RFC 9111 4.3.5: a HEAD that reaches the origin updates the stored response. The node
/// sends it as a (conditional) GET, as nginx does by default (`proxy_cache_convert_head`),
/// so the origin's answer replaces the stored one whole, body included: the HEAD's client
/// gets the new header fields and no body, the next GET is a hit on the new response.
#[tokio::test(flavor = "multi_thread")]
async fn a_head_that_reaches_the_origin_updates_the_stored_response() {
    let s = Setup::start().await;
    s.script.set(
        "/head",
        &[
            (
                200,
                &[
                    ("cache-control", "max-age=10"),
                    ("age", "10"),
                    ("etag", "\"v1\""),
                    ("x-test-header", "A"),
                ],
            ),
            (
                200,
                &[
                    ("cache-control", "max-age=3600"),
                    ("etag", "\"v2\""),
                    ("x-test-header", "B"),
                ],
            ),
        ],
    );
    assert_eq!(s.get("/head", &[]).await.text(), "/head 1");
    let mut head = super::cache::get(s.node.addr("web"), "/head", &[]);
    *head.method_mut() = http::Method::HEAD;
    let r = Client::h1().send(head).await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, ""));
    assert_eq!(r.header("x-test-header"), Some("B"));
    let seen = s.origin.seen();
    assert_eq!(seen[1].method, "GET", "the HEAD went as a GET");
    assert_eq!(seen[1].header("if-none-match").as_deref(), Some("\"v1\""));
    let r = s.get("/head", &[]).await;
    assert!(hit(&r), "{:?}", r.header("cache-status"));
    assert_eq!(r.text(), "/head 2");
    assert_eq!(r.header("x-test-header"), Some("B"));
    assert_eq!(s.script.hits("/head"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn what_forbids_serving_stale_is_obeyed_and_an_unreachable_origin_gets_504() {
    let mut s = Setup::start().await;
    // no-cache with stale-while-revalidate: never served stale, revalidated first.
    s.script.set(
        "/no-cache-swr",
        &[(
            200,
            &[("cache-control", "no-cache, stale-while-revalidate=600")],
        )],
    );
    s.get("/no-cache-swr", &[]).await;
    let r = s.get("/no-cache-swr", &[]).await;
    assert!(
        !r.header("cache-status").unwrap().contains("hit"),
        "{:?}",
        r.header("cache-status")
    );
    assert_eq!(r.text(), "/no-cache-swr 2");

    // Stale at once (Age 20 > 10); one forbids stale use, one allows it on errors.
    let forbidding = [
        "max-age=10, must-revalidate, stale-if-error=600",
        "max-age=10, proxy-revalidate, stale-if-error=600",
        "s-maxage=10, stale-if-error=600",
    ];
    for (i, cc) in forbidding.iter().enumerate() {
        s.script.set(
            &format!("/forbid/{i}"),
            &[(200, &[("cache-control", cc), ("age", "20")])],
        );
    }
    s.script.set(
        "/allow",
        &[(
            200,
            &[
                ("cache-control", "max-age=10, stale-if-error=600"),
                ("age", "20"),
            ],
        )],
    );
    for i in 0..forbidding.len() {
        assert_eq!(s.get(&format!("/forbid/{i}"), &[]).await.status, 200);
    }
    assert_eq!(s.get("/allow", &[]).await.status, 200);
    s.origin.stop();
    for (i, cc) in forbidding.iter().enumerate() {
        let r = s.get(&format!("/forbid/{i}"), &[]).await;
        assert_eq!(r.status, 504, "{cc}: {}", r.text());
    }
    let r = s.get("/allow", &[]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "/allow 1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn heuristic_freshness_is_a_tenth_of_the_time_since_last_modified() {
    let s = Setup::start().await;
    let (now, day_ago, year_ago) = (date(0), date(-86_400), date(-365 * 86_400));
    s.script.set(
        "/lm",
        &[(200, &[("date", &now), ("last-modified", &day_ago)])],
    );
    s.script.set(
        "/lm-old",
        &[(200, &[("date", &now), ("last-modified", &year_ago)])],
    );
    s.script.set(
        "/noheur/lm",
        &[(200, &[("date", &now), ("last-modified", &day_ago)])],
    );
    s.script.set(
        "/lm-500",
        &[(500, &[("date", &now), ("last-modified", &day_ago)])],
    );
    s.script.set("/no-lm", &[(200, &[("date", &now)])]);
    let ttl = |r: &Reply| -> i64 {
        let status = r.header("cache-status").unwrap().to_string();
        status.rsplit("ttl=").next().unwrap().parse().unwrap()
    };
    s.get("/lm", &[]).await;
    let r = s.get("/lm", &[]).await;
    assert!(hit(&r));
    assert!(
        (8_630..=8_640).contains(&ttl(&r)),
        "a tenth of a day: {}",
        ttl(&r)
    );
    s.get("/lm-old", &[]).await;
    let r = s.get("/lm-old", &[]).await;
    assert!(hit(&r));
    assert!(
        (86_390..=86_400).contains(&ttl(&r)),
        "capped at 24 h: {}",
        ttl(&r)
    );
    // Off on this route; not for a 500; nothing without Last-Modified.
    assert!(!s.stored("/noheur/lm").await);
    s.get("/lm-500", &[]).await;
    assert!(!hit(&s.get("/lm-500", &[]).await));
    assert!(!s.stored("/no-lm").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_requests_cache_control_is_honoured_where_the_route_says_so() {
    let s = Setup::start().await;
    let fresh: &[(&str, &str)] = &[("cache-control", "max-age=3600")];
    // max-age: a copy 1800 s old is too old for max-age=600.
    s.script.set(
        "/honor/aged",
        &[(200, &[("cache-control", "max-age=3600"), ("age", "1800")])],
    );
    s.get("/honor/aged", &[]).await;
    let r = s
        .get("/honor/aged", &[("cache-control", "max-age=600")])
        .await;
    assert!(!hit(&r));
    assert_eq!(s.script.hits("/honor/aged"), 2);
    assert!(hit(&s
        .get("/honor/aged", &[("cache-control", "max-age=3000")])
        .await));
    // min-fresh: fresh for 3600 s more is not fresh enough for 4000.
    s.script.set("/honor/min-fresh", &[(200, fresh)]);
    s.get("/honor/min-fresh", &[]).await;
    assert!(!hit(&s
        .get("/honor/min-fresh", &[("cache-control", "min-fresh=4000")])
        .await));
    assert!(hit(&s
        .get("/honor/min-fresh", &[("cache-control", "min-fresh=60")])
        .await));
    // no-cache revalidates; Pragma: no-cache too, without Cache-Control.
    s.script.set("/honor/no-cache", &[(200, fresh)]);
    s.get("/honor/no-cache", &[]).await;
    assert!(!hit(&s
        .get("/honor/no-cache", &[("cache-control", "no-cache")])
        .await));
    assert!(!hit(&s
        .get("/honor/no-cache", &[("pragma", "no-cache")])
        .await));
    // no-store: the cache is bypassed (the origin answers, nothing new is stored).
    s.script.set("/honor/no-store", &[(200, fresh)]);
    let r = s
        .get("/honor/no-store", &[("cache-control", "no-store")])
        .await;
    assert_eq!(r.text(), "/honor/no-store 1");
    assert_eq!(
        s.get("/honor/no-store", &[]).await.text(),
        "/honor/no-store 2"
    );
    // max-stale: a stale copy is accepted, unless the response forbids stale use.
    s.script.set(
        "/honor/stale",
        &[(200, &[("cache-control", "max-age=10"), ("age", "20")])],
    );
    s.script.set(
        "/honor/stale-mr",
        &[(
            200,
            &[
                ("cache-control", "max-age=10, must-revalidate"),
                ("age", "20"),
            ],
        )],
    );
    s.get("/honor/stale", &[]).await;
    s.get("/honor/stale-mr", &[]).await;
    let r = s
        .get("/honor/stale", &[("cache-control", "max-stale=1000")])
        .await;
    assert_eq!(r.text(), "/honor/stale 1");
    assert!(!hit(&s
        .get("/honor/stale", &[("cache-control", "max-stale=5")])
        .await));
    let r = s
        .get("/honor/stale-mr", &[("cache-control", "max-stale")])
        .await;
    assert_eq!(r.text(), "/honor/stale-mr 2");
    // only-if-cached: 504 on a miss, without asking the origin; the stored copy otherwise.
    s.script.set("/honor/oic", &[(200, fresh)]);
    let r = s
        .get("/honor/oic", &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!(r.status, 504);
    assert_eq!(s.script.hits("/honor/oic"), 0);
    s.get("/honor/oic", &[]).await;
    let r = s
        .get("/honor/oic", &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!((r.status, r.text().as_str()), (200, "/honor/oic 1"));
    // A route that does not honour them answers from the cache whatever the client asks.
    s.script.set("/plain", &[(200, fresh)]);
    s.get("/plain", &[]).await;
    for asks in ["no-cache", "max-age=0", "min-fresh=99999", "no-store"] {
        assert!(
            hit(&s.get("/plain", &[("cache-control", asks)]).await),
            "{asks}"
        );
    }
    assert_eq!(s.script.hits("/plain"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn targeted_fields_take_precedence_and_the_own_one_stays_here() {
    let s = Setup::start().await;
    s.script.set(
        "/cdn/store",
        &[(
            200,
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=600"),
            ],
        )],
    );
    s.script.set(
        "/cdn/nostore",
        &[(
            200,
            &[
                ("cache-control", "max-age=600"),
                ("cdn-cache-control", "no-store"),
            ],
        )],
    );
    s.script.set(
        "/cdn/own",
        &[(
            200,
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "no-store"),
                ("breakwater-cache-control", "max-age=600"),
            ],
        )],
    );
    s.script.set(
        "/cdn/invalid",
        &[(
            200,
            &[
                ("cache-control", "max-age=600"),
                ("cdn-cache-control", "Max-Age=0, no-store"),
            ],
        )],
    );
    assert!(s.stored("/cdn/store").await);
    assert!(!s.stored("/cdn/nostore").await);
    assert!(s.stored("/cdn/own").await);
    assert!(
        s.stored("/cdn/invalid").await,
        "an invalid targeted field is ignored"
    );
    // Cache-Control and CDN-Cache-Control reach the client unchanged; the own field does not.
    let r = s.get("/cdn/own", &[]).await;
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("cdn-cache-control"), Some("no-store"));
    assert_eq!(r.header("breakwater-cache-control"), None);
}
