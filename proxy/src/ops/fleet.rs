//! The fleet: nodes that run the same config share their purges through a Redis stream. A
//! purge accepted by any node's admin API is applied there at once and appended to the stream
//! (`XADD`, trimmed to `fleet.purge_history`); every node reads the stream (`XREAD BLOCK`) and
//! applies what other nodes appended. Redis is never on the serving path: when it is
//! unreachable, purges apply locally and wait in a bounded queue to be published, and a node
//! that was cut off reads on from the last entry it saw, so it replays what it missed (as far
//! as the trimmed history reaches). When it cannot tell what it missed (the history was
//! trimmed past the last entry it saw, or the stream it was reading is gone: a Redis that
//! restarted without its data), it purges its whole cache.

use crate::ops::metrics::Metrics;
use crate::pipeline::cache::{MokaStorage, Selector};
use breakwater_config::{Fleet as FleetSettings, RedisTarget, RedisTrust};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo};
use redis::{IntoConnectionInfo, RedisConnectionInfo};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// The stream every node of the fleet appends purges to and reads them from.
const PURGE_STREAM: &str = "breakwater:purges";

/// Purges waiting to be published while Redis is unreachable; past this, the oldest wait is
/// not extended: new ones are counted as dropped (they were applied here all the same).
const PENDING_LIMIT: usize = 10_000;

/// How long one `XREAD` waits for new entries before asking again.
const READ_BLOCK: Duration = Duration::from_secs(5);

/// Entries read at once.
const READ_BATCH: usize = 256;

/// How far back a node starting up reads: purges sent by others just before it could read
/// (its own clock and Redis's may differ a little). Replaying one is harmless.
const START_MARGIN: Duration = Duration::from_secs(5);

/// One purge, as the admin API takes it and as it travels in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Purge {
    Url(String),
    Prefix(String),
    Key(String),
    All,
}

impl Purge {
    pub fn selector(&self) -> Selector<'_> {
        match self {
            Purge::Url(u) => Selector::Url(u),
            Purge::Prefix(p) => Selector::Prefix(p),
            Purge::Key(k) => Selector::SurrogateKey(k),
            Purge::All => Selector::All,
        }
    }

    fn fields(&self) -> (&'static str, &str) {
        match self {
            Purge::Url(u) => ("url", u),
            Purge::Prefix(p) => ("prefix", p),
            Purge::Key(k) => ("key", k),
            Purge::All => ("all", ""),
        }
    }

    fn from_fields(kind: &str, value: String) -> Option<Purge> {
        match kind {
            "url" => Some(Purge::Url(value)),
            "prefix" => Some(Purge::Prefix(value)),
            "key" => Some(Purge::Key(value)),
            "all" => Some(Purge::All),
            _ => None,
        }
    }
}

/// A purge waiting to be published, and who waits to hear that it was.
struct Queued {
    purge: Purge,
    stored: tokio::sync::oneshot::Sender<()>,
}

