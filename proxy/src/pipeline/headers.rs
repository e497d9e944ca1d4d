//! Header work on the request path: hop-by-hop stripping, forwarding headers, route edits.

use crate::pipeline::errors::LocalResponse;
use crate::pipeline::Scheme;
use breakwater_config::{Forwarding, HeaderEdits, XffMode};
use http::header::{self, HeaderName};
use http::HeaderMap;
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use std::net::IpAddr;

/// Headers that describe one connection, never forwarded (RFC 9110 7.6.1).
static HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// What to strip from a head: the fixed hop-by-hop set plus the headers `Connection` names.
/// An `Upgrade` handshake (WebSocket) keeps `Connection`/`Upgrade`: pingora relays it.
struct HopByHop {
    upgrading: bool,
    /// Headers of the head that `Connection` names (an owned name only for one present:
    /// tokens such as `keep-alive` or `close` usually name none, and cost nothing).
    named: Vec<HeaderName>,
}

impl HopByHop {
    fn of(headers: &HeaderMap) -> Self {
        let tokens = || {
            headers
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
        };
        let upgrading = headers.contains_key(header::UPGRADE)
            && tokens().any(|t| t.eq_ignore_ascii_case("upgrade"));
        let named = match upgrading {
            true => Vec::new(),
            false => tokens()
                .filter(|t| !t.is_empty() && headers.contains_key(*t))
                .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
                .collect(),
        };
        Self { upgrading, named }
    }

    fn names(&self) -> impl Iterator<Item = &HeaderName> {
        let fixed = HOP_BY_HOP
            .iter()
            .filter(|h| !(self.upgrading && (*h == header::CONNECTION || *h == header::UPGRADE)));
        self.named.iter().chain(fixed)
    }
}

/// RFC 8586: every CDN node a request passes adds itself here.
pub const CDN_LOOP: HeaderName = HeaderName::from_static("cdn-loop");

/// This node's entry in `CDN-Loop`: the CDN's name and the node, which a process picks at
/// start (`breakwater; node=<16 hex digits>`), so the nodes of one tier pass each other's
/// requests and only a request coming back to a node it passed is a loop.
pub fn cdn_loop_token() -> HeaderValue {
    let token = format!("breakwater; node={:016x}", rand::random::<u64>());
    HeaderValue::from_str(&token).expect("ASCII")
}

/// Whether `req` passed this node before (its token is among the `CDN-Loop` entries).
pub fn loops_through(req: &RequestHeader, token: &HeaderValue) -> bool {
    let Ok(token) = token.to_str() else {
        return false;
    };
    req.headers
        .get_all(CDN_LOOP)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|entry| entry.trim().eq_ignore_ascii_case(token))
}

/// Whether `name` is hop-by-hop or framing (`Transfer-Encoding`): not passed to a component,
/// which sees and produces end-to-end headers only.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::TRANSFER_ENCODING || HOP_BY_HOP.contains(name)
}

/// The single `Content-Length` a message is framed by, when it came as a list of one repeated
/// value (`5, 5`) or as repeated fields, which pingora accepts (differing values are refused):
/// RFC 9110 8.6 has a recipient that accepts them replace them with the single value before
/// passing the message on, since the next hop may read a list otherwise. `None` when there is
/// nothing to replace.
fn single_content_length(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let first = values.next()?;
    let repeated = values.next().is_some();
    if !repeated && !first.as_bytes().contains(&b',') {
        return None;
    }
    let value = first.as_bytes().split(|&b| b == b',').next()?.trim_ascii();
    HeaderValue::from_bytes(value).ok()
}

/// The client's request as the next hop may get it: without the fields only this hop may see
/// (but framing and routing), and with a single `Content-Length` ([`single_content_length`]).
pub fn strip_hop_by_hop_request(req: &mut RequestHeader) {
    let te_trailers = req
        .headers
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    let strip = HopByHop::of(&req.headers);
    for n in strip.names() {
        if n == header::TRANSFER_ENCODING || n == header::CONTENT_LENGTH || n == header::HOST {
            continue; // framing and routing headers are pingora's business, not the client's to drop
        }
        req.remove_header(n);
    }
    if te_trailers {
        let _ = req.insert_header(header::TE, "trailers");
    }
    if let Some(length) = single_content_length(&req.headers) {
        let _ = req.insert_header(header::CONTENT_LENGTH, length);
    }
}

