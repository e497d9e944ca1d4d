//! pingora-cache's `Storage` on moka: objects bounded by bytes (a weigher over body, headers
//! and key), TinyLFU admission and eviction, and per-entry expiry once an object can no
//! longer be served even stale. Objects are stored whole when their body ends; concurrent
//! misses for one key are collapsed before they get here, by pingora's cache lock.
//!
//! A hit must hand pingora a `CacheMeta` of its own. Decoding the stored one from pingora's
//! serialized form (its response head zstd-compressed, then parsed) was 12% of a 1 KiB hit's
//! CPU (`bench/results/profile-20261206-184500`): an object keeps its head parsed, and a hit
//! decodes only the small internal part (freshness, variance, epoch, provenance) with a bare
//! head, then puts a copy of the stored head in. Entries are keyed by the binary hash.
//!
//! With a disk tier ([`DiskTier`]) every stored object is also written through to disk, a
//! memory miss is looked up there (and a disk hit put back in memory), and purges reach both.
//! A body over [`STREAM_ABOVE`] goes to disk only, streamed there in pieces as it arrives
//! and read back a piece at a time: such objects never take the memory tier's room.

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use moka::sync::Cache;
use pingora::cache::key::{CacheHashKey, CacheKey, HashBinary};
use pingora::cache::storage::{
    HandleHit, HandleMiss, MissFinishType, PurgeOutcome, PurgeTarget, PurgeType,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheMeta, HitHandler, MissHandler, Storage};
use pingora::http::ResponseHeader;
use pingora::{Error, ErrorType, Result};
use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use super::disk::{Ban, DiskTier, Pieces, Record, PIECE, STREAM_ABOVE};

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
    /// pingora's serialized internal metadata (without the head).
    internal: Bytes,
    /// The response head, parsed once when stored.
    head: ResponseHeader,
    body: Bytes,
    /// The URL it was stored for, for purges (`host` + path and query).
    url: Arc<str>,
    surrogate_keys: Vec<String>,
    keep_until: SystemTime,
}

impl Object {
    fn weight(&self) -> u32 {
        // A parsed head holds each name and value, in the map and in the case-preserving
        // name map, with an entry's overhead: about twice its wire size.
        let head: usize = self
            .head
            .headers
            .iter()
            .map(|(n, v)| 2 * (n.as_str().len() + v.len()) + 64)
            .sum();
        let bytes = self.body.len() + self.internal.len() + head + self.url.len();
        // Plus the bookkeeping of the entry itself.
        u32::try_from(bytes + 1024).unwrap_or(u32::MAX)
    }

    /// A `CacheMeta` of this object's own, as pingora's decoding of the stored one would give.
    fn meta(&self) -> Result<CacheMeta> {
        let mut meta = CacheMeta::deserialize(&self.internal, bare_head()?)?;
        *meta.response_header_mut() = self.head.clone();
        Ok(meta)
    }

    fn new(
        meta: &CacheMeta,
        body: Bytes,
        url: Arc<str>,
        surrogate_keys: Vec<String>,
    ) -> Result<Self> {
        let (internal, _) = meta.serialize()?;
        Ok(Object {
            internal: Bytes::from(internal),
            head: meta.response_header_copy(),
            body,
            url,
            surrogate_keys,
            keep_until: keep_until(meta),
        })
    }
}

/// pingora's serialized form of a bare response head (`200`, no fields), decoded in place of
/// an object's head: the cheapest head `CacheMeta::deserialize` accepts.
fn bare_head() -> Result<&'static [u8]> {
    static BARE: OnceLock<Vec<u8>> = OnceLock::new();
    if let Some(bare) = BARE.get() {
        return Ok(bare);
    }
    let now = SystemTime::now();
    let head = ResponseHeader::build(200, Some(0))?;
    let (_, serialized) = CacheMeta::new(now, now, 0, 0, head).serialize()?;
    Ok(BARE.get_or_init(|| serialized))
}

struct Expiry;

