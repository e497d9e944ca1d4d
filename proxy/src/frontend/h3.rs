//! HTTP/3: QUIC (quinn, rustls) and HTTP/3 (h3) on the UDP port of an HTTPS listener.
//!
//! pingora has no HTTP/3 front end, but its proxy takes any protocol as a custom server
//! session: this module terminates QUIC and HTTP/3 and hands each request stream, as an
//! `H3Session`, to the same `HttpProxy<Edge>` pipeline as the TCP listeners. Routing,
//! filters, handlers, the cache, origin pools, header edits, error mapping, metrics and the
//! access log are one code path for HTTP/1.1, HTTP/2 and HTTP/3, with no second hop.
//! Request and response bodies stream with flow control (h3/quinn windows toward the
//! client, pingora's toward the origin); response trailers are passed on from an HTTP/2
//! origin, and request trailers to the origin (chunked HTTP/1.1 or HTTP/2).

mod session;

use crate::frontend::tls::SniResolver;
use crate::ops::metrics::Metrics;
use crate::pipeline::edge::Edge;
use breakwater_config::Http3Settings;
use bytes::Bytes;
use pingora::apps::HttpServerApp;
use pingora::protocols::http::ServerSession;
use pingora::proxy::HttpProxy;
use session::{H3Session, Stream3};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

/// The edge pipeline, shared by every HTTP/3 request of a listener.
pub type Pipeline = Arc<HttpProxy<Edge>>;

/// Why HTTP/3 could not start on a listener.
#[derive(Debug, thiserror::Error)]
pub enum H3Error {
    #[error("listener {listener}: UDP {addr}: {source}")]
    Bind {
        listener: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("listener {listener}: QUIC TLS config: {reason}")]
    Tls { listener: String, reason: String },
}

/// A bound, not yet serving HTTP/3 endpoint.
pub struct H3Listener {
    name: String,
    socket: UdpSocket,
    server: quinn::ServerConfig,
    settings: Http3Settings,
    pipeline: Pipeline,
}

impl H3Listener {
    /// Bind UDP `addr` (the HTTPS listener's port) with the listener's SNI certificates.
    pub fn bind(
        name: &str,
        addr: SocketAddr,
        resolver: Arc<SniResolver>,
        settings: &Http3Settings,
        pipeline: Pipeline,
    ) -> Result<Self, H3Error> {
        let socket = bind_udp(addr).map_err(|source| H3Error::Bind {
            listener: name.to_string(),
            addr,
            source,
        })?;
        let tls_err = |reason: String| H3Error::Tls {
            listener: name.to_string(),
            reason,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| tls_err(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        tls.alpn_protocols = vec![b"h3".to_vec()];
        // 0-RTT data can be replayed by an attacker: off unless configured.
        tls.max_early_data_size = if settings.zero_rtt { u32::MAX } else { 0 };
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| tls_err(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport.max_concurrent_bidi_streams(quinn::VarInt::from_u32(settings.max_streams));
        // Clients open a control stream and QPACK streams; pushes are not used.
        transport.max_concurrent_uni_streams(quinn::VarInt::from_u32(8));
        transport.max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(settings.idle_timeout)
                .map_err(|e| tls_err(format!("idle_timeout: {e}")))?,
        ));
        server.transport_config(Arc::new(transport));
        Ok(Self {
            name: name.to_string(),
            socket,
            server,
            settings: settings.clone(),
            pipeline,
        })
    }

    /// Serve on `runtime` until the process ends.
    pub fn serve(self, runtime: &tokio::runtime::Handle, metrics: Arc<Metrics>) {
        let _guard = runtime.enter();
        let endpoint = match quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(self.server),
            self.socket,
            Arc::new(quinn::TokioRuntime),
        ) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(listener = %self.name, error = %e, "HTTP/3 endpoint failed");
                return;
            }
        };
        let pipeline = self.pipeline;
        let max_connections = self.settings.max_connections;
        let zero_rtt = self.settings.zero_rtt;
        let name = self.name;
        let shutdown = shutdown_signal();
        runtime.spawn(async move {
            let mut stopping = shutdown.clone();
            loop {
                let incoming = tokio::select! {
                    i = endpoint.accept() => i,
                    _ = async { drop(stopping.wait_for(|s| *s).await) } => None,
                };
                let Some(incoming) = incoming else { break };
                if endpoint.open_connections() > max_connections {
                    incoming.refuse();
                    continue;
                }
                let (pipeline, metrics) = (pipeline.clone(), metrics.clone());
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let remote = incoming.remote_address();
                    let handshakes = Outcomes::new(&metrics.h3_handshakes, "confirmed", "failed");
                    let Some((conn, confirmed)) = establish(incoming, zero_rtt, handshakes).await
                    else {
                        return;
                    };
                    let info = ConnectionInfo {
                        remote,
                        confirmed,
                        early: Outcomes::new(&metrics.h3_early_requests, "released", "dropped"),
                        pipeline,
                    };
                    serve_connection(conn, info, metrics, shutdown).await
                });
            }
            tracing::info!(listener = %name, "HTTP/3 endpoint stops accepting connections");
        });
    }
}

