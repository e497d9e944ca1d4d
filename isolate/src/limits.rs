//! What filters and handlers share: the per-instance memory limit, and how a failed call is
//! classified into an [`IsolateError`].

use crate::error::IsolateError;
use std::time::Duration;
use wasmtime::{ResourceLimiter, Trap, WasmBacktrace};

/// The memory limit of one instance, and whether the guest ran into it.
pub(crate) struct MemoryLimit {
    pub max: usize,
    pub exceeded: bool,
}

impl MemoryLimit {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            exceeded: false,
        }
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
    let filter = component.to_string();
    if limit.exceeded {
        return IsolateError::OutOfMemory {
            filter,
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
        filter,
        message,
        backtrace,
    }
}

pub(crate) fn deadline_error(component: &str, deadline: Duration) -> IsolateError {
    IsolateError::Deadline {
        filter: component.to_string(),
        deadline_ms: deadline.as_millis() as u64,
    }
}
