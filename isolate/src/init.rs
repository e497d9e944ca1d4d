//! Snapshot after init: a filter component that exports `wizer-initialize: func()` has it run
//! once at load, in an instance with the filter's imports (its `config` map, log, WASI with
//! nothing behind it); wasmtime-wizer then rewrites the component so that its memories and
//! globals start as that call left them. Every request's instance starts from this snapshot
//! (the pool slot's copy-on-write image): parse config, build tables or warm an interpreter
//! once, not per request.
//!
//! wasmtime-wizer's `Wizer::run_component` needs wasmtime features Breakwater does not build
//! (async, gc, threads, cache); its two halves (`instrument_component`, `snapshot_component`)
//! do not, and this module drives them with the runtime's own engine and a synchronous store.

use crate::error::IsolateError;
use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use wasmtime::component::{Component, Instance, Lift, Linker, WasmList};
use wasmtime::Store;
use wasmtime_wizer::{ComponentInstanceState, Wizer};

/// The export that marks a component as wanting a snapshot after init (Wizer's convention).
pub(crate) const INIT_EXPORT: &str = "wizer-initialize";

/// Whether `component` exports `wizer-initialize`.
pub(crate) fn wants_init(component: &Component) -> bool {
    component.get_export_index(None, INIT_EXPORT).is_some()
}

/// Run the component's init once and return the snapshotted component's bytes.
pub(crate) fn snapshot<T: Send + 'static>(
    path: &Path,
    bytes: &[u8],
    linker: &Linker<T>,
    mut store: Store<T>,
) -> Result<Vec<u8>, IsolateError> {
    let fail = |stage: &str, e: &dyn std::fmt::Display| IsolateError::Load {
        path: path.to_path_buf(),
        reason: format!("snapshot after init: {stage}: {e:#}"),
    };
    let mut wizer = Wizer::new();
    // Removing the init export breaks the component's lift of it (wizer 48 rewrites only the
    // core module); keep it: the host never calls it again.
    wizer.keep_init_func(true);
    let (cx, instrumented) = wizer
        .instrument_component(bytes)
        .map_err(|e| fail("instrumenting", &e))?;
    let component =
        Component::new(store.engine(), &instrumented).map_err(|e| fail("compiling", &e))?;
    let instance = linker
        .instantiate(&mut store, &component)
        .map_err(|e| fail("instantiating", &e))?;
    let init = instance
        .get_typed_func::<(), ()>(&mut store, INIT_EXPORT)
        .map_err(|e| fail(INIT_EXPORT, &e))?;
    init.call(&mut store, ())
        .map_err(|e| fail("the init function failed", &e))?;
    let mut state = State::new(&mut store, instance);
    let taken = ready(wizer.snapshot_component(&cx, &mut state));
    state.outcome(taken).map_err(|e| fail("snapshot", &e))
}

/// Wizer reads the instance's state through accessor functions it added while instrumenting.
/// Shared with the handlers' warm-up snapshot, whose stores are async: the accessors are
/// called with `call_async`, which a synchronous store runs to its end at once. Wizer's
/// accessor interface cannot fail, but a guest can make its accessors fail (one left at its
/// memory limit cannot lift its state): the first failure is kept in `failed`, later reads
/// are skipped, and the caller refuses the snapshot.
pub(crate) struct State<'a, T: 'static> {
    store: &'a mut Store<T>,
    instance: Instance,
    failed: Option<String>,
}

impl<'a, T: Send> State<'a, T> {
    pub fn new(store: &'a mut Store<T>, instance: Instance) -> Self {
        Self {
            store,
            instance,
            failed: None,
        }
    }

    /// What the snapshot came to: `taken`, unless an accessor failed on the way.
    pub fn outcome<E: std::fmt::Display>(
        self,
        taken: Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, String> {
        match self.failed {
            Some(reason) => Err(format!("reading the instance's state: {reason}")),
            None => taken.map_err(|e| format!("{e:#}")),
        }
    }

    async fn call<R: Lift + Send + Sync + 'static>(
        &mut self,
        instance: &str,
        func: &str,
    ) -> Option<R> {
        if self.failed.is_some() {
            return None;
        }
        let called = self.try_call(instance, func).await;
        called.map_err(|e| self.failed = Some(e)).ok()
    }

    async fn try_call<R: Lift + Send + Sync + 'static>(
        &mut self,
        instance: &str,
        func: &str,
    ) -> Result<R, String> {
        let missing = |what: &str| format!("wizer's accessor {what} {instance}/{func} is missing");
        let (_, inst) = self
            .instance
            .get_export(&mut *self.store, None, instance)
            .ok_or_else(|| missing("instance"))?;
        let (_, f) = self
            .instance
            .get_export(&mut *self.store, Some(&inst), func)
            .ok_or_else(|| missing("function"))?;
        let f = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, f)
            .map_err(|e| format!("{instance}/{func}: {e}"))?;
        let (r,) = f
            .call_async(&mut *self.store, ())
            .await
            .map_err(|e| format!("{instance}/{func}: {e:#}"))?;
        Ok(r)
    }
}

impl<T: Send> ComponentInstanceState for State<'_, T> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        match self.call::<WasmList<u8>>(instance, func).await {
            Some(list) => contents(list.as_le_slice(&*self.store)),
            None => contents(&[]),
        }
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func).await.unwrap_or(0)
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func).await.unwrap_or(0)
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call::<f32>(instance, func)
            .await
            .unwrap_or(0.0)
            .to_bits()
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call::<f64>(instance, func)
            .await
            .unwrap_or(0.0)
            .to_bits()
    }
}

/// Drive a future that never waits (the calls of a synchronous store) to its end.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}
