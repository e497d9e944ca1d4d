//! A real HTTP/3 client (quinn + h3) for the tests.
#![allow(dead_code)]

use bytes::{Buf, Bytes};
use std::net::SocketAddr;
use std::sync::Arc;

pub struct H3 {
    send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    pub endpoint: quinn::Endpoint,
    pub conn: quinn::Connection,
}

#[derive(Debug)]
pub struct H3Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl H3Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl H3 {
    /// A client TLS config for HTTP/3 that keeps session tickets and offers early data:
    /// share it between connections to resume with 0-RTT.
    pub fn resuming_tls(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"h3".to_vec()];
        tls.enable_early_data = true;
        Arc::new(tls)
    }

    /// Connect with `tls`, sending 0-RTT data when the server allowed it last time.
    /// Returns the client and, when the connection started in 0-RTT, the future that tells
    /// whether the server accepted its early data (resolves once the handshake completes).
    pub async fn connect_early(
        addr: SocketAddr,
        sni: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<(H3, Option<quinn::ZeroRttAccepted>), String> {
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        let connecting = endpoint.connect(addr, sni).map_err(|e| e.to_string())?;
        let (conn, early) = match connecting.into_0rtt() {
            Ok((conn, accepted)) => (conn, Some(accepted)),
            Err(connecting) => (
                tokio::time::timeout(std::time::Duration::from_secs(10), connecting)
                    .await
                    .map_err(|_| "handshake timed out".to_string())?
                    .map_err(|e| e.to_string())?,
                None,
            ),
        };
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        Ok((
            H3 {
                send,
                endpoint,
                conn,
            },
            early,
        ))
    }

    /// Connect to `addr` over QUIC with SNI `sni`, trusting `roots`.
    pub async fn connect(
        addr: SocketAddr,
        sni: &str,
        roots: rustls::RootCertStore,
    ) -> Result<H3, String> {
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"h3".to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        let connecting = endpoint.connect(addr, sni).map_err(|e| e.to_string())?;
        let conn = tokio::time::timeout(std::time::Duration::from_secs(10), connecting)
            .await
            .map_err(|_| "handshake timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        Ok(H3 {
            send,
            endpoint,
            conn,
        })
    }

    pub async fn request(
        &self,
        method: &str,
        authority: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<H3Reply, String> {
        let mut b = http::Request::builder()
            .method(method)
            .uri(format!("https://{authority}{path}"));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut send = self.send.clone();
        let fut = async move {
            let mut stream = send
                .send_request(b.body(()).unwrap())
                .await
                .map_err(|e| e.to_string())?;
            // A server may answer before it has read the whole request body and then stop
            // reading it (RFC 9114 4.1: H3_NO_ERROR); the client must not discard that
            // response. A failed send is the answer only when no response comes.
            let mut sent = Ok(());
            if let Some(body) = body {
                sent = stream.send_data(body).await;
            }
            if sent.is_ok() {
                sent = stream.finish().await;
            }
            let resp = match stream.recv_response().await {
                Ok(resp) => resp,
                Err(e) => return Err(sent.err().map_or(e.to_string(), |s| s.to_string())),
            };
            let mut body = Vec::new();
            while let Some(mut chunk) = stream.recv_data().await.map_err(|e| e.to_string())? {
                body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
            }
            Ok(H3Reply {
                status: resp.status().as_u16(),
                headers: resp.headers().clone(),
                body: Bytes::from(body),
            })
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), fut)
            .await
            .map_err(|_| "request timed out".to_string())?
    }

    /// A POST whose body is followed by `trailers`; the reply and the response trailers.
    pub async fn post_with_trailers(
        &self,
        authority: &str,
        path: &str,
        body: Bytes,
        trailers: http::HeaderMap,
    ) -> Result<(H3Reply, Option<http::HeaderMap>), String> {
        let req = http::Request::post(format!("https://{authority}{path}"))
            .body(())
            .unwrap();
        let mut send = self.send.clone();
        let fut = async move {
            let e = |e: h3::error::StreamError| e.to_string();
            let mut stream = send.send_request(req).await.map_err(e)?;
            stream.send_data(body).await.map_err(e)?;
            stream.send_trailers(trailers).await.map_err(e)?;
            stream.finish().await.map_err(e)?;
            let resp = stream.recv_response().await.map_err(e)?;
            let mut body = Vec::new();
            while let Some(mut chunk) = stream.recv_data().await.map_err(e)? {
                body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
            }
            let trailers = stream.recv_trailers().await.map_err(e)?;
            Ok((
                H3Reply {
                    status: resp.status().as_u16(),
                    headers: resp.headers().clone(),
                    body: Bytes::from(body),
                },
                trailers,
            ))
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), fut)
            .await
            .map_err(|_| "request timed out".to_string())?
    }

    /// A CONNECT request carrying `:scheme` and `:path` (this client always sends them):
    /// malformed for HTTP/3 (RFC 9114 section 4.4).
    pub async fn malformed_connect(&self, authority: &str, path: &str) -> Result<H3Reply, String> {
        let req = http::Request::connect(format!("https://{authority}{path}"))
            .body(())
            .unwrap();
        let mut send = self.send.clone();
        let fut = async move {
            let mut stream = send.send_request(req).await.map_err(|e| e.to_string())?;
            stream.finish().await.map_err(|e| e.to_string())?;
            let resp = stream.recv_response().await.map_err(|e| e.to_string())?;
            Ok(H3Reply {
                status: resp.status().as_u16(),
                headers: resp.headers().clone(),
                body: Bytes::new(),
            })
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), fut)
            .await
            .map_err(|_| "timed out".to_string())?
    }

    /// Send a request head and part of a body, then reset the stream.
    pub async fn abandon_post(&self, authority: &str, path: &str, part: Bytes) {
        let req = http::Request::post(format!("https://{authority}{path}"))
            .body(())
            .unwrap();
        let mut send = self.send.clone();
        let mut stream = send.send_request(req).await.unwrap();
        stream.send_data(part).await.unwrap();
        stream.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED);
    }

    pub async fn get(&self, authority: &str, path: &str) -> H3Reply {
        self.request("GET", authority, path, &[], None)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }
}

