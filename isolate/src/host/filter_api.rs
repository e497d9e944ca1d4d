//! The filter world's host functions: `log` (into the host's structured log, tagged with the
//! filter) and `config.get` (the component's `config:` map).

use crate::abi::Level;
use std::collections::HashMap;
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime::StoreContextMut;

/// The interfaces of both versions of the filter package (0.1 and 0.2 have the same `log`
/// and `config`).
const LOG: [&str; 2] = ["breakwater:filter/log@0.1.0", "breakwater:filter/log@0.2.0"];
const CONFIG: [&str; 2] = [
    "breakwater:filter/config@0.1.0",
    "breakwater:filter/config@0.2.0",
];

/// What `log` and `config` read: the filter's name and its config map.
#[derive(Clone)]
pub(crate) struct FilterApi {
    pub filter: Arc<str>,
    pub config: Arc<HashMap<String, String>>,
}

/// Store data that carries a [`FilterApi`].
pub(crate) trait FilterApiView: Send + 'static {
    fn filter_api(&self) -> &FilterApi;
}

pub(crate) fn add_to_linker<T: FilterApiView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    for (log, config) in LOG.into_iter().zip(CONFIG) {
        linker.instance(log)?.func_wrap(
            "log",
            |store: StoreContextMut<'_, T>, (level, msg): (Level, String)| {
                let filter = &*store.data().filter_api().filter;
                match level {
                    Level::Debug => tracing::debug!(filter, "{msg}"),
                    Level::Info => tracing::info!(filter, "{msg}"),
                    Level::Warn => tracing::warn!(filter, "{msg}"),
                    Level::Error => tracing::error!(filter, "{msg}"),
                }
                Ok(())
            },
        )?;
        linker.instance(config)?.func_wrap(
            "get",
            |store: StoreContextMut<'_, T>, (key,): (String,)| {
                Ok((store.data().filter_api().config.get(&key).cloned(),))
            },
        )?;
    }
    Ok(())
}
