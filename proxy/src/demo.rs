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
const FILTER_WIT: &str = include_str!("../../isolate/wit/0.2/filter.wit");
const HELLO_HANDLER: &str = include_str!("../../isolate/guests/wat/hello.wat");
/// WASI 0.2 packages, in dependency order, for the handler's world.
const WASI_WIT: [(&str, &str); 7] = [
    ("io.wit", include_str!("../../isolate/wit/deps/io.wit")),
    (
        "clocks.wit",
        include_str!("../../isolate/wit/deps/clocks.wit"),
    ),
    (
        "random.wit",
        include_str!("../../isolate/wit/deps/random.wit"),
    ),
    (
        "filesystem.wit",
        include_str!("../../isolate/wit/deps/filesystem.wit"),
    ),
    (
        "sockets.wit",
        include_str!("../../isolate/wit/deps/sockets.wit"),
    ),
    ("cli.wit", include_str!("../../isolate/wit/deps/cli.wit")),
    ("http.wit", include_str!("../../isolate/wit/deps/http.wit")),
];
const HANDLER_WORLD: &str = "package breakwater:demo;
world hello {
  import wasi:http/types@0.2.12;
  import wasi:io/streams@0.2.12;
  export wasi:http/incoming-handler@0.2.12;
}";

/// The demo's filter, in WAT against interface 0.2: `on-response` sets
/// `x-breakwater-filter: demo` on every response (the result, a `header-edits` record, is
/// laid out at offset 2048). It reads nothing of the request or the response, so nothing of
/// them is copied into it: its parameters are two borrowed handles, which it drops (the
/// component model requires a call to drop what it borrowed before it returns).
const DEMO_FILTER: &str = r#"(module
  (import "breakwater:filter/types@0.2.0" "[resource-drop]request" (func $drop_req (param i32)))
  (import "breakwater:filter/types@0.2.0" "[resource-drop]response-head"
    (func $drop_resp (param i32)))
  (memory (export "memory") 1)
  (func (export "breakwater:filter/on-response@0.2.0#handle") (param i32 i32) (result i32)
    (call $drop_req (local.get 0))
    (call $drop_resp (local.get 1))
    (memory.fill (i32.const 2048) (i32.const 0) (i32.const 24))
    (i32.store (i32.const 2048) (i32.const 2100)) (i32.store (i32.const 2052) (i32.const 1))
    (i32.store (i32.const 2100) (i32.const 2200)) (i32.store (i32.const 2104) (i32.const 19))
    (i32.store (i32.const 2108) (i32.const 2300)) (i32.store (i32.const 2112) (i32.const 4))
    (i32.const 2048))
  (data (i32.const 2200) "x-breakwater-filter")
  (data (i32.const 2300) "demo"))"#;

/// The demo config, with its origin at `origin`, its listener at `listen`, and its filter
/// component written under `dir`.
pub fn config(
    listen: SocketAddr,
    admin: SocketAddr,
    tls_listen: SocketAddr,
    origin: SocketAddr,
    dir: &std::path::Path,
) -> std::io::Result<String> {
    let (filter, handler) = write_components(dir)?;
    let (cert, key) = self_signed(dir)?;
    Ok(CONFIG
        .replace("{TLS_LISTEN}", &tls_listen.to_string())
        .replace("{CERT}", &cert.display().to_string())
        .replace("{KEY}", &key.display().to_string())
        .replace("{LISTEN}", &listen.to_string())
        .replace("{ADMIN}", &admin.to_string())
        .replace("{ORIGIN}", &origin.to_string())
        .replace("{FILTER}", &filter.display().to_string())
        .replace("{HANDLER}", &handler.display().to_string()))
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, made at startup; its SHA-256
/// fingerprint is printed so a client can pin it.
fn self_signed(dir: &std::path::Path) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
    use sha2::Digest;
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let made = rcgen::generate_simple_self_signed(names).map_err(std::io::Error::other)?;
    let (cert, key) = (dir.join("demo-cert.pem"), dir.join("demo-key.pem"));
    std::fs::write(&cert, made.cert.pem())?;
    std::fs::write(&key, made.signing_key.serialize_pem())?;
    let fingerprint: Vec<String> = sha2::Sha256::digest(made.cert.der())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    println!(
        "demo certificate: self-signed, SHA-256 fingerprint {}",
        fingerprint.join(":")
    );
    Ok((cert, key))
}

/// Write the demo filter and handler components into `dir`; returns their paths.
pub fn write_components(
    dir: &std::path::Path,
) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let filter = dir.join("demo-filter.wasm");
    let handler = dir.join("hello-handler.wasm");
    std::fs::create_dir_all(dir)?;
    std::fs::write(&filter, demo_filter().map_err(std::io::Error::other)?)?;
    std::fs::write(&handler, hello_handler().map_err(std::io::Error::other)?)?;
    Ok((filter, handler))
}

/// Build the demo filter component from its WAT, as `wasm-tools component new` would.
pub(crate) fn demo_filter() -> Result<Vec<u8>, String> {
    let mut resolve = wit_parser::Resolve::default();
    let pkg = resolve
        .push_str("filter.wit", FILTER_WIT)
        .map_err(|e| e.to_string())?;
    encode(DEMO_FILTER, &resolve, pkg, "response-filter")
}

/// Build the hello `wasi:http` handler from its WAT.
fn hello_handler() -> Result<Vec<u8>, String> {
    let mut resolve = wit_parser::Resolve::default();
    for (name, text) in WASI_WIT {
        resolve.push_str(name, text).map_err(|e| e.to_string())?;
    }
    let pkg = resolve
        .push_str("hello.wit", HANDLER_WORLD)
        .map_err(|e| e.to_string())?;
    encode(HELLO_HANDLER, &resolve, pkg, "hello")
}

fn encode(
    wat: &str,
    resolve: &wit_parser::Resolve,
    pkg: wit_parser::PackageId,
    world: &str,
) -> Result<Vec<u8>, String> {
    let mut module = wat::parse_str(wat).map_err(|e| e.to_string())?;
    let world = resolve
        .select_world(&[pkg], Some(world))
        .map_err(|e| e.to_string())?;
    wit_component::embed_component_metadata(
        &mut module,
        resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .map_err(|e| e.to_string())?;
    wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| e.to_string())
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
