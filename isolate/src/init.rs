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
    let mut state = State {
        store: &mut store,
        instance,
    };
    ready(wizer.snapshot_component(&cx, &mut state)).map_err(|e| fail("snapshot", &e))
}

/// Wizer reads the instance's state through accessor functions it added while instrumenting.
/// Shared with the handlers' warm-up snapshot, whose stores are async: the accessors are
/// called with `call_async`, which a synchronous store runs to its end at once.
pub(crate) struct State<'a, T: 'static> {
    pub store: &'a mut Store<T>,
    pub instance: Instance,
}

impl<T: Send> State<'_, T> {
    async fn call<R: Lift + Send + Sync + 'static>(&mut self, instance: &str, func: &str) -> R {
        let (_, inst) = self
            .instance
            .get_export(&mut *self.store, None, instance)
            .expect("wizer's accessor instance");
        let (_, f) = self
            .instance
            .get_export(&mut *self.store, Some(&inst), func)
            .expect("wizer's accessor function");
        let f = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, f)
            .expect("wizer's accessor type");
        let (r,) = f
            .call_async(&mut *self.store, ())
            .await
            .expect("wizer's accessor call");
        r
    }
}

impl<T: Send> ComponentInstanceState for State<'_, T> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        let list: WasmList<u8> = self.call(instance, func).await;
        contents(list.as_le_slice(&*self.store));
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func).await
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func).await
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call::<f32>(instance, func).await.to_bits()
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call::<f64>(instance, func).await.to_bits()
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
