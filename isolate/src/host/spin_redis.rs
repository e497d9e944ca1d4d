//! `spin:redis/redis@3.0.0` for handlers: outbound Redis as Spin provides it, only to the
//! addresses the component's `allowed_outbound_hosts` lists as `redis://HOST:PORT`. Every
//! command is bounded by [`COMMAND_TIMEOUT`] (and the request by its deadline), so an
//! unreachable Redis fails the call, not the node.

use super::spin::SpinView;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, IntoConnectionInfo, Value};
use std::time::Duration;
use wasmtime::component::{ComponentType, Lift, Linker, Lower, Resource, ResourceType};

/// How long connecting or one command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// An open connection (the resource `connection`).
pub(crate) struct RedisConnection(MultiplexedConnection);

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

/// The connection behind a guest's handle.
fn connection<T: SpinView>(
    a: &mut wasmtime::component::Access<'_, T>,
    this: &Resource<RedisConnection>,
) -> Result<MultiplexedConnection, RedisError> {
    let table = a.data_mut().spin().1;
    table
        .get(this)
        .map(|c| c.0.clone())
        .map_err(|e| RedisError::Other(e.to_string()))
}

/// Add `spin:redis/redis@3.0.0` (on the engine with concurrency support).
pub(crate) fn add_to_linker<T: SpinView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let mut r = linker.instance("spin:redis/redis@3.0.0")?;
    r.resource(
        "connection",
        ResourceType::host::<RedisConnection>(),
        |mut store, rep| {
            store
                .data_mut()
                .spin()
                .1
                .delete(Resource::<RedisConnection>::new_own(rep))?;
            Ok(())
        },
    )?;
    r.func_wrap_concurrent("[static]connection.open", |acc, (address,): (String,)| {
        Box::pin(async move {
            let permitted = acc.with(|mut a| {
                let hosts = a.data_mut().spin().0.allowed_outbound_hosts();
                allowed(&address, &hosts)
            });
            let opened = match permitted {
                None => Err(RedisError::InvalidAddress),
                Some(false) => Err(RedisError::Other(format!(
                    "{address} is not in the component's allowed_outbound_hosts"
                ))),
                Some(true) => open(&address).await,
            };
            let result = match opened {
                Ok(con) => Ok(acc.with(|mut a| a.data_mut().spin().1.push(con))?),
                Err(e) => Err(e),
            };
            Ok((result,))
        })
    })?;
    command::<T, _, ()>(
        &mut r,
        "publish",
        |(this, channel, payload): (Handle, String, Vec<u8>)| {
            (
                this,
                redis::cmd("PUBLISH").arg(channel).arg(payload).to_owned(),
            )
        },
    )?;
    command::<T, _, Option<Vec<u8>>>(&mut r, "get", |(this, key): (Handle, String)| {
        (this, redis::cmd("GET").arg(key).to_owned())
    })?;
    command::<T, _, ()>(
        &mut r,
        "set",
        |(this, key, value): (Handle, String, Vec<u8>)| {
            (this, redis::cmd("SET").arg(key).arg(value).to_owned())
        },
    )?;
    command::<T, _, i64>(&mut r, "incr", |(this, key): (Handle, String)| {
        (this, redis::cmd("INCR").arg(key).to_owned())
    })?;
    command::<T, _, u32>(&mut r, "del", |(this, keys): (Handle, Vec<String>)| {
        (this, redis::cmd("DEL").arg(keys).to_owned())
    })?;
    command::<T, _, u32>(
        &mut r,
        "sadd",
        |(this, key, values): (Handle, String, Vec<String>)| {
            (this, redis::cmd("SADD").arg(key).arg(values).to_owned())
        },
    )?;
    command::<T, _, Vec<String>>(&mut r, "smembers", |(this, key): (Handle, String)| {
        (this, redis::cmd("SMEMBERS").arg(key).to_owned())
    })?;
    command::<T, _, u32>(
        &mut r,
        "srem",
        |(this, key, values): (Handle, String, Vec<String>)| {
            (this, redis::cmd("SREM").arg(key).arg(values).to_owned())
        },
    )?;
    r.func_wrap_concurrent(
        "[method]connection.execute",
        |acc,
         (this, command, arguments): (
            Resource<RedisConnection>,
            String,
            Vec<RedisParameter>,
        )| {
            Box::pin(async move {
                let con = acc.with(|mut a| connection(&mut a, &this));
                let mut cmd = redis::cmd(&command);
                for a in arguments {
                    match a {
                        RedisParameter::Int64(i) => cmd.arg(i),
                        RedisParameter::Binary(b) => cmd.arg(b),
                    };
                }
                let result = match run::<Value>(con, &cmd).await {
                    Ok(v) => {
                        let mut out = Vec::new();
                        results(v, &mut out).map(|()| out)
                    }
                    Err(e) => Err(e),
                };
                Ok((result,))
            })
        },
    )?;
    Ok(())
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
                let con = acc.with(|mut a| connection(&mut a, &this));
                Ok((run::<R>(con, &cmd).await,))
            })
        },
    )
}

async fn open(address: &str) -> Result<RedisConnection, RedisError> {
    let client = redis::Client::open(address).map_err(|_| RedisError::InvalidAddress)?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT));
    let con = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    Ok(RedisConnection(con))
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
