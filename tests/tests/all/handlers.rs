//! Routes served by `wasi:http` handler components, end to end through the real binary:
//! HTTP/1.1 and HTTP/2, streaming request bodies, filters around handlers, isolation,
//! failures mapped to statuses, and the concurrency limit.

use breakwater_tests as support;

use breakwater_tests::wasm;

use bytes::Bytes;
use http_body_util::Full;
use support::{Client, Node};
use wasm::{counting_handler, guest, guest_handler, handler_component, handler_module};

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(format!("{name}.wasm")), bytes).unwrap();
}

const CONFIG: &str = r#"
listeners: [{ name: web, address: 127.0.0.1:0, h2c: true }]
admin: { address: 127.0.0.1:0 }
components:
  hello: { path: hello.wasm, kind: handler }
  echo: { path: echo.wasm, kind: handler, max_body_bytes: 1000000 }
  count: { path: count.wasm, kind: handler }
  trap: { path: trap.wasm, kind: handler }
  spin: { path: spin.wasm, kind: handler, deadline: 200ms }
  narrow: { path: echo.wasm, kind: handler, max_concurrency: 5, prewarm: 1 }
  tag: { path: tag.wasm }
routes:
  - { match: { path: /hello }, handler: hello, filters: [tag], response_headers: { set: { x-route: hello } } }
  - { match: { path: /echo }, handler: echo }
  - { match: { path: /count }, handler: count }
  - { match: { path: /trap }, handler: trap }
  - { match: { path: /spin }, handler: spin }
  - { match: { path: /narrow }, handler: narrow }
  - { respond: { body: other route } }
"#;

fn start() -> Node {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "hello", &guest_handler("hello"));
    write(dir.path(), "echo", &guest_handler("echo"));
    write(dir.path(), "count", &counting_handler());
    write(
        dir.path(),
        "trap",
        &handler_component(&handler_module("(unreachable)")),
    );
    write(
        dir.path(),
        "spin",
        &handler_component(&handler_module("(loop $l (br $l))")),
    );
    // A response filter, to show handler responses go through filters like any other.
    write(
        dir.path(),
        "tag",
        &wasm::component(
            "response-filter",
            &wasm::module(&wasm::on_response(
                "(memory.fill (i32.const 2048) (i32.const 0) (i32.const 24))
                 (i32.store (i32.const 2048) (i32.const 2100)) (i32.store (i32.const 2052) (i32.const 1))
                 (i32.store (i32.const 2100) (i32.const 2200)) (i32.store (i32.const 2104) (i32.const 5))
                 (i32.store (i32.const 2108) (i32.const 2300)) (i32.store (i32.const 2112) (i32.const 3))
                 (i32.store (i32.const 2200) (i32.const 0x61742d78)) (i32.store8 (i32.const 2204) (i32.const 0x67))
                 (i32.store (i32.const 2300) (i32.const 0x00736579))
                 (i32.const 2048)",
            )),
        ),
    );
    Node::start_in(dir, CONFIG, &[])
}

async fn hello_through(client: Client) {
    let node = start();
    let web = node.addr("web");
    for _ in 0..3 {
        let r = client.get(web, "example.com", "/hello").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "Hello from a WebAssembly handler at the edge.\n");
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.header("x-route"), Some("hello"), "route edits apply");
        assert_eq!(r.header("x-tag"), Some("yes"), "response filters run");
    }
}

