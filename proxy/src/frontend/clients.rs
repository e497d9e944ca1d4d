//! Defences against slow and many TCP clients, which pingora does not have on its own (it
//! times out each read of a request head separately, so a head trickled a byte at a time
//! holds a connection forever, and it accepts any number of connections):
//!
//! * a whole HTTP/1.1 request head must arrive within `header_timeout` of its first byte
//!   (HAProxy's `timeout http-request`);
//! * an HTTP/1.1 connection with no traffic for `idle_timeout` is closed (before its first
//!   request, between keep-alive requests, a response that stalls); HTTP/2 connections get
//!   the same through pingora's `h2_idle_timeout` (no open stream for that long);
//! * a write that makes no progress for `send_timeout` (a client that stopped reading)
//!   closes the connection (nginx's `send_timeout`);
//! * past `max_connections` open connections on a listener, new ones are closed at once.
//!
//! After `101 Switching Protocols` (WebSocket) a connection is a tunnel: only the send
//! timeout applies.
//!
//! [`Limited`] wraps a listener's pingora app and each accepted stream in a [`Guarded`]
//! stream that enforces the timeouts below pingora, for HTTP/1.1 and HTTP/2 alike. A timed
//! out read or write is an I/O error to pingora, which closes the connection (as nginx does
//! on `client_header_timeout`, without a response).
//!
//! It also runs the HTTP/1.1 keep-alive loop itself, so that an idle connection costs what
//! nginx's does: pingora's loop starts a request's whole processing (a future of about 13 KiB,
//! allocated when it starts) before the request's first byte arrives, and holds it for as long
//! as the connection idles. Here an idle connection is parked: only the stream is held until
//! the next request's first bytes are in, and only then does pingora's request processing
//! start, on the bytes read (see `bench/connections.sh` for what it saves).

use crate::ops::metrics::Metrics;
use async_trait::async_trait;
use breakwater_config::ClientLimits;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Why a connection was closed by these limits (the `reason` label of
/// `client_connections_closed_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closed {
    HeaderTimeout,
    IdleTimeout,
    SendTimeout,
    OverLimit,
}

impl Closed {
    fn label(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::SendTimeout => "send_timeout",
            Closed::OverLimit => "over_limit",
        }
    }
}

/// A listener's pingora app behind the connection limit, its streams guarded.
pub(crate) struct Limited<A> {
    inner: Arc<A>,
    limits: ClientLimits,
    open: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    listener: String,
}

impl<A> Limited<A> {
    pub fn new(inner: A, limits: ClientLimits, metrics: Arc<Metrics>, listener: &str) -> Self {
        Self {
            inner: Arc::new(inner),
            limits,
            open: Arc::new(AtomicUsize::new(0)),
            metrics,
            listener: listener.to_string(),
        }
    }

    fn closed(&self, why: Closed) {
        self.metrics
            .client_connections_closed
            .with_label_values(&[&self.listener, why.label()])
            .inc();
    }
}

/// One open connection, counted while it lives.
struct Slot(Arc<AtomicUsize>, prometheus::IntGauge);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        self.1.dec();
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for Limited<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.limits.max_connections {
            self.open.fetch_sub(1, Ordering::AcqRel);
            self.closed(Closed::OverLimit);
            return None;
        }
        crate::ops::memory::collect_on_this_loop();
        let gauge = self
            .metrics
            .client_connections
            .with_label_values(&[&self.listener]);
        gauge.inc();
        let _slot = Slot(self.open.clone(), gauge);
        let alpn = stream.selected_alpn_proto();
        let h2 = matches!(alpn, Some(ALPN::H2));
        // Boxed in a block of its own: a moved-from local still takes room in this future,
        // which lives as long as the connection.
        let (guarded, outcome) = {
            let (guarded, outcome) = Guarded::new(stream, &self.limits, h2);
            (Box::new(guarded), outcome)
        };
        // The app hands the stream back only for reuse, which the listening service does not
        // do for HTTP apps; the guard stays on for the life of the connection anyway.
        let reused = if h2 || matches!(alpn, Some(ALPN::Custom(_))) {
            self.inner.process_new(guarded, shutdown).await
        } else {
            // Boxed, and over before an HTTP/2 connection with prior knowledge runs: this
            // future lives as long as the connection, and would otherwise be sized by the
            // HTTP/1.1 loop's state (a session, about a kilobyte) on every idle HTTP/2
            // connection too.
            match Box::pin(self.serve_http1(guarded, shutdown)).await {
                Http1::Done(reused) => reused,
                Http1::PriorKnowledge(guarded) => self.inner.process_new(guarded, shutdown).await,
            }
        };
        if let Some(why) = outcome.get() {
            self.closed(why);
        }
        reused
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

