//! Request trailers (RFC 9110 6.5): forwarded to origins in the trailer section of a chunked
//! HTTP/1.1 body or in a closing HTTP/2 HEADERS frame, whichever protocol the client spoke;
//! fields no trailer may carry (framing, routing, request modifiers) are dropped on the way.

use breakwater_tests as support;

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use support::client::{raw, raw_status, Reply};
use support::origin::{Action, Seen};
use support::{Node, Origin};

/// One origin behind two pools: `/h2/...` reaches it over HTTP/2, the rest over HTTP/1.1.
async fn setup() -> (Node, Origin) {
    let origin = Origin::start(std::sync::Arc::new(|s: &Seen| {
        Action::ok(format!("got {} bytes", s.body.len()))
    }))
    .await;
    let yaml = format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0, h2c: true }}]
pools:
  h1: {{ endpoints: ["{addr}"] }}
  h2: {{ endpoints: ["{addr}"], protocol: http2 }}
routes:
  - {{ match: {{ path_prefix: /h2/ }}, pool: h2 }}
  - {{ pool: h1 }}
"#,
        addr = origin.addr
    );
    (Node::start(&yaml), origin)
}

/// What the origin saw for `path` (HTTP/2 requests come with the whole URI).
fn seen(origin: &Origin, path: &str) -> Seen {
    let all = origin.seen();
    let found = all
        .into_iter()
        .find(|s| s.uri.parse::<http::Uri>().unwrap().path() == path);
    found.unwrap_or_else(|| panic!("the origin never saw {path}"))
}

/// The origin got the body whole, its version, and the trailers with the forbidden ones gone.
fn assert_forwarded(s: &Seen, version: http::Version, checksum: &str) {
    assert_eq!(&s.body[..], b"hello", "{}", s.uri);
    assert_eq!(s.version, version, "{}", s.uri);
    let trailers = s
        .trailers
        .as_ref()
        .unwrap_or_else(|| panic!("{}: the request's trailers did not reach the origin", s.uri));
    assert_eq!(trailers.get("x-checksum").unwrap(), checksum, "{}", s.uri);
    assert_eq!(trailers.get("x-other").unwrap(), "1", "{}", s.uri);
    for forbidden in [
        "content-length",
        "host",
        "transfer-encoding",
        "authorization",
    ] {
        assert!(trailers.get(forbidden).is_none(), "{}: {forbidden}", s.uri);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_request_trailers_reach_http1_and_http2_origins() {
    let (node, origin) = setup().await;
    for path in ["/h1/chunked", "/h2/chunked"] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\
             Trailer: X-Checksum, X-Other\r\nConnection: close\r\n\r\n\
             3\r\nhel\r\n2\r\nlo\r\n0\r\nX-Checksum: abc\r\nContent-Length: 99\r\n\
             Host: elsewhere\r\nAuthorization: Basic eDp5\r\nX-Other: 1\r\n\r\n"
        );
        let out = raw(node.addr("web"), request.as_bytes()).await;
        assert_eq!(raw_status(&out), Some(200), "{path}: {out}");
        assert!(out.ends_with("got 5 bytes"), "{path}: {out}");
    }
    assert_forwarded(&seen(&origin, "/h1/chunked"), http::Version::HTTP_11, "abc");
    assert_forwarded(&seen(&origin, "/h2/chunked"), http::Version::HTTP_2, "abc");

    // A chunked body without trailers still ends as it did.
    let out = raw(
        node.addr("web"),
        b"POST /h1/plain HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\
          Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&out), Some(200), "{out}");
    assert!(seen(&origin, "/h1/plain").trailers.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_request_trailers_reach_http1_and_http2_origins() {
    let (node, origin) = setup().await;
    for path in ["/h1/h2c", "/h2/h2c"] {
        let tcp = tokio::net::TcpStream::connect(node.addr("web"))
            .await
            .unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-checksum", "def".parse().unwrap());
        trailers.insert("x-other", "1".parse().unwrap());
        trailers.insert("authorization", "Basic eDp5".parse().unwrap());
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
            Ok(Frame::data(Bytes::from_static(b"hel"))),
            Ok(Frame::data(Bytes::from_static(b"lo"))),
            Ok(Frame::trailers(trailers)),
        ];
        let req = http::Request::post(format!("http://a{path}"))
            .body(StreamBody::new(futures_util::stream::iter(frames)))
            .unwrap();
        let reply = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            Reply::read(send.send_request(req).await.unwrap()).await
        })
        .await
        .expect("an answer")
        .unwrap();
        assert_eq!((reply.status, reply.text().as_str()), (200, "got 5 bytes"));
    }
    assert_forwarded(&seen(&origin, "/h1/h2c"), http::Version::HTTP_11, "def");
    assert_forwarded(&seen(&origin, "/h2/h2c"), http::Version::HTTP_2, "def");
}
