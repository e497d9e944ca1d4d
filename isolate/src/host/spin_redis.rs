//! `spin:redis/redis@3.0.0` and `fermyon:spin/redis@2.0.0` (Spin 2 components; the same
//! functions and types, called without the component model's async) for handlers: outbound
//! Redis as Spin provides it, only to the addresses the component's `allowed_outbound_hosts`
//! lists as `redis://HOST:PORT`. Every
//! command is bounded by [`COMMAND_TIMEOUT`] (and the request by its deadline), so an
//! unreachable Redis fails the call, not the node.

use super::spin::{define_resource, SpinView};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, IntoConnectionInfo, Value};
use std::time::Duration;
use wasmtime::component::{ComponentType, Lift, Linker, Lower, Resource, ResourceTable};

/// How long connecting or one command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// An open connection (the resource `connection` of the 3.0 interface).
pub(crate) struct RedisConnection(MultiplexedConnection);

/// The same for the 2.0 interface: a type of its own, so that a component importing both
/// versions gets two distinct resource types, as it declared them.
pub(crate) struct RedisConnection2(MultiplexedConnection);

impl AsRef<MultiplexedConnection> for RedisConnection {
    fn as_ref(&self) -> &MultiplexedConnection {
        &self.0
    }
}

impl AsRef<MultiplexedConnection> for RedisConnection2 {
    fn as_ref(&self) -> &MultiplexedConnection {
        &self.0
    }
}

#[derive(ComponentType, Lift, Lower, Clone, Debug)]
#[component(variant)]
enum RedisError {
    #[component(name = "invalid-address")]
    InvalidAddress,
    #[component(name = "too-many-connections")]
    #[allow(dead_code)]
    TooManyConnections,
    #[component(name = "type-error")]
    TypeError,
    #[component(name = "other")]
    Other(String),
}

impl From<redis::RedisError> for RedisError {
    fn from(e: redis::RedisError) -> Self {
        match e.kind() {
            redis::ErrorKind::UnexpectedReturnType => RedisError::TypeError,
            _ => RedisError::Other(e.to_string()),
        }
    }
}

#[derive(ComponentType, Lift, Lower, Clone, Debug)]
#[component(variant)]
enum RedisParameter {
    #[component(name = "int64")]
    Int64(i64),
    #[component(name = "binary")]
    Binary(Vec<u8>),
}

#[derive(ComponentType, Lift, Lower, Clone, Debug)]
#[component(variant)]
enum RedisResult {
    #[component(name = "nil")]
    Nil,
    #[component(name = "status")]
    Status(String),
    #[component(name = "int64")]
    Int64(i64),
    #[component(name = "binary")]
    Binary(Vec<u8>),
}

/// Whether `address` (`redis://[user:pass@]HOST[:PORT][/DB]`) is one of the `allowed`
/// entries `redis://HOST:PORT` (the port defaults to 6379).
fn allowed(address: &str, allowed: &[String]) -> Option<bool> {
    let info = address.into_connection_info().ok()?;
    let (host, port) = match info.addr() {
        redis::ConnectionAddr::Tcp(h, p) => (h.clone(), *p),
        redis::ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port),
        _ => return Some(false),
    };
    let wanted = format!("redis://{}:{port}", host.to_ascii_lowercase());
    Some(allowed.contains(&wanted))
}

/// The flattened results of a reply, as `execute` returns them.
fn results(value: Value, out: &mut Vec<RedisResult>) -> Result<(), RedisError> {
    match value {
        Value::Nil => out.push(RedisResult::Nil),
        Value::Int(i) => out.push(RedisResult::Int64(i)),
        Value::BulkString(b) => out.push(RedisResult::Binary(b)),
        Value::SimpleString(s) => out.push(RedisResult::Status(s)),
        Value::Okay => out.push(RedisResult::Status("OK".into())),
        Value::Array(items) | Value::Set(items) => {
            for item in items {
                results(item, out)?;
            }
        }
        Value::ServerError(e) => return Err(RedisError::Other(format!("{e:?}"))),
        other => return Err(RedisError::Other(format!("unsupported reply: {other:?}"))),
    }
    Ok(())
}

/// The connection behind a guest's handle (on either version's resource).
fn connection<C: AsRef<MultiplexedConnection> + 'static>(
    table: &mut ResourceTable,
    this: &Resource<C>,
) -> Result<MultiplexedConnection, RedisError> {
    table
        .get(this)
        .map(|c| c.as_ref().clone())
        .map_err(|e| RedisError::Other(e.to_string()))
}

