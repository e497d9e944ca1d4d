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

    /// nginx's and Apache's `combined` format, as log tools parse it: the time as
    /// `[03/Dec/2026:13:58:29 +0000]`, `-` for an absent referer or user agent, and `"`,
    /// `\` and control bytes in the request, referer and user agent escaped as `\xHH`
    /// (as nginx does), so a client cannot forge a line or a field.
    fn combined(&self) -> String {
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_string()
            } else {
                escape(s)
            }
        };
        format!(
            "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\"",
            self.client,
            clf_time(self.time),
            escape(&self.method),
            escape(&self.path),
            self.protocol,
            self.status,
            self.bytes,
            dash(&self.referer),
            dash(&self.user_agent)
        )
    }
}

/// `03/Dec/2026:13:58:29 +0000`, from the RFC 3339 form (UTC).
fn clf_time(time: SystemTime) -> String {
    let t = humantime::format_rfc3339_seconds(time).to_string();
    // 2026-12-03T13:58:29Z
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = t[5..7]
        .parse::<usize>()
        .map_or("Jan", |m| MONTHS[(m + 11) % 12]);
    format!("{}/{month}/{}:{} +0000", &t[8..10], &t[..4], &t[11..19])
}

/// `"`, `\`, and bytes outside printable ASCII as `\xHH`.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'"' | b'\\' | 0..=0x1f | 0x7f..=0xff => out.push_str(&format!("\\x{b:02X}")),
            _ => out.push(b as char),
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            time: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_796_305_109),
            client: "192.0.2.1".into(),
            protocol: "HTTP/1.1",
            method: "GET".into(),
            host: "example.com".into(),
            path: "/a?b=c".into(),
            status: 200,
            bytes: 1234,
            duration_us: 1,
            upstream: None,
            route: "r".into(),
            filters: Vec::new(),
            request_id: "x".into(),
            user_agent: "curl/8.5".into(),
            referer: String::new(),
        }
    }

    #[test]
    fn combined_is_the_format_log_tools_parse() {
        assert_eq!(
            entry().combined(),
            r#"192.0.2.1 - - [03/Dec/2026:13:38:29 +0000] "GET /a?b=c HTTP/1.1" 200 1234 "-" "curl/8.5""#
        );
    }

    #[test]
    fn combined_fields_cannot_forge_a_line_or_a_field() {
        let mut e = entry();
        e.user_agent = "evil\" \"x\nnext".into();
        e.referer = "a\\b".into();
        assert_eq!(
            e.combined(),
            r#"192.0.2.1 - - [03/Dec/2026:13:38:29 +0000] "GET /a?b=c HTTP/1.1" 200 1234 "a\x5Cb" "evil\x22 \x22x\x0Anext""#
        );
    }
}
