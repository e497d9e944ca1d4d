//! The Spin host interfaces Breakwater provides to handler components, so that components
//! built with the Spin SDKs run unchanged:
//!
//! * `spin:variables/variables@3.0.0`, `fermyon:spin/variables@2.0.0` and
//!   `wasi:config/store@0.2.0-draft-2024-09-27`: the component's `config:` map (the values
//!   Spin takes from `[variables]`).
//! * `spin:key-value/key-value@3.0.0`: the store `default`, in memory, shared by the
//!   instances of one component (as Spin's default store is shared by its instances), bounded
//!   in size. `get-keys` (a stream) is not provided: it traps when called.
//!
//! Everything else Spin offers (Redis, MQTT, SQL, LLM, the 2.0 key-value) is stubbed by
//! [`crate::imports`]: it links, and traps when called.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wasmtime::component::{
    ComponentType, Lift, Linker, Lower, Resource, ResourceTable, ResourceType,
};

/// Largest total size (keys and values) of one component's key-value store.
const KV_MAX_BYTES: usize = 16 << 20;

/// What the Spin interfaces of one component read and write.
#[derive(Clone)]
pub(crate) struct SpinCtx {
    variables: Arc<HashMap<String, String>>,
    kv: Arc<Mutex<Kv>>,
}

impl SpinCtx {
    pub fn new(variables: HashMap<String, String>) -> Self {
        Self {
            variables: Arc::new(variables),
            kv: Arc::new(Mutex::new(Kv::default())),
        }
    }

    /// The component's key-value store, locked.
    fn kv(&self) -> Result<std::sync::MutexGuard<'_, Kv>, KvError> {
        self.kv
            .lock()
            .map_err(|_| KvError::Other("store unavailable".into()))
    }

    fn variable(&self, name: &str) -> Result<String, VariablesError> {
        let valid = !name.is_empty()
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(VariablesError::InvalidName(name.into()));
        }
        self.variables
            .get(name)
            .cloned()
            .ok_or_else(|| VariablesError::Undefined(format!("no variable named {name}")))
    }
}

/// Store data that gives access to the Spin context and the resource table.
pub(crate) trait SpinView: Send + 'static {
    fn spin(&mut self) -> (&SpinCtx, &mut ResourceTable);
}

#[derive(Default)]
struct Kv {
    entries: HashMap<String, Vec<u8>>,
    bytes: usize,
}

/// An open handle on the key-value store (the resource `store`).
pub(crate) struct KvHandle;

#[derive(ComponentType, Lift, Lower, Clone, Debug)]
#[component(variant)]
enum VariablesError {
    #[component(name = "invalid-name")]
    InvalidName(String),
    #[component(name = "undefined")]
    Undefined(String),
    #[component(name = "provider")]
    #[allow(dead_code)]
    Provider(String),
    #[component(name = "other")]
    #[allow(dead_code)]
    Other(String),
}

#[derive(ComponentType, Lift, Lower, Clone, Debug)]
#[component(variant)]
enum ConfigError {
    #[component(name = "upstream")]
    #[allow(dead_code)]
    Upstream(String),
    #[component(name = "io")]
    #[allow(dead_code)]
    Io(String),
}

#[derive(ComponentType, Lift, Lower, Clone, Debug)]
#[component(variant)]
enum KvError {
    #[component(name = "store-table-full")]
    #[allow(dead_code)]
    StoreTableFull,
    #[component(name = "no-such-store")]
    NoSuchStore,
    #[component(name = "access-denied")]
    #[allow(dead_code)]
    AccessDenied,
    #[component(name = "other")]
    Other(String),
}