/// Whether the component may open `address`, and the connection when it may.
async fn open_allowed(
    address: &str,
    hosts: &[String],
) -> Result<MultiplexedConnection, RedisError> {
    match allowed(address, hosts) {
        None => Err(RedisError::InvalidAddress),
        Some(false) => Err(RedisError::Other(format!(
            "{address} is not in the component's allowed_outbound_hosts"
        ))),
        Some(true) => open(address).await,
    }
}

/// `execute`: any command, its reply flattened into results.
async fn execute(
    con: Result<MultiplexedConnection, RedisError>,
    command: &str,
    arguments: Vec<RedisParameter>,
) -> Result<Vec<RedisResult>, RedisError> {
    let mut cmd = redis::cmd(command);
    for a in arguments {
        match a {
            RedisParameter::Int64(i) => cmd.arg(i),
            RedisParameter::Binary(b) => cmd.arg(b),
        };
    }
    let value = run::<Value>(con, &cmd).await?;
    let mut out = Vec::new();
    results(value, &mut out)?;
    Ok(out)
}

/// The interface's typed commands (every method but `open` and `execute`), each defined by
/// `$define` ([`command`] or [`command_2`]) on connections of handle type `$handle`.
macro_rules! typed_commands {
    ($r:expr, $define:ident, $handle:ty) => {
        $define::<T, _, ()>(
            $r,
            "publish",
            |(this, channel, payload): ($handle, String, Vec<u8>)| {
                (
                    this,
                    redis::cmd("PUBLISH").arg(channel).arg(payload).to_owned(),
                )
            },
        )?;
        $define::<T, _, Option<Vec<u8>>>($r, "get", |(this, key): ($handle, String)| {
            (this, redis::cmd("GET").arg(key).to_owned())
        })?;
        $define::<T, _, ()>(
            $r,
            "set",
            |(this, key, value): ($handle, String, Vec<u8>)| {
                (this, redis::cmd("SET").arg(key).arg(value).to_owned())
            },
        )?;
        $define::<T, _, i64>($r, "incr", |(this, key): ($handle, String)| {
            (this, redis::cmd("INCR").arg(key).to_owned())
        })?;
        $define::<T, _, u32>($r, "del", |(this, keys): ($handle, Vec<String>)| {
            (this, redis::cmd("DEL").arg(keys).to_owned())
        })?;
        $define::<T, _, u32>(
            $r,
            "sadd",
            |(this, key, values): ($handle, String, Vec<String>)| {
                (this, redis::cmd("SADD").arg(key).arg(values).to_owned())
            },
        )?;
        $define::<T, _, Vec<String>>($r, "smembers", |(this, key): ($handle, String)| {
            (this, redis::cmd("SMEMBERS").arg(key).to_owned())
        })?;
        $define::<T, _, u32>(
            $r,
            "srem",
            |(this, key, values): ($handle, String, Vec<String>)| {
                (this, redis::cmd("SREM").arg(key).arg(values).to_owned())
            },
        )?;
    };
}

/// Add `spin:redis/redis@3.0.0` (on the engine with concurrency support).
pub(crate) fn add_to_linker<T: SpinView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let mut r = linker.instance("spin:redis/redis@3.0.0")?;
    define_resource::<T, RedisConnection>(&mut r, "connection")?;
    r.func_wrap_concurrent("[static]connection.open", |acc, (address,): (String,)| {
        Box::pin(async move {
            let hosts = acc.with(|mut a| a.data_mut().spin().0.allowed_outbound_hosts());
            let result = match open_allowed(&address, &hosts).await {
                Ok(con) => Ok(acc.with(|mut a| a.data_mut().spin().1.push(RedisConnection(con)))?),
                Err(e) => Err(e),
            };
            Ok((result,))
        })
    })?;
    typed_commands!(&mut r, command, Handle);
    r.func_wrap_concurrent(
        "[method]connection.execute",
        |acc,
         (this, command, arguments): (
            Resource<RedisConnection>,
            String,
            Vec<RedisParameter>,
        )| {
            Box::pin(async move {
                let con = acc.with(|mut a| connection(a.data_mut().spin().1, &this));
                Ok((execute(con, &command, arguments).await,))
            })
        },
    )?;
    Ok(())
}

