//! Real origin servers (hyper, HTTP/1.1 and HTTP/2) on 127.0.0.1, scripted per test.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// A request as the origin received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Trailers that came after the body, if any.
    pub trailers: Option<HeaderMap>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

/// What the origin does with a request.
pub enum Action {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    /// Wait, then do the inner action.
    Delay(Duration, Box<Action>),
    /// Send headers promising `Content-Length: 100000`, one chunk, then drop the connection.
    DieMidBody,
    /// 200 with `headers`, the first `split` bytes of `body`, then, once `gate` grants a
    /// permit, the rest.
    Gated {
        headers: Vec<(String, String)>,
        body: Bytes,
        split: usize,
        gate: Arc<tokio::sync::Semaphore>,
    },
    /// 200 with `body` in one chunk, then these trailers.
    WithTrailers {
        body: Bytes,
        trailers: Vec<(String, String)>,
    },
}

impl Action {
    pub fn ok(body: impl Into<Bytes>) -> Self {
        Action::Respond {
            status: 200,
            headers: vec![],
            body: body.into(),
        }
    }
}

pub type Handler = Arc<dyn Fn(&Seen) -> Action + Send + Sync>;

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

pub struct Origin {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    accepted: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Origin {
    /// An origin that answers `200 origin <port> <uri>` with header `x-origin: <port>`.
    pub async fn echo() -> Origin {
        Self::start(echo_handler()).await
    }

    pub async fn start(handler: Handler) -> Origin {
        Self::start_on("127.0.0.1:0".parse().unwrap(), handler).await
    }

    pub async fn start_on(addr: SocketAddr, handler: Handler) -> Origin {
        Self::start_with(addr, handler, None).await
    }

    /// An origin behind TLS with `cert`/`key` (PEM files), offering h2 and http/1.1 by ALPN.
    pub async fn start_tls(
        handler: Handler,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Origin {
        use rustls::pki_types::pem::PemObject;
        let chain = rustls::pki_types::CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        Self::start_with("127.0.0.1:0".parse().unwrap(), handler, Some(acceptor)).await
    }

    async fn start_with(
        addr: SocketAddr,
        handler: Handler,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Origin {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel();
        let log = seen.clone();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        counted.fetch_add(1, Ordering::Relaxed);
                        let handler = handler.clone();
                        let log = log.clone();
                        let tls = tls.clone();
                        conns.spawn(async move {
                            let svc = hyper::service::service_fn(move |req| serve(req, handler.clone(), log.clone(), addr.port()));
                            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                            match tls {
                                None => {
                                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                                }
                                Some(acceptor) => {
                                    if let Ok(tls_stream) = acceptor.accept(stream).await {
                                        let _ = builder.serve_connection(TokioIo::new(tls_stream), svc).await;
                                    }
                                }
                            }
                        });
                    }
                }
            }
            conns.abort_all();
        });
        Origin {
            addr,
            seen,
            accepted,
            stop: Some(stop_tx),
        }
    }

    /// Connections accepted so far (health checks' included).
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Requests seen, excluding health checks.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.uri != "/healthz")
            .cloned()
            .collect()
    }

    pub fn hits(&self) -> usize {
        self.seen().len()
    }

    /// Stop listening and drop every open connection.
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn echo_handler() -> Handler {
    Arc::new(|s: &Seen| Action::Respond {
        status: 200,
        headers: vec![],
        body: Bytes::from(format!("origin {}", s.uri)),
    })
}

async fn serve(
    req: Request<Incoming>,
    handler: Handler,
    log: Arc<Mutex<Vec<Seen>>>,
    port: u16,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| (b.trailers().cloned(), b.to_bytes()));
    // A request whose body never completed is not a request a real origin acts on: it is
    // neither logged nor answered.
    let Ok((trailers, body)) = body else {
        let mut resp = Response::new(
            Full::new(Bytes::new())
                .map_err(|e: Infallible| match e {})
                .boxed(),
        );
        *resp.status_mut() = http::StatusCode::BAD_REQUEST;
        return Ok(resp);
    };
    let seen = Seen {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        version: parts.version,
        headers: parts.headers,
        body,
        trailers,
    };
    let action = handler(&seen);
    log.lock().unwrap().push(seen);
    let mut resp = run(action).await;
    resp.headers_mut().insert("x-origin", port.into());
    Ok(resp)
}

fn run(
    action: Action,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send>> {
    Box::pin(async move {
        match action {
            Action::Respond {
                status,
                headers,
                body,
            } => {
                let mut b = Response::builder().status(status);
                for (n, v) in headers {
                    b = b.header(n, v);
                }
                b.body(Full::new(body).map_err(|e: Infallible| match e {}).boxed())
                    .unwrap()
            }
            Action::Delay(d, inner) => {
                tokio::time::sleep(d).await;
                run(*inner).await
            }
            Action::WithTrailers { body, trailers } => {
                let mut map = HeaderMap::new();
                for (n, v) in trailers {
                    map.append(
                        http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                        v.parse().unwrap(),
                    );
                }
                let frames = vec![Ok(Frame::data(body)), Ok(Frame::trailers(map))];
                Response::builder()
                    .status(200)
                    .body(BodyExt::boxed(StreamBody::new(futures_util::stream::iter(
                        frames,
                    ))))
                    .unwrap()
            }
            Action::Gated {
                headers,
                body,
                split,
                gate,
            } => {
                let (first, rest) = (body.slice(..split), body.slice(split..));
                let stream = futures_util::StreamExt::chain(
                    futures_util::stream::iter([Ok(Frame::data(first))]),
                    futures_util::stream::once(async move {
                        let _permit = gate.acquire().await;
                        Ok(Frame::data(rest))
                    }),
                );
                let mut b = Response::builder().status(200);
                for (n, v) in headers {
                    b = b.header(n, v);
                }
                b.body(BodyExt::boxed(StreamBody::new(stream))).unwrap()
            }
            Action::DieMidBody => {
                // One chunk goes out with the headers; the connection dies a moment later.
                let stream = futures_util::stream::unfold(0u8, |step| async move {
                    match step {
                        0 => Some((Ok(Frame::data(Bytes::from(vec![b'x'; 1000]))), 1)),
                        1 => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            Some((Err(std::io::Error::other("origin dies")), 2))
                        }
                        _ => None,
                    }
                });
                Response::builder()
                    .status(200)
                    .header("content-length", "100000")
                    .body(BodyExt::boxed(StreamBody::new(stream)))
                    .unwrap()
            }
        }
    })
}
