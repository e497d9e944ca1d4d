//! The CDN cache end to end: a real origin that counts its requests, the real binary in
//! front of it, and real clients. One test per rule of RFC 9111 / 5861 / 9211 we follow.

use breakwater_tests as support;

use bytes::Bytes;
use http_body_util::Full;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::origin::{Action, Seen};
use support::{eventually, Client, Node, Origin};

/// An origin whose answer depends on the path; `n` in bodies counts requests per path.
fn origin_handler(counts: Arc<Mutex<HashMap<String, usize>>>) -> support::origin::Handler {
    Arc::new(move |s: &Seen| {
        let path = s.uri.split('?').next().unwrap_or("").to_string();
        let n = {
            let mut c = counts.lock().unwrap();
            let e = c.entry(path.clone()).or_default();
            *e += 1;
            *e
        };
        let respond = |headers: &[(&str, &str)], body: String| Action::Respond {
            status: 200,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Bytes::from(body),
        };
        match path.as_str() {
            "/fresh" | "/fresh2" => {
                respond(&[("cache-control", "max-age=60")], format!("fresh {n}"))
            }
            "/nostore" => respond(&[("cache-control", "no-store")], format!("nostore {n}")),
            // Answers to unsafe requests that name other URLs (RFC 9111 4.4).
            "/edit" => respond(
                &[
                    ("location", "/fresh"),
                    ("content-location", "http://example.com/fresh2"),
                ],
                format!("edit {n}"),
            ),
            "/edit-elsewhere" => respond(
                &[
                    ("location", "http://example/fresh"),
                    ("content-location", "http://other.example.com/fresh2"),
                ],
                format!("edit {n}"),
            ),
            "/private" => respond(
                &[("cache-control", "private, max-age=60")],
                format!("private {n}"),
            ),
            p if p.ends_with("/cookie") => respond(
                &[("cache-control", "max-age=60"), ("set-cookie", "a=b")],
                format!("cookie {n}"),
            ),
            "/plain" => respond(&[], format!("plain {n}")),
            "/short" => {
                if s.header("if-none-match").as_deref() == Some("\"v1\"") {
                    Action::Respond {
                        status: 304,
                        headers: vec![
                            ("etag".into(), "\"v1\"".into()),
                            ("cache-control".into(), "max-age=60".into()),
                        ],
                        body: Bytes::new(),
                    }
                } else {
                    respond(
                        &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
                        format!("short {n}"),
                    )
                }
            }
            "/changing" => respond(&[("cache-control", "max-age=1")], format!("changing {n}")),
            "/swr" => respond(
                &[("cache-control", "max-age=1, stale-while-revalidate=30")],
                format!("swr {n}"),
            ),
            "/sie" => respond(
                &[("cache-control", "max-age=1, stale-if-error=60")],
                format!("sie {n}"),
            ),
            "/vary" => respond(
                &[("cache-control", "max-age=60"), ("vary", "accept-language")],
                format!(
                    "lang={} {n}",
                    s.header("accept-language").unwrap_or_default()
                ),
            ),
            "/ae" => respond(
                &[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")],
                format!("ae={} {n}", s.header("accept-encoding").unwrap_or_default()),
            ),
            "/varystar" => respond(
                &[("cache-control", "max-age=60"), ("vary", "*")],
                format!("star {n}"),
            ),
            "/slow" => Action::Delay(
                Duration::from_millis(300),
                Box::new(respond(
                    &[("cache-control", "max-age=60")],
                    format!("slow {n}"),
                )),
            ),
            "/big" => respond(&[("cache-control", "max-age=60")], "0123456789".repeat(100)),
            p if p.starts_with("/keyed/") => respond(
                &[
                    ("cache-control", "max-age=60"),
                    ("surrogate-key", "blue green"),
                ],
                format!("keyed {n}"),
            ),
            p if p.starts_with("/bulk/") => {
                respond(&[("cache-control", "max-age=600")], "x".repeat(100_000))
            }
            _ => respond(&[("cache-control", "max-age=60")], format!("other {n}")),
        }
    })
}

struct Setup {
    node: Node,
    origin: Origin,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl Setup {
    fn hits(&self, path: &str) -> usize {
        self.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

async fn setup() -> Setup {
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let origin = Origin::start(origin_handler(counts.clone())).await;
    let yaml = format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0, h2c: true }}]
admin: {{ address: 127.0.0.1:0, token: t0ken }}
cache: {{ memory_mb: 2 }}
pools:
  o: {{ endpoints: ["{origin}"], retries: 0 }}
routes:
  - {{ match: {{ path: /plain }}, pool: o, cache: {{ default_ttl: 60s }} }}
  - {{ match: {{ path_prefix: /nocache }}, pool: o }}
  - {{ match: {{ path_prefix: /honor }}, pool: o, cache: {{ honor_client_cache_control: true }} }}
  - {{ match: {{ path_prefix: /strip/ }}, pool: o, cache: {{ set_cookie: strip }} }}
  - {{ match: {{ path_prefix: /store/ }}, pool: o, cache: {{ set_cookie: store }} }}
  - {{ pool: o, cache: {{}} }}
"#,
        origin = origin.addr
    );
    Setup {
        node: Node::start(&yaml),
        origin,
        counts,
    }
}