/// Add `fermyon:spin/redis@2.0.0` (on either engine: its functions are synchronous for the
/// guest, asynchronous on the host).
pub(crate) fn add_to_linker_2<T: SpinView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let mut r = linker.instance("fermyon:spin/redis@2.0.0")?;
    define_resource::<T, RedisConnection2>(&mut r, "connection")?;
    r.func_wrap_async(
        "[static]connection.open",
        |mut store, (address,): (String,)| {
            let hosts = store.data_mut().spin().0.allowed_outbound_hosts();
            Box::new(async move {
                let result = match open_allowed(&address, &hosts).await {
                    Ok(con) => Ok(store.data_mut().spin().1.push(RedisConnection2(con))?),
                    Err(e) => Err(e),
                };
                Ok((result,))
            })
        },
    )?;
    typed_commands!(&mut r, command_2, Handle2);
    r.func_wrap_async(
        "[method]connection.execute",
        |mut store,
         (this, command, arguments): (
            Resource<RedisConnection2>,
            String,
            Vec<RedisParameter>,
        )| {
            let con = connection(store.data_mut().spin().1, &this);
            Box::new(async move { Ok((execute(con, &command, arguments).await,)) })
        },
    )?;
    Ok(())
}

/// The guest's handle on a 2.0 connection.
type Handle2 = Resource<RedisConnection2>;

/// [`command`] for the 2.0 interface.
fn command_2<T, P, R>(
    r: &mut wasmtime::component::LinkerInstance<'_, T>,
    name: &str,
    build: fn(P) -> (Handle2, redis::Cmd),
) -> wasmtime::Result<()>
where
    T: SpinView,
    P: wasmtime::component::ComponentNamedList + Lift + Send + 'static,
    R: redis::FromRedisValue + wasmtime::component::ComponentType + Lower + Send + Sync + 'static,
{
    r.func_wrap_async(
        &format!("[method]connection.{name}"),
        move |mut store, params: P| {
            let (this, cmd) = build(params);
            let con = connection(store.data_mut().spin().1, &this);
            Box::new(async move { Ok((run::<R>(con, &cmd).await,)) })
        },
    )
}

/// The guest's handle on a connection, every method's first parameter.
type Handle = Resource<RedisConnection>;

/// Define `[method]connection.NAME`: one command built from the guest's arguments by `build`,
/// on the connection it names, its reply converted to `R`.
fn command<T, P, R>(
    r: &mut wasmtime::component::LinkerInstance<'_, T>,
    name: &str,
    build: fn(P) -> (Handle, redis::Cmd),
) -> wasmtime::Result<()>
where
    T: SpinView,
    P: wasmtime::component::ComponentNamedList + Lift + Send + 'static,
    R: redis::FromRedisValue + wasmtime::component::ComponentType + Lower + Send + Sync + 'static,
{
    r.func_wrap_concurrent(
        &format!("[method]connection.{name}"),
        move |acc, params: P| {
            Box::pin(async move {
                let (this, cmd) = build(params);
                let con = acc.with(|mut a| connection(a.data_mut().spin().1, &this));
                Ok((run::<R>(con, &cmd).await,))
            })
        },
    )
}

async fn open(address: &str) -> Result<MultiplexedConnection, RedisError> {
    let client = redis::Client::open(address).map_err(|_| RedisError::InvalidAddress)?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT));
    let con = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    Ok(con)
}

async fn run<V: redis::FromRedisValue>(
    con: Result<MultiplexedConnection, RedisError>,
    cmd: &redis::Cmd,
) -> Result<V, RedisError> {
    let mut con = con?;
    Ok(cmd.query_async(&mut con).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_redis_addresses_are_allowed() {
        let list = vec!["redis://127.0.0.1:6379".to_string(), "example.com".into()];
        assert_eq!(allowed("redis://127.0.0.1:6379", &list), Some(true));
        assert_eq!(allowed("redis://127.0.0.1", &list), Some(true));
        assert_eq!(
            allowed("redis://:secret@127.0.0.1:6379/2", &list),
            Some(true)
        );
        assert_eq!(allowed("redis://127.0.0.1:6380", &list), Some(false));
        assert_eq!(allowed("redis://example.com:6379", &list), Some(false));
        assert_eq!(allowed("not an address", &list), None);
    }
}
