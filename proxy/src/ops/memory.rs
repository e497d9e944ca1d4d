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

/// The process's allocator: mimalloc, asked the way its fast path is built for. The `mimalloc`
/// crate asks for every block through `mi_malloc_aligned`, even at the alignment every block
/// has anyway; mimalloc 3 serves such a request from its size class's free list when that
/// list's next block happens to be aligned, and otherwise, for a size that is not a power of
/// two, by over-allocating and aligning by hand: 14 of the 80 allocations of a forwarded
/// request, about 190 instructions each (`bench/instructions.sh`; `bench/README.md`).
/// Here a layout aligned to 16 bytes or less, and no more than its size, goes to `mi_malloc`
/// (the rule Rust's `System` allocator applies to `malloc`): mimalloc rounds every size class
/// over a word to two words, so that its blocks have `max_align_t`'s alignment as `malloc`'s
/// must (`MI_MAX_ALIGN_SIZE`, `page-queue.c`); the rest goes to the aligned calls.
pub struct Allocator;

/// The alignment `mi_malloc` gives every block at least as large (`MI_MAX_ALIGN_SIZE`).
const MALLOC_ALIGN: usize = 16;

impl Allocator {
    fn plain(align: usize, size: usize) -> bool {
        align <= MALLOC_ALIGN && align <= size
    }

    /// A new block of `layout` from `plain` (size) or `aligned` (size, alignment).
    ///
    /// # Safety
    /// As `GlobalAlloc::alloc`.
    #[inline]
    #[allow(unsafe_code)]
    unsafe fn new_block(
        layout: std::alloc::Layout,
        plain: unsafe extern "C" fn(usize) -> *mut std::ffi::c_void,
        aligned: unsafe extern "C" fn(usize, usize) -> *mut std::ffi::c_void,
    ) -> *mut u8 {
        // SAFETY: mimalloc's allocation calls take any size and a power-of-two alignment,
        // which a `Layout` has.
        unsafe {
            match Self::plain(layout.align(), layout.size()) {
                true => plain(layout.size()).cast(),
                false => aligned(layout.size(), layout.align()).cast(),
            }
        }
    }
}

#[allow(unsafe_code)]
// SAFETY: each method passes the layout's size and, where `mi_malloc` would not give it, its
// alignment to mimalloc, whose blocks are freed by `mi_free` whatever call made them.
unsafe impl std::alloc::GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_malloc, mi_malloc_aligned};
        // SAFETY: as for the impl.
        unsafe { Self::new_block(layout, mi_malloc, mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_zalloc, mi_zalloc_aligned};
        // SAFETY: as for the impl.
        unsafe { Self::new_block(layout, mi_zalloc, mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from this allocator.
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        use libmimalloc_sys::{mi_realloc, mi_realloc_aligned};
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe {
            if Self::plain(layout.align(), new_size) {
                mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::Allocator;
    use std::alloc::{GlobalAlloc, Layout};

    /// Every block has its layout's alignment and keeps its bytes, through both entry points
    /// and across a `realloc`; eight at a time, so that blocks side by side in a size class
    /// that is not a multiple of the alignment (48 bytes aligned to 32) are seen.
    #[test]
    fn blocks_have_their_alignment_whichever_entry_point_serves_them() {
        let shapes = [
            (1, 1),
            (8, 8),
            (24, 8),
            (16, 16),
            (52, 16),
            (48, 16),
            (48, 32),
            (96, 32),
            (192, 64),
            (12_288, 8_192),
            (15_032, 8),
            (65_536, 1),
        ];
        for (size, align) in shapes {
            let layout = Layout::from_size_align(size, align).unwrap();
            let grown = Layout::from_size_align(size * 3, align).unwrap();
            for zeroed in [false, true] {
                // SAFETY: the layouts have a non-zero size; each block is used within its
                // layout and freed with it.
                unsafe {
                    let blocks: Vec<*mut u8> = (0..8)
                        .map(|_| match zeroed {
                            true => Allocator.alloc_zeroed(layout),
                            false => Allocator.alloc(layout),
                        })
                        .collect();
                    for &p in &blocks {
                        assert!(!p.is_null());
                        assert_eq!(p.addr() % align, 0, "{size} bytes aligned to {align}");
                        if zeroed {
                            assert!((0..size).all(|i| *p.add(i) == 0), "{size} zeroed");
                        }
                        p.write_bytes(0xa5, size);
                    }
                    for p in blocks {
                        let p = Allocator.realloc(p, layout, grown.size());
                        assert_eq!(p.addr() % align, 0, "{size} grown, aligned to {align}");
                        assert!((0..size).all(|i| *p.add(i) == 0xa5), "{size} kept");
                        Allocator.dealloc(p, grown);
                    }
                }
            }
        }
    }
}
