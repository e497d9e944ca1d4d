//! Header work on the request path: hop-by-hop stripping, forwarding headers, route edits.

use crate::pipeline::errors::LocalResponse;
use crate::pipeline::Scheme;
use breakwater_config::{Forwarding, HeaderEdits, XffMode};
use breakwater_isolate::Edits;
use http::header::{self, HeaderName};
use http::HeaderMap;
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader, StaticHeaderName};
use std::cell::RefCell;
use std::net::IpAddr;

/// The headers this node adds, with the case they are written in on HTTP/1: adding one by a
/// [`StaticHeaderName`] neither parses nor allocates its name (a `&str` name is parsed per
/// request, and one outside `http`'s standard set allocated twice).
pub static X_FORWARDED_FOR: StaticHeaderName =
    StaticHeaderName::new("x-forwarded-for", "X-Forwarded-For");
pub static X_FORWARDED_PROTO: StaticHeaderName =
    StaticHeaderName::new("x-forwarded-proto", "X-Forwarded-Proto");
pub static FORWARDED: StaticHeaderName = StaticHeaderName::new("forwarded", "Forwarded");
pub static VIA: StaticHeaderName = StaticHeaderName::new("via", "Via");
pub static X_REQUEST_ID: StaticHeaderName = StaticHeaderName::new("x-request-id", "X-Request-Id");
/// How many headers this node may add to a request it forwards: `X-Request-Id`,
/// `X-Forwarded-For`, `X-Forwarded-Proto`, `Forwarded`, `Via`, `CDN-Loop`, `TE`.
pub const ADDED_UPSTREAM: usize = 7;
/// RFC 8586: every CDN node a request passes adds itself here.
pub static CDN_LOOP: StaticHeaderName = StaticHeaderName::new("cdn-loop", "CDN-Loop");

/// Headers that describe one connection, never forwarded (RFC 9110 7.6.1).
static HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// What to strip from a response head: the fields of the fixed hop-by-hop set it has, plus
/// the fields its `Connection` names. An `Upgrade` handshake (WebSocket) keeps
/// `Connection`/`Upgrade`: pingora relays it.
struct HopByHop {
    upgrading: bool,
    /// Which names of [`HOP_BY_HOP`] the head has.
    present: [bool; HOP_BY_HOP.len()],
    /// Other fields of the head that `Connection` names (an owned name only for one present:
    /// tokens such as `keep-alive` or `close` usually name none, and cost nothing).
    named: Vec<HeaderName>,
}

impl HopByHop {
    /// `None` when the head has none of the fixed set (and so no `Connection` naming others):
    /// one pass over its names, each compared as an enum or by length first, instead of a
    /// hash lookup per name of the set.
    fn of(headers: &HeaderMap) -> Option<Self> {
        let mut present = [false; HOP_BY_HOP.len()];
        for name in headers.keys() {
            if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
                present[i] = true;
            }
        }
        if !present.contains(&true) {
            return None;
        }
        let tokens = || {
            headers
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
        };
        let has = |name: &HeaderName| HOP_BY_HOP.iter().zip(present).any(|(h, p)| p && h == name);
        let upgrading =
            has(&header::UPGRADE) && tokens().any(|t| t.eq_ignore_ascii_case("upgrade"));
        let named = match upgrading || !has(&header::CONNECTION) {
            true => Vec::new(),
            false => tokens()
                .filter(|t| !t.is_empty())
                .filter(|t| {
                    !HOP_BY_HOP
                        .iter()
                        .any(|h| t.eq_ignore_ascii_case(h.as_str()))
                })
                .filter(|t| headers.contains_key(*t))
                .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
                .collect(),
        };
        Some(Self {
            upgrading,
            present,
            named,
        })
    }

    fn names(&self) -> impl Iterator<Item = &HeaderName> {
        let fixed = HOP_BY_HOP
            .iter()
            .zip(self.present)
            .filter_map(|(h, present)| {
                let kept = self.upgrading && (*h == header::CONNECTION || *h == header::UPGRADE);
                (present && !kept).then_some(h)
            });
        self.named.iter().chain(fixed)
    }
}

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
        .get_all(CDN_LOOP.name())
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