impl<A: HttpServerApp + Send + Sync + 'static> Limited<A> {
    /// pingora's HTTP/1.1 keep-alive loop (`HttpServerApp`'s `process_new`), with the
    /// connection parked between requests: each request's processing starts once its first
    /// bytes are in. A connection whose last exchange read past its request head (a body, or
    /// pipelined requests that pingora may hold) goes on without parking, as pingora's does.
    async fn serve_http1(
        self: &Arc<Self>,
        mut guarded: Box<Guarded>,
        shutdown: &ShutdownWatch,
    ) -> Http1 {
        let options = self.inner.server_options();
        let h2c = options.is_some_and(|o| o.h2c) && guarded.get_ssl_digest().is_none();
        let mut persistent: Option<HttpPersistentSettings> = None;
        let mut first = true;
        loop {
            if guarded.between_requests() {
                let mut closing = shutdown.clone();
                let mut more = None;
                if !*closing.borrow() {
                    more = tokio::select! {
                        biased;
                        more = guarded.fill() => Some(more),
                        _ = closing.changed() => None,
                    };
                }
                // Shutting down (or a graceful upgrade's hand-over): a request already on its
                // way, on a connection just accepted or kept alive, is still read and then
                // answered with `Connection: close`; a connection that stays idle is closed
                // after the grace. Closed at once, such a request met a reset.
                let more = match more {
                    Some(more) => more,
                    None => tokio::time::timeout(SHUTDOWN_READ_GRACE, guarded.fill())
                        .await
                        .unwrap_or(false),
                };
                if !more {
                    return Http1::Done(None);
                }
                if first && h2c && guarded.phase == Phase::H2 {
                    // HTTP/2 with prior knowledge: pingora peeks for the preface (served from
                    // what was read) and runs the connection.
                    return Http1::PriorKnowledge(guarded);
                }
            }
            let mut session = ServerSession::new_http1(guarded);
            if first {
                // As pingora starts a connection: keep-alive (60 s) unless shutting down.
                session.set_keepalive((!*shutdown.borrow()).then_some(60));
                session.set_keepalive_reuses_remaining(
                    options.and_then(|o| o.keepalive_request_limit),
                );
                first = false;
            } else if let Some(settings) = persistent.take() {
                settings.apply_to_session(&mut session);
            }
            let Some(reused) = self.inner.process_new_http(session, shutdown).await else {
                return Http1::Done(None);
            };
            let (stream, settings) = reused.consume();
            persistent = settings;
            // Always ours: the session hands back the stream it was given.
            match stream.into_any().downcast::<Guarded>() {
                Ok(g) => guarded = g,
                Err(_) => return Http1::Done(None),
            }
        }
    }
}

/// How long a connection idle when shutdown begins may still bring its next request: as
/// pingora's `handle_new_request` waits (`proxy/vendor/pingora-proxy`, the same grace).
const SHUTDOWN_READ_GRACE: Duration = Duration::from_millis(500);

/// How an HTTP/1.1 connection's loop ended.
enum Http1 {
    /// Served; the stream for reuse (never, for a listener).
    Done(Option<Stream>),
    /// Its first bytes are HTTP/2's preface (prior knowledge, on an `h2c` listener).
    PriorKnowledge(Box<Guarded>),
}

/// Where the guard is in the HTTP/1.1 exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a request: the idle timeout runs.
    Idle,
    /// Inside a request head: the header deadline runs.
    Head,
    /// Head complete; the body and the response follow: no read deadline here (pingora's
    /// per-read timeout and the route's timeouts apply). The first write ends it.
    Exchange,
    /// The response is being written: the idle timeout runs from the last write; the next
    /// byte read starts a new request.
    Responding,
    /// HTTP/2: no read deadline here (pingora's `h2_idle_timeout` closes idle connections);
    /// the send timeout still applies.
    H2,
    /// After `101 Switching Protocols` (WebSocket): bytes of another protocol both ways, no
    /// read deadline; the send timeout still applies.
    Tunnel,
}

/// The reason a guarded stream gave up, shared with the app wrapper for the metric.
#[derive(Clone, Default)]
struct Outcome(Arc<std::sync::OnceLock<Closed>>);

