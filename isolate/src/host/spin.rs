//! The Spin host interfaces Breakwater provides to handler components, so that components
//! built with the Spin SDKs run unchanged:
//!
//! * `spin:variables/variables@3.0.0`, `fermyon:spin/variables@2.0.0` and
//!   `wasi:config/store@0.2.0-draft-2024-09-27`: the component's `config:` map (the values
//!   Spin takes from `[variables]`).
//! * `spin:key-value/key-value@3.0.0` and `fermyon:spin/key-value@2.0.0`: the store
//!   `default`, shared by the instances of one component (as Spin's default store is shared by its instances): in memory and bounded in
//!   size, or a [`SharedStore`] the embedder provides (the proxy's is Redis, shared by every
//!   node of a fleet). `get-keys` streams the keys as they were when it was called.
//!
//! * `spin:redis/redis@3.0.0` and `fermyon:spin/redis@2.0.0` (`spin_redis`): outbound Redis
//!   to the component's allowed `redis://HOST:PORT` addresses.
//!
//! Everything else Spin offers (MQTT, SQL, LLM) is stubbed by
//! [`crate::imports`]: it links, and traps when called.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use wasmtime::component::{
    ComponentType, FutureReader, Lift, Linker, LinkerInstance, Lower, Resource, ResourceTable,
    ResourceType, StreamReader,
};

/// Largest total size (keys and values) of one component's key-value store.
const KV_MAX_BYTES: usize = 16 << 20;

/// A key-value store kept outside this process (the proxy's is Redis), used as a component's
/// Spin `default` store. Each call fails fast with a message (the guest gets it as the
/// store's `other` error) rather than waiting past the request's deadline.
pub trait SharedStore: Send + Sync + 'static {
    fn get(&self, key: String) -> StoreFuture<Option<Vec<u8>>>;
    fn set(&self, key: String, value: Vec<u8>) -> StoreFuture<()>;
    fn delete(&self, key: String) -> StoreFuture<()>;
    fn exists(&self, key: String) -> StoreFuture<bool>;
    /// Every key of the store, in no particular order.
    fn keys(&self) -> StoreFuture<Vec<String>>;
}

/// What a [`SharedStore`] call returns.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send>>;

/// A component's [`SharedStore`], for [`crate::HandlerSettings::key_value`].
#[derive(Clone)]
pub struct SharedKv(pub Arc<dyn SharedStore>);

impl std::fmt::Debug for SharedKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedKv(..)")
    }
}

/// Where a component's `default` store lives.
#[derive(Clone)]
enum KvStore {
    Memory(Arc<Mutex<Kv>>),
    Shared(Arc<dyn SharedStore>),
}

/// What the Spin interfaces of one component read and write.
#[derive(Clone)]
pub(crate) struct SpinCtx {
    variables: Arc<HashMap<String, String>>,
    kv: KvStore,
    /// `allowed_outbound_hosts`, for outbound Redis (`redis://HOST:PORT` entries).
    allowed: Arc<[String]>,
}

impl SpinCtx {
    /// `shared`: the store kept elsewhere; `None`: one in memory for this component.
    pub fn new(
        variables: HashMap<String, String>,
        shared: Option<SharedKv>,
        allowed: Arc<[String]>,
    ) -> Self {
        Self {
            variables: Arc::new(variables),
            kv: match shared {
                Some(s) => KvStore::Shared(s.0),
                None => KvStore::Memory(Arc::new(Mutex::new(Kv::default()))),
            },
            allowed,
        }
    }

    pub fn allowed_outbound_hosts(&self) -> Arc<[String]> {
        self.allowed.clone()
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

/// An open handle on the key-value store (the resource `store` of the 3.0 interface).
pub(crate) struct KvHandle;

/// The same for the 2.0 interface: a type of its own, so that a component importing both
/// versions gets two distinct resource types, as it declared them.
pub(crate) struct KvHandle2;

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
    add_key_value_2(linker)?;
    super::spin_redis::add_to_linker_2(linker)?;
    if !concurrent {
        return Ok(());
    }

    let mut vars = linker.instance("spin:variables/variables@3.0.0")?;
    vars.func_wrap_concurrent("get", |acc, (name,): (String,)| {
        Box::pin(async move { Ok((acc.with(|mut a| a.data_mut().spin().0.variable(&name)),)) })
    })?;

    let mut kv = linker.instance("spin:key-value/key-value@3.0.0")?;
    define_resource::<T, KvHandle>(&mut kv, "store")?;
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
            Box::pin(async move { Ok((kv_of(acc).get(key).await,)) })
        },
    )?;
    kv.func_wrap_concurrent(
        "[method]store.set",
        |acc, (_this, key, value): (Resource<KvHandle>, String, Vec<u8>)| {
            Box::pin(async move { Ok((kv_of(acc).set(key, value).await,)) })
        },
    )?;
    kv.func_wrap_concurrent(
        "[method]store.delete",
        |acc, (_this, key): (Resource<KvHandle>, String)| {
            Box::pin(async move { Ok((kv_of(acc).delete(key).await,)) })
        },
    )?;
    kv.func_wrap_concurrent(
        "[method]store.exists",
        |acc, (_this, key): (Resource<KvHandle>, String)| {
            Box::pin(async move { Ok((kv_of(acc).exists(key).await,)) })
        },
    )?;
    // The keys as a stream, read whole first (the memory store is bounded, a shared one is
    // scanned once), and the outcome as a future.
    kv.func_wrap_concurrent(
        "[method]store.get-keys",
        |acc, (_this,): (Resource<KvHandle>,)| {
            Box::pin(async move {
                let (keys, outcome) = match kv_of(acc).keys().await {
                    Ok(keys) => (keys, Ok(())),
                    Err(e) => (Vec::new(), Err(e)),
                };
                acc.with(|mut a| -> wasmtime::Result<_> {
                    let stream = StreamReader::<String>::new(&mut a, keys)?;
                    let done =
                        FutureReader::new(
                            &mut a,
                            async move { Ok::<_, wasmtime::Error>(outcome) },
                        )?;
                    Ok(((stream, done),))
                })
            })
        },
    )?;
    super::spin_redis::add_to_linker(linker)
}

