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

use crate::ops::metrics::Metrics;
use async_trait::async_trait;
use breakwater_config::ClientLimits;
use pingora::apps::ServerApp;
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
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Limited<A> {
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
        let gauge = self
            .metrics
            .client_connections
            .with_label_values(&[&self.listener]);
        gauge.inc();
        let _slot = Slot(self.open.clone(), gauge);
        let h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        let (guarded, outcome) = Guarded::new(stream, &self.limits, h2);
        // The app hands the stream back only for reuse, which the listening service does not
        // do for HTTP apps; the guard stays on for the life of the connection anyway.
        let reused = self.inner.process_new(Box::new(guarded), shutdown).await;
        if let Some(why) = outcome.get() {
            self.closed(why);
        }
        reused
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
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
        let mut rest = bytes;
        if matches!(self.phase, Phase::Idle | Phase::Responding) {
            // Blank lines before a request line are allowed (RFC 9112, 2.2).
            let start = rest.iter().position(|&b| b != b'\r' && b != b'\n');
            let Some(start) = start else { return };
            rest = &rest[start..];
            self.phase = Phase::Head;
            self.crlf = 0;
            self.rearm(self.header_timeout);
        }
        if self.phase != Phase::Head {
            return;
        }
        // The head ends at CRLF CRLF (bare LF is refused further up).
        for &b in rest {
            self.crlf = match (self.crlf, b) {
                (0 | 2, b'\r') => self.crlf + 1,
                (1 | 3, b'\n') => self.crlf + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            if self.crlf == 4 {
                self.phase = Phase::Exchange;
                return;
            }
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if let Some(why) = this.read_limit() {
                    if this.read_deadline.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(this.timed_out(why)));
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl Guarded {
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
    /// client that sends nothing is idle here already.
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let deadline = self.read_deadline.deadline();
        match tokio::time::timeout_at(deadline, self.inner.try_peek(buf)).await {
            Ok(peeked) => peeked,
            Err(_) => Err(self.timed_out(Closed::IdleTimeout)),
        }
    }
}
