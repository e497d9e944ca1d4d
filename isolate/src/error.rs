//! The isolate's errors. wasmtime's errors and traps are classified here and never leak out.

use std::path::PathBuf;

/// Why a component could not be loaded or a call did not produce a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    /// The file could not be read, is not a component, or does not fit the filter world.
    #[error("{}: cannot load component: {reason}", path.display())]
    Load { path: PathBuf, reason: String },
    /// An import the component needs is not granted (or does not exist).
    #[error("{}: {reason}", path.display())]
    Link { path: PathBuf, reason: String },
    /// The component exports neither filter phase.
    #[error("{}: exports no filter phase (breakwater:filter/on-request, on-response, on-request-body or on-response-body)", path.display())]
    NoPhase { path: PathBuf },
    /// Creating an instance failed (e.g. its start function trapped, or the pool is full).
    #[error("component {component}: instantiation failed: {reason}")]
    Instantiate { component: String, reason: String },
    /// The guest trapped (unreachable, out-of-bounds access, ...).
    #[error("component {component}: trap: {message}\n{backtrace}")]
    Trap {
        component: String,
        message: String,
        backtrace: String,
    },
    /// The call ran past its wall-clock deadline and was interrupted.
    #[error("component {component}: deadline of {deadline_ms} ms exceeded")]
    Deadline { component: String, deadline_ms: u64 },
    /// The guest tried to grow its memory or tables past the limit.
    #[error("component {component}: memory limit of {limit_bytes} bytes exceeded")]
    OutOfMemory {
        component: String,
        limit_bytes: usize,
    },
    /// The filter's concurrency limit is reached: fail fast rather than queue.
    #[error("component {component}: concurrency limit of {limit} reached")]
    LimitReached { component: String, limit: usize },
    /// A body a filter's body phase would see is larger than the component's limit.
    #[error("component {component}: body larger than its limit of {limit_bytes} bytes")]
    BodyTooLarge {
        component: String,
        limit_bytes: usize,
    },
    /// The guest returned something that is not valid HTTP (e.g. a bad header name).
    #[error("component {component}: invalid output: {reason}")]
    InvalidOutput { component: String, reason: String },
}

impl IsolateError {
    /// A short, stable name for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            IsolateError::Load { .. }
            | IsolateError::Link { .. }
            | IsolateError::NoPhase { .. } => "load",
            IsolateError::Instantiate { .. } => "instantiate",
            IsolateError::Trap { .. } => "trap",
            IsolateError::Deadline { .. } => "deadline",
            IsolateError::OutOfMemory { .. } => "out_of_memory",
            IsolateError::LimitReached { .. } => "limit_reached",
            IsolateError::InvalidOutput { .. } => "invalid_output",
            IsolateError::BodyTooLarge { .. } => "body_too_large",
        }
    }
}
