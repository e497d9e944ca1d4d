//! Request smuggling and protocol abuse: a corpus of known desync vectors over HTTP/1.1 and
//! HTTP/2, each on a fresh connection. Every one is refused (400, or for HTTP/2 a stream
//! reset where the protocol mandates one) and the origin never sees a request from any of
//! them; the node keeps serving afterwards.

use breakwater_tests as support;

use std::time::Duration;
use support::client::{raw, raw_status};
use support::{Client, Node, Origin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn node_with_origin() -> (Node, Origin) {
    let origin = Origin::echo().await;
    let node = Node::start(&format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0, h2c: true }}]
server: {{ grace_period: 0s }}
pools: {{ p: {{ endpoints: ["{}"] }} }}
routes: [{{ pool: p }}]
"#,
        origin.addr
    ));
    (node, origin)
}

/// HTTP/1.1 desync vectors: (name, bytes).
const H1: &[(&str, &[u8])] = &[
    ("CL.TE", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"),
    ("TE.CL", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"),
    ("TE.TE duplicate", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n"),
    ("TE list ending in identity", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
    ("TE with space before colon", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
    ("TE with vertical tab", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n"),
    ("TE obfuscated value", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("TE folded onto the previous line", b"POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("TE in HTTP/1.0", b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc"),
    ("duplicate differing Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
    ("Content-Length list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd"),
    ("Content-Length with plus sign", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc"),
    ("Content-Length in hex", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc"),
    ("negative Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nabc"),
    ("overflowing Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\nabc"),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n folded\r\n\r\n"),
    ("bare LF line ends", b"GET / HTTP/1.1\nHost: a\n\n"),
    ("bare LF after a header", b"GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n"),
    ("bare CR", b"GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n"),
    ("NUL in a header value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n"),
    ("NUL in a header name", b"GET / HTTP/1.1\r\nHost: a\r\nX\x00A: b\r\n\r\n"),
    ("space in a header name", b"GET / HTTP/1.1\r\nHost: a\r\nTrans fer-Encoding: chunked\r\n\r\n"),
    ("two spaces in the request line", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("method with a non-token character", b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n"),
    // RFC 9112 3.2: no space or control character in a request target (refused by the
    // guard on what was read and by pingora's parser, patched: it used to percent-encode).
    ("space in the target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("tab in the target", b"GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("NUL in the target", b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("DEL in the target", b"GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("CR in the target", b"GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("no Host in HTTP/1.1", b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n"),
    ("two Host headers", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ("Host with userinfo", b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n"),
    ("absolute-form naming another authority", b"GET http://other.example/ HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("oversized chunk size", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nabc\r\n0\r\n\r\n"),
    ("chunk size with junk", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3x\r\nabc\r\n0\r\n\r\n"),
    ("chunk without its CRLF", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"),
];

/// A transfer coding the node does not decode before the final chunked: pingora accepted it
/// and dropped the coding when it framed the body anew, so the origin got coded bytes as
/// plain ones. 501 (RFC 9112 6.1), as from nginx.
const H1_UNKNOWN_CODING: &[(&str, &[u8])] = &[
    ("TE gzip then chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("TE gzip and chunked in two fields", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
];

#[tokio::test(flavor = "multi_thread")]
async fn http1_desync_vectors_are_refused_and_never_reach_the_origin() {
    let (node, origin) = node_with_origin().await;
    let addr = node.addr("web");
    let mut wrong = Vec::new();
    for (vectors, status) in [(H1, 400), (H1_UNKNOWN_CODING, 501)] {
        for (name, bytes) in vectors {
            let started = std::time::Instant::now();
            let out = raw(addr, bytes).await;
            if raw_status(&out) != Some(status) || out.matches("HTTP/1.1 ").count() != 1 {
                wrong.push(format!("{name}: not one {status}: {out:?}"));
            }
            // `raw` reads until the server closes (or 5 s): a refused connection is closed
            // at once.
            if started.elapsed() > Duration::from_secs(4) {
                wrong.push(format!("{name}: connection left open after the {status}"));
            }
        }
    }
    assert!(wrong.is_empty(), "not refused:\n{}", wrong.join("\n"));
    assert_eq!(
        origin.hits(),
        0,
        "a vector reached the origin: {:?}",
        origin.seen()
    );
    let r = Client::h1().get(addr, "a", "/after").await;
    assert_eq!((r.status, origin.hits()), (200, 1), "the node still serves");
    // A target percent-encoded by the client is fine.
    let out = raw(
        addr,
        b"GET /a%20b%00 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&out), Some(200), "{out:?}");
    assert_eq!(origin.seen()[1].uri, "/a%20b%00");
}

/// One HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

/// HPACK "literal header field without indexing, new name", no Huffman coding: lets a test
/// send what no well-behaved encoder would.
fn hpack(headers: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        assert!(name.len() < 127 && value.len() < 127);
        out.push(0);
        out.push(name.len() as u8);
        out.extend(*name);
        out.push(value.len() as u8);
        out.extend(*value);
    }
    out
}

/// Send one request's HEADERS (and END_STREAM) on a fresh h2c connection; what came back for
/// stream 1: `Ok(status)` or `Err(reason)` for a reset or GOAWAY.
async fn h2_raw(addr: std::net::SocketAddr, headers: &[(&[u8], &[u8])]) -> Result<u16, String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[]));
    out.extend(frame(1, 0x5, 1, &hpack(headers)));
    s.write_all(&out).await.unwrap();
    let read = async {
        let mut buf = Vec::new();
        loop {
            // Parse whole frames from the front of `buf`.
            while buf.len() >= 9 {
                let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                if buf.len() < 9 + len {
                    break;
                }
                let (kind, stream) = (
                    buf[3],
                    u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff,
                );
                let payload = buf[9..9 + len].to_vec();
                buf.drain(..9 + len);
                match (kind, stream) {
                    // HEADERS on stream 1: the first field is :status, from the static table.
                    (1, 1) => {
                        return match payload.first() {
                            Some(0x88) => Ok(200),
                            Some(0x8c) => Ok(400),
                            Some(0x8d) => Ok(404),
                            Some(0x8e) => Ok(500),
                            other => Err(format!("headers starting with {other:?}")),
                        }
                    }
                    (3, 1) => return Err(format!("reset {:?}", &payload)),
                    (7, 0) => return Err("goaway".into()),
                    _ => {}
                }
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return Err("closed".into()),
                Ok(n) => buf.extend(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap_or_else(|_| Err("no answer in 5 s".into()))
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_abuse_is_refused_and_never_downgraded_to_the_origin() {
    let (node, origin) = node_with_origin().await;
    let addr = node.addr("web");
    let base: [(&[u8], &[u8]); 4] = [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
        (b":authority", b"a"),
    ];
    let with = |extra: &[(&'static [u8], &'static [u8])]| {
        let mut h = base.to_vec();
        h.extend_from_slice(extra);
        h
    };
    assert_eq!(
        h2_raw(addr, &base).await,
        Ok(200),
        "the well-formed request works"
    );
    assert_eq!(origin.hits(), 1);

    type Headers<'a> = Vec<(&'a [u8], &'a [u8])>;
    let cases: Vec<(&str, Headers)> = vec![
        (
            "transfer-encoding",
            with(&[(b"transfer-encoding", b"chunked")]),
        ),
        ("connection header", with(&[(b"connection", b"keep-alive")])),
        ("CRLF in a value", with(&[(b"x-a", b"b\r\nx-injected: 1")])),
        (
            "LF in a value",
            with(&[(b"x-a", b"b\nGET /smuggled HTTP/1.1")]),
        ),
        ("NUL in a value", with(&[(b"x-a", b"b\x00c")])),
        ("upper-case name", with(&[(b"X-Upper", b"1")])),
        ("colon in a name", with(&[(b"x:a", b"1")])),
        ("pseudo-header after a regular one", {
            let mut h = vec![(&b"x-a"[..], &b"1"[..])];
            h.extend(base);
            h
        }),
        ("duplicate :path", with(&[(b":path", b"/other")])),
        ("unknown pseudo-header", with(&[(b":protocol-x", b"1")])),
        (
            "missing :path",
            base.iter()
                .copied()
                .filter(|(n, _)| *n != b":path")
                .collect(),
        ),
        ("empty :path", {
            let mut h: Vec<(&[u8], &[u8])> = base
                .iter()
                .copied()
                .filter(|(n, _)| *n != b":path")
                .collect();
            h.push((b":path", b""));
            h
        }),
        (
            "Host naming another authority",
            with(&[(b"host", b"other.example")]),
        ),
        ("te other than trailers", with(&[(b"te", b"gzip")])),
        ("content-length with no body", {
            let mut h: Vec<(&[u8], &[u8])> = base
                .iter()
                .copied()
                .filter(|(n, _)| *n != b":method")
                .collect();
            h.insert(0, (b":method", b"POST"));
            h.push((b"content-length", b"10"));
            h
        }),
    ];
    let mut wrong = Vec::new();
    for (name, headers) in &cases {
        match h2_raw(addr, headers).await {
            Ok(400) | Err(_) => {}
            Ok(other) => wrong.push(format!("{name}: {other}")),
        }
    }
    assert!(wrong.is_empty(), "accepted: {wrong:?}");
    assert_eq!(
        origin.hits(),
        1,
        "a malformed HTTP/2 request reached the origin: {:?}",
        origin.seen()
    );
    assert_eq!(h2_raw(addr, &base).await, Ok(200), "the node still serves");
}

/// RFC 9112 9.3.2: requests pipelined on one connection are answered in order: two in one
/// write (a GET, then a POST with its body), and a third written before any answer was
/// read, which asks to close the connection after it.
#[tokio::test(flavor = "multi_thread")]
async fn pipelined_requests_are_answered_in_order() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (node, origin) = node_with_origin().await;
    let mut s = tokio::net::TcpStream::connect(node.addr("web"))
        .await
        .unwrap();
    s.write_all(
        b"GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /p2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await
    .unwrap();
    s.write_all(b"GET /p3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the node closes after the third answer")
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert_eq!(out.matches("HTTP/1.1 200 ").count(), 3, "{out}");
    let at = |body: &str| out.find(body).unwrap_or_else(|| panic!("{body} in {out}"));
    assert!(at("origin /p1") < at("origin /p2") && at("origin /p2") < at("origin /p3"));
    let seen = origin.seen();
    let uris: Vec<&str> = seen.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(uris, ["/p1", "/p2", "/p3"]);
    assert_eq!(&seen[1].body[..], b"hello");
}

/// A request pipelined behind another (in the same write, where the guard that reads request
/// lines does not follow it) with a space or a control character in its target is refused
/// like the first request of a connection would be (RFC 9112 3.2): the first is answered,
/// the second gets 400 and the connection closes; the origin never sees it, percent-encoded
/// or otherwise (pingora's parser used to encode such a target and pass it on; the fix is
/// carried in `proxy/vendor/pingora-core`).
#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_target_pipelined_behind_a_request_is_refused() {
    let (node, origin) = node_with_origin().await;
    for bad in [&b"/a b"[..], b"/a\tb", b"/a\x01b"] {
        let mut request = b"GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET ".to_vec();
        request.extend_from_slice(bad);
        request.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
        let started = std::time::Instant::now();
        let out = raw(node.addr("web"), &request).await;
        // `raw` reads until the server closes (or 5 s).
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{bad:?}: left open"
        );
        let statuses: Vec<&str> = out
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| &out[i + 9..i + 12])
            .collect();
        assert_eq!(statuses, ["200", "400"], "{bad:?}: {out:?}");
    }
    let uris: Vec<String> = origin.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(uris, ["/first", "/first", "/first"]);
}
