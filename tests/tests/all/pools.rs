//! Origin pools: load balancing, retries, passive ejection, timeouts, broken origins,
//! active health checks with readiness, and DNS names re-resolved on TTL expiry.

use breakwater_tests as support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::origin::{Action, Seen};
use support::{eventually, Client, Node, Origin};

fn single_route(pool: &str) -> String {
    format!("listeners: [{{ name: web, address: 127.0.0.1:0 }}]\npools:\n  p:\n{pool}\nroutes: [{{ pool: p }}]\n")
}

/// A port where nothing listens, held by a socket that is bound but never listens:
/// connections to it are refused, and no other process can be handed the port meanwhile
/// (as it could be once a bound listener is dropped).
struct DeadPort {
    _held: tokio::net::TcpSocket,
    addr: std::net::SocketAddr,
}

fn dead_port() -> DeadPort {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    DeadPort {
        _held: socket,
        addr,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_spreads_evenly() {
    let origins = [
        Origin::echo().await,
        Origin::echo().await,
        Origin::echo().await,
    ];
    let eps: Vec<String> = origins.iter().map(|o| format!("\"{}\"", o.addr)).collect();
    let node = Node::start(&single_route(&format!(
        "    endpoints: [{}]",
        eps.join(", ")
    )));
    let client = Client::h1();
    for i in 0..30 {
        let r = client.get(node.addr("web"), "a", "/").await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    let hits: Vec<usize> = origins.iter().map(Origin::hits).collect();
    assert_eq!(hits, vec![10, 10, 10]);
}

#[tokio::test(flavor = "multi_thread")]
async fn consistent_hash_keeps_a_key_on_one_endpoint() {
    let origins = [
        Origin::echo().await,
        Origin::echo().await,
        Origin::echo().await,
    ];
    let eps: Vec<String> = origins.iter().map(|o| format!("\"{}\"", o.addr)).collect();
    let node = Node::start(&single_route(&format!(
        "    endpoints: [{}]\n    balance: consistent_hash\n    hash_key: \"header:x-user\"",
        eps.join(", ")
    )));
    let client = Client::h1();
    let mut owner: HashMap<String, String> = HashMap::new();
    for round in 0..3 {
        for user in 0..60 {
            let req = http::Request::get(format!("http://{}/", node.addr("web")))
                .header("x-user", format!("user-{user}"))
                .body(Default::default())
                .unwrap();
            let r = client.send(req).await.unwrap();
            let origin = r.header("x-origin").unwrap().to_string();
            let first = owner
                .entry(format!("user-{user}"))
                .or_insert(origin.clone());
            assert_eq!(*first, origin, "user-{user} moved in round {round}");
        }
    }
    let distinct: std::collections::HashSet<_> = owner.values().collect();
    assert!(
        distinct.len() >= 2,
        "60 keys all hashed to one endpoint: {owner:?}"
    );

    // Remove the third endpoint: only the keys it owned move (to the others); every other
    // key stays where it was.
    let removed = origins[2].addr.port().to_string();
    assert!(
        owner.values().any(|o| *o == removed),
        "the removed endpoint owned no key: {owner:?}"
    );
    let line = node.reload(&single_route(&format!(
        "    endpoints: [{}]\n    balance: consistent_hash\n    hash_key: \"header:x-user\"",
        eps[..2].join(", ")
    )));
    assert!(line.contains("config reloaded"), "{line}");
    for user in 0..60 {
        let req = http::Request::get(format!("http://{}/", node.addr("web")))
            .header("x-user", format!("user-{user}"))
            .body(Default::default())
            .unwrap();
        let now = client
            .send(req)
            .await
            .unwrap()
            .header("x-origin")
            .unwrap()
            .to_string();
        let before = &owner[&format!("user-{user}")];
        if *before == removed {
            assert_ne!(now, removed, "user-{user} still on the removed endpoint");
        } else {
            assert_eq!(&now, before, "user-{user} moved though its endpoint stayed");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_connections_are_retried_on_another_endpoint_then_502() {
    let alive = Origin::echo().await;
    let held = dead_port();
    let dead = held.addr;
    let node = Node::start(&format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0 }}]
pools:
  mixed: {{ endpoints: ["{dead}", "{alive}"], retries: 1 }}
  dead: {{ endpoints: ["{dead}"] }}
routes:
  - {{ match: {{ path_prefix: /dead }}, pool: dead }}
  - {{ pool: mixed }}
"#,
        alive = alive.addr
    ));
    let client = Client::h1();
    // POST too: nothing was sent to the refusing endpoint, so a retry is safe for any method.
    for i in 0..10 {
        let req = http::Request::post(format!("http://{}/r{i}", node.addr("web")))
            .body("payload".into())
            .unwrap();
        let r = client.send(req).await.unwrap();
        assert_eq!(r.status, 200, "request {i}");
    }
    assert_eq!(alive.hits(), 10);
    assert!(alive.seen().iter().all(|s| s.body == "payload"));
    let r = client.get(node.addr("web"), "a", "/dead").await;
    assert_eq!(r.status, 502);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_origin_gets_504_at_the_read_timeout() {
    let slow = Origin::start(Arc::new(|_s: &Seen| {
        Action::Delay(Duration::from_secs(10), Box::new(Action::ok("late")))
    }))
    .await;
    let node = Node::start(&single_route(&format!(
        "    endpoints: [\"{}\"]\n    timeouts: {{ read: 300ms }}",
        slow.addr
    )));
    // 504, not the origin's 200 "late": the node gave up at its read timeout, an event
    // the client sees whatever the machine's load (no wall-clock bound needed).
    let r = Client::h1().get(node.addr("web"), "a", "/").await;
    assert_eq!(r.status, 504);
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_dying_mid_response_closes_the_client_connection() {
    let dying = Origin::start(Arc::new(|s: &Seen| {
        if s.uri == "/die" {
            Action::DieMidBody
        } else {
            Action::ok("fine")
        }
    }))
    .await;
    let node = Node::start(&single_route(&format!(
        "    endpoints: [\"{}\"]",
        dying.addr
    )));
    let addr = node.addr("web");
    let out = support::client::raw(addr, b"GET /die HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let body_len = out.split("\r\n\r\n").nth(1).map_or(0, str::len);
    assert!(body_len < 100_000, "a truncated body must not be completed");
    // hyper's client reports the truncation as an error instead of a short body.
    let err = Client::h1()
        .send(
            http::Request::get(format!("http://{addr}/die"))
                .body(Default::default())
                .unwrap(),
        )
        .await;
    assert!(err.is_err(), "truncated body passed as complete: {err:?}");
    assert_eq!(Client::h1().get(addr, "a", "/ok").await.text(), "fine");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_checks_take_endpoints_out_and_back_and_drive_readiness() {
    let sick = [
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    ];
    let handler = |flag: Arc<AtomicBool>| -> support::origin::Handler {
        Arc::new(move |s: &Seen| {
            if s.uri == "/healthz" && flag.load(Ordering::SeqCst) {
                Action::Respond {
                    status: 503,
                    headers: vec![],
                    body: "sick".into(),
                }
            } else {
                Action::ok("ok")
            }
        })
    };
    let a = Origin::start(handler(sick[0].clone())).await;
    let b = Origin::start(handler(sick[1].clone())).await;
    let node = Node::start(&single_route(&format!(
        "    endpoints: [\"{}\", \"{}\"]\n    health_check: {{ path: /healthz, interval: 100ms, timeout: 1s, unhealthy_threshold: 1, healthy_threshold: 1 }}",
        a.addr, b.addr
    )));
    let web = node.addr("web");
    let admin = node.addr("admin");
    let client = Client::h1();
    assert_eq!(client.get(admin, "a", "/readyz").await.status, 200);

    // b fails its check: all traffic goes to a.
    sick[1].store(true, Ordering::SeqCst);
    eventually(10, "b taken out", || {
        let client = client.clone();
        async move {
            let mut all_a = true;
            for _ in 0..4 {
                all_a &= client.get(web, "a", "/").await.header("x-origin")
                    == Some(&a.addr.port().to_string());
            }
            all_a
        }
    })
    .await;
    let before = b.hits();
    for _ in 0..10 {
        assert_eq!(client.get(web, "a", "/").await.status, 200);
    }
    assert_eq!(b.hits(), before, "an unhealthy endpoint got traffic");

    // Both fail: the node is not ready.
    sick[0].store(true, Ordering::SeqCst);
    eventually(10, "readyz 503", || {
        let client = client.clone();
        async move { client.get(admin, "a", "/readyz").await.status == 503 }
    })
    .await;

    // b recovers: ready again, and b gets traffic again.
    sick[1].store(false, Ordering::SeqCst);
    eventually(10, "readyz 200", || {
        let client = client.clone();
        async move { client.get(admin, "a", "/readyz").await.status == 200 }
    })
    .await;
    let before = b.hits();
    for _ in 0..4 {
        client.get(web, "a", "/").await;
    }
    assert!(b.hits() > before, "recovered endpoint got no traffic");
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_names_are_resolved_and_re_resolved_when_the_ttl_expires() {
    let dns = support::dns::Dns::start().await;
    let first = Origin::echo().await;
    // A second origin on another loopback address, same port.
    let second = Origin::start_on(
        format!("127.0.0.2:{}", first.addr.port()).parse().unwrap(),
        support::origin::echo_handler(),
    )
    .await;
    dns.set("origin.test", &["127.0.0.1".parse().unwrap()]);
    let node = Node::start(&format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0 }}]
admin: {{ address: 127.0.0.1:0 }}
resolver: {{ nameservers: ["{dns}"], min_ttl: 100ms, max_ttl: 2s }}
pools: {{ p: {{ endpoints: ["origin.test:{port}"] }} }}
routes: [{{ pool: p }}]
"#,
        dns = dns.addr,
        port = first.addr.port()
    ));
    let client = Client::h1();
    let web = node.addr("web");
    assert_eq!(client.get(web, "a", "/").await.status, 200);
    assert_eq!(first.hits(), 1);

    dns.set("origin.test", &["127.0.0.2".parse().unwrap()]);
    eventually(10, "requests follow the new address", || {
        let client = client.clone();
        let second = &second;
        async move {
            client.get(web, "a", "/").await;
            second.hits() > 0
        }
    })
    .await;
    assert!(*dns.queries.lock().unwrap() >= 2);
    // Each lookup is counted by host and result.
    let metrics = client.get(node.addr("admin"), "a", "/metrics").await.text();
    let ok: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("breakwater_dns_lookups_total{host=\"origin.test\",result=\"ok\"} ")
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no DNS lookup metric:\n{metrics}"));
    assert!(ok >= 2.0, "{ok}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_and_http2_to_the_origin_with_verification() {
    let ca = support::certs::Ca::new();
    let other_ca = support::certs::Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf(dir.path(), "origin", &["origin.test"]);
    std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
    std::fs::write(dir.path().join("other-ca.pem"), &other_ca.pem).unwrap();
    let origin = Origin::start_tls(support::origin::echo_handler(), &cert, &key).await;
    let yaml = format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0 }}]
pools:
  h2:
    endpoints: ["{o}"]
    protocol: http2
    tls: {{ sni: origin.test, ca_file: "{{DIR}}/ca.pem" }}
  h1:
    endpoints: ["{o}"]
    tls: {{ sni: origin.test, ca_file: "{{DIR}}/ca.pem" }}
  untrusted:
    endpoints: ["{o}"]
    tls: {{ sni: origin.test, ca_file: "{{DIR}}/other-ca.pem" }}
routes:
  - {{ match: {{ path_prefix: /h2 }}, pool: h2 }}
  - {{ match: {{ path_prefix: /h1 }}, pool: h1 }}
  - {{ pool: untrusted }}
"#,
        o = origin.addr
    );
    let node = Node::start_in(dir, &yaml, &[]);
    let client = Client::h1();
    let web = node.addr("web");
    assert_eq!(client.get(web, "a", "/h2").await.status, 200);
    assert_eq!(client.get(web, "a", "/h1").await.status, 200);
    let versions: Vec<http::Version> = origin.seen().iter().map(|s| s.version).collect();
    assert_eq!(
        versions,
        vec![http::Version::HTTP_2, http::Version::HTTP_11]
    );
    // A certificate from a CA the pool does not trust: refused, 502, origin never sees it.
    assert_eq!(client.get(web, "a", "/other").await.status, 502);
    assert_eq!(origin.hits(), 2);
}