/// A UDP relay between one QUIC client and `server` that records every datagram the client
/// sends, so that a test can replay the client's flight as an attacker on the path would.
/// With `answers: false` nothing goes back to the client: its handshake never completes,
/// while what it sent (a ClientHello and 0-RTT data) reaches the server.
pub struct Relay {
    pub addr: SocketAddr,
    sent: Arc<std::sync::Mutex<Vec<Bytes>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(server: SocketAddr, answers: bool) -> Relay {
        let front = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let back = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        back.connect(server).await.unwrap();
        let addr = front.local_addr().unwrap();
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = sent.clone();
        let task = tokio::spawn(async move {
            let (mut up, mut down) = (vec![0u8; 65536], vec![0u8; 65536]);
            let mut client = None;
            loop {
                tokio::select! {
                    r = front.recv_from(&mut up) => {
                        let Ok((n, from)) = r else { return };
                        client = Some(from);
                        recorded.lock().unwrap().push(Bytes::copy_from_slice(&up[..n]));
                        let _ = back.send(&up[..n]).await;
                    }
                    r = back.recv(&mut down) => {
                        let Ok(n) = r else { continue };
                        if let (true, Some(client)) = (answers, client) {
                            let _ = front.send_to(&down[..n], client).await;
                        }
                    }
                }
            }
        });
        Relay { addr, sent, task }
    }

    /// Every datagram the client has sent so far, in order.
    pub fn sent(&self) -> Vec<Bytes> {
        self.sent.lock().unwrap().clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Send `datagrams` to `server` from a new address, as an attacker replaying a captured
/// flight would; the socket is returned so that the server's answers have somewhere to go.
pub async fn replay(server: SocketAddr, datagrams: &[Bytes]) -> tokio::net::UdpSocket {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for d in datagrams {
        socket.send_to(d, server).await.unwrap();
    }
    socket
}
