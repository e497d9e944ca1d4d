// Breakwater patch: this file is new.
//
// Licensed under the Apache License, Version 2.0, as the rest of this crate.

//! Idle connections to servers, kept for reuse without a task each.
//!
//! pingora's pool (`pingora_pool::ConnectionPool`) spawns a task for every connection it is
//! given back, which watches it while idle (a read bounded by the idle timeout) and is woken
//! again to hand it over when the connection is taken: a task, a timer, a lock and two
//! channels per request that reuses a connection, and a wait for that task before the
//! connection can be used. Here an idle connection waits in a list per peer. Taking one checks
//! it (idle past its timeout, or closed or written to by the server: dropped, the next one is
//! tried), and one sweeper task per pool, alive while the pool holds any connection, closes
//! every [`SWEEP_EVERY`] those the server closed or that idled out, so a connection the server
//! closes does not wait in `CLOSE_WAIT` for the next request to that server.

use super::test_reusable_stream;
use crate::protocols::Stream;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the sweeper looks at idle connections.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Idle connections by the peer's reuse hash, at most `capacity` in all.
pub(crate) struct IdlePool {
    inner: Mutex<Inner>,
    capacity: usize,
    /// The connector's count of connections the server wrote to while idle.
    unexpected_data: Arc<AtomicU64>,
}

#[derive(Default)]
struct Inner {
    /// Oldest first: connections are taken from the back (the warmest) and evicted from the front.
    by_peer: HashMap<u64, VecDeque<Idle>>,
    len: usize,
    /// Whether a sweeper task is alive (read and written under the lock, so a connection
    /// put in as the sweeper leaves finds none and starts one).
    sweeping: bool,
}

struct Idle {
    stream: Stream,
    since: Instant,
    timeout: Option<Duration>,
}

impl Idle {
    fn expired(&self, now: Instant) -> bool {
        self.timeout
            .is_some_and(|t| now.saturating_duration_since(self.since) >= t)
    }
}

impl IdlePool {
    pub(crate) fn new(capacity: usize, unexpected_data: Arc<AtomicU64>) -> Self {
        IdlePool {
            inner: Mutex::new(Inner::default()),
            capacity,
            unexpected_data,
        }
    }

    /// Keeps `stream` for the peer with reuse hash `key`, and starts the pool's sweeper on
    /// the current runtime if none is alive. When the pool is full, the connection idle the
    /// longest (to any peer) is closed to make room, as an LRU would: how long it had been
    /// idle is returned.
    pub(crate) fn put(
        self: &Arc<Self>,
        key: u64,
        stream: Stream,
        timeout: Option<Duration>,
    ) -> Option<Duration> {
        if self.capacity == 0 {
            return None;
        }
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let evicted = match inner.len >= self.capacity {
            true => inner.pop_oldest(),
            false => None,
        };
        inner.by_peer.entry(key).or_default().push_back(Idle {
            stream,
            since: now,
            timeout,
        });
        inner.len += 1;
        let start_sweeper = !std::mem::replace(&mut inner.sweeping, true);
        drop(inner);
        if start_sweeper {
            pingora_runtime::current_handle().spawn(self.clone().sweep_while_any());
        }
        evicted.map(|idle| now.saturating_duration_since(idle.since))
    }

    /// The most recently kept connection to the peer with reuse hash `key` that has not
    /// idled out. The caller still checks that the server has not closed it.
    pub(crate) fn take(&self, key: u64) -> Option<Stream> {
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut inner = self.inner.lock();
        let found = loop {
            let Some(list) = inner.by_peer.get_mut(&key) else {
                break None;
            };
            let idle = list.pop_back();
            if list.is_empty() {
                inner.by_peer.remove(&key);
            }
            let Some(idle) = idle else { break None };
            inner.len -= 1;
            if idle.expired(now) {
                expired.push(idle);
            } else {
                break Some(idle.stream);
            }
        };
        drop(inner);
        drop(expired); // closed outside the lock
        found
    }

    /// Closes the connections that idled out or that their server closed (or wrote to).
    /// Returns whether any is left; when none is, the sweeper is marked gone (under the
    /// lock, so the next `put` starts another).
    fn sweep(&self) -> bool {
        let now = Instant::now();
        let mut closed = Vec::new();
        let mut inner = self.inner.lock();
        let mut len = 0;
        inner.by_peer.retain(|_, list| {
            for mut idle in std::mem::take(list) {
                if idle.expired(now)
                    || !test_reusable_stream(&mut idle.stream, &self.unexpected_data)
                {
                    closed.push(idle);
                } else {
                    list.push_back(idle);
                }
            }
            len += list.len();
            !list.is_empty()
        });
        inner.len = len;
        inner.sweeping = len > 0;
        drop(inner);
        drop(closed);
        len > 0
    }

    /// Sweeps every [`SWEEP_EVERY`] for as long as the pool holds a connection. Should the
    /// future be dropped first (its runtime shutting down), even before it was polled, the
    /// pool is told, so the next `put` starts another sweeper.
    fn sweep_while_any(self: Arc<Self>) -> impl std::future::Future<Output = ()> + Send + 'static {
        /// Marks the sweeper gone when dropped while it still holds the pool.
        struct Sweeper(Option<Arc<IdlePool>>);
        impl Drop for Sweeper {
            fn drop(&mut self) {
                if let Some(pool) = self.0.take() {
                    pool.inner.lock().sweeping = false;
                }
            }
        }
        let mut sweeper = Sweeper(Some(self));
        async move {
            loop {
                tokio::time::sleep(SWEEP_EVERY).await;
                let pool = sweeper.0.as_ref().expect("held until the sweeper ends");
                if !pool.sweep() {
                    // `sweep` marked the sweeper gone under the pool's lock; another may
                    // have started since, so the guard must not mark it again.
                    sweeper.0.take();
                    return;
                }
            }
        }
    }
}

impl Inner {
    fn pop_oldest(&mut self) -> Option<Idle> {
        let key = *self
            .by_peer
            .iter()
            .filter_map(|(key, list)| list.front().map(|idle| (key, idle.since)))
            .min_by_key(|(_, since)| *since)?
            .0;
        let list = self.by_peer.get_mut(&key)?;
        let oldest = list.pop_front();
        if list.is_empty() {
            self.by_peer.remove(&key);
        }
        self.len -= 1;
        oldest
    }
}
