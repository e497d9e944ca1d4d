//! The access log: one line per request, formatted and written by its own thread from a
//! bounded queue, so logging never blocks the request path. A full queue drops the line and
//! counts it.
//!
//! The request path only moves or shares what a line needs (no formatting, no copies of the
//! names). The writer wakes for the first line after a pause, writes everything queued,
//! then sleeps [`FLUSH_EVERY`] before it waits again: under load a request's line costs a
//! queue push, not a thread wake-up (one per line cost more than the proxying itself on a
//! busy core, see bench/before-after.sh with `ACCESS_LOG_B`); a line reaches the log within
//! that interval.

use breakwater_config::{AccessLog, AccessLogFormat};
use http::{HeaderValue, Method, Uri};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long the writer sleeps after writing, for more lines to gather.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// One request, as logged.
pub struct Entry {
    pub time: SystemTime,
    pub client: Option<IpAddr>,
    pub protocol: &'static str,
    pub method: Method,
    pub host: String,
    /// The request target; its path and query are logged.
    pub uri: Uri,
    pub status: u16,
    pub bytes: usize,
    pub duration_us: u64,
    pub upstream: Option<SocketAddr>,
    pub route: Arc<str>,
    pub filters: Arc<[Arc<str>]>,
    pub request_id: String,
    pub user_agent: Option<HeaderValue>,
    pub referer: Option<HeaderValue>,
}

/// A header's value as text; empty when absent or not visible ASCII.
fn text(v: &Option<HeaderValue>) -> &str {
    v.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// `s` as a JSON string (quoted, escaped).
fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The three decimal digits of `n` below 1000 (`7` -> `007`).
fn three_digits(n: u32) -> [u8; 3] {
    let digit = |d: u32| b'0' + (d % 10) as u8;
    [digit(n / 100), digit(n / 10), digit(n)]
}

/// Microseconds as milliseconds, the shortest decimal that says them (`1.5`, `0.001`, `2`),
/// as a float's `Display` wrote them, without its formatting machinery.
fn write_millis(out: &mut Vec<u8>, us: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(us / 1000).as_bytes());
    let fraction = three_digits((us % 1000) as u32);
    if let Some(last) = fraction.iter().rposition(|&d| d != b'0') {
        out.push(b'.');
        out.extend_from_slice(&fraction[..=last]);
    }
}

/// The text of the last value formatted, kept while the next ones are the same.
struct Last<T> {
    value: Option<(T, String)>,
}

impl<T: PartialEq + Copy> Last<T> {
    /// The text of `value`, made by `text` when it is not the last one's.
    fn text(&mut self, value: T, text: impl FnOnce(T) -> String) -> &str {
        if self.value.as_ref().is_none_or(|(v, _)| *v != value) {
            self.value = Some((value, text(value)));
        }
        self.value.as_ref().map_or("", |(_, text)| text)
    }
}

impl<T> Default for Last<T> {
    fn default() -> Self {
        Self { value: None }
    }
}

/// What consecutive JSON lines share, as text: their second, client and origin.
#[derive(Default)]
pub(crate) struct LineMemo {
    /// The Unix second of the last line: its RFC 3339 text up to the fraction.
    second: Last<u64>,
    client: Last<IpAddr>,
    upstream: Last<SocketAddr>,
}

impl LineMemo {
    /// `time` in RFC 3339 with milliseconds, UTC (`2026-12-03T13:58:29.123Z`).
    fn time(&mut self, time: SystemTime, out: &mut Vec<u8>) {
        let Ok(since) = time.duration_since(SystemTime::UNIX_EPOCH) else {
            let _ = write!(out, "{}", humantime::format_rfc3339_millis(time));
            return;
        };
        let second = self.second.text(since.as_secs(), |_| {
            let mut text = humantime::format_rfc3339_seconds(time).to_string();
            text.pop(); // the `Z`
            text
        });
        out.extend_from_slice(second.as_bytes());
        out.push(b'.');
        out.extend_from_slice(&three_digits(since.subsec_millis()));
        out.push(b'Z');
    }
}

