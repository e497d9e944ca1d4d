//! What filters and handlers share: the per-instance memory limit, and how a failed call is
//! classified into an [`IsolateError`].

use crate::error::IsolateError;
use std::time::Duration;
use wasmtime::{ResourceLimiter, Trap, WasmBacktrace};

/// The memory limit of one instance, and whether the guest ran into it.
pub(crate) struct MemoryLimit {
    pub max: usize,
    pub exceeded: bool,
    /// Counts the instance among the runtime's live ones while its store lives.
    pub _slot: Option<SlotGuard>,
}

impl MemoryLimit {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            exceeded: false,
            _slot: None,
        }
    }
}

/// The instances alive in a runtime, so that instances made ahead of need (by the filler
/// threads) never take the pool slots requests need: those are made only while a quarter of
/// `max_instances` is free.
pub(crate) struct Slots {
    live: std::sync::atomic::AtomicUsize,
    max: usize,
}

impl Slots {
    pub fn new(max_instances: u32) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            live: std::sync::atomic::AtomicUsize::new(0),
            max: max_instances as usize,
        })
    }

    /// Count one more live instance, until the guard drops.
    pub fn guard(self: &std::sync::Arc<Self>) -> SlotGuard {
        self.live.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        SlotGuard(self.clone())
    }

    /// Whether an instance may be made ahead of need now.
    pub fn room_to_prewarm(&self) -> bool {
        self.live.load(std::sync::atomic::Ordering::Relaxed) < self.max * 3 / 4
    }
}

pub(crate) struct SlotGuard(std::sync::Arc<Slots>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0
            .live
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.exceeded = true;
            // Trap rather than return -1: a guest that ignores a failed grow would go on.
            return Err(wasmtime::Error::msg("memory limit exceeded"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(max.is_none_or(|m| desired <= m))
    }
}

/// Name what went wrong in a call into `component`.
pub(crate) fn classify(
    component: &str,
    limit: &MemoryLimit,
    deadline: Duration,
    e: wasmtime::Error,
) -> IsolateError {
    if limit.exceeded {
        return IsolateError::OutOfMemory {
            component: component.to_string(),
            limit_bytes: limit.max,
        };
    }
    if let Some(Trap::Interrupt) = e.downcast_ref::<Trap>() {
        return deadline_error(component, deadline);
    }
    let backtrace = e
        .downcast_ref::<WasmBacktrace>()
        .map(|b| b.to_string())
        .unwrap_or_default();
    let message = match e.downcast_ref::<Trap>() {
        Some(t) => t.to_string(),
        None => format!("{e:#}"),
    };
    IsolateError::Trap {
        component: component.to_string(),
        message,
        backtrace,
    }
}

pub(crate) fn deadline_error(component: &str, deadline: Duration) -> IsolateError {
    IsolateError::Deadline {
        component: component.to_string(),
        deadline_ms: deadline.as_millis() as u64,
    }
}

/// The concurrency limit of one component: requests past it fail at once, never queue.
pub(crate) struct Gate {
    in_use: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    limit: usize,
}

/// One request's place under the limit; given back when dropped.
pub(crate) struct Permit(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Gate {
    pub fn new(limit: usize) -> Self {
        Self {
            in_use: Default::default(),
            limit,
        }
    }

    pub fn enter(&self, component: &str) -> Result<Permit, IsolateError> {
        use std::sync::atomic::Ordering;
        if self.in_use.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.in_use.fetch_sub(1, Ordering::AcqRel);
            return Err(IsolateError::LimitReached {
                component: component.to_string(),
                limit: self.limit,
            });
        }
        Ok(Permit(self.in_use.clone()))
    }

    /// Requests that may still enter now.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.in_use())
    }

    pub fn in_use(&self) -> usize {
        self.in_use.load(std::sync::atomic::Ordering::Relaxed)
    }
}