impl Outcome {
    fn set(&self, why: Closed) {
        let _ = self.0.set(why);
    }
    fn get(&self) -> Option<Closed> {
        self.0.get().copied()
    }
}

/// A client stream with the header, idle and send timeouts.
pub(crate) struct Guarded {
    inner: Stream,
    header_timeout: Duration,
    idle_timeout: Duration,
    send_timeout: Duration,
    phase: Phase,
    /// Bytes of the request head matched so far against the blank line that ends it.
    crlf: u8,
    /// Set while bytes have been read and nothing else than the HTTP/2 preface could follow.
    sniffed: bool,
    /// Nothing has been read past the end of the last request head: set where a head ends at
    /// the end of a read, cleared by any byte read after it (a body, a pipelined request).
    clean: bool,
    /// Bytes read while parked (or peeked), handed to the next reads first.
    stash: Vec<u8>,
    /// How much of `stash` the reads have taken.
    stashed: usize,
    /// The current request line as read off the wire, before pingora's parser normalises
    /// what it finds illegal in the target.
    line: RequestLine,
    read_deadline: Pin<Box<Sleep>>,
    /// Armed while a write is stuck.
    write_deadline: Option<Pin<Box<Sleep>>>,
    outcome: Outcome,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("inner", &self.inner)
            .field("phase", &self.phase)
            .finish()
    }
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

impl Guarded {
    fn new(inner: Stream, limits: &ClientLimits, h2: bool) -> (Self, Outcome) {
        let outcome = Outcome::default();
        let guard = Self {
            inner,
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            send_timeout: limits.send_timeout,
            phase: if h2 { Phase::H2 } else { Phase::Idle },
            crlf: 0,
            sniffed: h2,
            clean: false,
            stash: Vec::new(),
            stashed: 0,
            line: RequestLine::default(),
            read_deadline: Box::pin(tokio::time::sleep(limits.idle_timeout)),
            write_deadline: None,
            outcome: outcome.clone(),
        };
        (guard, outcome)
    }

    fn timed_out(&self, why: Closed) -> io::Error {
        self.outcome.set(why);
        io::Error::new(io::ErrorKind::TimedOut, why.label())
    }

    /// The read deadline in force, if any, and what its expiry means.
    fn read_limit(&self) -> Option<Closed> {
        match self.phase {
            Phase::Idle | Phase::Responding => Some(Closed::IdleTimeout),
            Phase::Head => Some(Closed::HeaderTimeout),
            Phase::Exchange | Phase::H2 | Phase::Tunnel => None,
        }
    }

    fn rearm(&mut self, after: Duration) {
        self.read_deadline.as_mut().reset(Instant::now() + after);
    }

    /// Follow the request head through the bytes just read.
    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if !self.sniffed {
            self.sniffed = true;
            let n = bytes.len().min(H2_PREFACE.len());
            if bytes[..n] == H2_PREFACE[..n] {
                // HTTP/2 with prior knowledge (h2c).
                self.phase = Phase::H2;
            }
        }
        if matches!(self.phase, Phase::H2 | Phase::Tunnel) {
            return;
        }
        if self.phase == Phase::Exchange {
            self.clean = false;
        }
        let mut rest = bytes;
        if matches!(self.phase, Phase::Idle | Phase::Responding) {
            // Blank lines before a request line are allowed (RFC 9112, 2.2).
            let start = rest.iter().position(|&b| b != b'\r' && b != b'\n');
            let Some(start) = start else { return };
            rest = &rest[start..];
            self.phase = Phase::Head;
            self.crlf = 0;
            self.line = RequestLine::default();
            self.rearm(self.header_timeout);
        }
        if self.phase != Phase::Head {
            return;
        }
        if let Some(n) = follow_head(&mut self.crlf, &mut self.line, rest) {
            self.phase = Phase::Exchange;
            self.clean = n == rest.len();
        }
    }
}

