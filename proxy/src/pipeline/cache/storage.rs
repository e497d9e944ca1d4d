//! pingora-cache's `Storage` on moka: objects bounded by bytes (a weigher over body, headers
//! and key), TinyLFU admission and eviction, and per-entry expiry once an object can no
//! longer be served even stale. Objects are stored whole when their body ends; concurrent
//! misses for one key are collapsed before they get here, by pingora's cache lock.

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use moka::sync::Cache;
use pingora::cache::key::{CacheHashKey, CacheKey};
use pingora::cache::storage::{
    HandleHit, HandleMiss, MissFinishType, PurgeOutcome, PurgeTarget, PurgeType,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheMeta, HitHandler, MissHandler, Storage};
use pingora::{Error, ErrorType, Result};
use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long an object is kept after it can no longer be served stale, for revalidation
/// with its validators (`ETag`, `Last-Modified`) instead of a full fetch.
const KEEP_FOR_REVALIDATION: Duration = Duration::from_secs(600);

/// What a purge selects, besides one exact key.
pub enum Selector<'a> {
    /// Every variant of one URL (`host` + path and query, as keyed).
    Url(&'a str),
    /// Every URL starting with this (`host` + path prefix).
    Prefix(&'a str),
    /// Objects whose `Surrogate-Key` response header lists this key.
    SurrogateKey(&'a str),
    All,
}

/// One stored response.
pub(super) struct Object {
    meta: (Bytes, Bytes),
    body: Bytes,
    /// The URL it was stored for, for purges (`host` + path and query).
    url: Arc<str>,
    surrogate_keys: Vec<String>,
    keep_until: SystemTime,
}

impl Object {
    fn weight(&self) -> u32 {
        let bytes = self.body.len() + self.meta.0.len() + self.meta.1.len() + self.url.len();
        // Plus the bookkeeping of the entry itself: measured at about 1.6 KiB of RSS per
        // 1 KB object beyond its body, of which about 0.45 KiB are the headers and key
        // counted above (20 000 objects, release build; see bench/README.md).
        u32::try_from(bytes + 1024).unwrap_or(u32::MAX)
    }
}

struct Expiry;

impl moka::Expiry<String, Arc<Object>> for Expiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Object>,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(
            value
                .keep_until
                .duration_since(SystemTime::now())
                .unwrap_or_default(),
        )
    }

    fn expire_after_update(
        &self,
        key: &String,
        value: &Arc<Object>,
        now: std::time::Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, now)
    }
}

/// The moka-backed store; one per process, shared by every route and config generation.
pub struct MokaStorage {
    objects: Cache<String, Arc<Object>>,
    evictions: Arc<std::sync::atomic::AtomicU64>,
}

impl MokaStorage {
    pub fn new(memory_bytes: u64) -> Self {
        let evictions = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = evictions.clone();
        let objects = Cache::builder()
            .max_capacity(memory_bytes)
            .weigher(|_k: &String, v: &Arc<Object>| v.weight())
            .expire_after(Expiry)
            .eviction_listener(move |_k, _v, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
            .build();
        Self { objects, evictions }
    }

    /// Objects evicted to stay within the memory budget, since start.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Objects held and their bytes as the weigher counts them, after pending maintenance.
    pub fn usage(&self) -> (u64, u64) {
        self.objects.run_pending_tasks();
        (self.objects.entry_count(), self.objects.weighted_size())
    }

    /// Remove what `selector` selects; returns how many objects went.
    pub fn purge_matching(&self, selector: &Selector<'_>) -> usize {
        let keys: Vec<Arc<String>> = self
            .objects
            .iter()
            .filter(|(_, o)| match selector {
                Selector::Url(u) => &*o.url == *u,
                Selector::Prefix(p) => o.url.starts_with(p),
                Selector::SurrogateKey(k) => o.surrogate_keys.iter().any(|s| s == k),
                Selector::All => true,
            })
            .map(|(k, _)| k)
            .collect();
        for k in &keys {
            self.objects.invalidate(k.as_str());
        }
        keys.len()
    }
}

fn keep_until(meta: &CacheMeta) -> SystemTime {
    let stale = meta
        .stale_while_revalidate_sec()
        .max(meta.stale_if_error_sec());
    meta.fresh_until() + Duration::from_secs(u64::from(stale)) + KEEP_FOR_REVALIDATION
}

fn surrogate_keys(meta: &CacheMeta) -> Vec<String> {
    meta.headers()
        .get_all("surrogate-key")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split_ascii_whitespace())
        .map(str::to_string)
        .collect()
}

fn serialize(meta: &CacheMeta) -> Result<(Bytes, Bytes)> {
    let (a, b) = meta.serialize()?;
    Ok((Bytes::from(a), Bytes::from(b)))
}

#[async_trait]
impl Storage for MokaStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let Some(obj) = self.objects.get(&key.combined()) else {
            return Ok(None);
        };
        let meta = CacheMeta::deserialize(&obj.meta.0, &obj.meta.1)?;
        let len = obj.body.len();
        Ok(Some((
            meta,
            Box::new(Hit {
                body: obj.body.clone(),
                range: 0..len,
                done: false,
            }),
        )))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        Ok(Box::new(Miss {
            storage: self,
            key: key.combined(),
            url: Arc::from(
                String::from_utf8_lossy(key.primary_key())
                    .split('\n')
                    .next()
                    .unwrap_or(""),
            ),
            meta: serialize(meta)?,
            keep_until: keep_until(meta),
            surrogate_keys: surrogate_keys(meta),
            body: BytesMut::new(),
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let key = target.key().combined();
        Ok(match self.objects.remove(&key) {
            Some(_) => PurgeOutcome::Purged(None),
            None => PurgeOutcome::NotFound,
        })
    }

    /// A 304 from the origin refreshed the headers and freshness: keep the body.
    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let key = key.combined();
        let Some(old) = self.objects.get(&key) else {
            return Ok(false);
        };
        let new = Object {
            meta: serialize(meta)?,
            body: old.body.clone(),
            url: old.url.clone(),
            surrogate_keys: surrogate_keys(meta),
            keep_until: keep_until(meta),
        };
        self.objects.insert(key, Arc::new(new));
        Ok(true)
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// Reads a stored body, whole or a range of it (pingora seeks for `Range` requests).
struct Hit {
    body: Bytes,
    range: std::ops::Range<usize>,
    done: bool,
}

#[async_trait]
impl HandleHit for Hit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        Ok(Some(self.body.slice(self.range.clone())))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.body.len();
        let end = end.unwrap_or(len);
        if start > end || end > len {
            return Error::e_explain(ErrorType::InternalError, "seek out of range");
        }
        self.range = start..end;
        self.done = false;
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

/// Buffers a response body; stores the object when the body ends.
struct Miss {
    storage: &'static MokaStorage,
    key: String,
    url: Arc<str>,
    meta: (Bytes, Bytes),
    keep_until: SystemTime,
    surrogate_keys: Vec<String>,
    body: BytesMut,
}

#[async_trait]
impl HandleMiss for Miss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        self.body.extend_from_slice(&data);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let size = self.body.len();
        let obj = Object {
            meta: self.meta,
            body: self.body.freeze(),
            url: self.url,
            surrogate_keys: self.surrogate_keys,
            keep_until: self.keep_until,
        };
        self.storage.objects.insert(self.key, Arc::new(obj));
        Ok(MissFinishType::Created(size))
    }
}
