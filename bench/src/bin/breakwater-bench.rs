//! `breakwater-bench`: an HTTP load generator with latency percentiles, for comparing
//! Breakwater with its peers in the same run.
//!
//! - HTTP/1.1 (one request at a time per connection, keep-alive), HTTP/2 (h2c, or over TLS)
//!   and HTTP/3 (QUIC), `--streams` concurrent streams per HTTP/2 or HTTP/3 connection;
//!   `https://` URLs use TLS (`--insecure` skips certificate verification, for self-signed
//!   test certificates);
//! - closed loop (`--connections` x `--streams` requests always in flight) or open loop at
//!   `--rate` requests per second, where latency is measured from the time each request was
//!   *meant* to be sent, so a stalled server cannot hide its stall (no coordinated omission);
//! - a warm-up, then a measured window; HDR histograms (1 µs to 60 s, 3 significant digits);
//! - a table on standard output, `--json FILE` for the figures, a progress line on stderr.

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Proto {
    /// HTTP/1.1 (over TLS for https:// URLs).
    H1,
    /// HTTP/2 with prior knowledge over cleartext.
    H2c,
    /// HTTP/2 over TLS (ALPN h2).
    H2,
    /// HTTP/3 over QUIC.
    H3,
}

#[derive(Parser, Debug)]
#[command(about = "HTTP load generator with latency percentiles (HTTP/1.1 and h2c)")]
struct Args {
    /// Target URL, e.g. http://127.0.0.1:8080/path
    url: String,
    #[arg(long, value_enum, default_value = "h1")]
    proto: Proto,
    /// Connections.
    #[arg(short, long, default_value_t = 64)]
    connections: usize,
    /// Concurrent streams per connection (h2c only).
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Open loop at this many requests per second (0: closed loop).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Warm-up, not measured.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Measured window.
    #[arg(short, long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// `Host` header to send (default: from the URL).
    #[arg(long)]
    host: Option<String>,
    /// Extra request headers, `name: value`.
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Write the figures as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Another path (with query) on the same host; requests cycle through the URL's path and
    /// these, in order (e.g. four cached paths and one origin path: an 80/20 mix).
    #[arg(long)]
    mix: Vec<String>,
    /// Write the latency distribution as an SVG plot here.
    #[arg(long)]
    svg: Option<std::path::PathBuf>,
    /// A label for the report.
    #[arg(long, default_value = "")]
    label: String,
    /// Do not verify the server's certificate (self-signed test certificates).
    #[arg(long)]
    insecure: bool,
}

/// What all workers record; a request counts when its response body has fully arrived.
struct Recorder {
    measuring: AtomicBool,
    stop: AtomicBool,
    latency: Mutex<Histogram<u64>>,
    ok: AtomicU64,
    bytes: AtomicU64,
    errors_status: AtomicU64,
    errors_io: AtomicU64,
    /// Requests retried on a new connection because a reused one closed before any response.
    retried: AtomicU64,
    sent: AtomicU64,
}

impl Recorder {
    fn record(
        &self,
        started: Instant,
        result: Result<(u16, usize), ()>,
        local: &mut Histogram<u64>,
    ) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        if !self.measuring.load(Ordering::Relaxed) {
            return;
        }
        match result {
            Ok((status, n)) if status < 400 => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(n as u64, Ordering::Relaxed);
                let us = started.elapsed().as_micros().clamp(1, 60_000_000) as u64;
                let _ = local.record(us);
            }
            Ok(_) => {
                self.errors_status.fetch_add(1, Ordering::Relaxed);
            }
            Err(()) => {
                self.errors_io.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;
type Sender2 = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;
type Sender3 = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

enum Conn {
    H1(Sender),
    H2(Sender2),
    H3(Sender3),
}

/// Accepts any certificate: for benchmarks against self-signed test certificates only.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(alpn: &[u8], insecure: bool, tls13_only: bool) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13_only {
        &[&rustls::version::TLS13]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("valid versions");
    let mut cfg = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    cfg.alpn_protocols = vec![alpn.to_vec()];
    cfg
}

async fn connect(target: &Target) -> std::io::Result<Conn> {
    if target.proto == Proto::H3 {
        return connect_h3(target).await;
    }
    let tcp = tokio::net::TcpStream::connect(&target.addr).await?;
    tcp.set_nodelay(true)?;
    if !target.tls {
        let io = TokioIo::new(tcp);
        return handshake(io, target.proto).await;
    }
    let alpn: &[u8] = if target.proto == Proto::H1 {
        b"http/1.1"
    } else {
        b"h2"
    };
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(tls_config(alpn, target.insecure, false)));
    let name = rustls::pki_types::ServerName::try_from(target.sni.clone())
        .map_err(std::io::Error::other)?;
    let tls = connector.connect(name, tcp).await?;
    handshake(TokioIo::new(tls), target.proto).await
}

