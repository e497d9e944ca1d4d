//! HTTP/1 versions and framing between clients and origins: an intermediary answers in its
//! own version whatever the origin's (RFC 9110 6.2), never sends the chunked coding to an
//! HTTP/1.0 client (RFC 9112 6.1), which gets a body of unknown length delimited by the
//! connection's close instead (RFC 9112 6.3), and passes on a repeated `Content-Length` as
//! the single value it framed the message by (RFC 9110 8.6).

use breakwater_tests as support;

use std::time::Duration;
use support::Node;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An origin that answers raw bytes by path: `/http10-length` and `/http10-close` as an
/// HTTP/1.0 server (with a `Content-Length`, and delimited by the close), `/cl-list` with
/// `Content-Length: 2, 2`, `/cl-seen` with the request's `Content-Length` fields as its body
/// (then closes), `/no-content` a 204 claiming `Content-Length: 5`, `/early-hints` a 103
/// before its 200, anything else as an HTTP/1.1 server with the chunked coding.
async fn raw_origin() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                while let Some(head) = support::read_head(&mut s).await {
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split(' ').nth(1).unwrap_or("/");
                    if path == "/cl-seen" {
                        let body = field_lines(&head, "content-length").join("|");
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = s.write_all(answer.as_bytes()).await;
                        return;
                    }
                    let answer: &[u8] = match path {
                        "/cl-list" => b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
                        "/no-content" => b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                        "/early-hints" => b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                        "/http10-length" => b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                        "/http10-close" => b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nclose-delimited body",
                        _ => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                    };
                    if s.write_all(answer).await.is_err() || answer.starts_with(b"HTTP/1.0") {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn node() -> Node {
    let origin = raw_origin().await;
    Node::start(&format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0 }}]
pools: {{ origin: {{ endpoints: ["{origin}"] }} }}
routes: [{{ pool: origin }}]
"#
    ))
}

/// Send `request` on a new connection and read until the node closes it (within 10 s, or the
/// test fails): the whole answer.
async fn answer_then_close(addr: std::net::SocketAddr, request: &str) -> String {
    answer_to_parts_then_close(addr, &[request]).await
}

/// `GET path` in HTTP/`version` with `Connection: close`: the whole answer, as
/// `answer_then_close`.
async fn get_then_close(addr: std::net::SocketAddr, path: &str, version: &str) -> String {
    let request = format!("GET {path} HTTP/{version}\r\nHost: a\r\nConnection: close\r\n\r\n");
    answer_then_close(addr, &request).await
}

/// As `answer_then_close`, the request sent in `parts`, a write each.
async fn answer_to_parts_then_close(addr: std::net::SocketAddr, parts: &[&str]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    for part in parts {
        s.write_all(part.as_bytes()).await.unwrap();
        s.flush().await.unwrap();
    }
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the node closes the connection after the answer")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// The lines of the head of `message` (up to its blank line, or all of it) that are fields
/// named `name` (lower case).
fn field_lines<'a>(message: &'a str, name: &str) -> Vec<&'a str> {
    let head = message.split("\r\n\r\n").next().unwrap_or_default();
    let prefix = format!("{name}:");
    head.lines()
        .filter(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .collect()
}

#[tokio::test]
async fn an_http10_origins_answer_goes_out_in_http11() {
    let node = node().await;
    let web = node.addr("web");
    for path in ["/http10-length", "/http10-close"] {
        let answer = get_then_close(web, path, "1.1").await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{path}: {answer}");
        assert!(
            answer.ends_with("hello") || answer.contains("close-delimited body"),
            "{path}: {answer}"
        );
        // Via names the version the response came in (RFC 9110 7.6.3).
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("\r\nvia: 1.0 breakwater\r\n"),
            "{path}: {answer}"
        );
    }
}