/// This node's membership: the queue of purges to publish.
pub struct Fleet {
    publish: mpsc::Sender<Queued>,
    /// How long a purge's answer waits for Redis to store it (`fleet.timeout`).
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Fleet {
    /// Start publishing and reading on `control` (the background runtime). Connecting is
    /// lazy: a Redis that is down at start delays nothing.
    pub fn start(
        settings: &FleetSettings,
        control: &tokio::runtime::Handle,
        storage: &'static MokaStorage,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Fleet>, redis::RedisError> {
        let client = client(&settings.redis)?;
        // Each node tells its own entries from others' by this id.
        let node = format!("{:016x}", rand::random::<u64>());
        let (publish, queue) = mpsc::channel(PENDING_LIMIT);
        let fleet = Arc::new(Fleet {
            publish,
            timeout: settings.timeout,
            metrics: metrics.clone(),
        });
        let _guard = control.enter();
        let publisher = ConnectionManager::new_lazy_with_config(
            client.clone(),
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(settings.timeout))
                .set_response_timeout(Some(settings.timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_secs(1)),
        )?;
        control.spawn(publish_loop(
            publisher,
            queue,
            node.clone(),
            settings.purge_history,
            settings.timeout,
            metrics.clone(),
        ));
        control.spawn(read_loop(client, node, settings.timeout, storage, metrics));
        Ok(fleet)
    }

    /// Publish a purge already applied here; `true` once Redis has stored it, `false` when
    /// it did not within `fleet.timeout` (it stays queued and is published when Redis takes
    /// it) or the queue is full (Redis down for long: counted as dropped).
    pub async fn publish(&self, purge: Purge) -> bool {
        let (stored, heard) = tokio::sync::oneshot::channel();
        match self.publish.try_send(Queued { purge, stored }) {
            Ok(()) => self.metrics.fleet_purges_pending.inc(),
            Err(_) => {
                self.metrics.fleet_purges_dropped.inc();
                return false;
            }
        }
        matches!(tokio::time::timeout(self.timeout, heard).await, Ok(Ok(())))
    }
}

/// A client for `target` (connecting lazily), its credentials set from the config.
fn client(target: &RedisTarget) -> redis::RedisResult<Client> {
    let info = connection_info(target)?;
    if target.tls.is_some() {
        // redis-rs builds its TLS client config on the process default provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    match &target.tls {
        Some(RedisTrust::Ca(pem)) => Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        ),
        Some(RedisTrust::System) | None => Client::open(info),
    }
}

fn connection_info(target: &RedisTarget) -> redis::RedisResult<ConnectionInfo> {
    let addr = match target.tls {
        None => ConnectionAddr::Tcp(target.host.clone(), target.port),
        Some(_) => ConnectionAddr::TcpTls {
            host: target.host.clone(),
            port: target.port,
            insecure: false,
            tls_params: None,
        },
    };
    let mut redis = RedisConnectionInfo::default().set_db(target.db);
    if let Some(user) = &target.username {
        redis = redis.set_username(user);
    }
    if let Some(password) = &target.password {
        redis = redis.set_password(&password.0);
    }
    Ok(addr.into_connection_info()?.set_redis_settings(redis))
}

/// Append queued purges to the stream, in order; a failed append is retried at once (the
/// connection manager reconnects: a connection Redis dropped costs no wait), then after each
/// timeout until Redis takes it.
async fn publish_loop(
    mut redis: ConnectionManager,
    mut queue: mpsc::Receiver<Queued>,
    node: String,
    history: u64,
    timeout: Duration,
    metrics: Arc<Metrics>,
) {
    let trim = redis::streams::StreamMaxlen::Approx(history as usize);
    while let Some(Queued { purge, stored }) = queue.recv().await {
        let (kind, value) = purge.fields();
        let mut failed = false;
        loop {
            let added: redis::RedisResult<String> = redis
                .xadd_maxlen(
                    PURGE_STREAM,
                    trim,
                    "*",
                    &[("node", node.as_str()), ("kind", kind), ("value", value)],
                )
                .await;
            match added {
                Ok(_) => {
                    metrics.fleet_redis_up.set(1);
                    metrics.fleet_purges_pending.dec();
                    metrics.fleet_purges_published.inc();
                    // The answer may have stopped waiting already.
                    let _ = stored.send(());
                    break;
                }
                Err(e) if !failed => {
                    tracing::debug!(error = %e, "fleet: publishing a purge failed; retrying");
                    failed = true;
                }
                Err(e) => {
                    metrics.fleet_redis_up.set(0);
                    tracing::warn!(error = %e, "fleet: cannot publish a purge; retrying");
                    tokio::time::sleep(timeout).await;
                }
            }
        }
    }
}

/// Where this node is in the purge stream.
struct Position {
    /// The last entry read; at start, just before this node started.
    last: String,
    /// Whether any entry has been read (so a stream that is gone was lost, not never made).
    read_any: bool,
}

