//! Closed-loop load for the end-to-end tests: a few clients sending requests until stopped,
//! counting successes and failures.
#![allow(dead_code)]

use super::{eventually, Client};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Closed-loop load from `n` clients until stopped; counts successes, failures and retries.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    /// Requests resent because their reused connection closed before any response.
    retries: Arc<AtomicUsize>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `n` HTTP/1.1 clients on `/load`.
    pub fn start(addr: std::net::SocketAddr, n: usize) -> Load {
        Self::start_with(addr, n, "/load", Client::h1)
    }

    /// `n` clients made by `client`, each sending GET `path` in a loop.
    pub fn start_with(
        addr: std::net::SocketAddr,
        n: usize,
        path: &'static str,
        make: fn() -> Client,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let retries = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tasks = (0..n)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                let retries = retries.clone();
                tokio::spawn(async move {
                    let client = make();
                    // Bounded: at most 20k requests per client.
                    for _ in 0..20_000 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let req = || http::Request::get(format!("http://{addr}{path}")).body(Default::default()).unwrap();
                        let mut result = client.send(req()).await;
                        // RFC 9112 9.3.1: a client may retry an idempotent request when a reused
                        // connection closes before any response, as browsers do. A draining
                        // server closes idle keep-alive connections, so this race is expected
                        // where a server drains; counted, so that tests of what must not
                        // close a connection (a reload) can require none.
                        if matches!(&result, Err(e) if e.contains("IncompleteMessage") || e.contains("ConnectionReset")) {
                            retries.fetch_add(1, Ordering::Relaxed);
                            result = make().send(req()).await;
                        }
                        match result {
                            Ok(r) if r.status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => failed.lock().unwrap().push(format!("status {}", r.status)),
                            Err(e) => failed.lock().unwrap().push(e),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            retries,
            failed,
            tasks,
        }
    }

    pub async fn wait_for(&self, more: usize) {
        let target = self.ok.load(Ordering::Relaxed) + more;
        let ok = self.ok.clone();
        eventually(20, "load makes progress", move || {
            let ok = ok.clone();
            async move { ok.load(Ordering::Relaxed) >= target }
        })
        .await;
    }

    /// Stop the load and assert that no request failed and no connection was closed under
    /// a request (no retry was needed); returns how many requests succeeded.
    pub async fn finish_without_failures(self) -> usize {
        self.finish_with_retries_at_most(0).await
    }

    /// Stop the load and assert that no request failed, allowing up to `max` retries of
    /// requests whose reused connection a draining server closed; returns how many requests
    /// succeeded.
    pub async fn finish_with_retries_at_most(self, max: usize) -> usize {
        let (ok, failed, retries) = self.finish().await;
        assert!(
            retries <= max,
            "{retries} requests needed a retry on a new connection (at most {max} allowed)"
        );
        assert!(
            failed.is_empty(),
            "{} of {} requests failed: {:?}",
            failed.len(),
            ok + failed.len(),
            &failed[..failed.len().min(5)]
        );
        ok
    }

    /// Stop the load: successes, failures and retries.
    async fn finish(self) -> (usize, Vec<String>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.lock().unwrap().clone(),
            self.retries.load(Ordering::Relaxed),
        )
    }
}