async fn handshake<T>(io: TokioIo<T>, proto: Proto) -> std::io::Result<Conn>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if proto == Proto::H1 {
        let (send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok(Conn::H1(send))
    } else {
        let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok(Conn::H2(send))
    }
}

async fn connect_h3(target: &Target) -> std::io::Result<Conn> {
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls_config(b"h3", target.insecure, true))
            .map_err(std::io::Error::other)?;
    let mut endpoint = quinn::Endpoint::client("0.0.0.0:0".parse().expect("valid"))?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let addr: std::net::SocketAddr = tokio::net::lookup_host(&target.addr)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let conn = endpoint
        .connect(addr, &target.sni)
        .map_err(std::io::Error::other)?
        .await
        .map_err(std::io::Error::other)?;
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        drop(endpoint);
    });
    Ok(Conn::H3(send))
}

struct Target {
    addr: String,
    /// The URL's target, then each `--mix` path; requests take them in turn.
    uris: Vec<http::Uri>,
    next: std::sync::atomic::AtomicUsize,
    host: String,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    proto: Proto,
    tls: bool,
    sni: String,
    insecure: bool,
}

impl Target {
    fn request(&self) -> http::Request<Empty<Bytes>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.uris.len();
        let mut b = http::Request::get(self.uris[i].clone());
        if self.proto == Proto::H1 {
            b = b.header(http::header::HOST, &self.host);
        }
        for (n, v) in &self.headers {
            b = b.header(n, v);
        }
        b.body(Empty::new()).expect("valid request")
    }
}

/// Why a request got no answer: before the response head (a server may close an idle
/// keep-alive connection just as a request goes out, refuse streams past an HTTP/2 or
/// HTTP/3 GOAWAY, or go away with requests unanswered), or after it.
#[derive(Debug, PartialEq)]
enum Failed {
    BeforeResponse,
    Other,
}

/// Send one GET, retrying it once on a new connection when a reused connection failed before
/// any response: RFC 9110 9.2.2 allows it for idempotent requests (and RFC 9112 9.3.1,
/// RFC 9113 6.8 and RFC 9114 5.2 describe the cases), and browsers, curl and hyper's pooled
/// client do it. Counted in `retried`.
async fn send_retrying(
    target: &Target,
    rec: &Recorder,
    conn: &mut Option<Conn>,
    reused: bool,
) -> Result<(u16, usize), ()> {
    let Some(c) = conn.as_mut() else {
        return Err(());
    };
    match send(c, target.request()).await {
        Ok(r) => Ok(r),
        Err(Failed::BeforeResponse) if reused => {
            rec.retried.fetch_add(1, Ordering::Relaxed);
            *conn = connect(target).await.ok();
            match conn.as_mut() {
                Some(c) => send(c, target.request()).await.map_err(|_| ()),
                None => Err(()),
            }
        }
        Err(_) => Err(()),
    }
}

async fn send(conn: &mut Conn, req: http::Request<Empty<Bytes>>) -> Result<(u16, usize), Failed> {
    fn other<E>(_: E) -> Failed {
        Failed::Other
    }
    if let Conn::H3(s) = conn {
        let (parts, _) = req.into_parts();
        let mut stream = s
            .send_request(http::Request::from_parts(parts, ()))
            .await
            .map_err(|_| Failed::BeforeResponse)?;
        stream.finish().await.map_err(|_| Failed::BeforeResponse)?;
        let resp = stream
            .recv_response()
            .await
            .map_err(|_| Failed::BeforeResponse)?;
        let mut n = 0;
        while let Some(chunk) = stream.recv_data().await.map_err(other)? {
            use bytes::Buf;
            n += chunk.remaining();
        }
        return Ok((resp.status().as_u16(), n));
    }
    let resp = match conn {
        Conn::H1(s) => {
            s.ready().await.map_err(|_| Failed::BeforeResponse)?;
            s.send_request(req)
                .await
                .map_err(|_| Failed::BeforeResponse)?
        }
        Conn::H2(s) => {
            s.ready().await.map_err(|_| Failed::BeforeResponse)?;
            s.send_request(req)
                .await
                .map_err(|_| Failed::BeforeResponse)?
        }
        Conn::H3(_) => unreachable!("handled above"),
    };
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(other)?;
        if let Some(d) = frame.data_ref() {
            n += d.len();
        }
    }
    Ok((status, n))
}

