//! Where guest code runs. A cheap guest (a header filter: microseconds) runs on the caller's
//! thread, which is a listener's event loop: handing it to another thread would cost more
//! than the call. A dear one (an interpreter such as componentize-py's: hundreds of
//! microseconds to milliseconds per call, or a guest running to its deadline) would stall
//! every other connection of that event loop for as long, so once a component's calls cost
//! more than the budget they run off the loop: filter calls through tokio's
//! `block_in_place` (the event loop's other connections move to another thread for the
//! call's duration), handler tasks on the runtime's guest threads.
//!
//! The cost is the cheapest of the component's last [`WINDOW`] calls, seeded at load with what
//! an instantiation costs there, so an interpreter starts off the loop and a guest that turns
//! slow moves off it after a window of calls (and back once it is cheap again). The cheapest,
//! not an average: calls are timed by the wall clock, and a call preempted on a busy core
//! (the node sharing it with its origin, say) looks dear for as long as it was preempted. An
//! average moved a microsecond filter off the loop on one such call, and each call handed off
//! with `block_in_place` starts another thread on the same busy core, which made the next
//! calls look dear too: seen as three trivial filters dropping from 8 000 to 1 400 requests
//! per second (bench/before-after.sh). Preemption only ever adds time, so the cheapest call of
//! a window is what the guest costs; a dear guest has no cheap call.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Calls per estimate.
const WINDOW: u32 = 8;

pub(crate) struct Placement {
    /// The cheapest call of the last full window (or the seed), in nanoseconds.
    cost_ns: AtomicU64,
    /// The cheapest call of the window in progress.
    window_min_ns: AtomicU64,
    /// Calls counted, modulo nothing: every [`WINDOW`]th closes a window.
    calls: AtomicU32,
    /// Calls costing more run off the event loop; `u64::MAX`: never.
    budget_ns: u64,
    /// Whether a dear call that had to stay on its event loop has been reported.
    reported_inline: AtomicBool,
}

impl Placement {
    /// `budget`: `None` keeps every call on the caller's thread.
    pub fn new(budget: Option<Duration>) -> Self {
        Self {
            cost_ns: AtomicU64::new(0),
            window_min_ns: AtomicU64::new(u64::MAX),
            calls: AtomicU32::new(0),
            budget_ns: budget.map_or(u64::MAX, nanos),
            reported_inline: AtomicBool::new(false),
        }
    }

    /// Start the average from a first estimate (an instantiation's cost, at load).
    pub fn seed(&self, estimate: Duration) {
        self.cost_ns.store(nanos(estimate), Ordering::Relaxed);
    }

    /// Whether the next call should run off the event loop.
    pub fn off_loop(&self) -> bool {
        self.cost_ns.load(Ordering::Relaxed) > self.budget_ns
    }

    /// The call in progress has run past a tick: whatever it costs in the end, the next ones
    /// go off the loop.
    pub fn mark_dear(&self) {
        if self.budget_ns != u64::MAX {
            self.cost_ns
                .fetch_max(self.budget_ns + 1, Ordering::Relaxed);
        }
    }

    /// Count one call; every [`WINDOW`]th publishes the window's cheapest as the cost.
    /// Concurrent calls may straddle two windows: an estimate.
    pub fn record(&self, took: Duration) {
        self.window_min_ns.fetch_min(nanos(took), Ordering::Relaxed);
        let n = self.calls.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        if n.is_multiple_of(WINDOW) {
            let cheapest = self.window_min_ns.swap(u64::MAX, Ordering::Relaxed);
            self.cost_ns.store(cheapest, Ordering::Relaxed);
        }
    }

    /// Run `call`, off the event loop when the component is dear and the caller is a worker
    /// of a multi-threaded tokio runtime, and count its cost. Elsewhere `block_in_place` is
    /// not available: on a current-thread runtime (pingora's with `server.work_stealing:
    /// false`, one event loop per thread, as nginx and Envoy run their scripts and filters)
    /// the call stays on the loop, which is reported once per component; off any runtime the
    /// caller's thread serves no one else.
    pub fn run<R>(&self, component: &str, call: impl FnOnce() -> R) -> R {
        let started = std::time::Instant::now();
        // The cheap test first: a cheap guest's call looks up no runtime.
        let result = if self.off_loop() {
            match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(call),
                Ok(_) => {
                    if !self.reported_inline.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            component,
                            cost_us = self.cost_ns.load(Ordering::Relaxed) / 1000,
                            "a dear filter runs on its event loop (server.work_stealing: false); \
                             set server.work_stealing: true to move its calls off the loop"
                        );
                    }
                    call()
                }
                Err(_) => call(),
            }
        } else {
            call()
        };
        self.record(started.elapsed());
        result
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dear_component_moves_off_the_loop_and_back() {
        let p = Placement::new(Some(Duration::from_micros(100)));
        assert!(!p.off_loop(), "unknown: on the loop");
        p.seed(Duration::from_millis(2));
        assert!(p.off_loop(), "an interpreter starts off the loop");
        for _ in 0..WINDOW {
            p.record(Duration::from_micros(5));
        }
        assert!(!p.off_loop(), "a window of cheap calls brings it back");
        for _ in 0..WINDOW {
            p.record(Duration::from_millis(2));
        }
        assert!(p.off_loop(), "a window of dear calls moves it off");
        p.mark_dear();
        assert!(
            p.off_loop(),
            "a call running past a tick moves it off at once"
        );
    }

    /// A cheap guest's call preempted on a busy core looks dear; the cheap calls around it
    /// say what the guest costs.
    #[test]
    fn preempted_calls_do_not_move_a_cheap_component() {
        let p = Placement::new(Some(Duration::from_micros(100)));
        for i in 0..10 * WINDOW {
            let took = if i % 3 == 0 {
                Duration::from_millis(20)
            } else {
                Duration::from_micros(5)
            };
            p.record(took);
            assert!(!p.off_loop(), "call {i}");
        }
    }

    #[test]
    fn without_a_budget_everything_stays() {
        let p = Placement::new(None);
        p.seed(Duration::from_secs(1));
        assert!(!p.off_loop());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_dear_call_leaves_the_event_loop_to_the_others() {
        let p = std::sync::Arc::new(Placement::new(Some(Duration::from_micros(100))));
        p.seed(Duration::from_millis(1));
        // One worker: a task blocking it in a call keeps every other task waiting, unless
        // the call runs off the loop.
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (tx, rx) = std::sync::mpsc::channel();
        let blocked = tokio::spawn(async move {
            started_tx.send(()).unwrap();
            p.run("test", || rx.recv_timeout(Duration::from_secs(10)))
        });
        started_rx.await.unwrap();
        let other = tokio::spawn(async move { tx.send(()).unwrap() });
        assert!(
            blocked.await.unwrap().is_ok(),
            "another task ran on the event loop while the call blocked"
        );
        other.await.unwrap();
    }
}
