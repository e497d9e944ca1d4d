//! Instances made ahead of need, for filters and handlers alike: the load sequence that proves
//! a component instantiates and settles how many instances to keep ready (`prewarm`, the
//! setting or chosen from what an instantiation costs), the ready ones, and the filler thread
//! that keeps them topped up off the request path.
//!
//! Scale to zero: a component whose `prewarm` was left to the runtime holds no instance until
//! it is in use: its filler thread (if instantiating it is dear) starts on its second request
//! within `idle_unload` of the one before, and when no request has come for the runtime's
//! `idle_unload`, drops the ready instances and ends. The
//! first request after load or after such an idle spell is a cold start. An explicit
//! `prewarm` keeps its instances from load, for good.

use crate::error::IsolateError;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

pub(crate) struct ReadyPool<T> {
    ready: Mutex<Vec<T>>,
    refill: Condvar,
    prewarm: AtomicUsize,
    /// Kept warm for good (`prewarm` set explicitly): never scaled to zero.
    pinned: AtomicBool,
    /// No request for this long scales the component to zero; `None`: never.
    idle_unload: Option<Duration>,
    /// When the last instance was taken, in milliseconds since `epoch`; 0: never since load
    /// or since it was scaled to zero.
    last_take: AtomicU64,
    epoch: Instant,
    filler_running: AtomicBool,
    /// Starts the filler thread (set at load for components with `prewarm` above zero).
    spawn_filler: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// The runtime's live instances: the filler makes one only while there is room.
    slots: Arc<crate::limits::Slots>,
    /// Instances reset in place and kept for another request since load.
    resets: AtomicU64,
    /// Whether instances of this component cannot be reset in place (see `reset_point`).
    reset_refused: AtomicBool,
}

/// Instances reset in place that a component keeps between requests; more are dropped. Like
/// the instances made ahead of need, they go when the component scales to zero.
const KEEP_RESET: usize = 16;