/// One in-flight request slot: keeps its connection (reconnecting after an error).
async fn closed_loop(target: Arc<Target>, rec: Arc<Recorder>, mut conn: Option<Conn>) {
    let mut local = histogram();
    let mut reused = false;
    while !rec.stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            conn = connect(&target).await.ok();
            reused = false;
            if conn.is_none() {
                rec.record(Instant::now(), Err(()), &mut local);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        }
        let started = Instant::now();
        let result = send_retrying(&target, &rec, &mut conn, reused).await;
        reused = true;
        if result.is_err() {
            conn = None;
        }
        rec.record(started, result, &mut local);
    }
    rec.latency
        .lock()
        .expect("lock")
        .add(&local)
        .expect("same bounds");
}

/// Open loop: requests are due at fixed intervals, spread over the workers; latency counts
/// from when a request was due, so waiting for a busy connection is counted too.
async fn open_loop(
    target: Arc<Target>,
    rec: Arc<Recorder>,
    mut conn: Option<Conn>,
    interval: Duration,
    offset: Duration,
) {
    let mut local = histogram();
    let mut reused = false;
    let mut due = Instant::now() + offset;
    while !rec.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if due > now {
            tokio::time::sleep(due - now).await;
        }
        if conn.is_none() {
            conn = connect(&target).await.ok();
            reused = false;
        }
        let result = send_retrying(&target, &rec, &mut conn, reused).await;
        reused = true;
        if result.is_err() {
            conn = None;
        }
        rec.record(due, result, &mut local);
        due += interval;
    }
    rec.latency
        .lock()
        .expect("lock")
        .add(&local)
        .expect("same bounds");
}

