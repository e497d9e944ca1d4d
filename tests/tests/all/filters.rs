//! Wasm filters on the request path, through the real binary and a real origin: request and
//! response edits, short-circuits, failures under each policy, concurrency limits, state
//! isolation and reload of a changed component under traffic.

use breakwater_tests as support;

use breakwater_tests::wasm;

use std::sync::Arc;
use support::origin::{Action, Seen};
use support::{eventually, Client, Node, Origin};
use wasm::{
    body_filter, component, counter, module, on_request, on_response, respond, upper_body, CONTINUE,
};

/// `on-request`: set `x-filter: yes`, rewrite the path to `/rewritten`, and ask for
/// `x-added: 1` on the response. `on-response`: set `x-version: <version>`.
fn editor(version: u8) -> Vec<u8> {
    let req = "
        (memory.fill (i32.const 2048) (i32.const 0) (i32.const 96))
        (i32.store (i32.const 2052) (i32.const 3000)) (i32.store (i32.const 2056) (i32.const 1))
        (i32.store (i32.const 3000) (i32.const 3200)) (i32.store (i32.const 3004) (i32.const 8))
        (i32.store (i32.const 3008) (i32.const 3300)) (i32.store (i32.const 3012) (i32.const 3))
        (i32.store8 (i32.const 2076) (i32.const 1))
        (i32.store (i32.const 2080) (i32.const 3600)) (i32.store (i32.const 2084) (i32.const 10))
        (i32.store (i32.const 2112) (i32.const 3020)) (i32.store (i32.const 2116) (i32.const 1))
        (i32.store (i32.const 3020) (i32.const 3400)) (i32.store (i32.const 3024) (i32.const 7))
        (i32.store (i32.const 3028) (i32.const 3500)) (i32.store (i32.const 3032) (i32.const 1))
        (i32.const 2048)";
    let resp = "
        (memory.fill (i32.const 4000) (i32.const 0) (i32.const 24))
        (i32.store (i32.const 4000) (i32.const 4100)) (i32.store (i32.const 4004) (i32.const 1))
        (i32.store (i32.const 4100) (i32.const 3700)) (i32.store (i32.const 4104) (i32.const 9))
        (i32.store (i32.const 4108) (i32.const 3800)) (i32.store (i32.const 4112) (i32.const 1))
        (i32.const 4000)";
    let data = format!(
        r#"(data (i32.const 3200) "x-filter") (data (i32.const 3300) "yes") (data (i32.const 3400) "x-added")
           (data (i32.const 3500) "1") (data (i32.const 3600) "/rewritten") (data (i32.const 3700) "x-version")
           (data (i32.const 3800) "{version}")"#
    );
    component(
        "filter",
        &module(&format!(
            "{}\n{}\n{data}",
            on_request(req),
            on_response(resp)
        )),
    )
}

/// Answers 403 "denied" itself.
fn blocker() -> Vec<u8> {
    let body = respond("(i32.const 403)", 3200, "(i32.const 6)");
    component(
        "request-filter",
        &module(&format!(
            "{}\n(data (i32.const 3200) \"denied\")",
            on_request(&body)
        )),
    )
}

fn simple(body: &str) -> Vec<u8> {
    component("request-filter", &module(&on_request(body)))
}

/// Switches the request to pool `b`.
fn switcher() -> Vec<u8> {
    let body = "
        (memory.fill (i32.const 2048) (i32.const 0) (i32.const 96))
        (i32.store8 (i32.const 2100) (i32.const 1))
        (i32.store (i32.const 2104) (i32.const 3200)) (i32.store (i32.const 2108) (i32.const 1))
        (i32.const 2048)";
    component(
        "request-filter",
        &module(&format!(
            "{}\n(data (i32.const 3200) \"b\")",
            on_request(body)
        )),
    )
}

struct Setup {
    node: Node,
    a: Origin,
    b: Origin,
}

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(format!("{name}.wasm")), bytes).unwrap();
}

fn config(a: &Origin, b: &Origin) -> String {
    format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0, h2c: true }}]
pools:
  a: {{ endpoints: ["{a}"] }}
  b: {{ endpoints: ["{b}"] }}
