//! What a filter instance is granted: its store data (the filter API, WASI with nothing behind
//! it, the memory limit), the linker with exactly those parts, and the store its snapshot
//! init runs in.

use super::FilterSettings;
use crate::error::IsolateError;
use crate::host::filter_api::{FilterApi, FilterApiView};
use crate::host::heads::{HeadsView, Lent};
use crate::limits::MemoryLimit;
use crate::runtime::Runtime;
use crate::store::{HostData, Limits};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::Store;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Store data of one filter instance: the parts a filter is granted.
pub(crate) struct FilterState {
    api: FilterApi,
    pub(super) limit: MemoryLimit,
    /// WASI with nothing behind it ([`crate::host::wasi`]), built on the guest's first WASI
    /// call: most filters make none, and building one (random generators seeded from the OS)
    /// would be a good part of an instance's cost.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    /// The heads a 0.2 filter's call reads (empty between calls).
    lent: Lent,
}

impl FilterState {
    pub(super) fn new(api: FilterApi, limit: MemoryLimit) -> Self {
        Self {
            api,
            limit,
            wasi: None,
            table: ResourceTable::new(),
            lent: Lent::default(),
        }
    }
}

impl HostData for FilterState {
    fn memory_limit(&mut self) -> &mut MemoryLimit {
        &mut self.limit
    }
}

impl FilterApiView for FilterState {
    fn filter_api(&self) -> &FilterApi {
        &self.api
    }
}

impl HeadsView for FilterState {
    fn lent(&self) -> &Lent {
        &self.lent
    }
    fn lent_mut(&mut self) -> &mut Lent {
        &mut self.lent
    }
}

impl WasiView for FilterState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self
                .wasi
                .get_or_insert_with(|| crate::host::wasi::context(&[])),
            table: &mut self.table,
        }
    }
}

/// The imports a filter may have: WASI with nothing behind it, log and config, and (0.2) the
/// heads' methods. Only what is granted is linked.
pub(crate) fn linker(
    engine: &wasmtime::Engine,
    path: &Path,
) -> Result<Linker<FilterState>, IsolateError> {
    let mut linker: Linker<FilterState> = Linker::new(engine);
    let link_err = |e: wasmtime::Error| IsolateError::Link {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(link_err)?;
    crate::host::filter_api::add_to_linker(&mut linker).map_err(link_err)?;
    crate::host::heads::add_to_linker(&mut linker).map_err(link_err)?;
    Ok(linker)
}

/// A store for running a filter's `wizer-initialize` at load: its config and memory limit,
/// and a deadline of `deadline` (init may do more than a request, but never loop forever).
pub(crate) fn init_store(
    runtime: &Runtime,
    name: &str,
    settings: &FilterSettings,
    deadline: Duration,
) -> Store<FilterState> {
    let limits = Limits::new(
        &runtime.slots,
        &runtime.settings,
        deadline,
        settings.max_memory_bytes,
        1,
    );
    let api = FilterApi {
        filter: name.into(),
        config: Arc::new(settings.config.clone()),
    };
    limits.store(
        &runtime.engine,
        FilterState::new(api, limits.memory_limit()),
    )
}