/// Idle origin connections are kept for reuse up to `server.upstream_keepalive` per thread
/// (default 8 192): a second burst of as many concurrent requests as the first reuses the
/// first burst's connections. pingora's own default (128) closed all but 128 of them, so
/// each burst larger than that reconnected per request; with the setting at 4, the second
/// burst opens nearly all its connections again.
#[tokio::test(flavor = "multi_thread")]
async fn idle_origin_connections_are_kept_up_to_the_keepalive_setting() {
    const BURST: usize = 200;
    async fn burst(node: &Node, origin: &Origin, gate: &tokio::sync::Semaphore) {
        let web = node.addr("web");
        let before = origin.seen().len();
        let requests: Vec<_> = (0..BURST)
            .map(|_| tokio::spawn(async move { Client::h1().get(web, "a", "/").await }))
            .collect();
        // Every request of the burst held at the origin at once: one connection each.
        eventually(30, "the whole burst at the origin", || async {
            origin.seen().len() == before + BURST
        })
        .await;
        gate.add_permits(BURST);
        for r in requests {
            let r = r.await.unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.body.len(), 2);
        }
    }
    for (server, kept) in [
        ("{ threads: 1 }", true),
        ("{ threads: 1, upstream_keepalive: 4 }", false),
    ] {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let held = gate.clone();
        let origin = Origin::start(Arc::new(move |_: &Seen| Action::Gated {
            headers: vec![],
            body: bytes::Bytes::from_static(b"ok"),
            split: 1,
            gate: held.clone(),
        }))
        .await;
        let node = Node::start(&format!(
            "server: {server}\nlisteners: [{{ name: web, address: 127.0.0.1:0 }}]\npools: {{ o: {{ endpoints: [\"{}\"] }} }}\nroutes: [{{ pool: o }}]\n",
            origin.addr
        ));
        burst(&node, &origin, &gate).await;
        let first = origin.connections();
        assert!(
            first >= BURST,
            "{first} connections for {BURST} requests at once"
        );
        burst(&node, &origin, &gate).await;
        let opened = origin.connections() - first;
        eprintln!("server: {server}: {first} connections, then {opened} more");
        if kept {
            assert!(
                opened < BURST / 10,
                "the second burst opened {opened} new connections"
            );
        } else {
            assert!(
                opened >= BURST * 3 / 4,
                "with 4 kept, the second burst opened only {opened}"
            );
        }
    }
}