/// Read the stream from just before this node started, apply what other nodes appended, and
/// after a lost connection read on from the last entry seen (or, when the entries after it
/// are gone, purge the whole cache: see [`Gap`]).
async fn read_loop(
    client: Client,
    node: String,
    timeout: Duration,
    storage: &'static MokaStorage,
    metrics: Arc<Metrics>,
) {
    let started = SystemTime::now()
        .checked_sub(START_MARGIN)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let ms = started
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let mut position = Position {
        last: format!("{ms}-0"),
        read_any: false,
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(READ_BLOCK + timeout));
    let options = StreamReadOptions::default()
        .block(READ_BLOCK.as_millis() as usize)
        .count(READ_BATCH);
    let mut connection: Option<MultiplexedConnection> = None;
    // Gaps matter after a lost connection; at start, the cache is empty anyway.
    let mut reconnecting = false;
    let retry_later = |e: redis::RedisError| {
        metrics.fleet_redis_up.set(0);
        tracing::warn!(error = %e, "fleet: cannot read the purge stream; retrying");
        tokio::time::sleep(timeout)
    };
    loop {
        let con = match &mut connection {
            Some(c) => c,
            None => match client
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(mut c) => {
                    if reconnecting {
                        if let Err(e) = catch_up(&mut c, &mut position, storage, &metrics).await {
                            retry_later(e).await;
                            continue;
                        }
                    }
                    reconnecting = true;
                    connection.insert(c)
                }
                Err(e) => {
                    retry_later(e).await;
                    continue;
                }
            },
        };
        let read: redis::RedisResult<Option<StreamReadReply>> = con
            .xread_options(&[PURGE_STREAM], &[position.last.as_str()], &options)
            .await;
        let reply = match read {
            Ok(reply) => reply,
            Err(e) => {
                connection = None;
                retry_later(e).await;
                continue;
            }
        };
        metrics.fleet_redis_up.set(1);
        let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
        for entry in entries {
            position.read_any = true;
            position.last.clone_from(&entry.id);
            let from: Option<String> = entry.get("node");
            if from.as_deref() == Some(node.as_str()) {
                continue;
            }
            let kind: Option<String> = entry.get("kind");
            let value: String = entry.get("value").unwrap_or_default();
            let Some(purge) = kind.and_then(|k| Purge::from_fields(&k, value)) else {
                continue;
            };
            let purged = storage.purge_matching(&purge.selector());
            metrics.cache_purged.inc_by(purged as u64);
            metrics.fleet_purges_received.inc();
        }
    }
}

/// What a reader that reconnects finds between the last entry it read and the stream.
#[derive(Debug, PartialEq, Eq)]
enum Gap {
    /// Every entry after the last one read is still there.
    None,
    /// The stream's oldest entry is newer than the last one read: `purge_history` trimmed
    /// past it, and perhaps entries after it (trimming keeps at least `purge_history` of the
    /// newest, in whole stream nodes, so it may also have stopped just after it: then the
    /// whole-cache purge was not needed, and is what caution costs).
    Trimmed,
    /// The stream this node was reading is gone (Redis restarted without its data).
    Vanished,
}

/// After a lost connection: when purges may have been missed that cannot be replayed, purge
/// the whole cache rather than serve what may have been purged, and read a new stream from
/// its start.
async fn catch_up(
    con: &mut MultiplexedConnection,
    position: &mut Position,
    storage: &MokaStorage,
    metrics: &Metrics,
) -> redis::RedisResult<()> {
    let gap = if !con.exists::<_, bool>(PURGE_STREAM).await? {
        if position.read_any {
            Gap::Vanished
        } else {
            Gap::None
        }
    } else {
        let oldest: StreamRangeReply = con.xrange_count(PURGE_STREAM, "-", "+", 1).await?;
        let oldest = oldest.ids.first().and_then(|e| stream_id(&e.id));
        match (oldest, stream_id(&position.last)) {
            (Some(oldest), Some(last)) if oldest > last => Gap::Trimmed,
            _ => Gap::None,
        }
    };
    if gap == Gap::None {
        return Ok(());
    }
    tracing::warn!(
        ?gap,
        "fleet: purges were missed and cannot be told; purging the whole cache"
    );
    let purged = storage.purge_matching(&Selector::All);
    metrics.cache_purged.inc_by(purged as u64);
    metrics.fleet_full_purges.inc();
    if gap == Gap::Vanished {
        // A new stream: all of it is new to this node.
        *position = Position {
            last: "0-0".into(),
            read_any: false,
        };
    }
    Ok(())
}