components:
  editor: {{ path: editor.wasm }}
  blocker: {{ path: blocker.wasm }}
  counter: {{ path: counter.wasm, deadline: 10s }}
  trap: {{ path: trap.wasm }}
  looper: {{ path: loop.wasm, deadline: 20ms }}
  switcher: {{ path: switcher.wasm }}
  narrow: {{ path: spanning.wasm, max_concurrency: 20, prewarm: 2 }}
  passing: {{ path: continue.wasm, max_concurrency: 5 }}
  prober: {{ path: prober.wasm }}
routes:
  - {{ match: {{ path_prefix: /edit }}, pool: a, filters: [editor] }}
  - {{ match: {{ path_prefix: /blocked }}, pool: a, filters: [blocker] }}
  - {{ match: {{ path_prefix: /count }}, pool: a, filters: [counter] }}
  - {{ match: {{ path_prefix: /trap-open }}, pool: a, filters: [trap], on_filter_error: fail-open }}
  - {{ match: {{ path_prefix: /trap }}, pool: a, filters: [trap] }}
  - {{ match: {{ path_prefix: /loop }}, pool: a, filters: [looper] }}
  - {{ match: {{ path_prefix: /switch-ok }}, pool: a, filters: [switcher], allowed_pools: [b] }}
  - {{ match: {{ path_prefix: /switch-denied }}, pool: a, filters: [switcher] }}
  - {{ match: {{ path_prefix: /narrow }}, pool: b, filters: [narrow] }}
  - {{ match: {{ path_prefix: /passing }}, pool: b, filters: [passing] }}
  - {{ match: {{ path_prefix: /local }}, respond: {{ body: local }}, filters: [editor] }}
  - {{ match: {{ path_prefix: /probe }}, pool: a, filters: [prober] }}
  - {{ pool: a }}
"#,
        a = a.addr,
        b = b.addr
    )
}

async fn setup(b_handler: Option<support::origin::Handler>) -> Setup {
    let a = Origin::echo().await;
    let b = match b_handler {
        Some(h) => Origin::start(h).await,
        None => Origin::echo().await,
    };
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "editor", &editor(1));
    write(dir.path(), "blocker", &blocker());
    write(dir.path(), "counter", &counter());
    write(dir.path(), "trap", &simple("(unreachable)"));
    write(
        dir.path(),
        "loop",
        &simple("(loop $l (br $l)) (i32.const 0)"),
    );
    write(dir.path(), "switcher", &switcher());
    write(dir.path(), "continue", &simple(CONTINUE));
    // `on-request` and `on-response`: a request holds its instance while the origin answers.
    write(dir.path(), "spanning", &editor(1));
    write(dir.path(), "prober", &wasm::prober());
    let node = Node::start_in(dir, &config(&a, &b), &[]);
    Setup { node, a, b }
}

