//! What filters and handlers share when they make instances: a component's limits, derived
//! once at load (deadline in epoch ticks, memory limit at most the runtime's, concurrency
//! gate), and the one store builder that applies them.

use crate::error::IsolateError;
use crate::limits::{Gate, MemoryLimit};
use crate::placement::Placement;
use crate::runtime::RuntimeSettings;
use std::time::Duration;
use wasmtime::{Engine, Store};

/// The least time an instantiation may take before it is stopped.
const INSTANTIATE_DEADLINE: Duration = Duration::from_secs(1);

/// Store data that carries the instance's memory limit.
pub(crate) trait HostData: Send + 'static {
    fn memory_limit(&mut self) -> &mut MemoryLimit;
}

/// A component's limits.
pub(crate) struct Limits {
    /// Wall-clock limit of a call (filters) or of a whole request (handlers).
    pub deadline: Duration,
    /// `deadline` in epoch ticks, plus one for the tick in progress.
    pub deadline_ticks: u64,
    /// Linear memory per instance: the component's setting, at most the runtime's.
    pub max_memory_bytes: usize,
    /// The deadline of an instantiation (start functions), in epoch ticks.
    pub instantiate_ticks: u64,
    /// Requests at once; more fail at once.
    pub gate: Gate,
    /// On or off the event loop, from what calls cost.
    pub placement: Placement,
    /// The runtime's live instances, each store counted.
    pub slots: std::sync::Arc<crate::limits::Slots>,
}

impl Limits {
    pub fn new(
        slots: &std::sync::Arc<crate::limits::Slots>,
        runtime: &RuntimeSettings,
        deadline: Duration,
        max_memory_bytes: usize,
        max_concurrency: usize,
    ) -> Self {
        let tick = runtime.epoch_tick.as_nanos().max(1);
        Self {
            deadline,
            deadline_ticks: deadline.as_nanos().div_ceil(tick) as u64 + 1,
            instantiate_ticks: deadline.max(INSTANTIATE_DEADLINE).as_nanos().div_ceil(tick) as u64
                + 1,
            max_memory_bytes: max_memory_bytes.min(runtime.max_memory_bytes),
            gate: Gate::new(max_concurrency),
            placement: Placement::new(runtime.offload_above),
            slots: slots.clone(),
        }
    }

    /// A memory limit for one instance.
    pub fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit {
            _slot: Some(self.slots.guard()),
            ..MemoryLimit::new(self.max_memory_bytes)
        }
    }

    /// A store for one instance: `data`, its memory limit enforced, and code that runs past
    /// its deadline trapped. Until a call sets the call's deadline, the deadline is the
    /// instantiation's (`INSTANTIATE_DEADLINE` at least): instantiating runs only start
    /// functions (proved at load), and a busy machine may deschedule it for longer than a
    /// filter's 50 ms call deadline, which once failed an instantiation under a full test run.
    pub fn store<T: HostData>(&self, engine: &Engine, data: T) -> Store<T> {
        let mut store = Store::new(engine, data);
        store.limiter(|s| s.memory_limit());
        store.set_epoch_deadline(self.instantiate_ticks);
        store.epoch_deadline_trap();
        store
    }

    /// Name what went wrong in a call into `component` (see [`crate::limits::classify`]).
    pub fn classify(
        &self,
        component: &str,
        limit: &MemoryLimit,
        e: wasmtime::Error,
    ) -> IsolateError {
        crate::limits::classify(component, limit, self.deadline, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_runtime() {
        let runtime = RuntimeSettings {
            epoch_tick: Duration::from_millis(2),
            max_memory_bytes: 1 << 20,
            ..RuntimeSettings::default()
        };
        let slots = crate::limits::Slots::new(10);
        let l = Limits::new(&slots, &runtime, Duration::from_millis(5), 64 << 20, 3);
        assert_eq!(
            l.deadline_ticks, 4,
            "5 ms in 2 ms ticks, rounded up, plus one"
        );
        assert_eq!(l.instantiate_ticks, 501, "1 s in 2 ms ticks, plus one");
        assert_eq!(l.max_memory_bytes, 1 << 20, "clamped to the runtime's");
        let permits: Vec<_> = (0..3).map(|_| l.gate.enter("c").unwrap()).collect();
        assert!(l.gate.enter("c").is_err());
        drop(permits);
        assert_eq!(l.gate.in_use(), 0);
    }
}
