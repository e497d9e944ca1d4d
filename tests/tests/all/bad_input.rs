//! Bad input gets a clear answer and harms nobody: malformed and smuggling requests get 400,
//! oversized heads 431, and the node keeps serving the next client.

use breakwater_tests as support;

use support::client::{raw, raw_status};
use support::{Client, Node, Origin};

async fn node_with_origin() -> (Node, Origin) {
    let origin = Origin::echo().await;
    let node = Node::start(&format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0, h2c: true }}]
server:
  max_header_bytes: 8192
  grace_period: 0s
pools: {{ p: {{ endpoints: ["{}"] }} }}
routes: [{{ pool: p }}]
"#,
        origin.addr
    ));
    (node, origin)
}

/// Each vector, sent alone on a fresh connection, gets `want` and never reaches the origin.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_smuggling_requests_get_400_and_never_reach_the_origin() {
    let (node, origin) = node_with_origin().await;
    let addr = node.addr("web");
    let cases: &[(&str, &[u8], u16)] = &[
        ("unknown protocol version", b"GET / FOO/1.1\r\nHost: a\r\n\r\n", 400),
        ("junk after the version", b"GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", 400),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
        ("bad header line", b"GET / HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n", 400),
        (
            "CL.TE",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
            400,
        ),
        (
            "TE.CL",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
            400,
        ),
        (
            "duplicate differing Content-Length",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400,
        ),
        (
            "obfuscated Transfer-Encoding",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        ("NUL in a header value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", 400),
        ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    ];
    for (name, bytes, want) in cases {
        let out = raw(addr, bytes).await;
        assert_eq!(raw_status(&out), Some(*want), "{name}: got {out:?}");
    }
    assert_eq!(
        origin.hits(),
        0,
        "no smuggled or malformed request reached the origin"
    );
    // The node still serves.
    let r = Client::h1().get(addr, "a", "/after").await;
    assert_eq!(r.status, 200);
    assert_eq!(origin.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_request_head_gets_431() {
    let (node, origin) = node_with_origin().await;
    let addr = node.addr("web");
    let big = "x".repeat(10_000);
    let req = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n");
    let out = raw(addr, req.as_bytes()).await;
    assert_eq!(raw_status(&out), Some(431), "{out}");
    // Over HTTP/2 too.
    let req = http::Request::get(format!("http://{addr}/"))
        .header("x-big", big.as_str())
        .body(Default::default())
        .unwrap();
    assert_eq!(Client::h2c().send(req).await.unwrap().status, 431);
    assert_eq!(origin.hits(), 0);
    assert_eq!(Client::h1().get(addr, "a", "/").await.status, 200);
}
