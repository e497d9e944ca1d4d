//! Instances made ahead of need, for filters and handlers alike: the load sequence that proves
//! a component instantiates and settles how many instances to keep ready (`prewarm`, the
//! setting or chosen from what an instantiation costs), the ready ones, and the filler thread
//! that keeps them topped up off the request path.

use crate::error::IsolateError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

pub(crate) struct ReadyPool<T> {
    ready: Mutex<Vec<T>>,
    refill: Condvar,
    prewarm: AtomicUsize,
}

impl<T> Default for ReadyPool<T> {
    fn default() -> Self {
        Self {
            ready: Mutex::new(Vec::new()),
            refill: Condvar::new(),
            prewarm: AtomicUsize::new(0),
        }
    }
}

/// Warm instantiations timed at load; their median is the cost `prewarm` is chosen from, so
/// one slow sample (a page fault storm, a busy core) does not decide.
const COST_SAMPLES: usize = 3;

impl<T: Send + 'static> ReadyPool<T> {
    /// A ready instance, if any; wakes the filler (when there is one) to replace it.
    pub fn take(&self) -> Option<T> {
        let ready = self.ready.lock().expect("ready lock").pop();
        if self.prewarm() > 0 {
            self.refill.notify_one();
        }
        ready
    }

    pub fn prewarm(&self) -> usize {
        self.prewarm.load(Ordering::Relaxed)
    }

    /// The load sequence, once the component is pre-linked: prove it instantiates with `make`
    /// (a trapping start function is a load error), time [`COST_SAMPLES`] warm
    /// instantiations, keep two instances ready, and settle `prewarm` from `setting` or from
    /// the median cost, which is returned. When it is above zero, a thread named `name` keeps that many ready
    /// for as long as `owner` lives (`pool` finds this pool in it), making them with what
    /// `filler` builds on that thread (a handler's needs a runtime of its own).
    pub fn start<O, M>(
        owner: &Arc<O>,
        name: String,
        pool: fn(&O) -> &ReadyPool<T>,
        setting: Option<usize>,
        mut make: impl FnMut() -> Result<T, IsolateError>,
        filler: impl FnOnce() -> M + Send + 'static,
    ) -> Result<Duration, IsolateError>
    where
        O: Send + Sync + 'static,
        M: FnMut(&O) -> Result<T, IsolateError>,
    {
        let mut made = vec![make()?];
        let mut costs = Vec::with_capacity(COST_SAMPLES);
        for _ in 0..COST_SAMPLES {
            let started = Instant::now();
            made.push(make()?);
            costs.push(started.elapsed());
        }
        costs.sort();
        made.truncate(2);
        let cost = costs[COST_SAMPLES / 2];
        let prewarm = setting.unwrap_or_else(|| auto_prewarm(cost));
        let this = pool(owner);
        this.prewarm.store(prewarm, Ordering::Relaxed);
        this.ready.lock().expect("ready lock").extend(made);
        if prewarm > 0 {
            Self::spawn_filler(owner, name, pool, filler);
        }
        Ok(cost)
    }

    fn spawn_filler<O, M>(
        owner: &Arc<O>,
        name: String,
        pool: fn(&O) -> &ReadyPool<T>,
        setup: impl FnOnce() -> M + Send + 'static,
    ) where
        O: Send + Sync + 'static,
        M: FnMut(&O) -> Result<T, IsolateError>,
    {
        let weak: Weak<O> = Arc::downgrade(owner);
        let thread = format!("wasm-fill-{name}");
        let _ = std::thread::Builder::new().name(thread).spawn(move || {
            let mut make = setup();
            loop {
                let Some(owner) = weak.upgrade() else { return };
                let pool = pool(&owner);
                let have = pool.ready.lock().expect("ready lock").len();
                let wait = if have < pool.prewarm() {
                    match make(&owner) {
                        Ok(r) => {
                            pool.ready.lock().expect("ready lock").push(r);
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(component = %name, error = %e, "pre-instantiation failed");
                            Duration::from_millis(100)
                        }
                    }
                } else {
                    // Wake on demand, or re-check now and then so a dropped owner ends the
                    // thread.
                    Duration::from_millis(500)
                };
                let guard = pool.ready.lock().expect("ready lock");
                let _ = pool.refill.wait_timeout(guard, wait);
            }
        });
    }
}

/// Instances to keep ready when the settings leave it to the runtime, from what one
/// instantiation costs: a cheap one (a small filter: a few microseconds) is done inline,
/// which costs less than handing instances over between threads; a dear one (an interpreter
/// such as componentize-py's: hundreds of microseconds) is done ahead, off the request path.
fn auto_prewarm(instantiation: Duration) -> usize {
    if instantiation > Duration::from_micros(50) {
        4
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Owner {
        pool: ReadyPool<u32>,
    }

    fn start(costs: &'static [u64], setting: Option<usize>) -> (Arc<Owner>, usize) {
        let owner = Arc::new(Owner {
            pool: ReadyPool::default(),
        });
        let mut calls = 0;
        let make = || {
            // The first call proves; the rest are timed with the given cost each.
            if calls > 0 {
                let (started, cost) = (Instant::now(), Duration::from_micros(costs[calls - 1]));
                while started.elapsed() < cost {
                    std::hint::spin_loop();
                }
            }
            calls += 1;
            Ok(calls as u32)
        };
        let filler = || |_: &Owner| Ok(0);
        ReadyPool::start(
            &owner,
            "t".into(),
            |o: &Owner| &o.pool,
            setting,
            make,
            filler,
        )
        .unwrap();
        let prewarm = owner.pool.prewarm();
        (owner, prewarm)
    }

    #[test]
    fn prewarm_follows_the_median_cost() {
        assert_eq!(start(&[1, 1, 1], None).1, 0, "cheap: inline");
        assert_eq!(
            start(&[1, 1, 5_000], None).1,
            0,
            "one slow sample does not decide"
        );
        assert_eq!(start(&[5_000, 5_000, 1], None).1, 4, "dear: made ahead");
        assert_eq!(
            start(&[5_000, 5_000, 5_000], Some(0)).1,
            0,
            "the setting wins"
        );
    }

    #[test]
    fn two_instances_are_kept_ready_from_load() {
        let (owner, _) = start(&[1, 1, 1], Some(0));
        assert_eq!(owner.pool.take(), Some(2));
        assert_eq!(owner.pool.take(), Some(1));
        assert_eq!(owner.pool.take(), None);
    }

    #[test]
    fn a_failing_instantiation_fails_the_load() {
        let owner = Arc::new(Owner {
            pool: ReadyPool::default(),
        });
        let make = || {
            Err(IsolateError::Instantiate {
                component: "t".into(),
                reason: "trap in start".into(),
            })
        };
        let filler = || |_: &Owner| Ok(0);
        let started = ReadyPool::start(&owner, "t".into(), |o: &Owner| &o.pool, None, make, filler);
        assert!(started.is_err());
    }
}