/// A `GET` of `path` for host example.com with these extra headers.
pub(crate) fn get(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::get(format!("http://{addr}{path}")).header("host", "example.com");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_response_is_served_from_the_cache_on_both_protocols() {
    let s = setup().await;
    let web = s.node.addr("web");
    let c = Client::h1();
    let first = c.get(web, "example.com", "/fresh").await;
    assert_eq!(first.text(), "fresh 1");
    assert!(
        first.header("cache-status").unwrap().contains("fwd=miss"),
        "{:?}",
        first.header("cache-status")
    );
    for client in [Client::h1(), Client::h2c()] {
        let r = client.get(web, "example.com", "/fresh").await;
        assert_eq!(r.text(), "fresh 1");
        let status = r.header("cache-status").unwrap();
        assert!(status.starts_with("breakwater; hit; ttl="), "{status}");
        assert!(r.header("age").is_some(), "Age on a hit");
    }
    assert_eq!(s.hits("/fresh"), 1);
    // Another host is another object.
    assert_eq!(
        c.get(web, "other.example", "/fresh").await.text(),
        "fresh 2"
    );
    // HEAD is answered from the stored GET.
    let head = http::Request::head(format!("http://{web}/fresh"))
        .header("host", "example.com")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = c.send(head).await.unwrap();
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(s.hits("/fresh"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn what_must_not_be_stored_is_not() {
    let s = setup().await;
    let web = s.node.addr("web");
    let c = Client::h1();
    for path in ["/nostore", "/private", "/cookie", "/varystar", "/nocache/x"] {
        c.get(web, "example.com", path).await;
        let r = c.get(web, "example.com", path).await;
        assert!(
            r.text().ends_with('2'),
            "{path} was served from the cache: {}",
            r.text()
        );
    }
    // A request with credentials is not answered from a shared cache entry made for it.
    let r = c
        .send(get(web, "/auth", &[("authorization", "Bearer x")]))
        .await
        .unwrap();
    assert_eq!(r.text(), "other 1");
    let r = c
        .send(get(web, "/auth", &[("authorization", "Bearer y")]))
        .await
        .unwrap();
    assert_eq!(r.text(), "other 2");
    // No freshness from the origin: stored only because the route sets default_ttl.
    c.get(web, "example.com", "/plain").await;
    assert_eq!(c.get(web, "example.com", "/plain").await.text(), "plain 1");
}

#[tokio::test(flavor = "multi_thread")]
async fn vary_keeps_variants_apart() {
    let s = setup().await;
    let web = s.node.addr("web");
    let c = Client::h1();
    let en = || get(web, "/vary", &[("accept-language", "en")]);
    let fr = || get(web, "/vary", &[("accept-language", "fr")]);
    assert_eq!(c.send(en()).await.unwrap().text(), "lang=en 1");
    assert_eq!(c.send(fr()).await.unwrap().text(), "lang=fr 2");
    assert_eq!(c.send(en()).await.unwrap().text(), "lang=en 1");
    assert_eq!(c.send(fr()).await.unwrap().text(), "lang=fr 2");
    assert_eq!(s.hits("/vary"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_entries_are_revalidated_with_the_origin() {
    let s = setup().await;
    let web = s.node.addr("web");
    let c = Client::h1();
    assert_eq!(c.get(web, "example.com", "/short").await.text(), "short 1");
    // Once stale, the origin is asked with If-None-Match; its 304 refreshes the entry.
    eventually(10, "a revalidation with 304", || async {
        c.get(web, "example.com", "/short").await;
        s.hits("/short") >= 2
    })
    .await;
    let seen: Vec<Seen> = s
        .origin
        .seen()
        .into_iter()
        .filter(|x| x.uri == "/short")
        .collect();
    assert_eq!(seen[1].header("if-none-match").as_deref(), Some("\"v1\""));
    let r = c.get(web, "example.com", "/short").await;
    assert_eq!(r.text(), "short 1", "the stored body is kept after a 304");
    assert!(
        r.header("cache-status").unwrap().contains("hit"),
        "{:?}",
        r.header("cache-status")
    );
    // Without validators, a stale entry is fetched again in full (200).
    assert_eq!(
        c.get(web, "example.com", "/changing").await.text(),
        "changing 1"
    );
    eventually(10, "a new body after expiry", || async {
        c.get(web, "example.com", "/changing").await.text() == "changing 2"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_requests_from_clients_get_304_from_the_cache() {
    let s = setup().await;
    let web = s.node.addr("web");
    let c = Client::h1();
    let first = c.get(web, "example.com", "/short").await;
    assert_eq!(first.header("etag"), Some("\"v1\""));
    let r = c
        .send(get(web, "/short", &[("if-none-match", "\"v1\"")]))
        .await
        .unwrap();
    assert_eq!(r.status, 304);
    assert_eq!(s.hits("/short"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_misses_are_collapsed_into_one_origin_request() {
    let s = setup().await;
    let web = s.node.addr("web");
    let mut tasks = Vec::new();
    for _ in 0..100 {
        tasks.push(tokio::spawn(async move {
            Client::h1().get(web, "example.com", "/slow").await.text()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), "slow 1");
    }
    assert_eq!(
        s.hits("/slow"),
        1,
        "100 concurrent misses, one origin request"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let s = setup().await;
    let web = s.node.addr("web");
    let c = Client::h1();
    assert_eq!(c.get(web, "example.com", "/swr").await.text(), "swr 1");
    // Once stale: answered at once with the stale body while one refresh goes out.
    eventually(10, "a stale answer", || async {
        let r = c.get(web, "example.com", "/swr").await;
        r.header("cache-status")
            .is_some_and(|h| h.contains("fwd=stale"))
            && r.text() == "swr 1"
    })
    .await;
    eventually(10, "the refreshed body", || async {
        c.get(web, "example.com", "/swr").await.text() == "swr 2"
    })
    .await;
    assert_eq!(s.hits("/swr"), 2, "one background refresh");
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_if_error_serves_stale_when_the_origin_is_down() {
    let mut s = setup().await;
    let web = s.node.addr("web");
    let c = Client::h1();
    assert_eq!(c.get(web, "example.com", "/sie").await.text(), "sie 1");
    s.origin.stop();
    // Past max-age=1, the origin refuses connections: the stale copy is served, never an
    // error.
    eventually(10, "a stale answer while the origin is down", || async {
        let r = c.get(web, "example.com", "/sie").await;
        assert_eq!((r.status, r.text().as_str()), (200, "sie 1"));
        let stale = r
            .header("cache-status")
            .is_some_and(|h| h.contains("stale"));
        if stale {
            // pingora closes the connection after serving stale on error: the client is told.
            assert_eq!(r.header("connection"), Some("close"));
        }
        stale
    })
    .await;
    // Something never cached gets the origin error.
    assert_eq!(c.get(web, "example.com", "/fresh2").await.status, 502);
}

#[tokio::test(flavor = "multi_thread")]
async fn ranges_are_served_from_the_cached_object() {
    let s = setup().await;
    let web = s.node.addr("web");
    let c = Client::h1();
    assert_eq!(c.get(web, "example.com", "/big").await.body.len(), 1000);
    let r = c
        .send(get(web, "/big", &[("range", "bytes=10-19")]))
        .await
        .unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), "0123456789");
    assert_eq!(r.header("content-range"), Some("bytes 10-19/1000"));
    let r = c
        .send(get(web, "/big", &[("range", "bytes=5000-")]))
        .await
        .unwrap();
    assert_eq!(r.status, 416);
    assert_eq!(s.hits("/big"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn unsafe_methods_invalidate_the_url() {
    let s = setup().await;
    let web = s.node.addr("web");
    let c = Client::h1();
    assert_eq!(c.get(web, "example.com", "/fresh").await.text(), "fresh 1");
    let post = http::Request::post(format!("http://{web}/fresh"))
        .header("host", "example.com")
        .body(Full::new(Bytes::from_static(b"x")))
        .unwrap();
    assert_eq!(c.send(post).await.unwrap().status, 200);
    assert_eq!(c.get(web, "example.com", "/fresh").await.text(), "fresh 3");
}

/// The invalidation is done before the unsafe request's answer goes out, not after it: a
/// client that has the head of that answer and asks for the URL again (on another
/// connection, while the answer's body is still coming) gets the origin's new version.
#[tokio::test(flavor = "multi_thread")]
async fn an_unsafe_request_invalidates_before_its_answer_reaches_the_client() {
    use tokio::io::AsyncWriteExt;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let gets = Arc::new(Mutex::new(0usize));
    let origin = {
        let (gate, gets) = (gate.clone(), gets.clone());
        Origin::start(Arc::new(move |s: &Seen| match s.method.as_str() {
            "POST" => Action::Gated {
                headers: vec![],
                body: Bytes::from_static(b"posted"),
                split: 1,
                gate: gate.clone(),
            },
            _ => {
                let n = {
                    let mut g = gets.lock().unwrap();
                    *g += 1;
                    *g
                };
                Action::Respond {
                    status: 200,
                    headers: vec![("cache-control".into(), "max-age=600".into())],
                    body: Bytes::from(format!("doc {n}")),
                }
            }
        }))
        .await
    };
    let node = Node::start(&format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0 }}]
admin: {{ address: 127.0.0.1:0 }}
pools: {{ o: {{ endpoints: ["{}"], retries: 0 }} }}
routes: [{{ pool: o, cache: {{}} }}]
"#,
        origin.addr
    ));
    let web = node.addr("web");
    let c = Client::h1();
    assert_eq!(c.get(web, "example.com", "/doc").await.text(), "doc 1");
    assert_eq!(
        c.get(web, "example.com", "/doc").await.text(),
        "doc 1",
        "a hit"
    );

    let mut post = tokio::net::TcpStream::connect(web).await.unwrap();
    post.write_all(b"POST /doc HTTP/1.1\r\nHost: example.com\r\nContent-Length: 1\r\n\r\nx")
        .await
        .unwrap();
    // The answer's head and first byte; the origin holds back the rest.
    let head = read_until(&mut post, Vec::new(), |r| {
        r.windows(4).any(|w| w == b"\r\n\r\n")
    })
    .await;
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    assert_eq!(
        Client::h1().get(web, "example.com", "/doc").await.text(),
        "doc 2",
        "the stored copy went before the POST's answer was out"
    );
    gate.add_permits(1);
    // The rest, chunked (the origin's body had no length): up to the last chunk.
    let rest = read_until(&mut post, head, |r| r.ends_with(b"0\r\n\r\n")).await;
    assert!(String::from_utf8_lossy(&rest).contains("osted"));
}

/// Read from `stream` onto `got` until `done` says it is enough (10 s at most per read).
async fn read_until(
    stream: &mut tokio::net::TcpStream,
    mut got: Vec<u8>,
    done: impl Fn(&[u8]) -> bool,
) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    while !done(&got) {
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("the answer in time")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// A successful unsafe request also invalidates the URLs its response names in `Location`
/// and `Content-Location`, on the same host only (RFC 9111 section 4.4: another host's
/// objects are not the requester's to invalidate).
#[tokio::test(flavor = "multi_thread")]
async fn unsafe_methods_invalidate_the_same_host_urls_the_response_names() {
    let s = setup().await;
    let web = s.node.addr("web");
    let c = Client::h1();
    let post = |path: &str| {
        http::Request::post(format!("http://{web}{path}"))
            .header("host", "example.com")
            .body(Full::new(Bytes::from_static(b"x")))
            .unwrap()
    };
    for p in ["/fresh", "/fresh2"] {
        assert_eq!(
            c.get(web, "example.com", p).await.text(),
            format!("{} 1", &p[1..6])
        );
    }
    // Names other hosts (one a prefix of this one): nothing of this host goes.
    assert_eq!(c.send(post("/edit-elsewhere")).await.unwrap().status, 200);
    assert_eq!(c.get(web, "example.com", "/fresh").await.text(), "fresh 1");
    assert_eq!(c.get(web, "example.com", "/fresh2").await.text(), "fresh 1");
    // Names /fresh (relative) and http://example.com/fresh2: both go.
    assert_eq!(c.send(post("/edit")).await.unwrap().status, 200);
    assert_eq!(c.get(web, "example.com", "/fresh").await.text(), "fresh 2");
    assert_eq!(c.get(web, "example.com", "/fresh2").await.text(), "fresh 2");
}

async fn purge(admin: std::net::SocketAddr, query: &str, token: Option<&str>) -> (u16, String) {
    let mut b = http::Request::post(format!("http://{admin}/cache/purge?{query}"));
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let r = Client::h1()
        .send(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    (r.status, r.text())
}

#[tokio::test(flavor = "multi_thread")]
async fn purges_by_url_prefix_and_surrogate_key_need_the_token() {
    let s = setup().await;
    let (web, admin) = (s.node.addr("web"), s.node.addr("admin"));
    let c = Client::h1();
    for p in ["/fresh", "/keyed/a", "/keyed/b", "/other/1", "/other/2"] {
        c.get(web, "example.com", p).await;
    }
    assert_eq!(purge(admin, "url=example.com/fresh", None).await.0, 401);
    assert_eq!(
        purge(admin, "url=example.com/fresh", Some("wrong")).await.0,
        401
    );
    assert_eq!(
        c.get(web, "example.com", "/fresh").await.text(),
        "fresh 1",
        "still cached"
    );

    assert_eq!(
        purge(admin, "url=example.com/fresh", Some("t0ken")).await,
        (200, "{\"purged\":1}\n".to_string())
    );
    assert_eq!(c.get(web, "example.com", "/fresh").await.text(), "fresh 2");
    assert_eq!(
        purge(admin, "key=green", Some("t0ken")).await,
        (200, "{\"purged\":2}\n".to_string())
    );
    assert_eq!(
        c.get(web, "example.com", "/keyed/a").await.text(),
        "keyed 2"
    );
    assert_eq!(
        purge(admin, "prefix=example.com/other/", Some("t0ken")).await,
        (200, "{\"purged\":2}\n".to_string())
    );
    assert_eq!(
        c.get(web, "example.com", "/other/1").await.text(),
        "other 2"
    );
    let (status, body) = purge(admin, "all=true", Some("t0ken")).await;
    assert_eq!((status, body.as_str()), (200, "{\"purged\":3}\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_memory_budget_bounds_the_cache() {
    let s = setup().await;
    let (web, admin) = (s.node.addr("web"), s.node.addr("admin"));
    let c = Client::h1();
    // 40 objects of 100 KB into a 2 MiB cache.
    for i in 0..40 {
        assert_eq!(
            c.get(web, "example.com", &format!("/bulk/{i}"))
                .await
                .body
                .len(),
            100_000
        );
    }
    let metrics = c.get(admin, "localhost", "/metrics").await.text();
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in metrics"))
    };
    assert!(
        value("breakwater_cache_bytes") <= 2 << 20,
        "{}",
        value("breakwater_cache_bytes")
    );
    assert!(value("breakwater_cache_objects") < 40);
    assert!(
        value("breakwater_cache_objects") >= 5,
        "the cache keeps objects that fit"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_no_cache_revalidates_only_where_the_route_honours_it() {
    let s = setup().await;
    let web = s.node.addr("web");
    let c = Client::h1();
    let nc = [("cache-control", "no-cache")];
    assert_eq!(
        c.get(web, "example.com", "/honor/x").await.text(),
        "other 1"
    );
    assert_eq!(
        c.get(web, "example.com", "/honor/x").await.text(),
        "other 1"
    );
    let r = c.send(get(web, "/honor/x", &nc)).await.unwrap();
    assert_eq!(r.text(), "other 2", "no-cache went to the origin");
    assert_eq!(
        c.get(web, "example.com", "/honor/x").await.text(),
        "other 2"
    );
    // The default route does not let clients bypass the cache.
    assert_eq!(c.get(web, "example.com", "/fresh").await.text(), "fresh 1");
    let r = c.send(get(web, "/fresh", &nc)).await.unwrap();
    assert_eq!(r.text(), "fresh 1");
}

#[tokio::test(flavor = "multi_thread")]
async fn accept_encoding_variants_are_normalised() {
    let s = setup().await;
    let web = s.node.addr("web");
    let c = Client::h1();
    let ae = |v: &'static str| get(web, "/ae", &[("accept-encoding", v)]);
    assert_eq!(
        c.send(ae("gzip, deflate, br")).await.unwrap().text(),
        "ae=gzip, deflate, br 1"
    );
    // Same best coding (br): the same variant.
    assert_eq!(
        c.send(ae("br;q=1.0, gzip;q=0.5")).await.unwrap().text(),
        "ae=gzip, deflate, br 1"
    );
    assert_eq!(c.send(ae("gzip")).await.unwrap().text(), "ae=gzip 2");
    assert_eq!(
        c.send(ae("deflate, gzip")).await.unwrap().text(),
        "ae=gzip 2"
    );
    assert_eq!(
        c.send(ae("identity")).await.unwrap().text(),
        "ae=identity 3"
    );
    assert_eq!(s.hits("/ae"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn set_cookie_responses_are_passed_stripped_or_stored_as_configured() {
    let s = setup().await;
    let web = s.node.addr("web");
    let c = Client::h1();
    // Default (`pass`): never stored.
    for n in 1..=2 {
        let r = c.get(web, "example.com", "/cookie").await;
        assert_eq!(
            (r.text(), r.header("set-cookie")),
            (format!("cookie {n}"), Some("a=b"))
        );
    }
    // `strip`: stored without the cookie; the response that filled the cache keeps it.
    let r = c.get(web, "example.com", "/strip/cookie").await;
    assert_eq!(
        (r.text().as_str(), r.header("set-cookie")),
        ("cookie 1", Some("a=b"))
    );
    let r = c.get(web, "example.com", "/strip/cookie").await;
    assert_eq!(
        (r.text().as_str(), r.header("set-cookie")),
        ("cookie 1", None)
    );
    assert!(r.header("cache-status").unwrap().contains("hit"));
    // `store`: stored as it came, cookie included.
    c.get(web, "example.com", "/store/cookie").await;
    let r = c.get(web, "example.com", "/store/cookie").await;
    assert_eq!(
        (r.text().as_str(), r.header("set-cookie")),
        ("cookie 1", Some("a=b"))
    );
    assert_eq!(
        (
            s.hits("/cookie"),
            s.hits("/strip/cookie"),
            s.hits("/store/cookie")
        ),
        (2, 1, 1)
    );
}