#[derive(serde::Serialize)]
struct Report {
    label: String,
    url: String,
    proto: String,
    connections: usize,
    streams: usize,
    rate: u64,
    seconds: f64,
    requests: u64,
    requests_per_sec: f64,
    bytes_per_sec: f64,
    p50_us: u64,
    p90_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
    errors_status: u64,
    errors_io: u64,
    retried: u64,
    /// `(percentile, µs)` at `plot::PERCENTILES`, for plots.
    distribution: Vec<(f64, u64)>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let uri: http::Uri = args.url.parse()?;
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow::anyhow!("the URL needs host:port"))?
        .clone();
    let tls = uri.scheme_str() == Some("https") || args.proto == Proto::H3;
    let default_port = if tls { 443 } else { 80 };
    let addr = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(default_port)
    );
    let mut headers = Vec::new();
    for h in &args.headers {
        let (n, v) = h
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("header {h:?}: expected `name: value`"))?;
        headers.push((n.trim().parse()?, v.trim().parse()?));
    }
    let target = Arc::new(Target {
        addr,
        uris: std::iter::once(uri.path_and_query().map_or("/", |p| p.as_str()))
            .chain(args.mix.iter().map(String::as_str))
            .map(|pq| -> anyhow::Result<http::Uri> {
                Ok(if args.proto == Proto::H1 {
                    pq.parse()?
                } else {
                    let scheme = uri.scheme_str().unwrap_or("http");
                    format!("{scheme}://{authority}{pq}").parse()?
                })
            })
            .collect::<anyhow::Result<_>>()?,
        next: std::sync::atomic::AtomicUsize::new(0),
        host: args.host.clone().unwrap_or_else(|| authority.to_string()),
        headers,
        proto: args.proto,
        tls,
        sni: authority.host().to_string(),
        insecure: args.insecure,
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(run(&args, target))?;
    print_table(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    if let Some(path) = &args.svg {
        let name = if report.label.is_empty() {
            &report.url
        } else {
            &report.label
        };
        let svg = breakwater_bench::plot::latency_svg(
            &format!("{name}: {:.0} req/s", report.requests_per_sec),
            &[breakwater_bench::plot::Series {
                name,
                points: &report.distribution,
            }],
        );
        std::fs::write(path, svg)?;
    }
    Ok(())
}

async fn run(args: &Args, target: Arc<Target>) -> anyhow::Result<Report> {
    let rec = Arc::new(Recorder {
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        latency: Mutex::new(histogram()),
        ok: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        errors_status: AtomicU64::new(0),
        errors_io: AtomicU64::new(0),
        retried: AtomicU64::new(0),
        sent: AtomicU64::new(0),
    });
    let streams = if args.proto == Proto::H2c {
        args.streams.max(1)
    } else {
        1
    };
    let slots = args.connections * streams;
    let mut tasks = Vec::with_capacity(slots);
    for c in 0..args.connections {
        // HTTP/2 streams of one connection share its sender.
        let conns: Vec<Conn> = match connect(&target).await? {
            Conn::H1(s) => vec![Conn::H1(s)],
            Conn::H2(s) => (0..streams).map(|_| Conn::H2(s.clone())).collect(),
            Conn::H3(s) => (0..streams).map(|_| Conn::H3(s.clone())).collect(),
        };
        for (s, conn) in conns.into_iter().enumerate() {
            let (target, rec) = (target.clone(), rec.clone());
            if args.rate > 0 {
                let interval = Duration::from_secs_f64(slots as f64 / args.rate as f64);
                let offset = interval.mul_f64((c * streams + s) as f64 / slots as f64);
                tasks.push(tokio::spawn(open_loop(
                    target,
                    rec,
                    Some(conn),
                    interval,
                    offset,
                )));
            } else {
                tasks.push(tokio::spawn(closed_loop(target, rec, Some(conn))));
            }
        }
    }
    tokio::time::sleep(args.warmup).await;
    rec.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let mut last = 0;
    while started.elapsed() < args.duration {
        tokio::time::sleep(Duration::from_secs(1).min(args.duration)).await;
        let ok = rec.ok.load(Ordering::Relaxed);
        eprint!(
            "\r{:>5.1}s  {:>9} req/s  errors {}   ",
            started.elapsed().as_secs_f64(),
            ok - last,
            rec.errors_io.load(Ordering::Relaxed) + rec.errors_status.load(Ordering::Relaxed)
        );
        last = ok;
    }
    rec.measuring.store(false, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    rec.stop.store(true, Ordering::Relaxed);
    eprintln!();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let h = rec.latency.lock().expect("lock");
    let ok = rec.ok.load(Ordering::Relaxed);
    Ok(Report {
        label: args.label.clone(),
        url: args.url.clone(),
        proto: format!("{:?}", args.proto).to_lowercase(),
        connections: args.connections,
        streams,
        rate: args.rate,
        seconds,
        requests: ok,
        requests_per_sec: ok as f64 / seconds,
        bytes_per_sec: rec.bytes.load(Ordering::Relaxed) as f64 / seconds,
        p50_us: h.value_at_quantile(0.5),
        p90_us: h.value_at_quantile(0.9),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
        errors_status: rec.errors_status.load(Ordering::Relaxed),
        retried: rec.retried.load(Ordering::Relaxed),
        errors_io: rec.errors_io.load(Ordering::Relaxed),
        distribution: breakwater_bench::plot::PERCENTILES
            .iter()
            .map(|&p| (p, h.value_at_quantile(p / 100.0)))
            .collect(),
    })
}

fn print_table(r: &Report) {
    let ms = |us: u64| format!("{:.2} ms", us as f64 / 1000.0);
    println!(
        "{:<28} {:>11} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "label", "req/s", "p50", "p90", "p99", "p99.9", "max", "errors"
    );
    println!(
        "{:<28} {:>11.0} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}",
        if r.label.is_empty() { &r.url } else { &r.label },
        r.requests_per_sec,
        ms(r.p50_us),
        ms(r.p90_us),
        ms(r.p99_us),
        ms(r.p999_us),
        ms(r.max_us),
        r.errors_status + r.errors_io
    );
}
