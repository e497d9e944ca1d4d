//! Request heads fuzzed over real sockets against the running binary: valid requests and the
//! smuggling corpus, mutated by a seeded generator (byte flips, truncation, splices of
//! HTTP-significant tokens). Each input goes on its own connection, followed by a half-close
//! (or, in the second test, with the connection kept open); it must get a response or a close
//! within the time limit, and the node must keep serving.
//! `FUZZ_ITERATIONS` raises the count (CI runs the default).

use breakwater_tests as support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;
use support::{Client, Node, Origin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /path?q=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nCookie: a=b\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET http://a/abs HTTP/1.1\r\nHost: a\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
];

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b":",
    b"\0",
    b"\x7f",
    b"\xff",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked\r\n",
    b"Host: ",
    b"0\r\n\r\n",
    b"ffffffffffffffff\r\n",
    b"HTTP/1.1",
    b"HTTP/9.9",
    b"%00",
    b"../",
    b"//",
    b"?",
    b"#",
    b"Expect: 100-continue\r\n",
    b"Connection: close\r\n",
];

fn mutate(rng: &mut StdRng, input: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..1 + rng.random_range(0..3) {
        let at = rng.random_range(0..bytes.len() + 1);
        match rng.random_range(0..5) {
            0 if !bytes.is_empty() => {
                let i = rng.random_range(0..bytes.len());
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
            1 => bytes.truncate(at),
            2 | 3 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                bytes.splice(at..at, t.iter().copied());
            }
            _ if !bytes.is_empty() => {
                let end = (at + rng.random_range(0..16)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            _ => {}
        }
    }
    bytes
}

/// How a client sends an input: then half-closes its side (it will send nothing more), or
/// keeps the connection open as a client waiting for its answer does.
#[derive(Clone, Copy)]
enum Then {
    HalfClose,
    KeepOpen,
}

/// Send `input` on a new connection, then read until the server closes, within `limit`.
/// `Err` when the connection is still open by then.
async fn exchange(
    addr: std::net::SocketAddr,
    input: Vec<u8>,
    then: Then,
    limit: Duration,
) -> Result<Vec<u8>, String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = s.write_all(&input).await;
    if let Then::HalfClose = then {
        let _ = s.shutdown().await;
    }
    let mut out = Vec::new();
    match tokio::time::timeout(limit, s.read_to_end(&mut out)).await {
        Ok(_) => Ok(out),
        Err(_) => Err(format!(
            "connection still open after {limit:?}, {} bytes answered, for {:?}",
            out.len(),
            String::from_utf8_lossy(&input)
        )),
    }
}

/// The inputs of a run: `iterations` mutations of the seeds, drawn from `seed`.
fn inputs(seed: u64, iterations: usize) -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..iterations)
        .map(|_| {
            let input = SEEDS[rng.random_range(0..SEEDS.len())];
            mutate(&mut rng, input)
        })
        .collect()
}

/// Fuzz a node (listener `clients` settings and pool `timeouts` as given) with a run's
/// inputs, `batch` connections at a time, each sent as `then` says: every one must be
/// answered or closed within `limit`, some answered, and the node must serve afterwards.
/// A new seed every run, printed; FUZZ_SEED=N replays one; FUZZ_ITERATIONS raises the count.
async fn fuzz(
    clients: &str,
    timeouts: &str,
    iterations: usize,
    batch: usize,
    then: Then,
    limit: Duration,
) {
    let origin = Origin::echo().await;
    let node = Node::start(&format!(
        "listeners: [{{ name: web, address: 127.0.0.1:0, h2c: true, clients: {clients} }}]\nserver: {{ grace_period: 0s }}\npools: {{ p: {{ endpoints: [\"{}\"], timeouts: {timeouts} }} }}\nroutes: [{{ pool: p }}]\n",
        origin.addr
    ));
    let addr = node.addr("web");
    let iterations: usize = std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(iterations);
    let seed = support::fuzz_seed();
    let mut answered = 0;
    for batch in inputs(seed, iterations).chunks(batch) {
        let tasks: Vec<_> = batch
            .iter()
            .cloned()
            .map(|input| tokio::spawn(exchange(addr, input, then, limit)))
            .collect();
        for t in tasks {
            let out = t
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("FUZZ_SEED={seed}: {e}"));
            answered += usize::from(out.starts_with(b"HTTP/1."));
        }
    }
    assert!(answered > 0, "FUZZ_SEED={seed}: nothing was ever answered");
    let r = Client::h1().get(addr, "a", "/still-serving").await;
    assert_eq!(r.status, 200, "the node survives");
    eprintln!("{iterations} inputs, {answered} answered, the rest closed");
}

/// The same inputs on connections the client keeps open: nothing may leave a client waiting.
/// Whatever the input (a head cut short, a body shorter than declared, a request the node
/// answers and then keeps alive), the node answers and closes or closes, within its client
/// timeouts (`header_timeout` 1 s, `idle_timeout` 2 s) and a margin: never a connection left
/// open until pingora's 60 s read timeout.
#[tokio::test(flavor = "multi_thread")]
async fn arbitrary_request_heads_on_open_connections_never_leave_the_client_waiting() {
    let clients = "{ header_timeout: 1s, idle_timeout: 2s }";
    fuzz(
        clients,
        "{ read: 2s }",
        200,
        50,
        Then::KeepOpen,
        Duration::from_secs(8),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn arbitrary_request_heads_get_a_response_or_a_close_and_the_node_survives() {
    fuzz(
        "{}",
        "{}",
        400,
        16,
        Then::HalfClose,
        Duration::from_secs(10),
    )
    .await;
}
