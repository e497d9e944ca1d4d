//! The cache's disk tier, under the memory tier: objects are written through to a directory
//! by foyer's block engine (a hybrid memory + disk cache library made for this: entries
//! checksummed, its index recovered from the device at start, space reclaimed block by
//! block), read back when the memory tier misses, and kept across restarts and upgrades.
//!
//! * **One process owns the directory** (an exclusive lock on its `lock` file). The tier is
//!   opened by a thread of its own that waits for that lock, so during a graceful upgrade the
//!   new process serves from memory until the old one has exited, then opens the tier and
//!   serves what the old one stored.
//! * **Purges reach objects on disk through bans**, as Varnish's do: a purge by URL, prefix,
//!   surrogate key or everything is recorded with its time, in memory and appended to the
//!   directory's `bans` file (synced before the purge answers), and an object read from disk
//!   that a ban newer than the object selects is deleted instead of served. A purge of one
//!   key deletes it. Past [`MAX_BANS`] the tier is emptied and the bans with it.
//! * **Large objects are streamed to disk in pieces:** a body over [`STREAM_ABOVE`] is not
//!   buffered whole but written to the tier [`PIECE`] bytes at a time as it arrives (each
//!   piece an entry of its own, the writer waiting for each to be flushed, so one download
//!   holds about one piece in memory), then its head as a record that names the pieces; a
//!   hit reads it back a piece at a time. A record is written only once every piece is on
//!   disk, so a crash or a dropped piece leaves no object; one whose piece was reclaimed
//!   since is a miss.
//! * **Failures never fail a request:** a tier that cannot open (a read-only directory, a
//!   file in the way, no space) leaves the node memory-only with a warning and
//!   `breakwater_cache_disk_up 0`; a read that fails or does not decode is a miss, counted in
//!   `breakwater_cache_disk_errors`; a write that did not land is counted, and when the disk
//!   itself refuses writes the tier switches itself off until restart (see
//!   [`DiskTier::live`]), purges meanwhile kept as bans.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder, Load,
    RecoverMode,
};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bans kept before the tier is emptied instead (each one is checked by every disk read).
const MAX_BANS: usize = 10_000;

/// The record format's tag and version, first in every stored value: `BWD2` records may
/// name pieces; `BWD1` ones (written before pieces existed) are still read.
const MAGIC: &[u8; 4] = b"BWD2";
const MAGIC_1: &[u8; 4] = b"BWD1";

/// Bodies larger than this are kept on disk only, streamed there in pieces (when the tier is
/// open; otherwise they are buffered whole in memory, up to `cache.max_object_mb`).
pub const STREAM_ABOVE: usize = 4 << 20;

/// The size of each piece of a streamed body (the last one may be shorter).
pub const PIECE: usize = 1 << 20;

/// Where a streamed body's pieces are: `count` entries of [`PIECE`] bytes (the last one
/// shorter), `len` bytes in all, under keys derived from the object's key and `id` (one per
/// write, so the pieces of an earlier version of an object are never mixed in).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pieces {
    pub id: u64,
    pub count: u32,
    pub len: u64,
}

impl Pieces {
    /// The key of piece `index` of the object stored under `key`.
    fn key(&self, key: u128, index: u32) -> u128 {
        piece_key(key, self.id, index)
    }

    /// How long piece `index` is.
    pub fn piece_len(&self, index: u32) -> usize {
        let start = u64::from(index) * PIECE as u64;
        (self.len.saturating_sub(start)).min(PIECE as u64) as usize
    }
}

fn piece_key(key: u128, id: u64, index: u32) -> u128 {
    // Object keys are uniform hashes: a fixed mix with the write's id and the index gives
    // keys that collide with no object's and no other piece's but by chance (2^-128).
    key.rotate_left(17) ^ ((u128::from(id) << 64) | (u128::from(index) + 1))
}

/// A fresh id for the pieces of one write: unique across writes and restarts.
pub fn pieces_id() -> u64 {
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    NEXT.get_or_init(|| AtomicU64::new(now_ms() << 20))
        .fetch_add(1, Ordering::Relaxed)
}