impl Entry {
    fn path(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    /// One JSON object (no newline). `memo` carries what consecutive lines share, made text
    /// once: the writer thread formats every line, most of a burst's in the same second, from
    /// the same clients, to the same origins (`fmt` machinery for the time, two addresses and
    /// a float was most of a line's cost, `bench/instructions.sh` with `ACCESS_LOG`).
    pub(crate) fn write_json(&self, out: &mut Vec<u8>, memo: &mut LineMemo) {
        out.extend_from_slice(b"{\"time\":\"");
        memo.time(self.time, out);
        out.extend_from_slice(b"\",\"client\":\"");
        if let Some(ip) = self.client {
            out.extend_from_slice(memo.client.text(ip, |ip| ip.to_string()).as_bytes());
        }
        out.extend_from_slice(b"\",\"protocol\":\"");
        out.extend_from_slice(self.protocol.as_bytes());
        out.extend_from_slice(b"\",\"method\":");
        json_str(out, self.method.as_str());
        out.extend_from_slice(b",\"host\":");
        json_str(out, &self.host);
        out.extend_from_slice(b",\"path\":");
        json_str(out, self.path());
        out.extend_from_slice(b",\"status\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.status).as_bytes());
        out.extend_from_slice(b",\"bytes\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.bytes).as_bytes());
        out.extend_from_slice(b",\"duration_ms\":");
        write_millis(out, self.duration_us);
        out.extend_from_slice(b",\"upstream\":");
        match self.upstream {
            Some(a) => {
                out.push(b'"');
                out.extend_from_slice(memo.upstream.text(a, |a| a.to_string()).as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"route\":");
        json_str(out, &self.route);
        out.extend_from_slice(b",\"filters\":[");
        for (i, f) in self.filters.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_str(out, f);
        }
        out.extend_from_slice(b"],\"request_id\":");
        json_str(out, &self.request_id);
        out.extend_from_slice(b",\"user_agent\":");
        json_str(out, text(&self.user_agent));
        out.extend_from_slice(b",\"referer\":");
        json_str(out, text(&self.referer));
        out.push(b'}');
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
        let client = self.client.map_or("-".to_string(), |ip| ip.to_string());
        format!(
            "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\"",
            client,
            clf_time(self.time),
            escape(self.method.as_str()),
            escape(self.path()),
            self.protocol,
            self.status,
            self.bytes,
            dash(text(&self.referer)),
            dash(text(&self.user_agent))
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
                let mut memo = LineMemo::default();
                while let Ok(first) = rx.recv() {
                    let mut queued = std::iter::once(first).chain(rx.try_iter());
                    loop {
                        // Up to 1024 lines per write.
                        for e in queued.by_ref().take(1024) {
                            match format {
                                AccessLogFormat::Combined => {
                                    buf.extend_from_slice(e.combined().as_bytes())
                                }
                                _ => e.write_json(&mut buf, &mut memo),
                            }
                            buf.push(b'\n');
                        }
                        if buf.is_empty() {
                            break;
                        }
                        let _ = out.write_all(&buf);
                        buf.clear();
                    }
                    let _ = out.flush();
                    std::thread::sleep(FLUSH_EVERY);
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
            client: Some("192.0.2.1".parse().unwrap()),
            protocol: "HTTP/1.1",
            method: Method::GET,
            host: "example.com".into(),
            uri: "/a?b=c".parse().unwrap(),
            status: 200,
            bytes: 1234,
            duration_us: 1,
            upstream: None,
            route: "r".into(),
            filters: Arc::new([]),
            request_id: "x".into(),
            user_agent: Some(HeaderValue::from_static("curl/8.5")),
            referer: None,
        }
    }

    /// The line as `fmt` wrote it before the writer kept its texts: the time by humantime,
    /// the addresses by their `Display`, the duration as a float.
    fn json_by_fmt(e: &Entry) -> String {
        let mut reference = Vec::new();
        e.write_json(&mut reference, &mut LineMemo::default());
        let line = String::from_utf8(reference).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
        v["time"] = humantime::format_rfc3339_millis(e.time).to_string().into();
        v["client"] = e.client.map_or(String::new(), |ip| ip.to_string()).into();
        v["upstream"] = e.upstream.map(|a| a.to_string()).into();
        let ms = e.duration_us as f64 / 1000.0;
        let expected = serde_json::to_string(&v).unwrap();
        // serde_json writes floats as `Display` does but integers without a fraction.
        expected.replace(
            &format!("\"duration_ms\":{}", v["duration_ms"]),
            &format!("\"duration_ms\":{ms}"),
        )
    }

    #[test]
    fn json_lines_say_what_fmt_said_while_the_writer_keeps_texts() {
        let mut memo = LineMemo::default();
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_305_109);
        let cases = [
            (0, 1, Some("192.0.2.1"), None),
            (7, 1500, Some("192.0.2.1"), Some("127.0.0.1:8080")),
            (999, 100, Some("192.0.2.9"), Some("127.0.0.1:8080")),
            (
                1_000,
                2_000_000,
                Some("2001:db8::1"),
                Some("[2001:db8::2]:443"),
            ),
            (1_050, 1_234_567, None, Some("127.0.0.1:8081")),
            (61_001, 50, Some("192.0.2.1"), None),
        ];
        for (after_ms, us, client, upstream) in cases {
            let mut e = entry();
            e.time = base + Duration::from_millis(after_ms);
            e.duration_us = us;
            e.client = client.map(|c| c.parse().unwrap());
            e.upstream = upstream.map(|u| u.parse().unwrap());
            let mut line = Vec::new();
            e.write_json(&mut line, &mut memo);
            let line = String::from_utf8(line).unwrap();
            let expected = json_by_fmt(&e);
            let (got, want): (serde_json::Value, serde_json::Value) = (
                serde_json::from_str(&line).unwrap(),
                serde_json::from_str(&expected).unwrap(),
            );
            assert_eq!(got, want, "{line}");
            let ms = us as f64 / 1000.0;
            assert!(line.contains(&format!("\"duration_ms\":{ms},")), "{line}");
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
        e.user_agent = Some(HeaderValue::from_bytes(b"evil\" \"x\tnext").unwrap());
        e.referer = Some(HeaderValue::from_static("a\\b"));
        assert_eq!(
            e.combined(),
            r#"192.0.2.1 - - [03/Dec/2026:13:38:29 +0000] "GET /a?b=c HTTP/1.1" 200 1234 "a\x5Cb" "evil\x22 \x22x\x09next""#
        );
    }
}