/// The UDP socket, with `SO_REUSEPORT`: during a graceful binary upgrade the new process
/// binds the port while the old one still holds it (pingora hands over TCP listeners only);
/// the old process stops accepting QUIC connections on SIGQUIT and its socket closes when
/// it exits. The TCP port of the same listener is checked for conflicts at startup.
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Counts a gauge up for as long as it lives.
struct GaugeGuard(prometheus::IntGauge);

impl GaugeGuard {
    fn new(g: prometheus::IntGauge) -> Self {
        g.inc();
        Self(g)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A counter pair resolved once per connection: what went well, and what did not.
#[derive(Clone)]
struct Outcomes {
    ok: prometheus::IntCounter,
    failed: prometheus::IntCounter,
}

impl Outcomes {
    fn new(counters: &prometheus::IntCounterVec, ok: &str, failed: &str) -> Self {
        Self {
            ok: counters.with_label_values(&[ok]),
            failed: counters.with_label_values(&[failed]),
        }
    }

    fn count(&self, ok: bool) {
        if ok { &self.ok } else { &self.failed }.inc();
    }
}

/// Whether a connection's handshake is confirmed: `true` at once without 0-RTT; with it,
/// once the client has finished the handshake (closed, never `true`, if it does not).
type Confirmed = tokio::sync::watch::Receiver<bool>;

/// Finish the handshake; with 0-RTT on, take the connection early, before the client has
/// proved it is live (its early data may be a replay).
async fn establish(
    incoming: quinn::Incoming,
    zero_rtt: bool,
    handshakes: Outcomes,
) -> Option<(quinn::Connection, Confirmed)> {
    let remote = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "QUIC connection refused");
            return None;
        }
    };
    let connecting = if zero_rtt {
        match connecting.into_0rtt() {
            Ok((conn, accepted)) => {
                let (tx, confirmed) = tokio::sync::watch::channel(false);
                let watched = conn.clone();
                tokio::spawn(async move {
                    // Resolves when the handshake completes or the connection ends first (its
                    // value means nothing on a server).
                    accepted.await;
                    let confirmed = watched.close_reason().is_none();
                    handshakes.count(confirmed);
                    if confirmed {
                        let _ = tx.send(true);
                    }
                });
                return Some((conn, confirmed));
            }
            Err(connecting) => connecting,
        }
    } else {
        connecting
    };
    let established = connecting.await;
    handshakes.count(established.is_ok());
    match established {
        Ok(conn) => Some((conn, tokio::sync::watch::channel(true).1)),
        Err(e) => {
            tracing::debug!(%remote, error = %e, "QUIC handshake failed");
            None
        }
    }
}

/// What each request of a connection needs to be forwarded.
#[derive(Clone)]
struct ConnectionInfo {
    remote: SocketAddr,
    /// Unconfirmed while the handshake is (0-RTT): only safe methods are served then.
    confirmed: Confirmed,
    /// Requests with side effects that came before the confirmation: released or dropped.
    early: Outcomes,
    pipeline: Pipeline,
}

/// Becomes `true` when the process is asked to stop (SIGTERM) or to hand over to a new
/// binary (SIGQUIT): connections then get a GOAWAY and their requests in flight finish.
fn shutdown_signal() -> tokio::sync::watch::Receiver<bool> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut quit)) =
            (signal(SignalKind::terminate()), signal(SignalKind::quit()))
        else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = quit.recv() => {}
        }
        let _ = tx.send(true);
    });
    rx
}

async fn serve_connection(
    conn: quinn::Connection,
    info: ConnectionInfo,
    metrics: Arc<Metrics>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let remote = info.remote;
    let _live = GaugeGuard::new(metrics.active_connections.with_label_values(&["h3"]));
    let mut h3 =
        match h3::server::Connection::<_, Bytes>::new(h3_quinn::Connection::new(conn)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(%remote, error = %e, "HTTP/3 connection setup failed");
                return;
            }
        };
    let mut goaway_sent = false;
    loop {
        let accepted = tokio::select! {
            a = h3.accept() => a,
            _ = async { drop(shutdown.wait_for(|s| *s).await) }, if !goaway_sent => {
                goaway_sent = true;
                // GOAWAY: no new requests; those already accepted finish.
                if let Err(e) = h3.shutdown(0).await {
                    tracing::debug!(%remote, error = %e, "HTTP/3 GOAWAY failed");
                    break;
                }
                continue;
            }
        };
        match accepted {
            Ok(Some(resolver)) => {
                let (info, metrics) = (info.clone(), metrics.clone());
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let _live = GaugeGuard::new(metrics.active_streams.with_label_values(&["h3"]));
                    match resolver.resolve_request().await {
                        Ok((req, stream)) => serve_request(req, stream, &info, &shutdown).await,
                        Err(e) => tracing::debug!(%remote, error = %e, "bad HTTP/3 request"),
                    }
                });
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(%remote, error = %e, "HTTP/3 connection ended");
                break;
            }
        }
    }
}