#[tokio::test]
async fn an_http10_client_never_gets_the_chunked_coding() {
    let node = node().await;
    let web = node.addr("web");
    // A body of unknown length, from an HTTP/1.1 origin (chunked) and an HTTP/1.0 one
    // (delimited by its close); the client asks to keep the connection: it cannot be kept,
    // the body ends with it.
    for (path, body) in [
        ("/chunked", "hello"),
        ("/http10-close", "close-delimited body"),
    ] {
        let answer = answer_then_close(
            web,
            &format!("GET {path} HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{path}: {answer}");
        assert!(
            field_lines(&answer, "transfer-encoding").is_empty(),
            "{path}: {answer}"
        );
        assert!(
            answer.ends_with(&format!("\r\n\r\n{body}")),
            "{path}: {answer}"
        );
    }
    // With a length, the connection is kept as the client asked.
    let mut s = TcpStream::connect(web).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"GET /http10-length HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"\r\n\r\nhello") {
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
                .await
                .expect("the whole answer")
                .unwrap();
            assert!(
                n > 0,
                "the connection is kept: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200 "));
    }
}

#[tokio::test]
async fn a_repeated_content_length_goes_on_as_one() {
    let node = node().await;
    let web = node.addr("web");
    let answer = get_then_close(web, "/cl-list", "1.1").await;
    assert_eq!(
        field_lines(&answer, "content-length"),
        ["Content-Length: 2"],
        "{answer}"
    );
    assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
    for request in [
        "POST /cl-seen HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nConnection: close\r\n\r\nhello",
        "POST /cl-seen HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    ] {
        let answer = answer_then_close(web, request).await;
        assert!(
            answer.to_ascii_lowercase().ends_with("\r\n\r\ncontent-length: 5"),
            "{request}: {answer}"
        );
    }
}

/// A later HTTP/1 minor version is read as HTTP/1.1 (RFC 9110 2.5: a recipient processes it
/// as the highest minor version it conforms to), also when the request line arrives in two
/// parts; a major version above 1 in an HTTP/1 request line gets 505 (RFC 9110 15.6.6, as
/// nginx answers); a version that is not `HTTP/DIGIT.DIGIT` stays a 400.
#[tokio::test]
async fn later_http1_minor_versions_are_read_as_http11_and_later_majors_get_505() {
    let node = node().await;
    let web = node.addr("web");
    let answer = get_then_close(web, "/chunked", "1.2").await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(
        answer.contains("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        "{answer}"
    );

    let answer = answer_to_parts_then_close(
        web,
        &[
            "GET /chunked HTTP/1.9",
            "\r\nHost: a\r\nConnection: close\r\n\r\n",
        ],
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    for (version, status) in [
        ("HTTP/2.0", "505"),
        ("HTTP/3.0", "505"),
        ("HTTP/1.x", "400"),
        ("HTTP/12.0", "400"),
    ] {
        let answer =
            answer_then_close(web, &format!("GET /chunked {version}\r\nHost: a\r\n\r\n")).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{version}: {answer}"
        );
    }
}

/// RFC 9110 8.6: a 204 goes out without `Content-Length` (or `Transfer-Encoding`) whatever the
/// origin sent; RFC 9110 15.2: an HTTP/1.0 client gets no 1xx response (an HTTP/1.1 one gets
/// the origin's 103 before the 200).
#[tokio::test]
async fn no_length_on_a_204_and_no_interim_response_to_http10_clients() {
    let node = node().await;
    let web = node.addr("web");
    let answer = get_then_close(web, "/no-content", "1.1").await;
    assert!(answer.starts_with("HTTP/1.1 204 "), "{answer}");
    assert!(
        field_lines(&answer, "content-length").is_empty()
            && field_lines(&answer, "transfer-encoding").is_empty(),
        "{answer}"
    );
    for (version, interim) in [("1.1", true), ("1.0", false)] {
        let answer = get_then_close(web, "/early-hints", version).await;
        assert_eq!(
            answer.starts_with("HTTP/1.1 103 "),
            interim,
            "HTTP/{version}: {answer}"
        );
        assert!(
            answer.contains("HTTP/1.1 200 ") && answer.ends_with("\r\n\r\nok"),
            "HTTP/{version}: {answer}"
        );
    }
}