/// Follow a request head through `bytes`, the next ones read of it: its request line into
/// `line`, and in `crlf` how much of the CRLF CRLF that ends it (bare LF is refused further
/// up) the bytes so far end with. `Some(n)`: the head ends after the first `n` bytes.
/// Byte by byte through the request line and while a CRLF CRLF begun in an earlier read may
/// be completing; the rest is searched by its line feeds (`memchr`, vectorized), and the state
/// a read ends in is that of its last three bytes (a longer match would be the end, found).
fn follow_head(crlf: &mut u8, line: &mut RequestLine, bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    while at < bytes.len() && (!line.ended || *crlf != 0) {
        line.saw(bytes[at]);
        *crlf = head_end_step(*crlf, bytes[at]);
        at += 1;
        if *crlf == 4 {
            return Some(at);
        }
    }
    // No CRLF CRLF straddles `at` (the state there is 0): each LF of the rest that ends one.
    let rest = &bytes[at..];
    let end =
        memchr::memchr_iter(b'\n', rest).find(|&lf| lf >= 3 && rest[lf - 3..lf] == *b"\r\n\r");
    if let Some(lf) = end {
        return Some(at + lf + 1);
    }
    let tail = &rest[rest.len().saturating_sub(3)..];
    *crlf = tail.iter().fold(*crlf, |state, &b| head_end_step(state, b));
    None
}