/// A node whose one pool endpoint is the test's own listener, a raw origin.
async fn node_before_raw_origin() -> (Node, tokio::net::TcpListener) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = Node::start(&single_route(&format!(
        "    endpoints: [\"{}\"]",
        listener.local_addr().unwrap()
    )));
    (node, listener)
}

/// An idle origin connection that the origin closes (as at the end of its keep-alive
/// timeout) is closed here too, within the idle pool's sweep, instead of waiting in
/// `CLOSE_WAIT` for the next request to that origin; the next request then goes out on a new
/// connection and succeeds. Both connections are the test's own raw sockets, so the origin
/// sees the node's close as the end of its stream.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_connection_the_origin_closes_is_closed_here_too() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (node, listener) = node_before_raw_origin().await;
    let web = node.addr("web");
    async fn answer_one(s: &mut tokio::net::TcpStream) {
        assert!(support::read_head(s).await.is_some());
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await
            .unwrap();
    }
    let first = tokio::spawn(async move { Client::h1().get(web, "a", "/").await });
    let (mut conn, _) = listener.accept().await.unwrap();
    answer_one(&mut conn).await;
    assert_eq!(first.await.unwrap().status, 200);

    conn.shutdown().await.unwrap();
    let mut rest = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut rest))
        .await
        .expect("the node still holds the connection its origin closed 10 s ago");
    assert_eq!(
        closed.unwrap(),
        0,
        "the node wrote to a closed idle connection"
    );

    let second = tokio::spawn(async move { Client::h1().get(web, "a", "/").await });
    let (mut conn, _) = listener.accept().await.unwrap();
    answer_one(&mut conn).await;
    assert_eq!(second.await.unwrap().status, 200);
}