/// What a purge selected, as a ban records it.
#[derive(Clone, Debug, PartialEq)]
pub enum Ban {
    Url(String),
    Prefix(String),
    SurrogateKey(String),
    /// One object, by its key: a purge of one key while the tier is off.
    Object(u128),
    All,
}

impl Ban {
    fn selects(&self, key: u128, record: &Record) -> bool {
        match self {
            Ban::Object(k) => *k == key,
            Ban::Url(u) => record.url == *u,
            Ban::Prefix(p) => record.url.starts_with(p.as_str()),
            Ban::SurrogateKey(k) => record.surrogate_keys.iter().any(|s| s == k),
            Ban::All => true,
        }
    }

    /// One line of the `bans` file: `MILLIS KIND VALUE`.
    fn line(&self, at: u64) -> String {
        match self {
            Ban::Url(u) => format!("{at} url {u}\n"),
            Ban::Prefix(p) => format!("{at} prefix {p}\n"),
            Ban::SurrogateKey(k) => format!("{at} key {k}\n"),
            Ban::Object(k) => format!("{at} object {k:032x}\n"),
            Ban::All => format!("{at} all\n"),
        }
    }

    fn parse(line: &str) -> Option<(u64, Ban)> {
        let mut parts = line.splitn(3, ' ');
        let at = parts.next()?.parse().ok()?;
        let ban = match (parts.next()?, parts.next()) {
            ("url", Some(u)) => Ban::Url(u.to_string()),
            ("prefix", Some(p)) => Ban::Prefix(p.to_string()),
            ("key", Some(k)) => Ban::SurrogateKey(k.to_string()),
            ("object", Some(k)) => Ban::Object(u128::from_str_radix(k, 16).ok()?),
            ("all", None) => Ban::All,
            _ => return None,
        };
        Some((at, ban))
    }
}

/// One object as stored on disk: what the memory tier's object is made from.
#[derive(Debug, PartialEq)]
pub struct Record {
    /// When it was written (milliseconds since the epoch), for bans.
    pub stored_at: u64,
    /// Until when it may be kept (seconds since the epoch).
    pub keep_until: u64,
    /// pingora's serialized metadata: internal part and head.
    pub internal: Bytes,
    pub head: Bytes,
    pub url: String,
    pub surrogate_keys: Vec<String>,
    /// The body, when stored whole (`pieces` is then `None`).
    pub body: Bytes,
    /// Where the body is, when it was streamed in pieces.
    pub pieces: Option<Pieces>,
}

impl Record {
    /// The body's length, whole or in pieces.
    pub fn body_len(&self) -> u64 {
        self.pieces.map_or(self.body.len() as u64, |p| p.len)
    }

    fn encode(&self) -> Bytes {
        let keys: usize = self.surrogate_keys.iter().map(|k| 4 + k.len()).sum();
        let mut out = BytesMut::with_capacity(
            4 + 16
                + 20
                + 12
                + self.internal.len()
                + self.head.len()
                + self.url.len()
                + 4
                + keys
                + self.body.len(),
        );
        out.put_slice(MAGIC);
        out.put_u64_le(self.stored_at);
        out.put_u64_le(self.keep_until);
        let pieces = self.pieces.unwrap_or(Pieces {
            id: 0,
            count: 0,
            len: 0,
        });
        out.put_u64_le(pieces.id);
        out.put_u32_le(pieces.count);
        out.put_u64_le(pieces.len);
        for part in [&self.internal[..], &self.head[..], self.url.as_bytes()] {
            out.put_u32_le(part.len() as u32);
            out.put_slice(part);
        }
        out.put_u32_le(self.surrogate_keys.len() as u32);
        for k in &self.surrogate_keys {
            out.put_u32_le(k.len() as u32);
            out.put_slice(k.as_bytes());
        }
        out.put_slice(&self.body);
        out.freeze()
    }

