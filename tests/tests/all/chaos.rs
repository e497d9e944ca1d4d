//! Chaos: origins that misbehave at the socket level, and files that turn to garbage before
//! a reload. Each case gets a clear status, the other routes never notice, and the metrics
//! show what happened.

use breakwater_tests as support;

use breakwater_tests::wasm;

use support::certs::Ca;
use support::client::tls_get;
use support::metric;
use support::{Client, Node, Origin};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// An origin that misbehaves according to the request path.
async fn bad_origin() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(misbehave(s));
        }
    });
    addr
}

async fn misbehave(mut s: TcpStream) {
    let Some(head) = support::read_head(&mut s).await else {
        return;
    };
    let line = String::from_utf8_lossy(&head);
    let path = line.split(' ').nth(1).unwrap_or("/").to_string();
    match path.as_str() {
        "/reset" => {
            // RST instead of an answer.
            let _ = s.set_zero_linger();
            drop(s);
        }
        "/malformed" => {
            let _ = s
                .write_all(b"HTTP/1.1 two hundred OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
        }
        "/status-600" => {
            // RFC 9110 15: a status code is 100 to 599.
            let _ = s
                .write_all(b"HTTP/1.1 600 Beyond\r\nContent-Length: 2\r\n\r\nok")
                .await;
        }
        "/garbage" => {
            let _ = s
                .write_all(b"\x00\x01\x02 this is not HTTP at all\r\n\r\n")
                .await;
        }
        "/stall-body" => {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly ten b")
                .await;
            // Then nothing, ever (the connection stays open).
            std::future::pending::<()>().await;
        }
        "/flood-1xx" => {
            for _ in 0..200 {
                if s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
                    return;
                }
            }
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
        }
        _ => {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn misbehaving_origins_get_clear_statuses_and_harm_nobody_else() {
    let bad = bad_origin().await;
    let good = Origin::echo().await;
    let node = Node::start(&format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0 }}]
admin: {{ address: 127.0.0.1:0 }}
pools:
  bad: {{ endpoints: ["{bad}"], retries: 0, timeouts: {{ read: 1s }} }}
  good: {{ endpoints: ["{good}"] }}
routes:
  - {{ match: {{ path_prefix: /good }}, pool: good }}
  - {{ pool: bad }}
"#,
        good = good.addr
    ));
    let (web, admin) = (node.addr("web"), node.addr("admin"));
    let client = Client::h1();
    for (path, want) in [
        ("/reset", 502),
        ("/malformed", 502),
        ("/status-600", 502),
        ("/garbage", 502),
    ] {
        let r = client.get(web, "a", path).await;
        assert_eq!(r.status, want, "{path}: {}", r.text());
        assert_eq!(
            client.get(web, "a", "/good").await.status,
            200,
            "after {path}"
        );
    }

    // 1xx flood: the final answer gets through (or a clean 502), never a hang.
    let r = client.get(web, "a", "/flood-1xx").await;
    assert!(matches!(r.status, 200 | 502), "{}", r.status);

    // A body that stalls after the head: the head is out, so the client sees the connection
    // end early, cut by the read timeout (the node counts a timeout of the pool), never a
    // complete-looking response.
    let timeouts = |m: &str| {
        metric(
            m,
            "breakwater_upstream_errors_total",
            "kind=\"timeout\",pool=\"bad\"",
        )
    };
    let before = timeouts(&client.get(admin, "localhost", "/metrics").await.text());
    let out = support::client::raw(web, b"GET /stall-body HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out:?}");
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("");
    assert!(body.len() < 1000, "a truncated body must not look complete");
    let m = client.get(admin, "localhost", "/metrics").await.text();
    assert_eq!(timeouts(&m), before + 1.0, "cut by the read timeout: {m}");

    assert_eq!(client.get(web, "a", "/good").await.status, 200);
    let m = client.get(admin, "localhost", "/metrics").await.text();
    assert!(
        metric(&m, "breakwater_upstream_errors_total", "pool=\"bad\"") >= 3.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "breakwater_upstream_errors_total",
            "kind=\"invalid_response\""
        ) >= 1.0
    );
    assert!(metric(&m, "breakwater_requests_total", "status_class=\"5xx\"") >= 3.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_files_before_a_reload_are_refused_and_the_running_config_keeps_serving() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    ca.leaf(dir.path(), "a", &["a.test"]);
    let editor = wasm::component(
        "response-filter",
        &wasm::module(&wasm::on_response(
            "(memory.fill (i32.const 4000) (i32.const 0) (i32.const 24))
             (i32.store (i32.const 4000) (i32.const 4100)) (i32.store (i32.const 4004) (i32.const 1))
             (i32.store (i32.const 4100) (i32.const 3700)) (i32.store (i32.const 4104) (i32.const 5))
             (i32.store (i32.const 4108) (i32.const 3800)) (i32.store (i32.const 4112) (i32.const 2))
             (i32.const 4000))
             (data (i32.const 3700) \"x-f-v\") (data (i32.const 3800) \"v1\"",
        )),
    );
    std::fs::write(dir.path().join("f.wasm"), editor).unwrap();
    let cache = dir.path().join("compiled");
    let yaml = format!(
        r#"
listeners:
  - name: tls
    address: 127.0.0.1:0
    protocol: https
    certificates: [{{ names: [a.test], cert: "{{DIR}}/a.pem", key: "{{DIR}}/a.key" }}]
wasm: {{ cache_dir: "{cache}" }}
components: {{ f: {{ path: f.wasm }} }}
routes: [{{ respond: {{ body: up }}, filters: [f] }}]
"#,
        cache = cache.display()
    );
    let node = Node::start_in(dir, &yaml, &[]);
    let tls = node.addr("tls");
    let get = || tls_get(tls, "a.test", ca.roots(), false, "/");
    let r = get().await.unwrap();
    assert_eq!((r.text().as_str(), r.header("x-f-v")), ("up", Some("v1")));
    let current = std::fs::read_to_string(&node.config).unwrap();
    let reload = || {
        node.signal("HUP");
        node.wait_log("config reload")
    };

    // The certificate turns to garbage: the reload is refused, the old certificate serves.
    let pem = node.dir.path().join("a.pem");
    let good_pem = std::fs::read(&pem).unwrap();
    std::fs::write(&pem, b"-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    let line = reload();
    assert!(line.contains("refused") && line.contains("a.pem"), "{line}");
    assert_eq!(get().await.unwrap().text(), "up");
    std::fs::write(&pem, good_pem).unwrap();

    // The component turns to garbage: refused, the loaded one keeps running.
    let wasm_path = node.dir.path().join("f.wasm");
    let good_wasm = std::fs::read(&wasm_path).unwrap();
    std::fs::write(&wasm_path, b"\0asm garbage").unwrap();
    let line = reload();
    assert!(
        line.contains("refused") && line.contains("f.wasm"),
        "{line}"
    );
    assert_eq!(get().await.unwrap().header("x-f-v"), Some("v1"));
    std::fs::write(&wasm_path, good_wasm).unwrap();

    // The compiled-component cache disappears: a reload that keeps the component unchanged
    // reuses the loaded one; one that changes its settings compiles it again and fills the
    // cache.
    std::fs::remove_dir_all(&cache).unwrap();
    let line = reload();
    assert!(line.contains("config reloaded"), "{line}");
    assert!(std::fs::read_dir(&cache).is_err(), "nothing was compiled");
    let changed = current.replace(
        "f: { path: f.wasm }",
        "f: { path: f.wasm, max_concurrency: 99 }",
    );
    assert_ne!(changed, current);
    let line = node.reload(&changed);
    assert!(line.contains("config reloaded"), "{line}");
    assert!(
        std::fs::read_dir(&cache).is_ok_and(|mut d| d.next().is_some()),
        "cache refilled"
    );
    assert_eq!(get().await.unwrap().header("x-f-v"), Some("v1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_that_fails_or_returns_no_address_gets_502_and_harms_nobody_else() {
    let dns = support::dns::Dns::start().await;
    dns.set("empty.test", &[]); // an answer with no address
    let good = Origin::echo().await;
    let node = Node::start(&format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0 }}]
admin: {{ address: 127.0.0.1:0 }}
resolver: {{ nameservers: ["{dns}"], min_ttl: 100ms, max_ttl: 2s }}
pools:
  nxdomain: {{ endpoints: ["missing.test:80"], retries: 0 }}
  empty: {{ endpoints: ["empty.test:80"], retries: 0 }}
  good: {{ endpoints: ["{good}"] }}
routes:
  - {{ match: {{ path_prefix: /missing }}, pool: nxdomain }}
  - {{ match: {{ path_prefix: /empty }}, pool: empty }}
  - {{ pool: good }}
"#,
        dns = dns.addr,
        good = good.addr
    ));
    let (web, admin) = (node.addr("web"), node.addr("admin"));
    let client = Client::h1();
    for path in ["/missing", "/empty"] {
        let r = client.get(web, "a", path).await;
        assert!(matches!(r.status, 502 | 503), "{path}: {}", r.status);
        assert_eq!(
            client.get(web, "a", "/fine").await.status,
            200,
            "after {path}"
        );
    }
    let m = client.get(admin, "localhost", "/metrics").await.text();
    let failed = |host: &str| {
        m.lines()
            .filter(|l| l.starts_with("breakwater_dns_lookups_total") && l.contains(host))
            .filter(|l| !l.contains("result=\"ok\""))
            .count()
    };
    assert!(
        failed("missing.test") > 0 && failed("empty.test") > 0,
        "{m}"
    );
    // Readiness says the broken pools have no endpoint.
    let ready = client.get(admin, "localhost", "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
}