/// The origin's response as the client may get it: as [`strip_hop_by_hop_request`].
pub fn strip_hop_by_hop_response(resp: &mut ResponseHeader) {
    let strip = HopByHop::of(&resp.headers);
    for n in strip.names() {
        if n == header::TRANSFER_ENCODING || n == header::CONTENT_LENGTH {
            continue;
        }
        resp.remove_header(n);
    }
    if resp.status.is_informational() || resp.status == http::StatusCode::NO_CONTENT {
        // No content whatever the origin sent, and no field that would say otherwise (RFC 9110
        // 8.6: a sender MUST NOT send Content-Length in a 1xx or 204 response; RFC 9112 6.1:
        // nor Transfer-Encoding).
        resp.remove_header(&header::CONTENT_LENGTH);
        resp.remove_header(&header::TRANSFER_ENCODING);
    } else if let Some(length) = single_content_length(&resp.headers) {
        let _ = resp.insert_header(header::CONTENT_LENGTH, length);
    }
}

/// The target in origin form, as an origin must get it (RFC 9112 3.2.1): pingora writes an
/// HTTP/1 client's absolute-form target (`GET http://a.test/x HTTP/1.1`, which RFC 9112 3.2.2
/// has every server accept) upstream as it came, in its raw bytes; those bytes' path and
/// query are kept. Host names the target's authority (pingora has refused one that differs;
/// an HTTP/1.0 request may have had none). Applied to the client's request before routing,
/// so that routes, the cache key and the origin all see the same host and path.
pub fn origin_form(req: &mut RequestHeader) {
    // pingora keeps an absolute-form target's bytes and only its path in the URI.
    let raw = req.raw_path();
    if matches!(raw.first(), Some(b'/' | b'*') | None) {
        return; // origin or asterisk form (every HTTP/2 and HTTP/3 target too)
    }
    let Some(after_scheme) = raw.windows(3).position(|w| w == b"://").map(|i| i + 3) else {
        return; // authority form (CONNECT)
    };
    let rest = &raw[after_scheme..];
    let path_at = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = String::from_utf8_lossy(&rest[..path_at]).into_owned();
    let mut target = Vec::with_capacity(rest.len() - path_at + 1);
    if rest.get(path_at) != Some(&b'/') {
        target.push(b'/');
    }
    target.extend_from_slice(&rest[path_at..]);
    if req.set_raw_path(&target).is_ok() && req.headers.get(header::HOST).is_none() {
        let _ = req.insert_header(header::HOST, authority);
    }
}

/// `Max-Forwards` of an OPTIONS or TRACE request (RFC 9110 7.6.2: the only methods it applies
/// to); `None` for other methods, or without a valid one.
pub fn max_forwards(req: &RequestHeader) -> Option<u32> {
    if req.method != http::Method::OPTIONS && req.method != http::Method::TRACE {
        return None;
    }
    let value = req.headers.get(header::MAX_FORWARDS)?.to_str().ok()?;
    value.trim().parse().ok()
}

/// RFC 9110 7.6.2: an intermediary forwarding an OPTIONS or TRACE request decrements its
/// `Max-Forwards` (one of 0 was answered here: [`answer_as_final_recipient`]).
pub fn decrement_max_forwards(req: &mut RequestHeader) {
    if let Some(n) = max_forwards(req).filter(|&n| n > 0) {
        let _ = req.insert_header(header::MAX_FORWARDS, n - 1);
    }
}

/// The answer to an OPTIONS or TRACE request this node is the final recipient of (one with
/// `Max-Forwards: 0`, RFC 9110 7.6.2; or `OPTIONS *`, RFC 9112 3.2.4): OPTIONS gets 200 with
/// no content (RFC 9110 9.3.7); TRACE the request head as received, as `message/http` (9.3.8),
/// without the fields that carry credentials, which the final recipient should leave out.
pub fn answer_as_final_recipient(req: &RequestHeader) -> LocalResponse {
    if req.method != http::Method::TRACE {
        return LocalResponse::fixed(http::StatusCode::OK, Vec::new(), bytes::Bytes::new());
    }
    let mut echo = Vec::with_capacity(256);
    echo.extend_from_slice(req.method.as_str().as_bytes());
    echo.push(b' ');
    echo.extend_from_slice(req.raw_path());
    echo.extend_from_slice(format!(" {:?}\r\n", req.version).as_bytes());
    for (name, value) in req.headers.iter() {
        if matches!(
            *name,
            header::AUTHORIZATION | header::PROXY_AUTHORIZATION | header::COOKIE
        ) {
            continue;
        }
        echo.extend_from_slice(name.as_str().as_bytes());
        echo.extend_from_slice(b": ");
        echo.extend_from_slice(value.as_bytes());
        echo.extend_from_slice(b"\r\n");
    }
    echo.extend_from_slice(b"\r\n");
    let content_type = (
        header::CONTENT_TYPE,
        HeaderValue::from_static("message/http"),
    );
    LocalResponse::fixed(http::StatusCode::OK, vec![content_type], echo.into())
}