/// A guest that has finished its body when its head is taken (the small answer) has it sent
/// with the head, framed by its length. Whether it has depends on scheduling: here one
/// listener thread and the guest on it (`offload_above: off`), so the guest's call runs to
/// its end before the answer is sent, unless an epoch tick (every 10 ms) falls inside the
/// call and it yields there (then its body streams, chunked): most answers must have it.
#[tokio::test(flavor = "multi_thread")]
async fn a_finished_handler_body_goes_out_with_its_length() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "hello", &guest_handler("hello"));
    let node = Node::start_in(
        dir,
        "server: { threads: 1 }\nwasm: { offload_above: off }\nlisteners: [{ name: web, address: 127.0.0.1:0, h2c: true }]\ncomponents: { hello: { path: hello.wasm, kind: handler } }\nroutes: [{ handler: hello }]\n",
        &[],
    );
    for client in [Client::h1(), Client::h2c()] {
        let mut framed = 0;
        for _ in 0..20 {
            let r = client.get(node.addr("web"), "example.com", "/").await;
            assert_eq!(r.text(), "Hello from a WebAssembly handler at the edge.\n");
            framed += usize::from(
                r.header("content-length") == Some("46") && r.header("transfer-encoding").is_none(),
            );
        }
        assert!(framed >= 10, "{framed} of 20 answers had their length");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_serves_a_route_over_http1() {
    hello_through(Client::h1()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_serves_a_route_over_h2c() {
    hello_through(Client::h2c()).await;
}

fn post(addr: std::net::SocketAddr, path: &str, body: Vec<u8>) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("http://{addr}{path}"))
        .header("host", "example.com")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn request_bodies_stream_into_the_handler_and_back() {
    let node = start();
    let web = node.addr("web");
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    for (client, h1) in [(Client::h1(), true), (Client::h2c(), false)] {
        let r = client.send(post(web, "/echo", body.clone())).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), body.len());
        assert!(r.body[..] == body[..], "echoed body differs");
        if h1 {
            // Too big to hold whole: streamed, chunked.
            assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        }
    }
    // Over the component's limit: 413, and the node keeps serving.
    let r = Client::h1()
        .send(post(web, "/echo", vec![b'x'; 1_500_000]))
        .await;
    assert_eq!(r.map(|r| r.status).unwrap_or(413), 413);
    assert_eq!(Client::h1().get(web, "a", "/hello").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_gets_a_fresh_handler_instance() {
    let node = start();
    let web = node.addr("web");
    let mut tasks = Vec::new();
    for _ in 0..10 {
        tasks.push(tokio::spawn(async move {
            let client = Client::h1();
            for _ in 0..20 {
                // 200 = 198 + one count in a global + one in memory: nothing carried over.
                assert_eq!(client.get(web, "a", "/count").await.status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_handlers_get_mapped_statuses_and_harm_nobody_else() {
    let node = start();
    let web = node.addr("web");
    let c = Client::h1();
    assert_eq!(c.get(web, "a", "/trap").await.status, 500);
    // 504 is the deadline's answer: the guest never stops by itself.
    assert_eq!(c.get(web, "a", "/spin").await.status, 504);
    assert_eq!(c.get(web, "a", "/hello").await.status, 200);
    assert_eq!(
        c.get(web, "a", "/trap").await.status,
        500,
        "next request: same answer"
    );
    assert_eq!(c.get(web, "a", "/other").await.text(), "other route");
    let log = node.stderr();
    assert!(log.contains("handler failed"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn over_the_concurrency_limit_requests_get_503_fast() {
    let node = start();
    let web = node.addr("web");
    // Five requests hold the `narrow` handler's five slots: their bodies never end.
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut s = tokio::net::TcpStream::connect(web).await.unwrap();
        use tokio::io::AsyncWriteExt;
        s.write_all(b"POST /narrow HTTP/1.1\r\nhost: a\r\ncontent-length: 100\r\n\r\nabc")
            .await
            .unwrap();
        held.push(s);
    }
    // Once the five hold every slot (the node says so), every further request is refused.
    let admin = node.addr("admin");
    support::eventually(10, "the held requests fill the five slots", || async move {
        let m = Client::h1()
            .get(admin, "localhost", "/metrics")
            .await
            .text();
        m.contains("breakwater_component_instances_in_use{component=\"narrow\"} 5")
    })
    .await;
    for _ in 0..50 {
        assert_eq!(Client::h1().get(web, "a", "/narrow").await.status, 503);
    }
    drop(held);
    support::eventually(
        10,
        "a slot of the narrow handler is free again",
        || async move { Client::h1().get(web, "a", "/narrow").await.status == 200 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_javascript_and_c_components_serve_through_the_node() {
    let origin = support::Origin::echo().await;
    let py = guest("py-handler.wasm");
    let yaml = format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0, h2c: true }}]
wasm: {{ cache_dir: "{cache}" }}
pools:
  origin: {{ endpoints: ["{origin}"] }}
components:
  py: {{ path: "{py}", kind: handler, config: {{ GREETING: edge }} }}
  js: {{ path: "{js}", kind: handler }}
  c: {{ path: "{c}", kind: handler }}
  key: {{ path: "{pyf}", config: {{ key: s3cret }}, deadline: 5s }}
routes:
  - {{ match: {{ path_prefix: /py }}, handler: py }}
  - {{ match: {{ path_prefix: /js }}, handler: js }}
  - {{ match: {{ path_prefix: /c/ }}, handler: c }}
  - {{ match: {{ path_prefix: /api }}, pool: origin, filters: [key] }}
"#,
        cache = py.parent().unwrap().join("cache").display(),
        origin = origin.addr,
        py = py.display(),
        js = guest("js-handler.wasm").display(),
        c = guest("c-handler.wasm").display(),
        pyf = guest("py-filter.wasm").display(),
    );
    // The filter's deadline is 5 s, not the default 50 ms: an interpreted filter's call on a
    // machine busy with the rest of the suite once took longer (a 504 where this test looks
    // for the filter's own answers; deadlines are tested in `filters.rs`).
    let node = Node::start(&yaml);
    let web = node.addr("web");
    for client in [Client::h1(), Client::h2c()] {
        let r = client.get(web, "a", "/py/x").await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (
                200,
                "Hello from Python: GET /py/x, 0 bytes, count=1, greeting=edge\n"
            )
        );
        assert_eq!(r.header("x-guest"), Some("python"));
        let r = client
            .send(post(web, "/js/y", b"abc".to_vec()))
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "Hello from JavaScript: POST /js/y, 3 bytes, count=1\n")
        );
        let r = client.get(web, "a", "/c/z").await;
        assert_eq!(
            (r.status, r.text().as_str(), r.header("content-type")),
            (200, "Hello from C: GET /c/z, count=1\n", Some("text/plain"))
        );
        // The Python filter answers 401 at the edge, or lets the request through edited.
        let r = client.get(web, "a", "/api/z").await;
        assert_eq!(r.status, 401);
        assert_eq!(r.header("x-python-filter"), Some("yes"));
        let req = http::Request::get(format!("http://{web}/api/z"))
            .header("host", "a")
            .header("x-api-key", "s3cret")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = client.send(req).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-python-filter"), Some("yes"));
    }
    let seen = origin.seen();
    assert_eq!(
        seen.len(),
        2,
        "only the requests with the key reached the origin"
    );
    assert!(seen
        .iter()
        .all(|s| s.header("x-checked-by").as_deref() == Some("python")));
}

/// A component built with the Spin Python SDK, served unchanged through the node over
/// HTTP/1.1 and HTTP/2: its variables come from the component's `config:`, its key-value
/// store lives as long as the component (and lists its keys), an import the node does not provide fails only the
/// request that calls it (500 by the fail-closed policy), and `warmup:` chooses the request
/// its instances' snapshot is taken after.
#[tokio::test(flavor = "multi_thread")]
async fn spin_sdk_components_serve_through_the_node() {
    let spin = guest("spin-hello.wasm");
    let yaml = format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0, h2c: true }}]
admin: {{ address: 127.0.0.1:0 }}
wasm: {{ cache_dir: "{cache}" }}
components:
  spin: {{ path: "{spin}", kind: handler, config: {{ greeting: "Hello from Spin!" }}, warmup: off }}
  warm: {{ path: "{spin}", kind: handler, warmup: /global }}
routes:
  - {{ match: {{ hosts: [warm] }}, handler: warm }}
  - {{ match: {{ path_prefix: / }}, handler: spin }}
"#,
        cache = spin.parent().unwrap().join("cache").display(),
        spin = spin.display(),
    );
    let node = Node::start(&yaml);
    let web = node.addr("web");
    for (n, client) in [Client::h1(), Client::h2c()].into_iter().enumerate() {
        let r = client.get(web, "a", "/").await;
        assert_eq!((r.status, r.text().as_str()), (200, "Hello from Spin!\n"));
        assert_eq!(r.header("content-type"), Some("text/plain"));
        let put = http::Request::put(format!("http://{web}/kv/k{n}"))
            .header("host", "a")
            .body(Full::new(Bytes::from_static(b"stored value")))
            .unwrap();
        assert_eq!(client.send(put).await.unwrap().status, 201);
        let r = client.get(web, "a", &format!("/kv/k{n}")).await;
        assert_eq!((r.status, r.text().as_str()), (200, "stored value"));
        assert_eq!(client.get(web, "a", "/redis").await.status, 500);
        // A module global: 1 on every request as built, 2 from a snapshot warmed with
        // `GET /global`. (The default warm-up, `GET /`, is exercised by the isolate's tests;
        // this one's snapshot is theirs, from the compile cache, so that the suite does not
        // compile a 24 MB snapshot beside the timing-sensitive tests.) The same from
        // instances reset in place after a request as from new ones.
        for _ in 0..6 {
            assert_eq!(client.get(web, "a", "/global").await.text(), "1\n");
            assert_eq!(client.get(web, "warm", "/global").await.text(), "2\n");
        }
        assert_eq!(client.get(web, "a", "/").await.status, 200);
    }
    // `get-keys`: a stream of the keys, and its outcome as a future.
    let r = Client::h1().get(web, "a", "/kv-keys").await;
    assert_eq!((r.status, r.text().as_str()), (200, "k0,k1\n"));
    let m = breakwater_tests::scrape(node.addr("admin")).await;
    for component in ["spin", "warm"] {
        let resets = breakwater_tests::metric(
            &m,
            "breakwater_component_instance_resets",
            &format!("component=\"{component}\""),
        );
        assert!(resets > 0.0, "{component}: no instance reset in place");
    }
}

/// A guest computing for ever on a node with one listener thread: while it runs (the node
/// reports its instance in use), other requests on that thread are still answered, because
/// the guest yields to the event loop at every epoch tick and, marked dear, its next
/// requests run on the guest threads. Without that, the other request would wait for the
/// guest's deadline, by which time its instance is no longer in use.
#[tokio::test(flavor = "multi_thread")]
async fn a_guest_computing_for_ever_does_not_stall_its_event_loop() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "spin",
        &handler_component(&handler_module("(loop $l (br $l))")),
    );
    let node = Node::start_in(
        dir,
        r#"
listeners: [{ name: web, address: 127.0.0.1:0 }]
admin: { address: 127.0.0.1:0 }
server: { threads: 1 }
components:
  spin: { path: spin.wasm, kind: handler, deadline: 30s }
routes:
  - { match: { path: /spin }, handler: spin }
  - { respond: { body: other route } }
"#,
        &[],
    );
    let (web, admin) = (node.addr("web"), node.addr("admin"));
    let in_use = move || async move {
        let m = Client::h1()
            .get(admin, "localhost", "/metrics")
            .await
            .text();
        m.contains("breakwater_component_instances_in_use{component=\"spin\"} 2")
    };
    // Two spinning requests: the first starts on the event loop, the second runs where the
    // first's cost sent it.
    let spinning: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { Client::h1().get(web, "a", "/spin").await.status }))
        .collect();
    support::eventually(10, "both spinning requests are in their guests", in_use).await;
    for _ in 0..20 {
        assert_eq!(Client::h1().get(web, "a", "/").await.text(), "other route");
    }
    assert!(
        in_use().await,
        "the guests were still running while the other requests were answered"
    );
    for s in &spinning {
        assert!(!s.is_finished());
    }
    for s in spinning {
        s.abort();
    }
}

