//! The embedded demo: what `breakwater` with no arguments serves.
//!
//! A welcome page answered at the edge, a redirect, and a route to a small origin that the
//! process starts itself on a free loopback port, so the first command shows a working node.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::net::SocketAddr;

const CONFIG: &str = include_str!("demo.yaml");

/// The demo config, with its origin at `origin` and its listener at `listen`.
pub fn config(listen: SocketAddr, admin: SocketAddr, origin: SocketAddr) -> String {
    CONFIG
        .replace("{LISTEN}", &listen.to_string())
        .replace("{ADMIN}", &admin.to_string())
        .replace("{ORIGIN}", &origin.to_string())
}

/// The demo origin: echoes what it received, as an origin behind a CDN would see it.
pub struct DemoOrigin;

#[async_trait]
impl ServeHttp for DemoOrigin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let mut body = format!(
            "Hello from the demo origin.\n\n{} {}\n",
            req.method, req.uri
        );
        for (name, value) in req.headers.iter() {
            body.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        Response::builder()
            .status(200)
            .header("content-type", "text/plain; charset=utf-8")
            .header("cache-control", "public, max-age=10")
            .header("content-length", body.len())
            .body(body.into_bytes())
            .expect("valid response")
    }
}
