//! How the listeners' event loops and the guest threads share a core (Linux's scheduler).
//!
//! An event loop serves every cheap request of its listener; a guest thread runs what is dear
//! (an interpreter's handler). When both want one core, the event loop goes first, in two
//! ways: guest threads run at a lower weight (`yield_to_event_loops`), so a saturated
//! interpreter route takes what is left rather than half, and event loops run with a short
//! time slice ([`set_event_loop_slice`]). The second is what keeps their latency: Linux's
//! EEVDF scheduler lets a running thread finish its slice (0.7-3 ms by default) before a
//! thread that wakes takes the core, unless the waking thread's slice is shorter (Linux 6.12
//! on); so an event loop woken by a client waited up to a guest's whole slice, whatever the
//! guest's weight.

use crate::runtime::GuestPriority;
use std::time::Duration;

/// Give the calling thread, and every thread it starts from now on (a thread inherits its
/// creator's scheduling), a time slice of `slice` (the kernel clamps it to 0.1-100 ms; kernels
/// before 6.12 ignore it): the node calls it before its listeners' threads start. Its nice
/// value is kept.
pub fn set_event_loop_slice(slice: Duration) -> std::io::Result<()> {
    let nice = rustix::process::getpriority_process(None).unwrap_or(0);
    set_fair(nice, Some(slice))
}

/// Guest threads give way to the listeners' event loops: 10 nice levels down by default (about
/// a tenth of a contended core), or Linux's `SCHED_IDLE` with [`GuestPriority::Idle`] (where
/// it is refused, a seccomp profile, niced instead); either way with the kernel's default
/// slice, not the short one of the event loop that may have started the thread. Best effort:
/// where both are refused, the threads keep the priority they inherited.
pub(crate) fn yield_to_event_loops(priority: GuestPriority) {
    if priority == GuestPriority::Idle {
        match sched_idle() {
            Ok(()) => return,
            Err(e) => tracing::debug!(error = %e, "SCHED_IDLE refused; guest threads niced"),
        }
    }
    let now = rustix::process::getpriority_process(None).unwrap_or(0);
    let nice = (now + 10).min(19);
    if let Err(e) = set_fair(nice, None) {
        tracing::debug!(error = %e, "sched_setattr refused; guest threads niced only");
        if let Err(e) = rustix::process::setpriority_process(None, nice) {
            tracing::debug!(error = %e, "guest thread priority unchanged");
        }
    }
}

/// The calling thread under `SCHED_OTHER` with `nice` and `slice` (`None`: the kernel's
/// default slice). rustix has no `sched_setattr`: one libc system call.
#[allow(unsafe_code)]
fn set_fair(nice: i32, slice: Option<Duration>) -> std::io::Result<()> {
    let attr = libc::sched_attr {
        size: std::mem::size_of::<libc::sched_attr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_flags: 0,
        sched_nice: nice,
        sched_priority: 0,
        // For a fair policy, the slice in nanoseconds; 0 is the kernel's default.
        sched_runtime: slice.map_or(0, |s| u64::try_from(s.as_nanos()).unwrap_or(u64::MAX)),
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: pid 0 names the calling thread; `attr` is a valid `sched_attr` whose `size`
    // says how much of it the kernel may read, and it outlives the call, which only reads it.
    match unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const _, 0) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Put the calling thread under `SCHED_IDLE` (no privilege needed to lower a thread's policy).
/// rustix has no `sched_setscheduler`: one libc call.
#[allow(unsafe_code)]
fn sched_idle() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 names the calling thread, and `param` is a valid `sched_param` that
    // outlives the call, which only reads it.
    match unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's time slice in nanoseconds (`se.slice` in `/proc/thread-self/sched`).
    fn slice() -> u64 {
        let sched = std::fs::read_to_string("/proc/thread-self/sched").unwrap();
        let line = sched.lines().find(|l| l.starts_with("se.slice"));
        let line = line.unwrap_or_else(|| panic!("no se.slice (Linux before 6.6?):\n{sched}"));
        line.rsplit(' ').next().unwrap().trim().parse().unwrap()
    }

    fn nice() -> i32 {
        rustix::process::getpriority_process(None).unwrap()
    }

    #[test]
    fn event_loops_get_a_short_slice_their_threads_inherit_and_guest_threads_give_up() {
        std::thread::spawn(|| {
            let (default, nice_before) = (slice(), nice());
            assert_ne!(default, 100_000, "the kernel's default slice is not 100 µs");
            set_event_loop_slice(Duration::from_micros(100)).unwrap();
            assert_eq!((slice(), nice()), (100_000, nice_before), "nice kept");
            // An event loop started from here inherits it; a guest thread started from an
            // event loop goes back to the default, 10 nice levels down.
            let (inherited, guest) = std::thread::spawn(|| {
                let inherited = slice();
                yield_to_event_loops(GuestPriority::Low);
                (inherited, (slice(), nice()))
            })
            .join()
            .unwrap();
            assert_eq!(inherited, 100_000);
            assert_eq!(guest, (default, (nice_before + 10).min(19)));
        })
        .join()
        .unwrap();
    }
}