    /// `None` when `bytes` is not a whole record of this format.
    fn decode(mut bytes: Bytes) -> Option<Record> {
        fn part(b: &mut Bytes) -> Option<Bytes> {
            if b.remaining() < 4 {
                return None;
            }
            let len = b.get_u32_le() as usize;
            (b.remaining() >= len).then(|| b.split_to(len))
        }
        if bytes.remaining() < 20 {
            return None;
        }
        let version = match &bytes[..4] {
            m if m == MAGIC => 2,
            m if m == MAGIC_1 => 1,
            _ => return None,
        };
        bytes.advance(4);
        let stored_at = bytes.get_u64_le();
        let keep_until = bytes.get_u64_le();
        let pieces = match version {
            2 if bytes.remaining() >= 20 => {
                let id = bytes.get_u64_le();
                let count = bytes.get_u32_le();
                let len = bytes.get_u64_le();
                (count > 0).then_some(Pieces { id, count, len })
            }
            2 => return None,
            _ => None,
        };
        let internal = part(&mut bytes)?;
        let head = part(&mut bytes)?;
        let url = String::from_utf8(part(&mut bytes)?.to_vec()).ok()?;
        if bytes.remaining() < 4 {
            return None;
        }
        let count = bytes.get_u32_le() as usize;
        let mut surrogate_keys = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            surrogate_keys.push(String::from_utf8(part(&mut bytes)?.to_vec()).ok()?);
        }
        Some(Record {
            stored_at,
            keep_until,
            internal,
            head,
            url,
            surrogate_keys,
            body: bytes,
            pieces,
        })
    }
}

/// Why the tier could not open (the node then serves from memory only).
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    #[error("{0}: {1}")]
    Store(&'static str, foyer::Error),
}

/// The tier once open.
struct Open {
    cache: HybridCache<u128, Bytes>,
    /// The tier's own I/O runtime (foyer's tasks run there, and the checks of writes).
    runtime: tokio::runtime::Handle,
    bans: Mutex<Bans>,
    /// Held for the process's life: the directory's owner.
    _lock: File,
}

struct Bans {
    list: Vec<(u64, Ban)>,
    log: File,
}

/// The disk tier: opened in the background, then shared by every request.
pub struct DiskTier {
    path: PathBuf,
    open: OnceLock<Open>,
    hits: AtomicU64,
    errors: AtomicU64,
    /// The disk refused a write: the tier is off until the process restarts (see
    /// [`DiskTier::live`]).
    failed: AtomicBool,
    /// A probe of the disk is running.
    probing: AtomicBool,
}

/// Settings for [`DiskTier::start`].
pub struct DiskSettings<'a> {
    pub path: &'a Path,
    pub bytes: u64,
    /// The largest object stored: a block must hold it.
    pub max_object_bytes: usize,
}

