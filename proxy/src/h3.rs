//! HTTP/3: QUIC (quinn, rustls) and HTTP/3 (h3) on the UDP port of an HTTPS listener.
//!
//! pingora has no HTTP/3, so this front end terminates QUIC and hands each request, over a
//! multiplexed in-process HTTP/2 connection on a Unix socket, to a pingora service that
//! runs the very same `Edge` pipeline as the TCP listeners: routing, filters, handlers, the
//! cache, origin pools, header edits, error mapping, metrics and the access log are one
//! code path for HTTP/1.1, HTTP/2 and HTTP/3. The client address and the protocol travel
//! with the request in a header that the internal listener alone trusts (`INTERNAL_CLIENT`);
//! the socket is only reachable from this process (mode 0600, in a private directory).
//! Request and response bodies stream both ways with flow control (h3/quinn windows on one
//! side, HTTP/2 windows on the other); trailers are passed on (response trailers all the way
//! from an HTTP/2 origin; request trailers reach the internal hop, where pingora drops them).

use crate::metrics::Metrics;
use crate::tls::SniResolver;
use breakwater_config::Http3Settings;
use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The header carrying the HTTP/3 client's address to the internal listener; removed from
/// every request that arrives any other way.
pub const INTERNAL_CLIENT: &str = "x-breakwater-h3-client";

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
    internal: PathBuf,
}