/// A handler's body of unknown length (the echo of 100 KiB streams past the 64 KiB sent with
/// its head) goes to an HTTP/1.1 client chunked, and to an HTTP/1.0 client, which cannot
/// read the chunked coding (RFC 9112 6.1), delimited by the connection's close.
#[tokio::test]
async fn a_streamed_handler_body_reaches_http10_clients_unchunked() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = start();
    let web = node.addr("web");
    let body = vec![b'e'; 100 * 1024];
    for version in ["1.1", "1.0"] {
        let mut s = tokio::net::TcpStream::connect(web).await.unwrap();
        let head = format!(
            "POST /echo HTTP/{version}\r\nHost: a\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(20), s.read_to_end(&mut out))
            .await
            .expect("the node closes the connection after the answer")
            .unwrap();
        let at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&out[..at]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let chunked = head.contains("transfer-encoding: chunked");
        assert_eq!(chunked, version == "1.1", "HTTP/{version}: {head}");
        if version == "1.0" {
            assert_eq!(out[at..], body[..], "the body as it is, ended by the close");
        }
    }
}

/// A client that sends `Expect: 100-continue` waits for `100 Continue` before its body; the
/// node is the origin server of a handler route, so it sends it (RFC 9110 10.1.1), and the
/// body, sent only then, reaches the handler.
#[tokio::test]
async fn a_client_waiting_for_100_continue_gets_it_from_a_handler_route() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = start();
    let mut s = tokio::net::TcpStream::connect(node.addr("web"))
        .await
        .unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let interim = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        support::read_head(&mut s),
    )
    .await
    .expect("no 100 Continue: the client would wait for it")
    .expect("the node closed the connection");
    assert!(
        interim.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    assert_eq!(interim.len(), 25, "nothing but the interim response yet");
    s.write_all(b"hello").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the node closes the connection after the answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&out);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    // With its length, or chunked when the echo streams.
    assert!(
        body == "hello" || body == "5\r\nhello\r\n0\r\n\r\n",
        "{answer}"
    );
}
