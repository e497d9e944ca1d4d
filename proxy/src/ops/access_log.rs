//! The access log: one line per request, written by its own thread from a bounded queue, so
//! logging never blocks the request path. A full queue drops the line and counts it.

use breakwater_config::{AccessLog, AccessLogFormat};
use std::io::Write;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::time::SystemTime;

/// One request, as logged.
pub struct Entry {
    pub time: SystemTime,
    pub client: String,
    pub protocol: &'static str,
    pub method: String,
    pub host: String,
    pub path: String,
    pub status: u16,
    pub bytes: usize,
    pub duration_us: u64,
    pub upstream: Option<String>,
    pub route: String,
    pub filters: Vec<String>,
    pub request_id: String,
    pub user_agent: String,
    pub referer: String,
}

impl Entry {
    fn json(&self) -> String {
        let time = humantime::format_rfc3339_millis(self.time);
        serde_json::json!({
            "time": time.to_string(),
            "client": self.client,
            "protocol": self.protocol,
            "method": self.method,
            "host": self.host,
            "path": self.path,
            "status": self.status,
            "bytes": self.bytes,
            "duration_ms": self.duration_us as f64 / 1000.0,
            "upstream": self.upstream,
            "route": self.route,
            "filters": self.filters,
            "request_id": self.request_id,
            "user_agent": self.user_agent,
        })
        .to_string()
    }

    fn combined(&self) -> String {
        let time = humantime::format_rfc3339_seconds(self.time);
        format!(
            "{} - - [{time}] \"{} {} {}\" {} {} \"{}\" \"{}\"",
            self.client,
            self.method,
            self.path,
            self.protocol,
            self.status,
            self.bytes,
            self.referer,
            self.user_agent
        )
    }
}

/// The sending side, cloned into every listener.
#[derive(Clone)]
pub struct AccessLogger {
    tx: Option<SyncSender<Entry>>,
    dropped: prometheus::IntCounter,
}

impl AccessLogger {
    /// Start the writer thread (none when the format is `off`).
    pub fn start(cfg: &AccessLog, dropped: prometheus::IntCounter) -> std::io::Result<Self> {
        if cfg.format == AccessLogFormat::Off {
            return Ok(Self { tx: None, dropped });
        }
        let mut out: Box<dyn Write + Send> = match &cfg.path {
            Some(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
            None => Box::new(std::io::stdout()),
        };
        // 64k lines of slack: bursts are absorbed, a stuck disk costs lines, not latency.
        let (tx, rx) = sync_channel::<Entry>(65_536);
        let format = cfg.format;
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut buf = Vec::with_capacity(64 << 10);
                while let Ok(first) = rx.recv() {
                    for e in std::iter::once(first).chain(rx.try_iter().take(1023)) {
                        let line = match format {
                            AccessLogFormat::Combined => e.combined(),
                            _ => e.json(),
                        };
                        buf.extend_from_slice(line.as_bytes());
                        buf.push(b'\n');
                    }
                    let _ = out.write_all(&buf);
                    let _ = out.flush();
                    buf.clear();
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            dropped,
        })
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn log(&self, e: Entry) {
        if let Some(tx) = &self.tx {
            if let Err(TrySendError::Full(_)) = tx.try_send(e) {
                self.dropped.inc();
            }
        }
    }
}