/// What the origin is told about the client.
pub struct ClientInfo<'a> {
    pub ip: Option<IpAddr>,
    pub scheme: Scheme,
    pub http_version: http::Version,
    pub host: &'a str,
}

pub fn via_value(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_2 => "2 breakwater",
        http::Version::HTTP_3 => "3 breakwater",
        http::Version::HTTP_10 => "1.0 breakwater",
        _ => "1.1 breakwater",
    }
}

pub fn add_forwarding(req: &mut RequestHeader, fwd: &Forwarding, client: &ClientInfo<'_>) {
    let ip = client.ip.map(|ip| ip.to_string());
    match (fwd.x_forwarded_for, &ip) {
        (XffMode::Off, _) | (_, None) => {}
        (XffMode::Replace, Some(ip)) => {
            let _ = req.insert_header("x-forwarded-for", ip.as_str());
        }
        (XffMode::Append, Some(ip)) => {
            let prior: Vec<String> = req
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_string))
                .collect();
            let value = if prior.is_empty() {
                ip.clone()
            } else {
                format!("{}, {ip}", prior.join(", "))
            };
            let _ = req.insert_header("x-forwarded-for", value);
        }
    }
    let proto = client.scheme.as_str();
    if fwd.x_forwarded_proto {
        let _ = req.insert_header("x-forwarded-proto", HeaderValue::from_static(proto));
    }
    if fwd.forwarded {
        let mut element = String::new();
        if let Some(ip) = client.ip {
            element = match ip {
                IpAddr::V4(v4) => format!("for={v4}"),
                IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
            };
            element.push(';');
        }
        element.push_str("proto=");
        element.push_str(proto);
        if !client.host.is_empty()
            && client
                .host
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"')
        {
            element.push_str(";host=\"");
            element.push_str(client.host);
            element.push('"');
        }
        let _ = req.append_header("forwarded", element);
    }
    if fwd.via {
        let _ = req.append_header(header::VIA, via_value(client.http_version));
    }
}

/// A message head that header edits apply to, through pingora's own methods (which keep the
/// header-name case map of HTTP/1.1 in step with the headers).
pub trait EditHeaders {
    fn remove(&mut self, name: &HeaderName);
    fn set(&mut self, name: HeaderName, value: HeaderValue);
    fn add(&mut self, name: HeaderName, value: HeaderValue);
}

/// pingora's request and response heads have the same three methods, not a shared trait.
macro_rules! edit_headers_through_pingora {
    ($($head:ty),*) => {$(
        impl EditHeaders for $head {
            fn remove(&mut self, name: &HeaderName) {
                self.remove_header(name);
            }
            fn set(&mut self, name: HeaderName, value: HeaderValue) {
                let _ = self.insert_header(name, value);
            }
            fn add(&mut self, name: HeaderName, value: HeaderValue) {
                let _ = self.append_header(name, value);
            }
        }
    )*};
}

edit_headers_through_pingora!(RequestHeader, ResponseHeader);

/// Apply header edits (a route's or a filter's) in the order remove, set, add.
pub fn apply_edits(
    head: &mut impl EditHeaders,
    remove: &[HeaderName],
    set: &[(HeaderName, HeaderValue)],
    add: &[(HeaderName, HeaderValue)],
) {
    for n in remove {
        head.remove(n);
    }
    for (n, v) in set {
        head.set(n.clone(), v.clone());
    }
    for (n, v) in add {
        head.add(n.clone(), v.clone());
    }
}

/// Apply a route's edits.
pub fn edit(head: &mut impl EditHeaders, edits: &HeaderEdits) {
    apply_edits(head, &edits.remove, &edits.set, &edits.add);
}