/// Add the Spin interfaces to `linker`: the synchronous ones always, the async ones (Spin 3)
/// when its engine has the component model's concurrency support (`concurrent`).
pub(crate) fn add_to_linker<T: SpinView>(
    linker: &mut Linker<T>,
    concurrent: bool,
) -> wasmtime::Result<()> {
    let mut vars2 = linker.instance("fermyon:spin/variables@2.0.0")?;
    vars2.func_wrap("get", |mut store, (name,): (String,)| {
        Ok((store.data_mut().spin().0.variable(&name),))
    })?;
    let mut config = linker.instance("wasi:config/store@0.2.0-draft-2024-09-27")?;
    config.func_wrap("get", |mut store, (name,): (String,)| {
        let value: Result<Option<String>, ConfigError> =
            Ok(store.data_mut().spin().0.variables.get(&name).cloned());
        Ok((value,))
    })?;
    config.func_wrap("get-all", |mut store, (): ()| {
        let mut all: Vec<(String, String)> = store
            .data_mut()
            .spin()
            .0
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort();
        Ok((Ok::<_, ConfigError>(all),))
    })?;
    if !concurrent {
        return Ok(());
    }

    let mut vars = linker.instance("spin:variables/variables@3.0.0")?;
    vars.func_wrap_concurrent("get", |acc, (name,): (String,)| {
        Box::pin(async move { Ok((acc.with(|mut a| a.data_mut().spin().0.variable(&name)),)) })
    })?;

    let mut kv = linker.instance("spin:key-value/key-value@3.0.0")?;
    kv.resource(
        "store",
        ResourceType::host::<KvHandle>(),
        |mut store, rep| {
            store
                .data_mut()
                .spin()
                .1
                .delete(Resource::<KvHandle>::new_own(rep))?;
            Ok(())
        },
    )?;
    kv.func_wrap_concurrent("[static]store.open", |acc, (label,): (String,)| {
        Box::pin(async move {
            let result = acc.with(|mut a| -> wasmtime::Result<_> {
                if label != "default" {
                    return Ok(Err(KvError::NoSuchStore));
                }
                let handle = a.data_mut().spin().1.push(KvHandle)?;
                Ok(Ok(handle))
            })?;
            Ok((result,))
        })
    })?;
    kv.func_wrap_concurrent(
        "[method]store.get",
        |acc, (_this, key): (Resource<KvHandle>, String)| {
            Box::pin(async move {
                let value = acc.with(|mut a| {
                    let kv = a.data_mut().spin().0.kv()?;
                    Ok::<_, KvError>(kv.entries.get(&key).cloned())
                });
                Ok((value,))
            })
        },
    )?;
    kv.func_wrap_concurrent(
        "[method]store.set",
        |acc, (_this, key, value): (Resource<KvHandle>, String, Vec<u8>)| {
            Box::pin(async move {
                let result = acc.with(|mut a| {
                    let mut kv = a.data_mut().spin().0.kv()?;
                    let old = kv.entries.get(&key).map_or(0, |v| key.len() + v.len());
                    let bytes = kv.bytes - old + key.len() + value.len();
                    if bytes > KV_MAX_BYTES {
                        return Err(KvError::Other(format!(
                            "store full: {KV_MAX_BYTES} bytes at most"
                        )));
                    }
                    kv.bytes = bytes;
                    kv.entries.insert(key, value);
                    Ok(())
                });
                Ok((result,))
            })
        },
    )?;
    kv.func_wrap_concurrent(
        "[method]store.delete",
        |acc, (_this, key): (Resource<KvHandle>, String)| {
            Box::pin(async move {
                let result = acc.with(|mut a| {
                    let mut kv = a.data_mut().spin().0.kv()?;
                    if let Some(v) = kv.entries.remove(&key) {
                        kv.bytes -= key.len() + v.len();
                    }
                    Ok::<_, KvError>(())
                });
                Ok((result,))
            })
        },
    )?;
    kv.func_wrap_concurrent(
        "[method]store.exists",
        |acc, (_this, key): (Resource<KvHandle>, String)| {
            Box::pin(async move {
                let result = acc.with(|mut a| {
                    let kv = a.data_mut().spin().0.kv()?;
                    Ok::<_, KvError>(kv.entries.contains_key(&key))
                });
                Ok((result,))
            })
        },
    )?;
    // A stream of keys: not provided yet.
    kv.func_new_concurrent("[method]store.get-keys", |_, _, _, _| {
        Box::pin(async {
            Err(wasmtime::format_err!(
                "`spin:key-value/key-value@3.0.0#[method]store.get-keys` is not provided by \
                 this host (it traps when called)"
            ))
        })
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names_follow_spin_rules() {
        let ctx = SpinCtx::new(HashMap::from([("greeting".into(), "hi".into())]));
        assert_eq!(ctx.variable("greeting").unwrap(), "hi");
        assert!(matches!(
            ctx.variable("missing"),
            Err(VariablesError::Undefined(_))
        ));
        assert!(matches!(
            ctx.variable("Bad-Name"),
            Err(VariablesError::InvalidName(_))
        ));
        assert!(matches!(
            ctx.variable(""),
            Err(VariablesError::InvalidName(_))
        ));
    }
}
