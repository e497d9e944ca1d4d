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

/// The resident memory of process `pid` in KiB (`VmRSS`), 0 if it cannot be read.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
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

/// A loopback port, free for TCP and UDP, that no other test of this process is given and that
/// the kernel never hands out meanwhile: for a node that must bind a port known in advance (a
/// graceful upgrade hands its listeners over by address; a restarted Redis comes back on its
/// port). Such a port cannot be taken with a port-0 bind and then released, as the kernel may
/// give it to anyone in between; it is taken below the kernel's ephemeral range
/// (`ip_local_port_range`), which port-0 binds and outgoing connections draw from, each port
/// at most once per process.
pub fn reserved_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    // Spread processes (the test binaries of one run, runs side by side) over the range.
    let span = low.saturating_sub(10_000).max(1_000);
    let base = low - span;
    let _ = NEXT.compare_exchange(
        0,
        (std::process::id() % u32::from(span)) as u16,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let port = base + NEXT.fetch_add(1, Ordering::SeqCst) % span;
        let free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no free port below {low}");
}
