//! Test harness: real origins, the real `breakwater` binary, real clients, all on loopback.
#![allow(dead_code, unused_imports)]

pub mod certs;
pub mod client;
pub mod dns;
pub mod h3client;
pub mod helm;
pub mod load;
pub mod node;
pub mod origin;

pub use client::{Client, Reply};
pub use node::Node;
pub use origin::{Origin, Seen};

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