/// The client's request as the next hop may get it. pingora has taken out the fields only
/// this hop may see before `upstream_request_filter` runs (its default
/// `HttpUpstreamRequestPolicy`: the standard hop-by-hop set and what `Connection` names, a
/// WebSocket handshake rebuilt), `TE` with them; what is left here: `TE: trailers` goes on
/// when the client sent it (the one `TE` value a proxy forwards: the client takes trailers,
/// which gRPC origins require), and a repeated `Content-Length` becomes one
/// ([`single_content_length`]).
pub fn finish_upstream_request(client: &RequestHeader, upstream: &mut RequestHeader) {
    let te_trailers = client
        .headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            // `trailers` takes no parameters; a `;q=0` would decline it.
            t.trim().eq_ignore_ascii_case("trailers")
        });
    if te_trailers {
        let _ = upstream.insert_header(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some(length) = single_content_length(&upstream.headers) {
        let _ = upstream.insert_header(header::CONTENT_LENGTH, length);
    }
}

/// The origin's response as the client may get it: without the fields only this hop may see
/// (but framing), and with a single `Content-Length` ([`single_content_length`]).
pub fn strip_hop_by_hop_response(resp: &mut ResponseHeader) {
    if let Some(strip) = HopByHop::of(&resp.headers) {
        for n in strip.names() {
            if n == header::TRANSFER_ENCODING || n == header::CONTENT_LENGTH {
                continue;
            }
            resp.remove_header(n);
        }
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

thread_local! {
    /// The last client address made text on this thread (for `X-Forwarded-For`, and for the
    /// filters' view of the request), and its text: the requests of a keep-alive connection,
    /// and most of a thread's in a burst, share it.
    static LAST_CLIENT: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
}

/// `ip` as a header value (text made once per client in a row).
pub fn client_ip_value(ip: IpAddr) -> HeaderValue {
    LAST_CLIENT.with_borrow_mut(|last| match last {
        Some((seen, value)) if *seen == ip => value.clone(),
        _ => {
            let value = HeaderValue::from_str(&ip.to_string()).expect("an address is ASCII");
            *last = Some((ip, value.clone()));
            value
        }
    })
}

pub fn add_forwarding(req: &mut RequestHeader, fwd: &Forwarding, client: &ClientInfo<'_>) {
    match (fwd.x_forwarded_for, client.ip) {
        (XffMode::Off, _) | (_, None) => {}
        (XffMode::Replace, Some(ip)) => {
            let _ = req.insert_header(&X_FORWARDED_FOR, client_ip_value(ip));
        }
        (XffMode::Append, Some(ip)) => {
            let ip = client_ip_value(ip);
            let mut prior = req
                .headers
                .get_all(X_FORWARDED_FOR.name())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .peekable();
            let value = match prior.peek() {
                None => ip,
                Some(_) => {
                    let mut list = prior.collect::<Vec<_>>().join(", ");
                    list.push_str(", ");
                    list.push_str(ip.to_str().unwrap_or_default());
                    // The prior values were valid header values, and so is their list.
                    HeaderValue::from_str(&list).unwrap_or(ip)
                }
            };
            let _ = req.insert_header(&X_FORWARDED_FOR, value);
        }
    }
    let proto = client.scheme.as_str();
    if fwd.x_forwarded_proto {
        let _ = req.insert_header(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
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
        let _ = req.append_header(&FORWARDED, element);
    }
    if fwd.via {
        let via = HeaderValue::from_static(via_value(client.http_version));
        let _ = req.append_header(&VIA, via);
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
pub fn apply_edits<'a>(
    head: &mut impl EditHeaders,
    remove: impl IntoIterator<Item = &'a HeaderName>,
    set: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
    add: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
) {
    for n in remove {
        head.remove(n);
    }
    for (n, v) in set {
        head.set(n, v);
    }
    for (n, v) in add {
        head.add(n, v);
    }
}

/// Apply a filter's edits, moving its names and values into the head.
pub fn apply_filter_edits(head: &mut impl EditHeaders, edits: Edits) {
    apply_edits(head, &edits.remove, edits.set, edits.add);
}

/// Apply a route's edits.
pub fn edit(head: &mut impl EditHeaders, edits: &HeaderEdits) {
    let (set, add) = (edits.set.iter().cloned(), edits.add.iter().cloned());
    apply_edits(head, &edits.remove, set, add);
}