/// Define the host resource `name` (of Rust type `R`) in `instance`: its guest handles live in
/// the instance's resource table and leave it when the guest drops them.
pub(crate) fn define_resource<T: SpinView, R: Send + 'static>(
    instance: &mut LinkerInstance<'_, T>,
    name: &str,
) -> wasmtime::Result<()> {
    instance.resource(name, ResourceType::host::<R>(), |mut store, rep| {
        store
            .data_mut()
            .spin()
            .1
            .delete(Resource::<R>::new_own(rep))?;
        Ok(())
    })
}

/// The component's store, taken from the instance's context (a cheap clone) so that the call
/// does not hold the store while it waits.
fn kv_of<T: SpinView>(acc: &wasmtime::component::Accessor<T>) -> KvStore {
    acc.with(|mut a| a.data_mut().spin().0.kv.clone())
}

/// `fermyon:spin/key-value@2.0.0`, the key-value interface of Spin 2 components (Spin SDKs
/// before WASI 0.3): the same `default` store as the 3.0 interface, with blocking calls (the
/// host side still waits without blocking the thread).
fn add_key_value_2<T: SpinView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let mut kv = linker.instance("fermyon:spin/key-value@2.0.0")?;
    define_resource::<T, KvHandle2>(&mut kv, "store")?;
    kv.func_wrap("[static]store.open", |mut store, (label,): (String,)| {
        if label != "default" {
            return Ok((Err(KvError::NoSuchStore),));
        }
        Ok((Ok(store.data_mut().spin().1.push(KvHandle2)?),))
    })?;
    kv.func_wrap_async(
        "[method]store.get",
        |mut store, (_this, key): (Resource<KvHandle2>, String)| {
            let kv = store.data_mut().spin().0.kv.clone();
            Box::new(async move { Ok((kv.get(key).await,)) })
        },
    )?;
    kv.func_wrap_async(
        "[method]store.set",
        |mut store, (_this, key, value): (Resource<KvHandle2>, String, Vec<u8>)| {
            let kv = store.data_mut().spin().0.kv.clone();
            Box::new(async move { Ok((kv.set(key, value).await,)) })
        },
    )?;
    kv.func_wrap_async(
        "[method]store.delete",
        |mut store, (_this, key): (Resource<KvHandle2>, String)| {
            let kv = store.data_mut().spin().0.kv.clone();
            Box::new(async move { Ok((kv.delete(key).await,)) })
        },
    )?;
    kv.func_wrap_async(
        "[method]store.exists",
        |mut store, (_this, key): (Resource<KvHandle2>, String)| {
            let kv = store.data_mut().spin().0.kv.clone();
            Box::new(async move { Ok((kv.exists(key).await,)) })
        },
    )?;
    kv.func_wrap_async(
        "[method]store.get-keys",
        |mut store, (_this,): (Resource<KvHandle2>,)| {
            let kv = store.data_mut().spin().0.kv.clone();
            Box::new(async move { Ok((kv.keys().await,)) })
        },
    )?;
    Ok(())
}

impl KvStore {
    async fn get(&self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        match self {
            KvStore::Memory(m) => memory(m).map(|kv| kv.entries.get(&key).cloned()),
            KvStore::Shared(s) => s.get(key).await.map_err(KvError::Other),
        }
    }

    /// Store `value` under `key`; the memory store refuses to grow past [`KV_MAX_BYTES`].
    async fn set(&self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        match self {
            KvStore::Memory(m) => memory(m).and_then(|mut kv| {
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
            }),
            KvStore::Shared(s) => s.set(key, value).await.map_err(KvError::Other),
        }
    }

    async fn delete(&self, key: String) -> Result<(), KvError> {
        match self {
            KvStore::Memory(m) => memory(m).map(|mut kv| {
                if let Some(v) = kv.entries.remove(&key) {
                    kv.bytes -= key.len() + v.len();
                }
            }),
            KvStore::Shared(s) => s.delete(key).await.map_err(KvError::Other),
        }
    }

    async fn exists(&self, key: String) -> Result<bool, KvError> {
        match self {
            KvStore::Memory(m) => memory(m).map(|kv| kv.entries.contains_key(&key)),
            KvStore::Shared(s) => s.exists(key).await.map_err(KvError::Other),
        }
    }

    /// Every key, read whole (the memory store is bounded; a shared one is scanned once).
    async fn keys(&self) -> Result<Vec<String>, KvError> {
        match self {
            KvStore::Memory(m) => memory(m).map(|kv| kv.entries.keys().cloned().collect()),
            KvStore::Shared(s) => s.keys().await.map_err(KvError::Other),
        }
    }
}

/// A component's in-memory store, locked.
fn memory(kv: &Mutex<Kv>) -> Result<std::sync::MutexGuard<'_, Kv>, KvError> {
    kv.lock()
        .map_err(|_| KvError::Other("store unavailable".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names_follow_spin_rules() {
        let ctx = SpinCtx::new(
            HashMap::from([("greeting".into(), "hi".into())]),
            None,
            Arc::from([]),
        );
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