/// A stream entry id (`MS-SEQ`) in the order Redis gives them.
fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// A handler's Spin key-value store in the fleet's Redis (`key_value: redis`): keys under
/// `breakwater:kv:{component}:`, so every node sees one store per component. Connects on
/// first use; each call fails after `fleet.timeout` rather than holding the request.
#[derive(Clone)]
pub struct RedisKv(Arc<KvInner>);

struct KvInner {
    client: Client,
    connection: tokio::sync::OnceCell<ConnectionManager>,
    prefix: String,
    /// `SCAN MATCH` pattern for every key under `prefix`.
    pattern: String,
    timeout: Duration,
}

impl RedisKv {
    pub fn new(settings: &FleetSettings, component: &str) -> redis::RedisResult<Self> {
        let prefix = format!("breakwater:kv:{component}:");
        Ok(Self(Arc::new(KvInner {
            client: client(&settings.redis)?,
            connection: tokio::sync::OnceCell::new(),
            pattern: format!("{}*", glob_escape(&prefix)),
            prefix,
            timeout: settings.timeout,
        })))
    }
}

impl KvInner {
    async fn connection(&self) -> Result<ConnectionManager, String> {
        let connect = || async {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(self.timeout))
                .set_number_of_retries(1);
            self.client
                .get_connection_manager_with_config(config)
                .await
                .map_err(|e| format!("key-value store unavailable: {e}"))
        };
        self.connection.get_or_try_init(connect).await.cloned()
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

/// Run one command on the store's connection, as the guest's error when it fails.
macro_rules! kv_call {
    ($kv:expr, |$con:ident, $key:ident| $call:expr) => {{
        let kv = $kv.clone();
        Box::pin(async move {
            let mut $con = kv.0.connection().await?;
            let $key = kv.0.key(&$key);
            $call
                .await
                .map_err(|e: redis::RedisError| format!("key-value store: {e}"))
        })
    }};
}

impl breakwater_isolate::SharedStore for RedisKv {
    fn get(&self, key: String) -> breakwater_isolate::StoreFuture<Option<Vec<u8>>> {
        kv_call!(self, |con, key| con.get::<_, Option<Vec<u8>>>(key))
    }

    fn set(&self, key: String, value: Vec<u8>) -> breakwater_isolate::StoreFuture<()> {
        kv_call!(self, |con, key| con.set::<_, _, ()>(key, value))
    }

    fn delete(&self, key: String) -> breakwater_isolate::StoreFuture<()> {
        kv_call!(self, |con, key| con.del::<_, ()>(key))
    }

    fn exists(&self, key: String) -> breakwater_isolate::StoreFuture<bool> {
        kv_call!(self, |con, key| con.exists::<_, bool>(key))
    }

    /// One `SCAN MATCH prefix*` walk (not `KEYS`, which blocks the server while it runs).
    fn keys(&self) -> breakwater_isolate::StoreFuture<Vec<String>> {
        let kv = self.clone();
        Box::pin(async move {
            let fail = |e: redis::RedisError| format!("key-value store: {e}");
            let mut con = kv.0.connection().await?;
            let prefix = &kv.0.prefix;
            let mut scan = con
                .scan_match::<_, String>(&kv.0.pattern)
                .await
                .map_err(fail)?;
            let mut keys = Vec::new();
            while let Some(key) = scan.next_item().await {
                if let Some(key) = key.map_err(fail)?.strip_prefix(prefix.as_str()) {
                    keys.push(key.to_string());
                }
            }
            Ok(keys)
        })
    }
}

/// `text` as a Redis glob pattern that matches only itself.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::glob_escape;

    #[test]
    fn a_prefix_is_matched_literally() {
        assert_eq!(glob_escape("breakwater:kv:a:"), "breakwater:kv:a:");
        assert_eq!(glob_escape(r"kv:w*ld?[x]\:"), r"kv:w\*ld\?\[x\]\\:");
    }
}