impl<T> ReadyPool<T> {
    pub fn new(idle_unload: Option<Duration>, slots: Arc<crate::limits::Slots>) -> Self {
        Self {
            slots,
            ready: Mutex::new(Vec::new()),
            refill: Condvar::new(),
            prewarm: AtomicUsize::new(0),
            pinned: AtomicBool::new(false),
            idle_unload,
            last_take: AtomicU64::new(0),
            epoch: Instant::now(),
            filler_running: AtomicBool::new(false),
            spawn_filler: OnceLock::new(),
            resets: AtomicU64::new(0),
            reset_refused: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which means "not taken".
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Whether the component is idle past `idle_unload` (or was never used) at `now`.
    fn idle(&self, now: u64) -> bool {
        if self.pinned.load(Ordering::Relaxed) {
            return false;
        }
        match self.last_take.load(Ordering::Relaxed) {
            0 => true,
            last => self
                .idle_unload
                .is_some_and(|d| now.saturating_sub(last) > d.as_millis() as u64),
        }
    }

    /// Instances ready now.
    pub fn ready_now(&self) -> usize {
        self.ready.lock().expect("ready lock").len()
    }

    /// Instances reset in place and kept for another request since load.
    pub fn resets(&self) -> u64 {
        self.resets.load(Ordering::Relaxed)
    }

    /// Where a reset in place puts `instance` back to, taken right after instantiation;
    /// `None` when it cannot be reset (logged once per `component`). Refused once, not asked
    /// again: what refuses it (the allocator, shared memories, GC references, start functions
    /// that write memory) is the same for every instance, and asking costs an error and a
    /// scan of the instance's memory.
    pub fn reset_point(
        &self,
        component: &str,
        instance: wasmtime::component::Instance,
        store: impl wasmtime::AsContextMut,
    ) -> Option<wasmtime::component::ResetPoint> {
        if self.reset_refused.load(Ordering::Relaxed) {
            return None;
        }
        match instance.reset_point(store) {
            Ok(point) => Some(point),
            Err(e) => {
                if !self.reset_refused.swap(true, Ordering::Relaxed) {
                    tracing::info!(component, reason = %format!("{e:#}"),
                        "instances cannot be reset in place: each request gets a new one");
                }
                None
            }
        }
    }
}

/// What [`ReadyPool::take`] found.
pub(crate) struct Taken<T> {
    pub ready: Option<T>,
    /// The component had no request since load or for `idle_unload`: this one starts it.
    pub cold: bool,
}

/// Warm instantiations timed at load; their median is the cost `prewarm` is chosen from, so
/// one slow sample (a page fault storm, a busy core) does not decide.
const COST_SAMPLES: usize = 3;

impl<T: Send + 'static> ReadyPool<T> {
    /// A ready instance, if any; wakes the filler (when there is one) to replace it, or
    /// starts it when the component is in use again (a cold start does not: a component
    /// requested once does not hold instances until it is idle).
    pub fn take(&self) -> Taken<T> {
        let now = self.now_ms();
        let cold = self.idle(now);
        self.last_take.store(now, Ordering::Relaxed);
        let ready = self.ready.lock().expect("ready lock").pop();
        if self.prewarm() > 0 && !cold {
            if self.filler_running.swap(true, Ordering::AcqRel) {
                self.refill.notify_one();
            } else if let Some(spawn) = self.spawn_filler.get() {
                spawn();
            }
        }
        Taken { ready, cold }
    }

    /// An instance reset in place after a request, ready for the next one: kept while fewer
    /// than `KEEP_RESET` are ready and the runtime has room (as the filler's instances: never
    /// in the quarter of the pool kept for requests), until the component goes idle (see
    /// `sweep`); else dropped, its slot free for any component. Counted in `resets` when
    /// kept.
    pub fn give_back(&self, instance: T) {
        if !self.slots.room_to_prewarm() {
            return;
        }
        let mut ready = self.ready.lock().expect("ready lock");
        if ready.len() >= KEEP_RESET {
            return;
        }
        ready.push(instance);
        self.resets.fetch_add(1, Ordering::Relaxed);
    }

    /// Scale to zero a component without a filler thread (which does it itself) once it is
    /// idle: drops the instances given back after its requests. Run by the runtime's ticker.
    pub fn sweep(&self) {
        if self.filler_running.load(Ordering::Acquire) || !self.idle(self.now_ms()) {
            return;
        }
        let dropped = std::mem::take(&mut *self.ready.lock().expect("ready lock"));
        drop(dropped);
    }

    pub fn prewarm(&self) -> usize {
        self.prewarm.load(Ordering::Relaxed)
    }

    /// The load sequence, once the component is pre-linked: prove it instantiates with `make`
    /// (a trapping start function is a load error), time [`COST_SAMPLES`] warm
    /// instantiations, settle `prewarm` from `setting` or from the median cost, which is
    /// returned; `room` says how many more requests `owner` may admit now (the filler never
    /// keeps more ready than that). With an explicit `setting` above zero, two instances are
    /// kept from now and a thread named `name` keeps `setting` ready for as long as `owner`
    /// lives; left to the runtime, none is kept and the thread (for a dear component) starts
    /// on the first request. `pool` finds this pool in `owner`; the thread makes instances
    /// with what `filler` builds on it (a handler's needs a runtime of its own).
    pub fn start<O, M>(
        owner: &Arc<O>,
        name: String,
        pool: fn(&O) -> &ReadyPool<T>,
        room: fn(&O) -> usize,
        setting: Option<usize>,
        mut make: impl FnMut() -> Result<T, IsolateError>,
        filler: impl Fn() -> M + Send + Sync + 'static,
    ) -> Result<Duration, IsolateError>
    where
        O: Send + Sync + 'static,
        M: FnMut(&O) -> Result<T, IsolateError>,
    {
        let pinned = setting.is_some_and(|n| n > 0);
        // One instance alive at a time (a small pool must be able to load every component),
        // except the two an explicit `prewarm` keeps.
        let mut kept = Vec::with_capacity(2);
        let proof = make()?;
        if pinned {
            kept.push(proof);
        } else {
            drop(proof);
        }
        let mut costs = Vec::with_capacity(COST_SAMPLES);
        for _ in 0..COST_SAMPLES {
            let started = Instant::now();
            let made = make()?;
            costs.push(started.elapsed());
            if pinned && kept.len() < 2 {
                kept.push(made);
            }
        }
        let (cost, prewarm) = settle_prewarm(&mut costs, setting);
        let this = pool(owner);
        this.prewarm.store(prewarm, Ordering::Relaxed);
        this.pinned.store(pinned, Ordering::Relaxed);
        this.ready.lock().expect("ready lock").extend(kept);
        if prewarm > 0 {
            let weak: Weak<O> = Arc::downgrade(owner);
            let filler = Arc::new(filler);
            let spawn = move || {
                if let Some(owner) = weak.upgrade() {
                    let filler = filler.clone();
                    Self::spawn_filler(&owner, name.clone(), pool, room, move || filler());
                }
            };
            if pinned {
                this.filler_running.store(true, Ordering::Release);
                spawn();
            }
            let _ = this.spawn_filler.set(Box::new(spawn));
        }
        Ok(cost)
    }

    fn spawn_filler<O, M>(
        owner: &Arc<O>,
        name: String,
        pool: fn(&O) -> &ReadyPool<T>,
        room: fn(&O) -> usize,
        setup: impl FnOnce() -> M + Send + 'static,
    ) where
        O: Send + Sync + 'static,
        M: FnMut(&O) -> Result<T, IsolateError>,
    {
        let weak: Weak<O> = Arc::downgrade(owner);
        let thread = format!("wasm-fill-{name}");
        let spawned = std::thread::Builder::new().name(thread).spawn(move || {
            let mut make = setup();
            loop {
                let Some(owner) = weak.upgrade() else { return };
                let pool = pool(&owner);
                if pool.idle(pool.now_ms()) {
                    pool.scale_to_zero();
                    // A request that came in since starts the filler again.
                    if pool.idle(pool.now_ms())
                        || pool.filler_running.swap(true, Ordering::AcqRel)
                    {
                        return;
                    }
                }
                let have = pool.ready.lock().expect("ready lock").len();
                // No more than the component can use now (its concurrency limit), and only
                // while the runtime has room.
                let wanted = pool.prewarm().min(room(&owner));
                let wait = if have < wanted && pool.slots.room_to_prewarm() {
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
                    // Wake on demand, or re-check now and then so that idleness, room in
                    // the pool and a dropped owner are seen.
                    Duration::from_millis(500)
                };
                let guard = pool.ready.lock().expect("ready lock");
                let _ = pool.refill.wait_timeout(guard, wait);
            }
        });
        if spawned.is_err() {
            pool(owner).filler_running.store(false, Ordering::Release);
        }
    }

    /// Drop the ready instances (their slots go back to the pool) and mark the filler stopped.
    fn scale_to_zero(&self) {
        let dropped = std::mem::take(&mut *self.ready.lock().expect("ready lock"));
        self.filler_running.store(false, Ordering::Release);
        drop(dropped);
    }
}

/// The cost of an instantiation (the median of the timed ones) and the instances to keep
/// ready: the setting, or what [`auto_prewarm`] makes of that cost.
fn settle_prewarm(costs: &mut [Duration], setting: Option<usize>) -> (Duration, usize) {
    costs.sort();
    let cost = costs[costs.len() / 2];
    (cost, setting.unwrap_or_else(|| auto_prewarm(cost)))
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

    fn start_with(
        costs: &'static [u64],
        setting: Option<usize>,
        idle_unload: Option<Duration>,
    ) -> Arc<Owner> {
        let owner = Arc::new(Owner {
            pool: ReadyPool::new(idle_unload, crate::limits::Slots::new(1000)),
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
            |_: &Owner| usize::MAX,
            setting,
            make,
            filler,
        )
        .unwrap();
        owner
    }

    fn start(costs: &'static [u64], setting: Option<usize>) -> (Arc<Owner>, usize) {
        let owner = start_with(costs, setting, None);
        let prewarm = owner.pool.prewarm();
        (owner, prewarm)
    }

    /// The decision, from given costs (timed ones would make the test depend on the load of
    /// the machine running it: a preempted microsecond sample looks dear).
    #[test]
    fn prewarm_follows_the_median_cost() {
        let settle = |us: [u64; COST_SAMPLES], setting| {
            settle_prewarm(&mut us.map(Duration::from_micros), setting).1
        };
        assert_eq!(settle([1, 1, 1], None), 0, "cheap: inline");
        assert_eq!(
            settle([1, 5_000, 1], None),
            0,
            "one slow sample does not decide"
        );
        assert_eq!(settle([5_000, 1, 5_000], None), 4, "dear: made ahead");
        assert_eq!(settle([5_000; 3], Some(0)), 0, "the setting wins");
        assert_eq!(settle([1; 3], Some(3)), 3, "either way");
    }

    /// The load sequence times its instantiations (preemption only ever makes them look
    /// dearer, so only a dear component and the setting are asserted from real timings).
    #[test]
    fn the_load_sequence_settles_prewarm_from_timed_instantiations() {
        assert_eq!(start(&[5_000, 5_000, 1], None).1, 4, "dear: made ahead");
        assert_eq!(
            start(&[5_000, 5_000, 5_000], Some(0)).1,
            0,
            "the setting wins"
        );
    }

    #[test]
    fn an_explicit_prewarm_keeps_instances_from_load() {
        let (owner, _) = start(&[1, 1, 1], Some(2));
        let taken = owner.pool.take();
        assert_eq!((taken.ready, taken.cold), (Some(2), false));
        assert_eq!(owner.pool.take().ready, Some(1));
    }

    #[test]
    fn left_to_the_runtime_nothing_is_held_until_the_first_request() {
        let (owner, prewarm) = start(&[5_000, 5_000, 5_000], None);
        assert_eq!(prewarm, 4);
        assert_eq!(owner.pool.ready_now(), 0);
        assert!(!owner.pool.filler_running.load(Ordering::Acquire));
        let first = owner.pool.take();
        assert_eq!((first.ready, first.cold), (None, true));
        assert!(
            !owner.pool.filler_running.load(Ordering::Acquire),
            "one request holds nothing"
        );
        assert!(!owner.pool.take().cold, "the second request is warm");
        assert!(owner.pool.filler_running.load(Ordering::Acquire));
    }

    #[test]
    fn idle_past_idle_unload_is_cold_again() {
        let owner = start_with(&[1, 1, 1], None, Some(Duration::from_millis(100)));
        let pool = &owner.pool;
        assert!(pool.take().cold);
        let last = pool.last_take.load(Ordering::Relaxed);
        assert!(!pool.idle(last + 100));
        assert!(pool.idle(last + 101));
        let never = start_with(&[1, 1, 1], None, None);
        never.pool.take();
        assert!(
            !never.pool.idle(u64::MAX),
            "idle_unload off: never cold again"
        );
        let pinned = start_with(&[1, 1, 1], Some(1), Some(Duration::ZERO));
        assert!(
            !pinned.pool.idle(u64::MAX),
            "an explicit prewarm never scales to zero"
        );
    }

    /// The filler starts when the component is in use, drops its instances and ends once it
    /// finds the component idle; the next request is cold, the one after starts it again.
    #[test]
    fn the_filler_scales_to_zero_and_starts_again() {
        let owner = start_with(
            &[5_000, 5_000, 5_000],
            None,
            Some(Duration::from_millis(20)),
        );
        let pool = &owner.pool;
        for round in 0..2 {
            assert!(pool.take().cold, "round {round}");
            pool.take();
            assert!(pool.filler_running.load(Ordering::Acquire));
            let deadline = Instant::now() + Duration::from_secs(10);
            while pool.filler_running.load(Ordering::Acquire) {
                assert!(Instant::now() < deadline, "the filler never stopped");
                std::thread::yield_now();
            }
            assert_eq!(pool.ready_now(), 0);
        }
    }

    /// The filler leaves a quarter of the runtime's slots to requests.
    #[test]
    fn instances_are_made_ahead_only_while_a_quarter_of_the_slots_is_free() {
        let slots = crate::limits::Slots::new(4);
        let mut held: Vec<_> = (0..2).map(|_| slots.guard()).collect();
        assert!(slots.room_to_prewarm(), "2 of 4 live");
        held.push(slots.guard());
        assert!(!slots.room_to_prewarm(), "3 of 4 live");
        held.pop();
        assert!(slots.room_to_prewarm(), "a dropped instance frees its slot");
    }

    #[test]
    fn a_failing_instantiation_fails_the_load() {
        let owner = Arc::new(Owner {
            pool: ReadyPool::new(None, crate::limits::Slots::new(1000)),
        });
        let make = || {
            Err(IsolateError::Instantiate {
                component: "t".into(),
                reason: "trap in start".into(),
            })
        };
        let filler = || |_: &Owner| Ok(0);
        let started = ReadyPool::start(
            &owner,
            "t".into(),
            |o: &Owner| &o.pool,
            |_: &Owner| 1,
            None,
            make,
            filler,
        );
        assert!(started.is_err());
    }
}
