//! How the guest threads share a core with the listeners' event loops (Linux's scheduler):
//! when both want it, a request on an event loop (cheap, a client waiting) goes first, so a
//! saturated interpreter route takes what is left rather than half.

use crate::runtime::GuestPriority;

/// Guest threads give way to the listeners' event loops: 10 nice levels down by default (about
/// a tenth of a contended core), or Linux's `SCHED_IDLE` with [`GuestPriority::Idle`] (where
/// it is refused, a seccomp profile, niced instead). Best effort: where `setpriority` is
/// refused too, the threads keep the process's priority.
pub(crate) fn yield_to_event_loops(priority: GuestPriority) {
    if priority == GuestPriority::Idle {
        match sched_idle() {
            Ok(()) => return,
            Err(e) => tracing::debug!(error = %e, "SCHED_IDLE refused; guest threads niced"),
        }
    }
    // `None`: the calling thread (Linux's `getpriority`/`setpriority` name threads).
    let now = rustix::process::getpriority_process(None).unwrap_or(0);
    if let Err(e) = rustix::process::setpriority_process(None, (now + 10).min(19)) {
        tracing::debug!(error = %e, "guest thread priority unchanged");
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
