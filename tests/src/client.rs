//! Real HTTP clients: hyper over plain TCP (HTTP/1.1, h2c) and rustls (HTTP/1.1, h2 by ALPN),
//! and a raw socket for malformed input.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// Read a whole response, body included.
    pub async fn read(resp: hyper::Response<hyper::body::Incoming>) -> Result<Reply, String> {
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("body: {e:?}"))?
            .to_bytes();
        Ok(Reply {
            status: parts.status.as_u16(),
            version: parts.version,
            headers: parts.headers,
            body,
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A pooled plain-TCP client: HTTP/1.1, or HTTP/2 with prior knowledge.
#[derive(Clone)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
    /// HTTP/2 with prior knowledge, with `Host` sent as `:authority` as browsers do.
    h2c: bool,
    /// HTTP/3 to the request's address, with the `Host` as SNI and `:authority`.
    h3: Option<rustls::RootCertStore>,
}

impl Client {
    pub fn h1() -> Self {
        Self {
            inner: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http(),
            h2c: false,
            h3: None,
        }
    }

    /// HTTP/3 (QUIC), trusting `roots`: one connection per request.
    pub fn h3(roots: rustls::RootCertStore) -> Self {
        Self {
            h3: Some(roots),
            ..Self::h1()
        }
    }

    pub fn h2c() -> Self {
        Self {
            inner: hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http(),
            h2c: true,
            h3: None,
        }
    }

    pub async fn get(&self, addr: SocketAddr, host: &str, path: &str) -> Reply {
        let req = Request::get(format!("http://{addr}{path}"))
            .header("host", host)
            .body(Full::default())
            .unwrap();
        self.send(req).await.expect("request failed")
    }

    pub async fn send(&self, mut req: Request<Full<Bytes>>) -> Result<Reply, String> {
        if let Some(roots) = &self.h3 {
            return h3_send(req, roots.clone()).await;
        }
        if self.h2c {
            return tokio::time::timeout(Duration::from_secs(20), h2c_send(req))
                .await
                .map_err(|_| "timed out".to_string())?;
        }
        if req.headers().get("host").is_none() {
            let auth = req.uri().authority().unwrap().to_string();
            req.headers_mut().insert("host", auth.parse().unwrap());
        }
        let fut = self.inner.request(req);
        let resp = tokio::time::timeout(Duration::from_secs(20), fut)
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| format!("{e:?}"))?;
        Reply::read(resp).await
    }
}

/// A TLS client trusting `roots` that asks for HTTP/2 (`h2`) or HTTP/1.1 by ALPN.
pub fn tls_connector(roots: rustls::RootCertStore, h2: bool) -> tokio_rustls::TlsConnector {
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = if h2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// One request over a fresh TLS connection with SNI `sni`, trusting `roots`.
/// Returns the handshake error as text when the server refuses it.
pub async fn tls_get(
    addr: SocketAddr,
    sni: &str,
    roots: rustls::RootCertStore,
    h2: bool,
    path: &str,
) -> Result<Reply, String> {
    let connector = tls_connector(roots, h2);
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let negotiated_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let uri = format!("https://{sni}{path}");
    let resp = if negotiated_h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::get(uri).body(Full::<Bytes>::default()).unwrap();
        send.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header("host", sni)
            .body(Full::<Bytes>::default())
            .unwrap();
        send.send_request(req).await.map_err(|e| e.to_string())?
    };
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply {
        status: parts.status.as_u16(),
        version: parts.version,
        headers: parts.headers,
        body,
    })
}

/// Write raw bytes, then read until the server closes or 5 s pass. Returns what was read.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of the first response in raw HTTP/1.1 output.
pub fn raw_status(out: &str) -> Option<u16> {
    out.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// HTTP/2 over a fresh TCP connection to the URI's address, with the `Host` header (if any)
/// moved into `:authority`.
async fn h2c_send(mut req: Request<Full<Bytes>>) -> Result<Reply, String> {
    let target = req.uri().authority().unwrap().to_string();
    if let Some(host) = req.headers_mut().remove("host") {
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or("/".into());
        *req.uri_mut() = format!("http://{}{pq}", host.to_str().unwrap())
            .parse()
            .unwrap();
    }
    *req.version_mut() = http::Version::HTTP_2;
    let tcp = TcpStream::connect(target)
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = send.send_request(req).await.map_err(|e| format!("{e:?}"))?;
    Reply::read(resp).await
}

async fn h3_send(req: Request<Full<Bytes>>, roots: rustls::RootCertStore) -> Result<Reply, String> {
    let (parts, body) = req.into_parts();
    let addr: SocketAddr = parts
        .uri
        .authority()
        .ok_or("no address")?
        .as_str()
        .parse()
        .map_err(|e| format!("{e}"))?;
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let sni = host.split(':').next().unwrap_or("").to_ascii_lowercase();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(n, _)| *n != "host")
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let conn = super::h3client::H3::connect(addr, &sni, roots).await?;
    let r = conn
        .request(
            parts.method.as_str(),
            &host,
            &path,
            &headers,
            (!body.is_empty()).then_some(body),
        )
        .await?;
    Ok(Reply {
        status: r.status,
        version: http::Version::HTTP_3,
        headers: r.headers,
        body: r.body,
    })
}