/// Now, in milliseconds since the epoch (a record's `stored_at`, a ban's time).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `t` in whole seconds since the epoch.
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl DiskTier {
    /// The tier for `settings`, opening in the background (see the module's notes).
    pub fn start(settings: DiskSettings<'_>) -> &'static DiskTier {
        let tier: &'static DiskTier = Box::leak(Box::new(DiskTier {
            path: settings.path.to_path_buf(),
            open: OnceLock::new(),
            hits: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            probing: AtomicBool::new(false),
        }));
        let (bytes, max_object) = (settings.bytes, settings.max_object_bytes);
        let spawned = std::thread::Builder::new()
            .name("cache-disk-open".into())
            .spawn(move || match tier.open(bytes, max_object) {
                Ok(open) => {
                    let _ = tier.open.set(open);
                    tracing::info!(path = %tier.path.display(), "cache disk tier open");
                }
                Err(e) => {
                    tier.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        path = %tier.path.display(),
                        "cache disk tier unavailable, serving from memory only: {e}"
                    );
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cache disk tier not started: {e}");
        }
        tier
    }

    fn open(&self, bytes: u64, max_object: usize) -> Result<Open, OpenError> {
        use OpenError::{Io, Store};
        std::fs::create_dir_all(&self.path).map_err(|e| Io("creating the directory", e))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.path.join("lock"))
            .map_err(|e| Io("opening its lock file", e))?;
        // Waits while another process (the one this one upgrades) owns the directory.
        lock.lock().map_err(|e| Io("locking it", e))?;
        let bans = load_bans(&self.path.join("bans")).map_err(|e| Io("reading bans", e))?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path.join("bans"))
            .map_err(|e| Io("opening bans", e))?;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(4)
            .thread_name("cache-disk")
            .enable_all()
            .build()
            .map_err(|e| Io("starting its I/O runtime", e))?;
        let handle = runtime.handle().clone();
        let device = FsDeviceBuilder::new(self.path.join("objects"))
            .with_capacity(bytes as usize)
            .build()
            .map_err(|e| Store("opening the device", e))?;
        // A block holds whole records: at least 16 MiB, more for larger objects (larger
        // than STREAM_ABOVE, they are stored in pieces).
        let block = (max_object.min(STREAM_ABOVE) + (1 << 20))
            .next_power_of_two()
            .max(16 << 20);
        let builder = HybridCacheBuilder::new()
            .with_name("breakwater-cache-disk")
            // The memory tier is moka's: foyer's own holds only what is being read back.
            .memory(8 << 20)
            .with_weighter(|_k: &u128, v: &Bytes| v.len())
            .storage()
            // Deletions (a purged key, a banned object read back) are logged, so that a
            // deleted object does not come back when the index is recovered.
            .with_engine_config(
                BlockEngineConfig::new(device)
                    .with_block_size(block)
                    .with_tombstone_log(true),
            )
            .with_recover_mode(RecoverMode::Quiet)
            .with_spawner(runtime.into());
        let cache = handle
            .block_on(builder.build())
            .map_err(|e| Store("opening the store", e))?;
        Ok(Open {
            cache,
            runtime: handle,
            bans: Mutex::new(Bans { list: bans, log }),
            _lock: lock,
        })
    }

    /// Whether the tier is open and has not failed a write (`breakwater_cache_disk_up`).
    pub fn up(&self) -> bool {
        self.live().is_some()
    }

    /// The tier, while it serves: open, and no write has failed. After a failed write foyer's
    /// block engine cannot be trusted with more (0.22 loses its current block and its
    /// tombstone log's page: later flushes panic in their tasks), so the node goes on from
    /// memory; a restart recovers what the device holds.
    fn live(&self) -> Option<&Open> {
        self.open
            .get()
            .filter(|_| !self.failed.load(Ordering::Relaxed))
    }

    /// Objects served from disk, reads that failed, and bytes written, since start.
    pub fn counters(&self) -> (u64, u64, u64) {
        let written = self.open.get().map_or(0, |o| {
            o.cache.storage().statistics().disk_write_bytes() as u64
        });
        (
            self.hits.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            written,
        )
    }

    /// Write `record` under `key`, in the background: once flushed, a record that is not on
    /// disk (a write that failed, a full write queue that dropped it) is counted and logged.
    pub fn store(&'static self, key: u128, record: Record) {
        if let Some(open) = self.enqueue(key, record.encode()) {
            open.runtime.spawn(self.landed(open, key));
        }
    }

    /// Write `record` under `key` and wait until it is flushed (a streamed body's record:
    /// its object is on disk, whole, when this returns).
    pub async fn store_flushed(&'static self, key: u128, record: Record) {
        if let Some(open) = self.enqueue(key, record.encode()) {
            self.landed(open, key).await;
        }
    }

    /// Queue `value` for writing under `key`, unless the tier is not serving.
    fn enqueue(&'static self, key: u128, value: Bytes) -> Option<&'static Open> {
        let open = self.live()?;
        open.cache.storage_writer(key).force().insert(value);
        Some(open)
    }

    /// Once what is queued now is flushed, whether the value written under `key` is on disk;
    /// one that is not goes to [`DiskTier::write_failed`].
    async fn landed(&'static self, open: &'static Open, key: u128) -> bool {
        open.cache.storage().wait().await;
        let stored = open.cache.storage().may_contains(&key);
        if !stored {
            self.write_failed();
        }
        stored
    }

    /// Count a write that did not reach the disk, and find out why: foyer drops writes when
    /// its write queue is full (the object then stays in memory only), but when the disk
    /// itself refuses a write of a page in the directory (full, read-only, failing), the
    /// tier is switched off, once, with a warning.
    fn write_failed(&'static self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let Some(open) = self.open.get() else {
            return;
        };
        if self.failed.load(Ordering::Relaxed) || self.probing.swap(true, Ordering::Relaxed) {
            return;
        }
        open.runtime.spawn_blocking(move || {
            if let Err(e) = probe(&self.path) {
                self.failed.store(true, Ordering::Relaxed);
                tracing::warn!(
                    path = %self.path.display(),
                    "cache disk write failed ({e}): serving from memory only until restart"
                );
            }
            self.probing.store(false, Ordering::Relaxed);
        });
    }

    /// Write piece `index` of a streamed body and wait until it is flushed: `false` when it
    /// did not make it (the tier is closed, or its write queue was full and dropped it).
    pub async fn store_piece(
        &'static self,
        key: u128,
        pieces: &Pieces,
        index: u32,
        bytes: Bytes,
    ) -> bool {
        let piece = pieces.key(key, index);
        let Some(open) = self.enqueue(piece, bytes) else {
            return false;
        };
        self.landed(open, piece).await
    }

    /// Whether every piece `pieces` names is still on disk (by the index: no read).
    pub fn has_pieces(&self, key: u128, pieces: &Pieces) -> bool {
        self.live().is_some_and(|open| {
            (0..pieces.count).all(|i| open.cache.storage().may_contains(&pieces.key(key, i)))
        })
    }

    /// Piece `index` of the streamed body stored under `key`, if it is there and whole.
    pub async fn load_piece(&self, key: u128, pieces: &Pieces, index: u32) -> Option<Bytes> {
        let value = self.read(self.live()?, pieces.key(key, index)).await?;
        (value.len() == pieces.piece_len(index)).then_some(value)
    }

    /// The value stored under `key` (a read that fails is counted and is a miss).
    async fn read(&self, open: &Open, key: u128) -> Option<Bytes> {
        match open.cache.storage().load(&key).await {
            Ok(Load::Entry { value, .. }) => Some(value),
            Ok(Load::Piece { piece, .. }) => Some(piece.value().clone()),
            Ok(_) => None,
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("cache disk read failed: {e}");
                None
            }
        }
    }

    /// The object stored under `key`, unless it is gone, expired, does not decode, or a ban
    /// newer than it selects it (then it is deleted).
    pub async fn load(&self, key: u128) -> Option<Record> {
        let open = self.live()?;
        let value = self.read(open, key).await?;
        let Some(record) = Record::decode(value) else {
            self.errors.fetch_add(1, Ordering::Relaxed);
            open.cache.storage().delete(&key);
            return None;
        };
        let banned = {
            let bans = open.bans.lock().unwrap_or_else(|p| p.into_inner());
            bans.list
                .iter()
                .any(|(at, ban)| *at >= record.stored_at && ban.selects(key, &record))
        };
        if banned || record.keep_until <= unix_secs(SystemTime::now()) {
            open.cache.storage().delete(&key);
            return None;
        }
        Some(record)
    }

    /// Count an object served from disk (its record was whole).
    pub fn served(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Drop the record under `key`, which did not make an object: count it as an error.
    pub fn reject(&self, key: u128) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.delete(key);
    }

    /// Delete the object stored under `key` (with the tier off, ban it, so that it does not
    /// come back after a restart).
    pub fn delete(&self, key: u128) {
        match self.live() {
            Some(open) => open.cache.storage().delete(&key),
            None if self.open.get().is_some() => self.ban(Ban::Object(key)),
            None => {}
        }
    }

    /// Record `ban` for the objects on disk (synced to the `bans` file before it returns).
    pub fn ban(&self, ban: Ban) {
        let Some(open) = self.open.get() else {
            return;
        };
        let at = now_ms();
        let mut bans = open.bans.lock().unwrap_or_else(|p| p.into_inner());
        // Past the limit, everything stored so far is banned instead.
        let ban = match bans.list.len() >= MAX_BANS {
            true => Ban::All,
            false => ban,
        };
        let written = match ban {
            // Everything stored until now is banned: the older bans say nothing more.
            Ban::All => {
                bans.list.clear();
                bans.list.push((at, Ban::All));
                let path = self.path.join("bans");
                rewrite_bans(&path, &bans.list).and_then(|()| {
                    bans.log = OpenOptions::new().append(true).open(&path)?;
                    Ok(())
                })
            }
            ban => {
                let line = ban.line(at);
                bans.list.push((at, ban));
                let log = &mut bans.log;
                log.write_all(line.as_bytes())
                    .and_then(|()| log.sync_data())
            }
        };
        if let Err(e) = written {
            self.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("cache disk ban not persisted: {e}");
        }
    }
}