/// A kept-alive origin connection that the origin closes just as a request goes out on it
/// (the race with an origin's idle timeout: Node.js closes idle ones after 5 s) fails that
/// attempt before anything is answered. An idempotent request then goes again to the same
/// endpoint on a new connection (RFC 9112 9.3.1) instead of a 502 from a one-endpoint pool;
/// a non-idempotent one is not sent again (502), as the RFC requires.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_on_a_connection_the_origin_just_closed_goes_again_if_idempotent() {
    use tokio::io::AsyncWriteExt;
    let (node, listener) = node_before_raw_origin().await;
    let web = node.addr("web");
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    for (method, retried) in [("GET", true), ("POST", false)] {
        let sent = tokio::spawn(async move {
            let c = Client::h1();
            let first = c.send(http_request("GET", web)).await.unwrap().status;
            let second = c.send(http_request(method, web)).await.unwrap().status;
            (first, second)
        });
        // The first request is answered and its connection kept; the second arrives on it
        // and the origin closes it unanswered.
        let (mut kept, _) = listener.accept().await.unwrap();
        assert!(support::read_head(&mut kept).await.is_some());
        kept.write_all(OK).await.unwrap();
        assert!(support::read_head(&mut kept).await.is_some());
        drop(kept);
        if retried {
            let accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept());
            let (mut fresh, _) = accepted
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "the GET did not come again (answered: {})",
                        sent.is_finished()
                    )
                })
                .unwrap();
            let again = support::read_head(&mut fresh).await.unwrap();
            assert!(
                again.starts_with(b"GET / "),
                "{}",
                String::from_utf8_lossy(&again)
            );
            fresh.write_all(OK).await.unwrap();
            assert_eq!(sent.await.unwrap(), (200, 200));
        } else {
            assert_eq!(sent.await.unwrap(), (200, 502));
        }
    }
}

fn http_request(
    method: &str,
    web: std::net::SocketAddr,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(format!("http://{web}/"))
        .header("host", "a")
        .body(Default::default())
        .unwrap()
}
