//! The harness of Breakwater's tests: real origins, the real `breakwater` binary, real
//! clients (HTTP/1.1, HTTP/2, HTTP/3, load), all on loopback, and Wasm test components built
//! from WAT (`wasm`). A dev-only crate: the end-to-end tests (tests/tests/all) and the
//! isolate's tests use it.

pub mod certs;
pub mod client;
pub mod dns;
pub mod h3client;
pub mod helm;
pub mod load;
pub mod node;
pub mod origin;
pub mod redis;
pub mod wasm;

pub use client::{Client, Reply};
pub use node::Node;
pub use origin::{Origin, Seen};

/// Read from `s` until a blank line ends an HTTP head; everything read so far (the head and
/// what followed it in the same reads), or `None` if the peer closed or failed first.
pub async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    Some(head)
}

/// The node's metrics, as its admin listener at `admin` exports them.
pub async fn scrape(admin: std::net::SocketAddr) -> String {
    Client::h1()
        .get(admin, "localhost", "/metrics")
        .await
        .text()
}

/// The sum of the samples of metric `name` whose labels contain `labels` ("" for all).
pub fn metric(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Poll `cond` every 50 ms until it holds, for at most `secs` seconds: waiting on a
/// condition, never on a fixed delay.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
    loop {
        tick.tick().await;
        if cond().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
    }
}

/// The seed of a fuzz run: `FUZZ_SEED` (decimal or 0x-hex) if set, else a fresh one, printed
/// either way, so that every run tries new inputs and a failing one can be replayed.
pub fn fuzz_seed() -> u64 {
    let seed = match std::env::var("FUZZ_SEED") {
        Ok(v) => match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        }
        .unwrap_or_else(|e| panic!("FUZZ_SEED={v}: {e}")),
        Err(_) => rand::random(),
    };
    eprintln!("FUZZ_SEED={seed} (set it to replay this run)");
    seed
}