impl H3Listener {
    /// Bind UDP `addr` (the HTTPS listener's port) with the listener's SNI certificates.
    pub fn bind(
        name: &str,
        addr: SocketAddr,
        resolver: Arc<SniResolver>,
        settings: &Http3Settings,
        internal: PathBuf,
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
            internal,
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
        let upstream = Arc::new(Internal::new(self.internal));
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
                let (upstream, metrics) = (upstream.clone(), metrics.clone());
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let remote = incoming.remote_address();
                    let Some((conn, confirmed)) = establish(incoming, zero_rtt).await else {
                        return;
                    };
                    let link = Link {
                        remote,
                        confirmed,
                        upstream,
                    };
                    serve_connection(conn, link, metrics, shutdown).await
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
struct Live(prometheus::IntGauge);

impl Live {
    fn new(g: prometheus::IntGauge) -> Self {
        g.inc();
        Self(g)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Finish the handshake; with 0-RTT on, take the connection early and flag when the
/// handshake is confirmed (requests before that may be replays).
async fn establish(
    incoming: quinn::Incoming,
    zero_rtt: bool,
) -> Option<(quinn::Connection, Arc<std::sync::atomic::AtomicBool>)> {
    let remote = incoming.remote_address();
    let confirmed = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "QUIC connection refused");
            return None;
        }
    };
    if zero_rtt {
        match connecting.into_0rtt() {
            Ok((conn, accepted)) => {
                confirmed.store(false, Ordering::Release);
                let flag = confirmed.clone();
                tokio::spawn(async move {
                    accepted.await;
                    flag.store(true, Ordering::Release);
                });
                return Some((conn, confirmed));
            }
            Err(connecting) => {
                return match connecting.await {
                    Ok(conn) => Some((conn, confirmed)),
                    Err(e) => {
                        tracing::debug!(%remote, error = %e, "QUIC handshake failed");
                        None
                    }
                }
            }
        }
    }
    match connecting.await {
        Ok(conn) => Some((conn, confirmed)),
        Err(e) => {
            tracing::debug!(%remote, error = %e, "QUIC handshake failed");
            None
        }
    }
}

/// What each request of a connection needs to be forwarded.
#[derive(Clone)]
struct Link {
    remote: SocketAddr,
    /// False while the handshake is unconfirmed (0-RTT): only safe methods are served.
    confirmed: Arc<std::sync::atomic::AtomicBool>,
    upstream: Arc<Internal>,
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
    link: Link,
    metrics: Arc<Metrics>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let remote = link.remote;
    let _live = Live::new(metrics.active_connections.with_label_values(&["h3"]));
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
                let (link, metrics) = (link.clone(), metrics.clone());
                tokio::spawn(async move {
                    let _live = Live::new(metrics.active_streams.with_label_values(&["h3"]));
                    match resolver.resolve_request().await {
                        Ok((req, stream)) => {
                            if let Err(e) = forward(req, stream, &link).await {
                                tracing::debug!(%remote, error = %e, "HTTP/3 request failed");
                            }
                        }
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

type Stream = h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// The request body, read from the HTTP/3 stream as the internal connection asks for it.
type ReqBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

async fn forward(
    req: http::Request<()>,
    stream: Stream,
    link: &Link,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (remote, upstream) = (link.remote, &link.upstream);
    let (mut send, mut recv) = stream.split();
    // RFC 9114 4.3.1: a request other than CONNECT carries :scheme (http or https) and a
    // non-empty :path; h3 checks :method and :authority. Malformed: 400, never forwarded.
    let uri = req.uri();
    let well_formed = req.method() != http::Method::CONNECT
        && matches!(uri.scheme_str(), Some("https" | "http"))
        && uri.path_and_query().is_some_and(|p| !p.as_str().is_empty());
    if !well_formed {
        let resp = http::Response::builder()
            .status(400)
            .body(())
            .expect("valid response");
        send.send_response(resp).await?;
        send.finish().await?;
        return Ok(());
    }
    // Early data can be replayed: only safe methods before the handshake is confirmed
    // (RFC 8470: 425 Too Early, the client retries after the handshake).
    if !link.confirmed.load(Ordering::Acquire) && !req.method().is_safe() {
        let resp = http::Response::builder()
            .status(425)
            .body(())
            .expect("valid response");
        send.send_response(resp).await?;
        send.finish().await?;
        return Ok(());
    }
    let (parts, ()) = req.into_parts();
    // A request whose body is already over (most GETs) goes on with an empty, ended body:
    // the HTTP/2 hop then ends the stream with the headers, as the client did.
    let first = match recv.recv_data().await {
        Ok(first) => first.map(|mut c| c.copy_to_bytes(c.remaining())),
        Err(e) => return Err(e.into()),
    };
    let (body, pump): (ReqBody, _) = match first {
        None => (
            http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed(),
            None,
        ),
        Some(data) => {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let _ = tx.try_send(Ok(hyper::body::Frame::data(data)));
            // Pump the rest of the body (and trailers) while the response is awaited.
            let pump = tokio::spawn(async move {
                loop {
                    match recv.recv_data().await {
                        Ok(Some(mut chunk)) => {
                            let data = chunk.copy_to_bytes(chunk.remaining());
                            if tx.send(Ok(hyper::body::Frame::data(data))).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                            return;
                        }
                    }
                }
                if let Ok(Some(trailers)) = recv.recv_trailers().await {
                    let _ = tx.send(Ok(hyper::body::Frame::trailers(trailers))).await;
                }
            });
            let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
            (http_body_util::StreamBody::new(stream).boxed(), Some(pump))
        }
    };
    let mut out = http::Request::from_parts(parts, body);
    out.headers_mut().remove(INTERNAL_CLIENT);
    out.headers_mut().insert(
        INTERNAL_CLIENT,
        http::HeaderValue::from_str(&remote.ip().to_string()).expect("an IP is a valid value"),
    );
    *out.version_mut() = http::Version::HTTP_2;
    let resp = match upstream.send(out).await {
        Ok(r) => r,
        Err(e) => {
            if let Some(p) = &pump {
                p.abort();
            }
            let resp = http::Response::builder()
                .status(502)
                .body(())
                .expect("valid response");
            send.send_response(resp).await?;
            send.finish().await?;
            return Err(e);
        }
    };
    let (mut parts, mut body) = resp.into_parts();
    // Connection-specific headers have no place in HTTP/3 (RFC 9114 section 4.2).
    for h in [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
    ] {
        parts.headers.remove(h);
    }
    send.send_response(http::Response::from_parts(parts, ()))
        .await?;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        match frame.into_data() {
            Ok(data) => send.send_data(data).await?,
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    send.send_trailers(trailers).await?;
                }
            }
        }
    }
    send.finish().await?;
    if let Some(p) = pump {
        p.abort();
    }
    Ok(())
}

/// HTTP/2 connections to the internal listener, used round robin and redialled when
/// closed.
struct Internal {
    path: PathBuf,
    conns: Vec<tokio::sync::Mutex<Option<hyper::client::conn::http2::SendRequest<ReqBody>>>>,
    next: AtomicUsize,
}

/// Connections to the internal listener: HTTP/2 multiplexes, a few spread the load over
/// pingora's worker threads.
const INTERNAL_CONNECTIONS: usize = 4;

impl Internal {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            conns: (0..INTERNAL_CONNECTIONS)
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    async fn sender(
        &self,
    ) -> Result<
        hyper::client::conn::http2::SendRequest<ReqBody>,
        Box<dyn std::error::Error + Send + Sync>,
    > {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let mut slot = self.conns[i].lock().await;
        if let Some(s) = slot.as_ref() {
            if !s.is_closed() {
                return Ok(s.clone());
            }
        }
        let io = tokio::net::UnixStream::connect(&self.path).await?;
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .handshake(TokioIo::new(io))
            .await?;
        tokio::spawn(conn);
        *slot = Some(sender.clone());
        Ok(sender)
    }

    async fn send(
        &self,
        req: http::Request<ReqBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, Box<dyn std::error::Error + Send + Sync>>
    {
        let mut sender = self.sender().await?;
        sender.ready().await?;
        Ok(sender.send_request(req).await?)
    }
}
