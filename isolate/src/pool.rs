//! Instances made ahead of need, for filters and handlers alike: how many (`prewarm`, the
//! setting or chosen at load from what an instantiation costs), the ready ones, and the
//! filler thread that keeps them topped up off the request path.

use crate::error::IsolateError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

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

    /// At load: keep the two instances made there (the second, warm, was timed: `cost`) and
    /// settle `prewarm` from the `setting`, or from `cost` when there is none. Returns it.
    pub fn start(&self, made: [T; 2], setting: Option<usize>, cost: Duration) -> usize {
        let prewarm = setting.unwrap_or_else(|| crate::limits::auto_prewarm(cost));
        self.prewarm.store(prewarm, Ordering::Relaxed);
        self.ready.lock().expect("ready lock").extend(made);
        prewarm
    }

    /// Keep `prewarm` instances ready on a thread named `name`, made by `make`, for as long
    /// as `owner` lives (`pool` finds this pool in it). `setup` runs first on that thread
    /// and builds `make` (a handler's needs a runtime of its own).
    pub fn spawn_filler<O, M>(
        owner: &Arc<O>,
        name: String,
        pool: fn(&O) -> &ReadyPool<T>,
        setup: impl FnOnce() -> M + Send + 'static,
    ) where
        O: Send + Sync + 'static,
        M: FnMut(&O) -> Result<T, IsolateError>,
    {
        let weak: Weak<O> = Arc::downgrade(owner);
        let thread = name.clone();
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