async fn edits_and_short_circuits(client: Client) {
    let s = setup(None).await;
    let web = s.node.addr("web");

    let r = client.get(web, "example.com", "/edit?x=1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-version"), Some("1"), "on-response edit");
    assert_eq!(
        r.header("x-added"),
        Some("1"),
        "response header asked for by on-request"
    );
    let seen = s.a.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/rewritten?x=1", "path rewritten, query kept");
    assert_eq!(seen[0].header("x-filter").as_deref(), Some("yes"));

    let r = client.get(web, "example.com", "/blocked").await;
    assert_eq!((r.status, r.text().as_str()), (403, "denied"));
    assert_eq!(s.a.hits(), 1, "the origin never saw the blocked request");

    // Local answers go through on-response too.
    let r = client.get(web, "example.com", "/local").await;
    assert_eq!((r.status, r.header("x-version")), (200, Some("1")));

    // Interface 0.2: the filter reads the one header it asks for, in another case than the
    // client wrote it, and answers with its value; its on-response reads the response's status
    // and the request's path.
    let req = http::Request::get(format!("http://{web}/probe/one"))
        .header("host", "example.com")
        .header("x-probe", "from the client")
        .body(Default::default())
        .unwrap();
    let r = client.send(req).await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "from the client"));
    assert_eq!(r.header("x-path"), Some("/probe/one"));
    let r = client.get(web, "example.com", "/probe/none").await;
    assert!(
        (400..420).contains(&r.status),
        "400 + its header count: {}",
        r.status
    );
    assert_eq!(r.header("x-path"), None, "on-response edits only 200s");
    assert_eq!(s.a.hits(), 1, "the prober answered both itself");
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_edit_and_short_circuit_over_http1() {
    edits_and_short_circuits(Client::h1()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_edit_and_short_circuit_over_h2c() {
    edits_and_short_circuits(Client::h2c()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_get_the_policy_status_and_harm_nobody_else() {
    let s = setup(None).await;
    let web = s.node.addr("web");
    let client = Client::h1();
    for _ in 0..2 {
        assert_eq!(
            client.get(web, "a", "/trap").await.status,
            500,
            "fail-closed trap"
        );
        assert_eq!(client.get(web, "a", "/loop").await.status, 504, "deadline");
        assert_eq!(
            client.get(web, "a", "/switch-denied").await.status,
            500,
            "pool not allowed"
        );
        let r = client.get(web, "a", "/trap-open").await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "origin /trap-open"),
            "fail-open skips the filter"
        );
        assert_eq!(
            client.get(web, "a", "/plain").await.status,
            200,
            "other routes never notice"
        );
    }
    let r = client.get(web, "a", "/switch-ok").await;
    assert_eq!(r.status, 200);
    assert_eq!(s.b.hits(), 1, "switched to an allowed pool");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_gets_a_fresh_isolate() {
    // The counter filter has a 10 s deadline: under a loaded test run a 50 ms wall-clock
    // deadline once turned a call into a 504, which says nothing about isolation.
    let s = setup(None).await;
    let web = s.node.addr("web");
    let client = Client::h1();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                assert_eq!(
                    client.get(web, "a", "/count").await.status,
                    200,
                    "state leaked between requests"
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn over_the_concurrency_limit_requests_get_503_fast() {
    // The origin holds every request it gets for 30 s, so the twenty the filter's limit admits
    // are still there while the others are answered: each of those must come back, 503, well
    // before then (a 503 after waiting for a slot, a queue, would come only once they end).
    // The filter has `on-request` and `on-response`: one instance serves both, so each request
    // holds it while the origin answers.
    let slow: support::origin::Handler = Arc::new(|_s: &Seen| {
        Action::Delay(
            std::time::Duration::from_secs(30),
            Box::new(Action::ok("slow")),
        )
    });
    let s = setup(Some(slow)).await;
    let web = s.node.addr("web");
    let tasks: Vec<_> = (0..200)
        .map(|_| tokio::spawn(async move { Client::h1().get(web, "a", "/narrow").await.status }))
        .collect();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let (mut busy, mut held) = (0, 0);
    for t in tasks {
        match tokio::time::timeout_at(deadline, t).await {
            Ok(status) => {
                assert_eq!(
                    status.unwrap(),
                    503,
                    "only the limit's twenty reach the origin"
                );
                busy += 1;
            }
            Err(_) => held += 1,
        }
    }
    assert_eq!(
        (held, busy),
        (20, 180),
        "twenty held at the origin, the rest refused at once"
    );
}

/// A filter with `on-request` alone gives its instance back once that phase has run: the limit
/// counts instances alive, so requests waiting on the origin do not count against it.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_only_filter_holds_no_instance_while_the_origin_answers() {
    let slow: support::origin::Handler = Arc::new(|_s: &Seen| {
        Action::Delay(
            std::time::Duration::from_secs(30),
            Box::new(Action::ok("slow")),
        )
    });
    let s = setup(Some(slow)).await;
    let web = s.node.addr("web");
    // Thirty at once through a filter whose limit is five: all reach the origin.
    let tasks: Vec<_> = (0..30)
        .map(|_| tokio::spawn(async move { Client::h1().get(web, "a", "/passing").await.status }))
        .collect();
    let b = &s.b;
    eventually(10, "all thirty requests reach the origin", || async move {
        b.hits() == 30
    })
    .await;
    for t in &tasks {
        assert!(!t.is_finished(), "none was refused");
    }
    for t in tasks {
        t.abort();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_picks_up_a_changed_component_without_failing_a_request() {
    let s = setup(None).await;
    let web = s.node.addr("web");
    let client = Client::h1();
    assert_eq!(
        client.get(web, "a", "/edit").await.header("x-version"),
        Some("1")
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (client, stop) = (client.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut failures = 0;
            for _ in 0..5000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                if client.get(web, "a", "/edit").await.status != 200 {
                    failures += 1;
                }
            }
            failures
        }));
    }
    write(s.node.dir.path(), "editor", &editor(2));
    let yaml = std::fs::read_to_string(&s.node.config).unwrap();
    let line = s.node.reload(&yaml);
    assert!(line.contains("config reloaded"), "{line}");
    eventually(10, "new component version serves", || {
        let client = client.clone();
        async move { client.get(web, "a", "/edit").await.header("x-version") == Some("2") }
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        assert_eq!(t.await.unwrap(), 0, "requests failed during the reload");
    }
}

#[test]
fn a_bad_component_is_refused_at_load_with_its_config_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.wasm"), b"not wasm").unwrap();
    let yaml = "listeners: [{ name: web, address: \"127.0.0.1:0\" }]\ncomponents:\n  junk: { path: junk.wasm }\nroutes: [{ respond: { body: hi }, filters: [junk] }]\n";
    std::fs::write(dir.path().join("edge.yaml"), yaml).unwrap();
    let out = support::node::cli("check", &dir.path().join("edge.yaml"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("edge.yaml:3:17: components.junk:") && stderr.contains("junk.wasm"),
        "{stderr}"
    );
}

/// HMAC-SHA256 token for the hmac-auth example: `Bearer <subject>.<expires>.<hex mac>`.
fn hmac_token(secret: &[u8], subject: &str, expires: u64) -> String {
    use sha2::{Digest, Sha256};
    let signed = format!("{subject}.{expires}");
    let mut key = [0u8; 64];
    key[..secret.len()].copy_from_slice(secret);
    let pad = |b: u8| key.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(&signed)
        .finalize();
    let mac = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("Bearer {signed}.{hex}")
}

/// The C examples of isolate/examples (built from source by isolate/guests/build.sh) on the
/// request path: an HMAC-token gate, an A/B split by cookie and a header rewrite in a chain.
#[tokio::test(flavor = "multi_thread")]
async fn example_filters_from_c_gate_split_and_rewrite() {
    let (a, b) = (Origin::echo().await, Origin::echo().await);
    let yaml = format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0 }}]
pools:
  stable: {{ endpoints: ["{a}"] }}
  canary: {{ endpoints: ["{b}"] }}
components:
  auth: {{ path: "{auth}", config: {{ secret: s3cret }} }}
  ab: {{ path: "{ab}", config: {{ pool-b: canary }} }}
  rewrite:
    path: "{rewrite}"
    config: {{ request-set: "x-edge=breakwater", strip-prefix: /api, response-set: "x-frame-options=DENY" }}
routes:
  - {{ match: {{ path_prefix: /api }}, pool: stable, filters: [auth, rewrite] }}
  - {{ pool: stable, filters: [ab], allowed_pools: [canary] }}
"#,
        a = a.addr,
        b = b.addr,
        auth = wasm::guest("c-hmac-auth.wasm").display(),
        ab = wasm::guest("c-ab-cookie.wasm").display(),
        rewrite = wasm::guest("c-header-rewrite.wasm").display(),
    );
    let node = Node::start(&yaml);
    let web = node.addr("web");
    let client = Client::h1();

    let r = client.get(web, "example.com", "/api/users").await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.header("www-authenticate").unwrap().contains("no token"));
    assert_eq!(a.hits(), 0, "refused requests never reach the origin");

    let req = |path: &str, name: &str, value: String| {
        http::Request::get(format!("http://{web}{path}"))
            .header("host", "example.com")
            .header(name, value)
            .body(Default::default())
            .unwrap()
    };
    let forged = hmac_token(b"guess", "alice", 0);
    let r = client
        .send(req("/api/users", "authorization", forged))
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let token = hmac_token(b"s3cret", "alice", 0);
    let r = client
        .send(req("/api/users?page=2", "authorization", token))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-frame-options"),
        Some("DENY"),
        "on-response of the chain"
    );
    let seen = a.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/users?page=2", "prefix stripped, query kept");
    assert_eq!(seen[0].header("x-auth-subject").as_deref(), Some("alice"));
    assert_eq!(seen[0].header("authorization"), None, "token not passed on");
    assert_eq!(seen[0].header("x-edge").as_deref(), Some("breakwater"));

    let r = client
        .send(req("/shop", "cookie", "ab=b".into()))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!((a.hits(), b.hits()), (1, 1), "ab=b goes to the canary pool");
    assert_eq!(b.seen()[0].header("x-ab-variant").as_deref(), Some("b"));
    let r = client
        .send(req("/shop", "cookie", "ab=a".into()))
        .await
        .unwrap();
    assert_eq!((r.status, a.hits(), b.hits()), (200, 2, 1));
    let r = client.get(web, "example.com", "/shop").await;
    let cookie = r
        .header("set-cookie")
        .expect("a variant is assigned")
        .to_string();
    assert!(
        cookie.starts_with("ab=a;") || cookie.starts_with("ab=b;"),
        "{cookie}"
    );
}