impl moka::Expiry<HashBinary, Arc<Object>> for Expiry {
    fn expire_after_create(
        &self,
        _key: &HashBinary,
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
        key: &HashBinary,
        value: &Arc<Object>,
        now: std::time::Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, now)
    }
}

/// The moka-backed store; one per process, shared by every route and config generation.
pub struct MokaStorage {
    objects: Cache<HashBinary, Arc<Object>>,
    /// The memory tier's size: a body larger than this is never buffered to be stored in it.
    memory_bytes: u64,
    evictions: Arc<AtomicU64>,
    disk: Option<&'static DiskTier>,
}

/// The disk tier's key for a hash.
fn disk_key(key: &HashBinary) -> u128 {
    u128::from_le_bytes(*key)
}

impl Object {
    /// The body is whole and `len` bytes long: a head without `Content-Length` (a chunked
    /// response) gets one, as Varnish does, so hits are sent with their length and can be
    /// answered by ranges.
    fn declare_length(&mut self, len: usize) {
        let status = self.head.status;
        // These never carry one (RFC 9110 8.6).
        if status.is_informational() || status == 204 || status == 304 {
            return;
        }
        if self
            .head
            .headers
            .get(http::header::CONTENT_LENGTH)
            .is_none()
        {
            self.head.remove_header(&http::header::TRANSFER_ENCODING);
            // A number is always a valid value.
            let _ = self.head.insert_header(http::header::CONTENT_LENGTH, len);
        }
    }

    /// The object as the disk tier stores it: its body whole, or `pieces` naming where a
    /// streamed body is (this object's body is then empty).
    fn record(&self, pieces: Option<Pieces>) -> Result<Record> {
        let (internal, head) = self.meta()?.serialize()?;
        Ok(Record {
            stored_at: super::disk::now_ms(),
            keep_until: super::disk::unix_secs(self.keep_until),
            internal: Bytes::from(internal),
            head: Bytes::from(head),
            url: self.url.to_string(),
            surrogate_keys: self.surrogate_keys.clone(),
            body: self.body.clone(),
            pieces,
        })
    }

    /// The object a disk record holds (for a streamed body: its head, with an empty body);
    /// an error when its body is not the length its head declares (the record is then
    /// dropped, never served).
    fn from_record(r: Record) -> Result<Self> {
        let meta = CacheMeta::deserialize(&r.internal, &r.head)?;
        let declared = meta
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n != r.body_len()) {
            return Error::e_explain(ErrorType::InternalError, "stored body length mismatch");
        }
        let mut object = Object::new(&meta, r.body, Arc::from(r.url), r.surrogate_keys)?;
        object.keep_until = SystemTime::UNIX_EPOCH + Duration::from_secs(r.keep_until);
        Ok(object)
    }
}