/// Write a page to a new file in `dir`, sync and remove it: whether the disk takes writes.
fn probe(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("probe");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let written = file
        .write_all_at(&[0; 4096], 0)
        .and_then(|()| file.sync_data());
    drop(file);
    let _ = std::fs::remove_file(&path);
    written
}

fn load_bans(path: &Path) -> std::io::Result<Vec<(u64, Ban)>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut bans = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        // A line cut by a crash is the last one: its purge never answered.
        if let Some(ban) = Ban::parse(line?.trim_end()) {
            bans.push(ban);
        }
    }
    Ok(bans)
}

fn rewrite_bans(path: &Path, bans: &[(u64, Ban)]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp)?;
    for (at, ban) in bans {
        f.write_all(ban.line(*at).as_bytes())?;
    }
    f.sync_data()?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_bans_round_trip() {
        let r = Record {
            stored_at: 1_700_000_000_123,
            keep_until: 1_700_000_600,
            internal: Bytes::from_static(b"internal"),
            head: Bytes::from_static(b"head"),
            url: "a.test/x?y=1".into(),
            surrogate_keys: vec!["k1".into(), "k2".into()],
            body: Bytes::from(vec![7u8; 1000]),
            pieces: None,
        };
        assert_eq!(Record::decode(r.encode()).as_ref(), Some(&r));
        let streamed = Record {
            body: Bytes::new(),
            pieces: Some(Pieces {
                id: 9,
                count: 3,
                len: 2 * PIECE as u64 + 5,
            }),
            ..Record::decode(r.encode()).unwrap()
        };
        assert_eq!(Record::decode(streamed.encode()).as_ref(), Some(&streamed));
        assert_eq!(streamed.body_len(), 2 * PIECE as u64 + 5);
        let p = streamed.pieces.unwrap();
        assert_eq!(
            (p.piece_len(0), p.piece_len(2), p.piece_len(3)),
            (PIECE, 5, 0)
        );
        assert_ne!(p.key(1, 0), p.key(1, 1));
        // A record of the first version (no pieces) is still read.
        let mut v1 = BytesMut::from(&r.encode()[..]);
        v1[..4].copy_from_slice(MAGIC_1);
        let v1 = [&v1[..20], &v1[40..]].concat();
        assert_eq!(Record::decode(Bytes::from(v1)).as_ref(), Some(&r));
        let cut = r.encode().slice(..30);
        assert_eq!(Record::decode(cut), None);
        assert_eq!(
            Record::decode(Bytes::from_static(b"XXXX0000000000000000")),
            None
        );
        for ban in [
            Ban::Url("a.test/x".into()),
            Ban::Prefix("a.test/".into()),
            Ban::SurrogateKey("k1".into()),
            Ban::Object(u128::MAX - 5),
            Ban::All,
        ] {
            let line = ban.line(42);
            assert_eq!(Ban::parse(line.trim_end()), Some((42, ban)));
        }
        assert!(Ban::Prefix("a.test/".into()).selects(1, &r));
        assert!(Ban::SurrogateKey("k2".into()).selects(1, &r));
        assert!(!Ban::Url("a.test/x".into()).selects(1, &r));
        assert!(Ban::Object(7).selects(7, &r) && !Ban::Object(7).selects(8, &r));
        assert_eq!(Ban::parse("12 url"), None);
    }
}