async fn body_phases(client: Client) {
    let origin = Origin::echo().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "upper",
        &body_filter(&upper_body(64), &upper_body(76)),
    );
    let yaml = format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0, h2c: true }}]
pools: {{ a: {{ endpoints: ["{origin}"] }} }}
components:
  upper: {{ path: upper.wasm }}
  small: {{ path: upper.wasm, max_body_bytes: 16 }}
  small-open: {{ path: upper.wasm, max_body_bytes: 16, on_error: fail-open }}
routes:
  - {{ match: {{ path_prefix: /body }}, pool: a, filters: [upper], body_access: true }}
  - {{ match: {{ path_prefix: /small-open }}, pool: a, filters: [small-open], body_access: true }}
  - {{ match: {{ path_prefix: /small }}, pool: a, filters: [small], body_access: true }}
  - {{ pool: a, filters: [upper] }}
"#,
        origin = origin.addr
    );
    let node = Node::start_in(dir, &yaml, &[]);
    let web = node.addr("web");
    let post = |path: &str, body: &'static str| {
        http::Request::post(format!("http://{web}{path}"))
            .header("host", "example.com")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                body.as_bytes(),
            )))
            .unwrap()
    };

    let r = client.send(post("/body", "hello, origin")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        "ORIGIN /BODY",
        "on-response-body replaced the body"
    );
    let seen = origin.seen();
    assert_eq!(
        &seen[0].body[..],
        b"HELLO, ORIGIN",
        "on-request-body replaced the body"
    );
    assert_eq!(
        seen[0].header("content-length"),
        None,
        "the length changed: sent chunked"
    );

    // Without `body_access` bodies stream past the same filter untouched.
    let r = client.send(post("/other", "hello")).await.unwrap();
    assert_eq!(r.text(), "origin /other");
    assert_eq!(&origin.seen()[1].body[..], b"hello");

    // Over the component's limit: fail-closed refuses with 413, the origin sees nothing...
    let r = client
        .send(post("/small", "a body longer than sixteen bytes"))
        .await
        .unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(
        origin.hits(),
        2,
        "a refused body never completes a request upstream"
    );
    // ...fail-open passes the body on unfiltered.
    let r = client
        .send(post("/small-open", "a body longer than sixteen bytes"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        &origin.seen()[2].body[..],
        b"a body longer than sixteen bytes"
    );
    // A small body on the same route is filtered.
    let r = client.send(post("/small", "short")).await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ORIGIN /SMALL"));
    assert_eq!(&origin.seen()[3].body[..], b"SHORT");
}

#[tokio::test(flavor = "multi_thread")]
async fn body_phases_replace_bodies_over_http1() {
    body_phases(Client::h1()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn body_phases_replace_bodies_over_h2c() {
    body_phases(Client::h2c()).await;
}