impl MokaStorage {
    /// The disk tier, if the config has one.
    pub fn disk(&self) -> Option<&'static DiskTier> {
        self.disk
    }

    /// Write `object` through to the disk tier, if there is one.
    fn write_through(&self, key: &HashBinary, object: &Object) {
        let Some(disk) = self.disk else {
            return;
        };
        match object.record(None) {
            Ok(record) => disk.store(disk_key(key), record),
            Err(e) => tracing::warn!("cache object not written to disk: {e}"),
        }
    }

    pub fn new(memory_bytes: u64, disk: Option<&'static DiskTier>) -> Self {
        let evictions = Arc::new(AtomicU64::new(0));
        let counted = evictions.clone();
        let objects = Cache::builder()
            .max_capacity(memory_bytes)
            .weigher(|_k: &HashBinary, v: &Arc<Object>| v.weight())
            .expire_after(Expiry)
            .eviction_listener(move |_k, _v, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        Self {
            objects,
            memory_bytes,
            evictions,
            disk,
        }
    }

    /// The object stored on disk under `key` (with the tier), and where its body is when it
    /// was streamed in pieces; `None` when it is not there, does not decode (the record is
    /// then dropped), or a piece has been reclaimed since.
    async fn read_from_disk(
        &self,
        key: &HashBinary,
    ) -> Option<(&'static DiskTier, Object, Option<Pieces>)> {
        let disk = self.disk?;
        let record = disk.load(disk_key(key)).await?;
        let pieces = record.pieces;
        if pieces.is_some_and(|p| !disk.has_pieces(disk_key(key), &p)) {
            disk.delete(disk_key(key));
            return None;
        }
        match Object::from_record(record) {
            Ok(object) => Some((disk, object, pieces)),
            Err(e) => {
                tracing::warn!("cache object on disk does not decode: {e}");
                disk.reject(disk_key(key));
                None
            }
        }
    }

    /// Objects evicted to stay within the memory budget, since start.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Objects held and their bytes as the weigher counts them, after pending maintenance.
    pub fn usage(&self) -> (u64, u64) {
        self.objects.run_pending_tasks();
        (self.objects.entry_count(), self.objects.weighted_size())
    }

    /// Remove what `selector` selects; returns how many objects went.
    pub fn purge_matching(&self, selector: &Selector<'_>) -> usize {
        let keys: Vec<Arc<HashBinary>> = self
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
            self.objects.invalidate(&**k);
        }
        if let Some(disk) = self.disk {
            disk.ban(match selector {
                Selector::Url(u) => Ban::Url(u.to_string()),
                Selector::Prefix(p) => Ban::Prefix(p.to_string()),
                Selector::SurrogateKey(k) => Ban::SurrogateKey(k.to_string()),
                Selector::All => Ban::All,
            });
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

#[async_trait]
impl Storage for MokaStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let hash = key.combined_bin();
        let (obj, source) = match self.objects.get(&hash) {
            Some(obj) => {
                let body = Source::Memory(obj.body.clone());
                (obj, body)
            }
            None => {
                let Some((disk, obj, pieces)) = self.read_from_disk(&hash).await else {
                    return Ok(None);
                };
                disk.served();
                let obj = Arc::new(obj);
                let source = match pieces {
                    // A streamed body is read from disk as it is sent, never put in memory.
                    Some(pieces) => Source::Disk {
                        disk,
                        key: disk_key(&hash),
                        pieces,
                    },
                    None => {
                        self.objects.insert(hash, obj.clone());
                        Source::Memory(obj.body.clone())
                    }
                };
                (obj, source)
            }
        };
        let end = source.len();
        Ok(Some((obj.meta()?, Box::new(Hit { source, at: 0, end }))))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let url = String::from_utf8_lossy(key.primary_key());
        let url = Arc::from(url.split('\n').next().unwrap_or(""));
        Ok(Box::new(Miss {
            storage: self,
            key: key.combined_bin(),
            object: Object::new(meta, Bytes::new(), url, surrogate_keys(meta))?,
            body: BytesMut::new(),
            stream: None,
            abandoned: false,
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let key = target.key().combined_bin();
        if let Some(disk) = self.disk {
            disk.delete(disk_key(&key));
        }
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
        let key = key.combined_bin();
        // In memory, or on disk only (then a streamed body keeps its pieces).
        let (old, streamed) = match self.objects.get(&key) {
            Some(old) => (old, None),
            None => match self.read_from_disk(&key).await {
                Some((disk, old, pieces)) => (Arc::new(old), pieces.map(|p| (disk, p))),
                None => return Ok(false),
            },
        };
        let new = Object::new(
            meta,
            old.body.clone(),
            old.url.clone(),
            surrogate_keys(meta),
        )?;
        match streamed {
            Some((disk, pieces)) => disk.store(disk_key(&key), new.record(Some(pieces))?),
            None => {
                self.write_through(&key, &new);
                self.objects.insert(key, Arc::new(new));
            }
        }
        Ok(true)
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// Where a hit's body is.
enum Source {
    /// Whole, in memory.
    Memory(Bytes),
    /// In pieces on disk, read a piece at a time as it is sent.
    Disk {
        disk: &'static DiskTier,
        key: u128,
        pieces: Pieces,
    },
}

impl Source {
    fn len(&self) -> u64 {
        match self {
            Source::Memory(body) => body.len() as u64,
            Source::Disk { pieces, .. } => pieces.len,
        }
    }
}

/// Reads a stored body, whole or a range of it (pingora seeks for `Range` requests).
struct Hit {
    source: Source,
    /// The next byte to send, and the end of what is sent.
    at: u64,
    end: u64,
}

#[async_trait]
impl HandleHit for Hit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.at >= self.end {
            return Ok(None);
        }
        let (at, end) = (self.at, self.end);
        let chunk = match &self.source {
            Source::Memory(body) => body.slice(at as usize..end as usize),
            Source::Disk { disk, key, pieces } => {
                let index = (at / PIECE as u64) as u32;
                let Some(piece) = disk.load_piece(*key, pieces, index).await else {
                    // Gone or unreadable since the lookup: the response is cut here (its
                    // head is out) and the object dropped, so the next request fetches it.
                    disk.reject(*key);
                    return Error::e_explain(
                        ErrorType::InternalError,
                        "cache piece missing on disk",
                    );
                };
                let from = (at % PIECE as u64) as usize;
                let to = piece.len().min(from + (end - at) as usize);
                piece.slice(from..to)
            }
        };
        self.at += chunk.len() as u64;
        Ok(Some(chunk))
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
        let len = self.source.len();
        let (start, end) = (start as u64, end.map_or(len, |e| e as u64));
        if start > end || end > len {
            return Error::e_explain(ErrorType::InternalError, "seek out of range");
        }
        (self.at, self.end) = (start, end);
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

/// Buffers a response body and stores the object when the body ends; past
/// [`STREAM_ABOVE`], with a disk tier open, streams it to disk in pieces instead.
struct Miss {
    storage: &'static MokaStorage,
    key: HashBinary,
    /// The object to store, its body still empty.
    object: Object,
    /// What has arrived and is not yet stored.
    body: BytesMut,
    stream: Option<Stream>,
    /// Nothing will be stored: a piece did not reach the disk, or the body outgrew the
    /// memory tier with no disk tier to stream it to. The rest of the body is not kept.
    abandoned: bool,
}

/// A body being streamed to disk.
struct Stream {
    disk: &'static DiskTier,
    pieces: Pieces,
}

impl Stream {
    /// Store the next piece; `false` when it did not reach the disk.
    async fn write(&mut self, key: &HashBinary, piece: Bytes) -> bool {
        self.pieces.len += piece.len() as u64;
        let index = self.pieces.count;
        self.pieces.count += 1;
        self.disk
            .store_piece(disk_key(key), &self.pieces, index, piece)
            .await
    }
}

impl Miss {
    fn abandon(&mut self, why: &str) {
        tracing::warn!(url = %self.object.url, "cache object not stored: {why}");
        self.abandoned = true;
        self.body = BytesMut::new();
    }
}

#[async_trait]
impl HandleMiss for Miss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        if self.abandoned {
            return Ok(());
        }
        self.body.extend_from_slice(&data);
        if self.stream.is_none() && self.body.len() > STREAM_ABOVE {
            self.stream = self.storage.disk.filter(|d| d.up()).map(|disk| Stream {
                disk,
                pieces: Pieces {
                    id: super::disk::pieces_id(),
                    count: 0,
                    len: 0,
                },
            });
            if self.stream.is_none() && self.body.len() as u64 > self.storage.memory_bytes {
                self.abandon("larger than the memory tier, and no disk tier open");
            }
        }
        if let Some(stream) = &mut self.stream {
            while self.body.len() >= PIECE {
                let piece = self.body.split_to(PIECE).freeze();
                if !stream.write(&self.key, piece).await {
                    self.abandon("a piece of its body did not reach the disk");
                    break;
                }
            }
        }
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        if self.abandoned {
            return Ok(MissFinishType::Created(0));
        }
        let Miss {
            storage,
            key,
            mut object,
            body,
            stream,
            ..
        } = *self;
        let len = stream.as_ref().map_or(0, |s| s.pieces.len as usize) + body.len();
        object.declare_length(len);
        let Some(mut stream) = stream else {
            let size = body.len();
            let object = Object {
                body: body.freeze(),
                ..object
            };
            storage.write_through(&key, &object);
            storage.objects.insert(key, Arc::new(object));
            return Ok(MissFinishType::Created(size));
        };
        if !body.is_empty() && !stream.write(&key, body.freeze()).await {
            tracing::warn!(url = %object.url, "cache object not stored: a piece of its body did not reach the disk");
            return Ok(MissFinishType::Created(0));
        }
        // The record last, once every piece is on disk; flushed before the cache lock is
        // released, so the next request for it finds it whole on disk.
        let record = object.record(Some(stream.pieces))?;
        stream.disk.store_flushed(disk_key(&key), record).await;
        Ok(MissFinishType::Created(stream.pieces.len as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An object read back from its disk record is the object that was written: the same
    /// metadata (freshness above all), head, body, URL and surrogate keys.
    #[test]
    fn an_object_read_back_from_disk_is_the_one_written() {
        let created = SystemTime::now() - Duration::from_secs(5);
        let mut head = ResponseHeader::build(200, None).unwrap();
        head.append_header("content-length", "3").unwrap();
        head.append_header("surrogate-key", "k1 k2").unwrap();
        let meta = CacheMeta::new(created + Duration::from_secs(3600), created, 5, 7, head);
        let url: Arc<str> = Arc::from("a.test/x");
        let object = Object::new(
            &meta,
            Bytes::from_static(b"abc"),
            url,
            surrogate_keys(&meta),
        )
        .unwrap();
        let back = Object::from_record(object.record(None).unwrap()).unwrap();
        let (a, b) = (object.meta().unwrap(), back.meta().unwrap());
        assert_eq!(a.fresh_until(), b.fresh_until());
        assert_eq!(a.created(), b.created());
        assert!(b.is_fresh(SystemTime::now()));
        assert_eq!(a.serialize().unwrap(), b.serialize().unwrap());
        assert_eq!((&back.body[..], &*back.url), (&b"abc"[..], "a.test/x"));
        assert_eq!(back.surrogate_keys, ["k1", "k2"]);
        // Kept to the second, as stored.
        let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs(back.keep_until), secs(object.keep_until));
    }

    /// What a hit hands pingora is what decoding pingora's own serialized form gives: every
    /// internal field (freshness, stale windows, variance, epoch override, provenance) and
    /// the head with its fields, their order and their case.
    #[test]
    fn a_hit_gets_the_meta_that_was_stored() {
        let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut head = ResponseHeader::build(203, None).unwrap();
        head.append_header("X-Custom-Case", "a").unwrap();
        head.append_header("cache-control", "max-age=60").unwrap();
        head.append_header("X-Custom-Case", "b").unwrap();
        let mut stored = CacheMeta::new(created + Duration::from_secs(60), created, 5, 7, head);
        stored.set_variance([7; 16]);
        stored.set_epoch_override(created - Duration::from_secs(3));
        let object = Object::new(&stored, Bytes::new(), Arc::from("a.test/x"), vec![]).unwrap();
        let hit = object.meta().unwrap();
        let decoded = {
            let (internal, head) = stored.serialize().unwrap();
            CacheMeta::deserialize(&internal, &head).unwrap()
        };
        assert_eq!(hit.serialize().unwrap(), decoded.serialize().unwrap());
        let wire = |m: &CacheMeta| {
            let mut buf = Vec::new();
            m.response_header().header_to_h1_wire(&mut buf);
            buf
        };
        assert_eq!(wire(&hit), wire(&decoded));
        assert_eq!(hit.variance(), Some([7; 16]));
        assert_eq!(hit.epoch_override(), decoded.epoch_override());
        assert_eq!(hit.response_header().status.as_u16(), 203);
    }
}
