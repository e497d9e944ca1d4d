//! An idle event loop gives back what its allocator kept from a burst.
//!
//! mimalloc gives a freed page back to the kernel after a delay (10 ms), but only when the
//! thread that freed it allocates or frees again. An event loop that turns idle after a burst
//! (10 000 clients that each sent a request and stay connected, say) never does, and keeps the
//! burst's pages for as long as it idles: about 11 MiB after 10 000 requests in flight at
//! once (bench/README.md, Connections). So each event loop asks its allocator, once a second,
//! to give back what it no longer uses (`mi_collect`: the pages whose delay has passed; a walk
//! of its heap's pages, microseconds).

use std::cell::Cell;
use std::time::Duration;

/// How often an event loop collects.
const EVERY: Duration = Duration::from_secs(1);

thread_local! {
    /// Whether this thread's collector runs.
    static COLLECTING: Cell<bool> = const { Cell::new(false) };
}

/// Start the collector of the calling thread's event loop, once per thread (after the first
/// call, one thread-local read). Called as each client connection starts, on its event loop.
pub fn collect_on_this_loop() {
    if cfg!(feature = "system-alloc") || COLLECTING.replace(true) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    // On a current-thread runtime (one event loop per thread, the default), the task stays
    // on this thread; with work stealing it may run on any of the runtime's threads.
    runtime.spawn(async {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            collect();
        }
    });
}

#[allow(unsafe_code)]
fn collect() {
    // SAFETY: `mi_collect` takes no pointers; it frees what the calling thread's heap holds
    // unused (with `false`, only what mimalloc would free later anyway), from any thread.
    unsafe { libmimalloc_sys::mi_collect(false) }
}
