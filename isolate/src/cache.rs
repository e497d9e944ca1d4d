//! On-disk cache of compiled components, keyed by the component's bytes and the engine's
//! compatibility hash (wasmtime version and every setting that changes the machine code).

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use wasmtime::component::Component;
use wasmtime::Engine;

pub(crate) struct CompiledCache {
    dir: PathBuf,
    engine_key: u64,
}

impl CompiledCache {
    pub(crate) fn new(dir: &Path, engine: &Engine) -> Self {
        let mut h = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self {
            dir: dir.to_path_buf(),
            engine_key: h.finish(),
        }
    }

    /// The file-name suffix of what this engine compiles (`-KEY.cwasm`).
    fn suffix(&self) -> String {
        format!("-{:016x}.cwasm", self.engine_key)
    }

    /// Where the compiled `bytes` are (or go).
    pub(crate) fn path_for(&self, bytes: &[u8]) -> PathBuf {
        let digest = Sha256::digest(bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{hex}{}", self.suffix()))
    }

    /// The cached compilation if there is a valid one (and `true`), else compile and store it
    /// (and `false`). A cache that cannot be read or written (missing directory, full disk)
    /// only costs a compilation.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> Result<(Component, bool), String> {
        let path = self.path_for(bytes);
        if path.exists() {
            match deserialize(engine, &path) {
                Ok(c) => return Ok((c, true)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "unusable cached component; recompiling")
                }
            }
        }
        let compiled = engine
            .precompile_component(bytes)
            .map_err(|e| e.to_string())?;
        if std::fs::create_dir_all(&self.dir).is_ok() {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, &compiled).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
        deserialize_bytes(engine, &compiled)
            .map(|c| (c, false))
            .map_err(|e| e.to_string())
    }
}

/// Compiled code another engine wrote (another wasmtime build, or settings that change the
/// machine code) is never loaded again by this one: once it is older than this, the next start
/// removes it. The grace lets an old and a new binary share the directory through an upgrade
/// and its rollback without recompiling each other's components.
pub(crate) const FOREIGN_GRACE: Duration = Duration::from_secs(24 * 3600);

/// A file half-written by a process that died is removed once it is older than this.
const TEMP_GRACE: Duration = Duration::from_secs(3600);

/// What [`prune`] removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Pruned {
    pub(crate) files: usize,
    pub(crate) bytes: u64,
}

/// Keep the cache directory from growing across upgrades: remove the compiled code that none
/// of `ours` can load (with its load-proof markers) once older than [`FOREIGN_GRACE`], and
/// temporary files left by a writer that died. Warm snapshots (`warm-*.wasm`) are keyed by
/// the component, not the engine, and are kept. Errors (a missing or unreadable directory)
/// only leave files in place.
pub(crate) fn prune(dir: &Path, ours: &[&CompiledCache], now: SystemTime) -> Pruned {
    let suffixes: Vec<String> = ours.iter().map(|c| c.suffix()).collect();
    let mut pruned = Pruned::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return pruned;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // `HASH-KEY.cwasm`, `HASH-KEY.cwasm.WHAT.proven`, `NAME.tmpPID`.
        let grace = if let Some(at) = name.find(".cwasm") {
            let artifact = &name[..at + ".cwasm".len()];
            if suffixes.iter().any(|s| artifact.ends_with(s.as_str())) {
                continue;
            }
            FOREIGN_GRACE
        } else if name
            .rsplit('.')
            .next()
            .is_some_and(|ext| ext.starts_with("tmp"))
        {
            TEMP_GRACE
        } else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if meta.is_file() && age > grace && std::fs::remove_file(entry.path()).is_ok() {
            pruned.files += 1;
            pruned.bytes += meta.len();
        }
    }
    pruned
}

/// The marker beside the compiled component at `artifact` saying that it was loaded as
/// `what` (its kind and the settings its load proof depends on) and proved: it pre-linked and
/// instantiated. A later load finding it may defer all of that to the first request.
pub(crate) fn proven_marker(artifact: &Path, what: &str) -> PathBuf {
    let mut name = artifact.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{what}.proven"));
    artifact.with_file_name(name)
}

/// Write the marker (see [`proven_marker`]); a cache that cannot be written only costs a full
/// load next time.
pub(crate) fn mark_proven(artifact: &Path, what: &str) {
    let marker = proven_marker(artifact, what);
    if !marker.exists() {
        let _ = std::fs::write(marker, b"");
    }
}

/// Write a marker holding `contents` (a filter's phases); as [`mark_proven`], a cache that
/// cannot be written only costs a full load next time.
pub(crate) fn mark_proven_with(artifact: &Path, what: &str, contents: &str) {
    let marker = proven_marker(artifact, what);
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(contents) {
        let _ = std::fs::write(marker, contents);
    }
}

/// The compiled component at `artifact` (in the cache directory).
pub(crate) fn load_artifact(engine: &Engine, artifact: &Path) -> Result<Component, String> {
    deserialize(engine, artifact).map_err(|e| format!("{e:#}"))
}

/// A component derived from another (a warm snapshot), stored in the cache directory as
/// `NAME.wasm`; `None` when there is none (or it cannot be read).
pub(crate) fn read_derived(dir: &Path, name: &str) -> Option<Vec<u8>> {
    std::fs::read(dir.join(format!("{name}.wasm"))).ok()
}

/// Store a derived component; a cache that cannot be written only costs deriving it again.
pub(crate) fn write_derived(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(format!("{name}.wasm"));
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::create_dir_all(dir).is_ok() && std::fs::write(&tmp, bytes).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file was written by `precompile_component` of an engine with the same
    // compatibility hash (it is in the file name), into a directory this process owns; it is
    // named by the SHA-256 of the source, so a stale or foreign file is never picked up by
    // accident. wasmtime also checks the header and version before using it.
    unsafe { Component::deserialize_file(engine, path) }
}

#[allow(unsafe_code)]
fn deserialize_bytes(engine: &Engine, compiled: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `compiled` was produced a moment ago by `precompile_component` of this engine.
    unsafe { Component::deserialize(engine, compiled) }
}