/// Why a request is refused before it reaches the pipeline.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum Malformed {
    #[error("CONNECT, or no :scheme or :path")]
    PseudoHeaders,
    #[error("connection-specific header {0}")]
    ConnectionHeader(&'static str),
    #[error("TE other than trailers")]
    Te,
    #[error("Content-Length not one number")]
    ContentLength,
}

/// Check a request head (RFC 9114 section 4.1.2: malformed requests are not forwarded) and
/// return its declared body length.
fn check(req: &http::Request<()>) -> Result<Option<u64>, Malformed> {
    // A request other than CONNECT carries :scheme (http or https) and a non-empty :path
    // (section 4.3.1); h3 itself checks :method and :authority.
    let uri = req.uri();
    let well_formed = req.method() != http::Method::CONNECT
        && matches!(uri.scheme_str(), Some("https" | "http"))
        && uri.path_and_query().is_some_and(|p| !p.as_str().is_empty());
    if !well_formed {
        return Err(Malformed::PseudoHeaders);
    }
    let headers = req.headers();
    for name in session::CONNECTION_SPECIFIC {
        if headers.contains_key(name) {
            return Err(Malformed::ConnectionHeader(name));
        }
    }
    if headers
        .get_all(http::header::TE)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        return Err(Malformed::Te);
    }
    // Every Content-Length value (and every comma-separated element) must be the same number
    // (RFC 9110 section 8.6); anything else could frame the body two ways further on.
    let mut declared = None;
    for value in headers.get_all(http::header::CONTENT_LENGTH) {
        let text = value.to_str().map_err(|_| Malformed::ContentLength)?;
        for element in text.split(',') {
            let element = element.trim();
            if element.is_empty() || !element.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Malformed::ContentLength);
            }
            let n: u64 = element.parse().map_err(|_| Malformed::ContentLength)?;
            if declared.is_some_and(|d| d != n) {
                return Err(Malformed::ContentLength);
            }
            declared = Some(n);
        }
    }
    Ok(declared)
}

/// Answer a malformed request with 400, before the pipeline (RFC 9114 section 4.1.2 lets a
/// server answer before it resets the stream).
async fn refuse_malformed(mut stream: Stream3) {
    let resp = http::Response::builder()
        .status(400)
        .body(())
        .expect("valid response");
    if stream.send_response(resp).await.is_ok() {
        let _ = stream.finish().await;
    }
}

/// Run one request through the edge pipeline.
async fn serve_request(
    req: http::Request<()>,
    stream: Stream3,
    info: &ConnectionInfo,
    shutdown: &pingora::server::ShutdownWatch,
) {
    let remote = info.remote;
    let declared = match check(&req) {
        Ok(d) => d,
        Err(why) => {
            tracing::debug!(%remote, %why, "malformed HTTP/3 request");
            return refuse_malformed(stream).await;
        }
    };
    // Early data can be replayed, and a replay never completes the handshake: a request
    // with side effects waits for the handshake to be confirmed (RFC 8470 section 3 lets a
    // server delay it so, rather than answer 425 and make the client retry) and is dropped
    // if the connection ends first.
    if !req.method().is_safe() && !*info.confirmed.borrow() {
        let mut confirmed = info.confirmed.clone();
        let released = confirmed.wait_for(|c| *c).await.is_ok();
        info.early.count(released);
        if !released {
            tracing::debug!(%remote, "early request on a connection never confirmed: dropped");
            return;
        }
    }
    let (head, ()) = req.into_parts();
    let session = match H3Session::start(head, stream, remote, declared).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "HTTP/3 request stream failed");
            return;
        }
    };
    let session = ServerSession::new_custom(Box::new(session));
    info.pipeline.process_new_http(session, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> http::Request<()> {
        let mut b = http::Request::builder().uri("https://example.test/path");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn content_length_must_be_one_number() {
        assert_eq!(check(&request(&[])), Ok(None));
        assert_eq!(check(&request(&[("content-length", "5")])), Ok(Some(5)));
        assert_eq!(check(&request(&[("content-length", "5, 5")])), Ok(Some(5)));
        for bad in ["5, 6", "-1", "", "0x10", "+5"] {
            assert_eq!(
                check(&request(&[("content-length", bad)])),
                Err(Malformed::ContentLength),
                "{bad:?}"
            );
        }
        let two = request(&[("content-length", "5"), ("content-length", "6")]);
        assert_eq!(check(&two), Err(Malformed::ContentLength));
    }

    #[test]
    fn connection_specific_headers_are_malformed() {
        let te = request(&[("transfer-encoding", "chunked")]);
        assert_eq!(
            check(&te),
            Err(Malformed::ConnectionHeader("transfer-encoding"))
        );
        assert_eq!(check(&request(&[("te", "trailers")])), Ok(None));
        assert_eq!(check(&request(&[("te", "gzip")])), Err(Malformed::Te));
        let no_scheme = http::Request::builder().uri("/path").body(()).unwrap();
        assert_eq!(check(&no_scheme), Err(Malformed::PseudoHeaders));
    }
}