/// How much of CRLF CRLF the bytes so far end with (4: all of it), after one more byte.
fn head_end_step(state: u8, b: u8) -> u8 {
    match (state, b) {
        (0 | 2, b'\r') => state + 1,
        (1 | 3, b'\n') => state + 1,
        (_, b'\r') => 1,
        _ => 0,
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.stashed < this.stash.len() {
            let n = (this.stash.len() - this.stashed).min(buf.remaining());
            buf.put_slice(&this.stash[this.stashed..this.stashed + n]);
            this.stashed += n;
            if this.stashed == this.stash.len() {
                this.stash = Vec::new();
                this.stashed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        this.poll_read_guarded(cx, buf)
    }
}

/// What the guard checks of a request line (RFC 9112 3): exactly `method SP target SP
/// version`, no control character, CR only before the LF that ends it, as read off the
/// wire: pingora's parser is lenient on some of it (two spaces before the target), and RFC
/// 9112 3.2 makes such a line invalid (two parsers that read it differently are a desync),
/// so it is refused (400). A space or a control character in the target is refused by
/// pingora's parser too (patched in `proxy/vendor/pingora-core`; it used to percent-encode
/// them), also in requests pipelined behind another, which the guard does not follow.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct RequestLine {
    spaces: u8,
    after_cr: bool,
    ended: bool,
    invalid: bool,
}

impl RequestLine {
    fn saw(&mut self, b: u8) {
        if self.ended {
            return;
        }
        if self.after_cr && b != b'\n' {
            self.invalid = true;
        }
        self.after_cr = b == b'\r';
        match b {
            b'\n' => {
                self.ended = true;
                self.invalid |= self.spaces != 2;
            }
            b' ' => self.spaces = self.spaces.saturating_add(1),
            b'\r' => {}
            0..=0x1f | 0x7f => self.invalid = true,
            _ => {}
        }
    }
}

/// Whether the request line of the request being served on `stream` (a client stream of
/// this module) broke RFC 9112 3 as read off the wire. Requests pipelined behind another
/// in one read are not followed by the guard and are not checked here.
pub(crate) fn request_line_invalid(stream: &Stream) -> bool {
    stream
        .as_any()
        .downcast_ref::<Guarded>()
        .is_some_and(|g| g.line.ended && g.line.invalid)
}

/// The most a parked connection reads at once: one read of a request head as pingora does it.
const PARK_READ: usize = 4096;

impl Guarded {
    /// A read from the client, under the read deadline in force, following the bytes.
    fn poll_read_guarded(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                self.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if let Some(why) = self.read_limit() {
                    if self.read_deadline.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(self.timed_out(why)));
                    }
                }
                Poll::Pending
            }
        }
    }

    /// Whether pingora holds nothing of this connection's next request: before the first,
    /// or after a response to a request whose reads ended with its head.
    fn between_requests(&self) -> bool {
        let idle = match self.phase {
            Phase::Idle => !self.sniffed,
            Phase::Responding => self.clean,
            _ => false,
        };
        idle && self.stashed == self.stash.len()
    }

    /// Wait for the next bytes and stash them for the next reads, through the guard (its
    /// deadlines apply and it follows the bytes). `false`: the client closed, or the read
    /// failed or timed out.
    async fn fill(&mut self) -> bool {
        std::future::poll_fn(|cx| {
            // On the stack for the poll only: a parked connection holds no buffer. Not
            // zeroed: the reader only writes into it, and a request polls here three times
            // (12 KiB of `memset` per request, `bench/instructions.sh`).
            let mut space = [const { std::mem::MaybeUninit::<u8>::uninit() }; PARK_READ];
            let mut buf = ReadBuf::uninit(&mut space);
            match self.poll_read_guarded(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    self.stash.extend_from_slice(buf.filled());
                    Poll::Ready(true)
                }
                Poll::Ready(_) => Poll::Ready(false),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    fn wrote(&mut self, data: &[u8]) {
        self.write_deadline = None;
        if self.phase == Phase::Exchange && data.starts_with(b"HTTP/1.1 1") {
            // The connection now carries another protocol.
            if data.starts_with(b"HTTP/1.1 101") {
                self.phase = Phase::Tunnel;
            }
            // An interim response (100 Continue, 103 Early Hints) comes before the body.
            return;
        }
        match self.phase {
            Phase::Exchange | Phase::Head | Phase::Responding => {
                self.phase = Phase::Responding;
                self.rearm(self.idle_timeout);
            }
            Phase::Idle | Phase::H2 | Phase::Tunnel => {}
        }
    }

    fn stuck<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let send_timeout = self.send_timeout;
        let deadline = self
            .write_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(send_timeout)));
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(self.timed_out(Closed::SendTimeout)));
        }
        Poll::Pending
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                this.wrote(&data[..n]);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.stuck(cx),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(r) => {
                this.write_deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => this.stuck(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                let first = bufs
                    .iter()
                    .find(|b| !b.is_empty())
                    .map_or(&[][..], |b| &b[..]);
                this.wrote(first);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.stuck(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for Guarded {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Guarded {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Guarded {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Guarded {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Guarded {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for Guarded {
    /// pingora peeks for the HTTP/2 preface on h2c listeners before reading anything: a
    /// client that sends nothing is idle here already. What is peeked is read into the stash
    /// (as pingora's own streams rewind what they peek), so the reads after see it.
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let deadline = self.read_deadline.deadline();
        let fill = async {
            while self.stash.len() - self.stashed < buf.len() {
                // Appends past what is still unread: the stash is emptied only once read.
                if !self.fill().await {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                }
            }
            Ok(())
        };
        match tokio::time::timeout_at(deadline, fill).await {
            Ok(Ok(())) => {
                buf.copy_from_slice(&self.stash[self.stashed..self.stashed + buf.len()]);
                Ok(true)
            }
            Ok(Err(e)) => Err(match self.outcome.get() {
                Some(why) => self.timed_out(why),
                None => e,
            }),
            Err(_) => Err(self.timed_out(Closed::IdleTimeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head's end as a byte-by-byte reading finds it: the index after CRLF CRLF.
    fn end_byte_by_byte(head: &[u8]) -> Option<usize> {
        let mut crlf = 0;
        head.iter()
            .position(|&b| {
                crlf = head_end_step(crlf, b);
                crlf == 4
            })
            .map(|i| i + 1)
    }

    /// `follow_head` over `head` cut into reads at `cuts`: where the head ends, and the
    /// request line as seen.
    fn follow_in_reads(head: &[u8], cuts: &[usize]) -> (Option<usize>, RequestLine) {
        let (mut crlf, mut line, mut from) = (0, RequestLine::default(), 0);
        for &to in cuts.iter().chain([&head.len()]) {
            if let Some(n) = follow_head(&mut crlf, &mut line, &head[from..to]) {
                return (Some(from + n), line);
            }
            from = to;
        }
        (None, line)
    }

    #[test]
    fn a_head_ends_where_a_byte_by_byte_reading_ends_it_however_it_is_read() {
        let heads: [&[u8]; 7] = [
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nBODY",
            b"GET / HTTP/1.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\r\r\n\r\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: \r\n\r\rY\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            b"GET  /a HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n",
        ];
        for head in heads {
            let whole = follow_in_reads(head, &[]);
            assert_eq!(
                whole.0,
                end_byte_by_byte(head),
                "{:?}",
                String::from_utf8_lossy(head)
            );
            for a in 0..=head.len() {
                for b in a..=head.len() {
                    let cut = follow_in_reads(head, &[a, b]);
                    assert_eq!(
                        cut,
                        whole,
                        "{:?} cut at {a} and {b}",
                        String::from_utf8_lossy(head)
                    );
                }
            }
        }
        let two_spaces = follow_in_reads(heads[5], &[]).1;
        assert!(two_spaces.ended && two_spaces.invalid, "{two_spaces:?}");
        assert_eq!(follow_in_reads(heads[6], &[]).0, None, "no blank line yet");
    }
}
